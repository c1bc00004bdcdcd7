"""Claiming cases from a queue under a lease, and giving them back.

A lease is (reviewer, token, expiry). Only the holder of a live lease may act on a case; an
expired lease simply makes the case claimable again. On PostgreSQL the next case is picked with
SELECT … FOR UPDATE SKIP LOCKED, so concurrent reviewers never get the same case.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, Case, CaseSkip, Queue

from .permissions import require_queue

Kind = AuditEvent.Kind
CONSOLE = AuditEvent.Source.CONSOLE
LEASE_FIELDS = ("claimed_by", "lease_token", "lease_expires_at", "claimed_at")


class LeaseError(ValidationError):
    """The caller does not hold a live lease on the case."""


def _lease_expiry(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=settings.LEASE_SECONDS)


def _take(case: Case, reviewer, now: dt.datetime, source: str, *, token=None) -> Case:
    """Lease the case to the reviewer (a group's members share one token: review/groups.py)."""
    events = []
    if case.claimed_by_id is not None and case.claimed_by_id != reviewer.id:
        events.append(
            PendingEvent(
                Kind.LEASE_EXPIRED,
                case,
                actor_label="system",
                source=source,
                data={
                    "previous_holder_id": case.claimed_by_id,
                    "expired_at": case.lease_expires_at,
                },
            )
        )
    case.claimed_by = reviewer
    case.lease_token = token or uuid.uuid4()
    case.lease_expires_at = _lease_expiry(now)
    case.claimed_at = now
    case.save(update_fields=list(LEASE_FIELDS))
    events.append(
        PendingEvent(
            Kind.CLAIMED,
            case,
            actor=reviewer,
            source=source,
            data={"queue": case.queue, "lease_expires_at": case.lease_expires_at},
        )
    )
    record_events(events)
    return case


def _not_for(reviewer, queryset):
    """Cases this reviewer must not take: skipped by them, or appeals against their own decision."""
    return queryset.exclude(skips__reviewer=reviewer).exclude(
        appealed_decision__decided_by=reviewer
    )


def claim_next_case(
    *, reviewer, queue: str, policy_id: int | None = None, source: AuditEvent.Source = CONSOLE
) -> Case | None:
    """Give the reviewer the next case in `queue` (their own live claim first), or None."""
    require_queue(reviewer, queue)
    now = timezone.now()
    held = Case.objects.held_by(reviewer, now=now).filter(queue=queue)
    if policy_id:
        held = held.filter(policy_version__policy_id=policy_id)
    mine = held.order_by("claimed_at").first()
    if mine is not None:
        return mine
    candidates = _not_for(reviewer, Case.objects.claimable(now=now).filter(queue=queue))
    if policy_id:
        candidates = candidates.filter(policy_version__policy_id=policy_id)
    candidates = candidates.queue_order()
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            case = candidates.select_for_update(skip_locked=True, of=("self",)).first()
            if case is None:
                return None
            return _take(case, reviewer, now, source)
    # SQLite: every write transaction is IMMEDIATE, so the read and the update are serialised.
    with transaction.atomic():
        case = candidates.first()
        return _take(case, reviewer, now, source) if case else None


def claim_case(*, reviewer, case_id: int, source: AuditEvent.Source = CONSOLE) -> Case:
    """Claim a particular case (picked from the queue list), if nobody holds it."""
    now = timezone.now()
    with transaction.atomic():
        case = Case.objects.select_for_update().get(id=case_id)
        require_queue(reviewer, case.queue)
        if case.status != Case.Status.OPEN:
            raise ValidationError("this case is already decided")
        from .appeal_links import decider_conflict  # appeal_links builds on this module

        if problem := decider_conflict(reviewer, case):
            raise ValidationError(problem)
        if case.lease_is_live(now=now):
            if case.claimed_by_id == reviewer.id:
                return case
            raise LeaseError(f"this case is being reviewed by {case.claimed_by.get_username()}")
        return _take(case, reviewer, now, source)


def locked_case_with_lease(*, reviewer, case_id: int, lease_token, now: dt.datetime) -> Case:
    """Lock the case row and check the reviewer holds its live lease. Call inside atomic()."""
    case = Case.objects.select_for_update().select_related("policy_version__policy").get(id=case_id)
    if case.status != Case.Status.OPEN:
        raise LeaseError("this case is already decided")
    token = str(lease_token or "")
    if case.claimed_by_id != reviewer.id or str(case.lease_token) != token:
        raise LeaseError("you do not hold the lease on this case; claim it first")
    if not case.lease_is_live(now=now):
        raise LeaseError("your lease on this case expired; claim it again")
    return case


def renew_lease(
    *, reviewer, case_id: int, lease_token, source: AuditEvent.Source = CONSOLE
) -> Case:
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        case.lease_expires_at = _lease_expiry(now)
        case.save(update_fields=["lease_expires_at"])
        record_events(
            [
                PendingEvent(
                    Kind.LEASE_RENEWED,
                    case,
                    actor=reviewer,
                    source=source,
                    data={"lease_expires_at": case.lease_expires_at},
                )
            ]
        )
    return case


def clear_lease(case: Case) -> list[str]:
    """The one way a lease ends (release, skip, escalate, decide): every lease field emptied.

    Returns the fields to save. (The decision keeps its own copy of when the case was claimed.)
    """
    case.claimed_by = None
    case.lease_token = None
    case.lease_expires_at = None
    case.claimed_at = None
    return list(LEASE_FIELDS)


def release_case(
    *, reviewer, case_id: int, lease_token, reason: str = "", source: AuditEvent.Source = CONSOLE
) -> Case:
    """Give the case back to its queue, unchanged."""
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        case.save(update_fields=clear_lease(case))
        record_events(
            [
                PendingEvent(
                    Kind.RELEASED,
                    case,
                    actor=reviewer,
                    source=source,
                    data={"reason": reason.strip()},
                )
            ]
        )
    return case


def skip_case(
    *, reviewer, case_id: int, lease_token, reason: str, source: AuditEvent.Source = CONSOLE
) -> Case:
    """Pass on a case: back to the queue, and not offered to this reviewer again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why you are skipping this case"})
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        case.save(update_fields=clear_lease(case))
        CaseSkip.objects.create(case=case, reviewer=reviewer, reason=reason, created_at=now)
        record_events(
            [
                PendingEvent(
                    Kind.SKIPPED, case, actor=reviewer, source=source, data={"reason": reason}
                )
            ]
        )
    return case


def escalate_case(
    *, reviewer, case_id: int, lease_token, reason: str, source: AuditEvent.Source = CONSOLE
) -> Case:
    """Send the case to the escalations queue for a senior reviewer."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why you are escalating this case"})
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        if case.queue == Queue.ESCALATIONS:
            raise ValidationError("this case is already in the escalations queue")
        from_queue = case.queue
        case.queue = Queue.ESCALATIONS
        case.escalation_reason = reason
        case.save(update_fields=["queue", "escalation_reason", *clear_lease(case)])
        record_events(
            [
                PendingEvent(
                    Kind.ESCALATED,
                    case,
                    actor=reviewer,
                    source=source,
                    data={"from_queue": from_queue, "reason": reason},
                )
            ]
        )
    return case
