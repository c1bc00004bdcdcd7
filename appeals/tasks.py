"""Celery tasks: thin wrappers that take ids and call the services. Routing is in settings."""

from __future__ import annotations

from celery import shared_task

from . import drafting


@shared_task(acks_late=True, reject_on_worker_lost=True)
def draft_recommendations(recommendation_ids: list[int]) -> int:
    """Draft these recommendations (on the `gpu` queue). Safe to run twice."""
    return drafting.run_drafts(recommendation_ids)


@shared_task
def recover_stalled_drafts() -> int:
    return drafting.recover_stalled_drafts()
