"""Celery tasks of the disclosure stage: the signed callback to the platform (and the sweep of
its outbox), and the signed
checkpoint of the audit chain's head for auditors.

The names are wire format (CELERY_TASK_ROUTES and the beat schedule use them), so they keep the
old flat module's names.
"""

from __future__ import annotations

from celery import shared_task

from . import checkpoints, outbox


@shared_task(name="appeals.tasks.deliver_decision_callback", acks_late=True)
def deliver_decision_callback(decision_id: int) -> str:
    """POST the decision to its platform's callback URL (on the default queue), if its outbox
    row is due and unclaimed. A failed attempt leaves the row for the sweep, which retries it
    with backoff; a duplicate or late message finds nothing due and does nothing."""
    return outbox.deliver(decision_id=decision_id).status


@shared_task(name="appeals.tasks.sweep_callbacks")
def sweep_callbacks() -> dict:
    """Deliver every callback that is due (beat, every CALLBACK_SWEEP_SECONDS): the ones whose
    hand-off to the broker failed, whose worker died, or whose platform asked us to come back."""
    return outbox.sweep_callbacks()


@shared_task(name="appeals.tasks.write_audit_checkpoint")
def write_audit_checkpoint() -> str:
    """Sign the audit chain's head into the checkpoint storage (beat, every
    AUDIT_CHECKPOINT_INTERVAL_SECONDS) unless it is unchanged since the last one. Refuses a chain
    that does not extend the last checkpoint."""
    return checkpoints.write_checkpoint(skip_if_unchanged=True).name
