"""Celery tasks of the disclosure stage: the signed callback to the platform.

The name is wire format (CELERY_TASK_ROUTES uses it), so it keeps the old flat module's name.
"""

from __future__ import annotations

from celery import shared_task

from . import callbacks


@shared_task(
    name="appeals.tasks.deliver_decision_callback",
    bind=True,
    acks_late=True,
    autoretry_for=(callbacks.RetryableDeliveryError,),
    retry_backoff=30,  # 30 s, 1 min, 2 min, … capped at an hour: about 2 h over 8 retries
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=callbacks.MAX_ATTEMPTS - 1,
)
def deliver_decision_callback(self, decision_id: int) -> str:
    """POST the decision to its platform's callback URL (on the default queue). Idempotent:
    attempts are counted in the audit log, and a delivered decision is not sent again."""
    return callbacks.deliver_decision(decision_id).status
