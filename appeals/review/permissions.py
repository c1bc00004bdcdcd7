"""Who may do what. Checked in services (and again in views); templates only hide buttons."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from appeals.models import Case, Queue

QUEUE_PERMISSIONS = {
    Queue.FLAGS: "appeals.review_flags",
    Queue.APPEALS: "appeals.review_appeals",
    Queue.ESCALATIONS: "appeals.review_escalations",
}


def can_work_queue(user, queue: str) -> bool:
    return user.is_active and user.has_perm(QUEUE_PERMISSIONS[queue])


def require_queue(user, queue: str) -> None:
    if not can_work_queue(user, queue):
        raise PermissionDenied(f"you may not review cases in the {Queue(queue).label} queue")


def workable_queues(user) -> list[str]:
    return [queue for queue in Queue.values if can_work_queue(user, queue)]


def can_view_case(user, case: Case) -> bool:
    return (
        user.has_perm("appeals.view_all_cases")
        or can_work_queue(user, case.queue)
        or (case.claimed_by_id == user.id)
        or _escalated_by(user, case)
        or _in_history_of_workable_case(user, case)
    )


def _escalated_by(user, case: Case) -> bool:
    """Whoever escalated a case may still read it (to see what the senior decided)."""
    from appeals.models import AuditEvent

    return (
        user.is_authenticated
        and AuditEvent.objects.filter(
            case_id=case.id, kind=AuditEvent.Kind.ESCALATED, actor_id=user.id
        ).exists()
    )


def _in_history_of_workable_case(user, case: Case) -> bool:
    """Cases the case page links to as the author's history: readable (not workable) by whoever
    may work some case by the same author on the same platform."""
    queues = workable_queues(user)
    author = case.item.author_id
    if not queues or not author:
        return False
    return Case.objects.filter(
        platform_id=case.platform_id, item__author_id=author, queue__in=queues
    ).exists()


def require_view_case(user, case: Case) -> None:
    if not can_view_case(user, case):
        raise PermissionDenied("you may not read this case")
