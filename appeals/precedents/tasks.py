"""Celery task of the precedents. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="appeals.tasks.embed_cases", acks_late=True)
def embed_cases(item_ids: list[int]) -> int:
    """Embed the new cases' items on the CPU queue ("default") in one model call, then bring
    the index file up to date; returns how many embeddings were stored."""
    stored = services.embed_items(item_ids)
    services.refresh_index_file()
    return stored
