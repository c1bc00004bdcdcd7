"""Celery tasks: thin wrappers that take ids and call the services. Routing is in settings."""

from __future__ import annotations

from celery import shared_task

from . import callbacks, checkpoints, drafting
from .media import services as media


@shared_task(acks_late=True, reject_on_worker_lost=True)
def draft_recommendations(recommendation_ids: list[int]) -> int:
    """Draft these recommendations (on the `gpu` queue). Safe to run twice."""
    return drafting.run_drafts(recommendation_ids)


@shared_task
def recover_stalled_drafts() -> int:
    return drafting.recover_stalled_drafts()


@shared_task(
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


@shared_task(acks_late=True)
def fetch_item_media(asset_id: int) -> str:
    """Fetch an item's image or video and store it with its blurred preview (on the default
    queue). Safe to run twice: a stored asset is left as it is."""
    return media.fetch_item_media(asset_id).status


@shared_task
def write_audit_checkpoint() -> str:
    """Sign the audit chain's head into the checkpoint storage (beat, every
    AUDIT_CHECKPOINT_INTERVAL_SECONDS) unless it is unchanged since the last one. Refuses a chain
    that does not extend the last checkpoint."""
    return checkpoints.write_checkpoint(skip_if_unchanged=True).name
