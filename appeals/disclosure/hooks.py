"""Side effects that follow a committed decision. Kept apart so they never block saving one."""

from __future__ import annotations

import logging

from appeals.models import Decision

log = logging.getLogger(__name__)


def decision_recorded(decision_id: int) -> None:
    """Called after a decision commits: queue the platform callback if the platform has one."""
    wants_callback = (
        Decision.objects.filter(id=decision_id).exclude(case__platform__callback_url="").exists()
    )
    if not wants_callback:
        return
    from . import tasks

    try:
        tasks.deliver_decision_callback.delay(decision_id)
    except Exception:  # the broker is down: the decision stands; say so loudly
        log.exception("could not queue the callback for decision %s", decision_id)
