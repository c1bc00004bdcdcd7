"""Celery task of the second opinions. The name is wire format (CELERY_TASK_ROUTES uses it)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services

MAX_RETRIES = 5  # with the default 10 s: 10, 20, 40, 80, 160 s, then the failure is stored


@shared_task(
    bind=True, name="appeals.tasks.second_opinions", acks_late=True, max_retries=MAX_RETRIES
)
def second_opinions(self, pairs: list[list[int]]) -> int:
    """Ask the second-opinion models for (case id, setting id) pairs (CPU queue "default");
    returns how many opinions were stored. Pairs that met a transient failure (timeout, server
    unreachable) are tried again, on their own, with a growing delay."""
    last_try = self.request.retries >= self.max_retries
    outcome = services.ask_second_opinions(pairs, last_try=last_try)
    if outcome.retry:
        countdown = settings.SECOND_OPINION_RETRY_SECONDS * 2**self.request.retries
        raise self.retry(args=[[list(p) for p in outcome.retry]], countdown=countdown)
    return len(outcome.stored)
