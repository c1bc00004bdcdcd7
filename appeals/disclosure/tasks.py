"""Celery tasks of the disclosure stage: the signed callback to the platform, and the signed
checkpoint of the audit chain's head for auditors.

The names are wire format (CELERY_TASK_ROUTES and the beat schedule use them), so they keep the
old flat module's names.
"""

from __future__ import annotations

from celery import shared_task

from . import callbacks, checkpoints


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


@shared_task(name="appeals.tasks.write_audit_checkpoint")
def write_audit_checkpoint() -> str:
    """Sign the audit chain's head into the checkpoint storage (beat, every
    AUDIT_CHECKPOINT_INTERVAL_SECONDS) unless it is unchanged since the last one. Refuses a chain
    that does not extend the last checkpoint."""
    return checkpoints.write_checkpoint(skip_if_unchanged=True).name
