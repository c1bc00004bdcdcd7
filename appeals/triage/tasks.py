"""Celery task of the fast tier. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task

from . import services

MEDIA_WAIT_SECONDS = 3
MEDIA_WAIT_TRIES = 40  # about two minutes: the media fetch's own time limit is shorter


@shared_task(
    bind=True, name="appeals.tasks.triage_item", acks_late=True, max_retries=MEDIA_WAIT_TRIES
)
def triage_item(self, item_id: int) -> int:
    """Score an item with the fast tier (CPU queue "default"); returns how many signals it has.
    An image still being fetched is tried again a little later."""
    try:
        return len(services.triage_item(item_id))
    except services.MediaNotStoredYet as waiting:
        raise self.retry(countdown=MEDIA_WAIT_SECONDS, exc=waiting) from waiting
