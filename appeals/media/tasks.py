"""Celery tasks of media intake: fetch an item's image or video on the server and store it with
its blurred preview. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="appeals.tasks.fetch_item_media", acks_late=True)
def fetch_item_media(asset_id: int) -> str:
    """Fetch an item's image or video and store it with its blurred preview (on the default
    queue). Safe to run twice: a stored asset is left as it is."""
    return services.fetch_item_media(asset_id).status
