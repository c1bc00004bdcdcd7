"""Worker start-up: say plainly, in the log, when drafts cannot run and which setting fixes it;
when they can, ask again for the drafts that failed because they could not."""

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
        return
    log.info(
        "Model drafts use the %s backend with %s",
        config.resolved_backend,
        config.base_url or config.model,
    )
    requeue_unconfigured(config)


def requeue_unconfigured(config) -> None:
    """Drafts that failed "not configured" are asked for again now that a model is configured."""
    from appeals.drafts.requeue import requeue_unconfigured_drafts

    try:
        requeued = requeue_unconfigured_drafts()
    except Exception:  # the worker still starts; the cases keep their honest failure
        log.exception("could not re-queue the drafts that failed as not configured")
        return
    if requeued:
        log.info(
            "Re-queued %d draft(s) that had failed as not configured (now %s)",
            len(requeued),
            config.base_url or config.model,
        )
