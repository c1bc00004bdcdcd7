"""Worker start-up: say plainly, in the log, when drafts cannot run and which setting fixes it."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

log = logging.getLogger("appeals.worker")


@worker_ready.connect
def report_engine_availability(sender=None, **kwargs):
    from policies.engine import engine_config
    from policies.safeguard import unavailable_reason

    config = engine_config()
    reason = unavailable_reason(config)
    if reason:
        log.warning("Model drafts will fail as not configured: %s", reason)
    else:
        log.info(
            "Model drafts use the %s backend with %s",
            config.resolved_backend,
            config.base_url or config.model,
        )
