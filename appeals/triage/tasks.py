"""Celery task of the fast tier. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task

from . import services

MEDIA_WAIT_SECONDS = 3
MEDIA_WAIT_TRIES = 40  # about two minutes: longer than the media fetch's own time limit


@shared_task(
    bind=True, name="appeals.tasks.triage_items", acks_late=True, max_retries=MEDIA_WAIT_TRIES
)
def triage_items(self, item_ids: list[int]) -> int:
    """Score items with the fast tier (CPU queue "default"); returns how many were stored.
    Images still being fetched are tried again a little later, on their own."""
    result = services.triage_items(item_ids)
    if result.waiting:
        raise self.retry(args=[result.waiting], countdown=MEDIA_WAIT_SECONDS)
    return len(result.signals)
