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
    )


def require_view_case(user, case: Case) -> None:
    if not can_view_case(user, case):
        raise PermissionDenied("you may not read this case")
