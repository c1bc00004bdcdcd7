"""Asking again for drafts by hand: the case page's "Retry draft" and a senior's "re-queue every
failed draft of this queue". Who may is decided here; the asking is appeals.drafts'."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from appeals.audit import record_event
from appeals.drafts.requeue import failed_latest, requeue_cases
from appeals.drafts.services import request_draft
from appeals.models import AuditEvent, Case, Queue, Recommendation

from .permissions import can_work_queue

Kind = AuditEvent.Kind
SENIOR_PERMISSION = "appeals.review_escalations"


def is_senior(user) -> bool:
    return user.is_active and user.has_perm(SENIOR_PERMISSION)


def requeue_failed_drafts(*, queue: str, actor) -> list[int]:
    """A senior asks again for every failed draft of the open cases in `queue`."""
    if queue not in Queue.values:
        raise ValidationError(f"{queue!r} is not a queue")
    if not is_senior(actor):
        raise PermissionDenied("only a senior reviewer may re-queue a queue's failed drafts")
    case_ids = list(failed_latest().filter(case__queue=queue).values_list("case_id", flat=True))
    requeued = requeue_cases(
        case_ids,
        actor=actor,
        actor_label=actor.get_username(),
        source=AuditEvent.Source.CONSOLE,
        why=f"failed drafts of the {Queue(queue).label} queue re-queued",
    )
    with transaction.atomic():
        record_event(
            Kind.DRAFTS_REQUEUED,
            case=None,
            actor=actor,
            source=AuditEvent.Source.CONSOLE,
            data={"queue": queue, "cases": len(requeued)},
        )
    return requeued


def may_retry_draft(user, case: Case) -> bool:
    if case.status != Case.Status.OPEN:
        return False
    if is_senior(user):
        return True
    return (
        case.claimed_by_id == user.id and case.lease_is_live() and can_work_queue(user, case.queue)
    )


def retry_draft(*, case_id: int, actor) -> Recommendation:
    """The case page's "Retry draft": open cases only, by the lease holder or a senior."""
    case = Case.objects.get(id=case_id)
    if case.status != Case.Status.OPEN:
        raise ValidationError("This case is closed: its draft can no longer be requested.")
    if not may_retry_draft(actor, case):
        raise PermissionDenied("only the reviewer holding this case or a senior may ask again")
    return request_draft(case=case, actor=actor)
