"""Celery task of near-duplicate grouping. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task

from . import services

MEDIA_WAIT_SECONDS = 3
MEDIA_WAIT_TRIES = 40  # about two minutes: longer than the media fetch's own time limit


@shared_task(
    bind=True,
    name="appeals.tasks.group_near_duplicates",
    acks_late=True,
    max_retries=MEDIA_WAIT_TRIES,
)
def group_near_duplicates(self, case_ids: list[int]) -> int:
    """Group new cases with their open near-duplicates (CPU queue "default"); returns how many
    joined a group. Images still being fetched are tried again a little later, on their own."""
    result = services.group_near_duplicates(case_ids)
    if result.waiting:
        raise self.retry(args=[result.waiting], countdown=MEDIA_WAIT_SECONDS)
    return len(result.grouped)
