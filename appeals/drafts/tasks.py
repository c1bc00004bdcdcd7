"""Celery tasks of the drafting stage: thin wrappers that take ids and call the services.

Routing is in settings. The names are wire format (CELERY_TASK_ROUTES, the beat schedule and
messages already in the broker use them), so they keep the dotted names of the old flat module.
"""

from __future__ import annotations

from celery import shared_task

from . import feeder
from . import services as drafting


@shared_task(name=drafting.DRAFT_TASK, acks_late=True, reject_on_worker_lost=True)
def draft_recommendations(recommendation_ids: list[int]) -> int:
    """Draft these recommendations and whatever else is pending under their policy versions
    (on the `gpu` queue; see feeder.py). Safe to run twice."""
    return feeder.drain_for_requests(recommendation_ids)


@shared_task(name="appeals.tasks.recover_stalled_drafts")
def recover_stalled_drafts() -> int:
    return drafting.recover_stalled_drafts()
