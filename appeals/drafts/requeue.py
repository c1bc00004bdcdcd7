"""Asking again for drafts that failed for a reason that has since gone away.

A draft that failed "not configured" says something true only until a model is configured: when
a worker starts with a configuration that works, `requeue_unconfigured_drafts` asks again for every
open case whose latest draft failed that way. Who may ask again by hand (a senior for a
whole queue, the lease holder for one case) is decided in appeals/review/redraft.py.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, Case, Recommendation

from .services import _enqueue_on_commit

Kind = AuditEvent.Kind
NOT_CONFIGURED = "not_configured"
# Cases locked and re-queued per transaction: the audit chain's lock is held that long.
CHUNK = 500


def failed_latest(reason: str | None = None):
    """Open cases whose latest recommendation failed (for `reason`, when given)."""
    newer = Recommendation.objects.filter(case=OuterRef("case_id"), id__gt=OuterRef("id"))
    failed = Recommendation.objects.filter(status=Recommendation.Status.FAILED)
    if reason:
        failed = failed.filter(failure_reason=reason)
    return (
        failed.filter(case__status=Case.Status.OPEN)
        .annotate(superseded=Exists(newer))
        .filter(superseded=False)
    )


def requeue_cases(case_ids: list[int], *, actor, actor_label: str, source, why: str) -> list[int]:
    """New pending recommendations for these cases (none that have one in flight), on commit."""
    requeued: list[int] = []
    for start in range(0, len(case_ids), CHUNK):
        chunk = case_ids[start : start + CHUNK]
        with transaction.atomic():
            locked = list(
                Case.objects.select_for_update(skip_locked=True)
                .filter(id__in=chunk, status=Case.Status.OPEN)
                .exclude(
                    Exists(
                        Recommendation.objects.filter(
                            case=OuterRef("id"), status__in=Recommendation.IN_FLIGHT
                        )
                    )
                )
                .values_list("id", "policy_version_id")
            )
            if not locked:
                continue
            recs = Recommendation.objects.bulk_create(
                [
                    Recommendation(
                        case_id=case_id, policy_version_id=version_id, requested_by=actor
                    )
                    for case_id, version_id in locked
                ]
            )
            record_events(
                PendingEvent(
                    Kind.DRAFT_REQUESTED,
                    Case(id=rec.case_id),
                    actor,
                    actor_label,
                    {"recommendation_id": rec.id, "why": why},
                    source,
                )
                for rec in recs
            )
            _enqueue_on_commit([rec.id for rec in recs])
            requeued.extend(rec.case_id for rec in recs)
    return requeued


def requeue_unconfigured_drafts() -> list[int]:
    """Ask again for every open case whose latest draft failed as not configured. Returns the
    case ids. Run when a worker starts with a configuration that works (see signals.py); safe to
    run twice, or in two workers at once: a case with a draft in flight is left alone."""
    case_ids = list(failed_latest(NOT_CONFIGURED).values_list("case_id", flat=True))
    return requeue_cases(
        case_ids,
        actor=None,
        actor_label="worker",
        source=AuditEvent.Source.WORKER,
        why="a model is configured now",
    )
