"""A reviewer's work on a near-duplicate group (found by appeals/groups/): claim it (one lease
over every member), confirm it, remove members, and decide it once.

Deciding a group is `decide_case` for each member, inside one transaction: every member gets
its own Decision, notice, callback and audit event, each naming the group and who confirmed
it, through the one decision path there is. If any member cannot be decided, nothing is: the
refusal names the member and the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, Case, CaseGroup, Decision, GroupMember

from .appeal_links import decider_conflict
from .decisions import decide_case
from .permissions import require_queue
from .queueing import _take, release_case, renew_lease

Kind = AuditEvent.Kind
CONSOLE = AuditEvent.Source.CONSOLE


class GroupError(ValidationError):
    """The group cannot be worked as asked; the message names the member and the reason."""


def member_cases(group: CaseGroup):
    """The group's current members (removed ones left out), in case order."""
    return (
        Case.objects.filter(group_memberships__group=group, group_memberships__removed_at=None)
        .select_related("item", "claimed_by")
        .order_by("id")
    )


def group_of(case: Case) -> CaseGroup | None:
    """The group the case is in now, if any."""
    member = (
        GroupMember.objects.active()
        .filter(case_id=case.id)
        .select_related("group", "group__confirmed_by")
        .first()
    )
    return member.group if member else None


def _locked_group(reviewer, group_id: int) -> CaseGroup:
    group = (
        CaseGroup.objects.select_for_update(of=("self",))
        .select_related("confirmed_by")
        .get(id=group_id)
    )
    require_queue(reviewer, group.queue)
    if group.status == CaseGroup.Status.DECIDED:
        raise GroupError(f"group {group.id} is already decided")
    return group


def _locked_members(group: CaseGroup) -> list[Case]:
    members = list(member_cases(group).select_for_update(of=("self",)))
    if len(members) > settings.GROUP_MAX_SIZE:
        raise GroupError(
            f"group {group.id} has {len(members)} members, more than GROUP_MAX_SIZE "
            f"({settings.GROUP_MAX_SIZE}); remove some first"
        )
    return members


def _label(case: Case) -> str:
    return f"case {case.id} ({case.external_id})"


def _require_same_queue(group: CaseGroup, case: Case) -> None:
    if case.queue != group.queue:
        raise GroupError(
            f"{_label(case)} moved to the {case.get_queue_display()} queue; remove it from the "
            "group"
        )


def group_lease(reviewer, group: CaseGroup, *, now=None) -> uuid.UUID | None:
    """The token of the reviewer's live lease over every member, or None."""
    now = now or timezone.now()
    members = list(member_cases(group))
    tokens = {case.lease_token for case in members}
    if not members or len(tokens) != 1:
        return None
    if all(c.claimed_by_id == reviewer.id and c.lease_is_live(now=now) for c in members):
        return tokens.pop()
    return None


def claim_group(*, reviewer, group_id: int, source: AuditEvent.Source = CONSOLE) -> uuid.UUID:
    """Lease every member to the reviewer under one token, or none of them.

    Refused, naming the member, when one is decided, is held by someone else, or is one the
    reviewer may not decide (an appeal against their own decision)."""
    now = timezone.now()
    with transaction.atomic():
        group = _locked_group(reviewer, group_id)
        members = _locked_members(group)
        if len(members) < 2:
            raise GroupError(f"group {group.id} has fewer than two members left to work together")
        tokens = {c.lease_token for c in members}
        if len(tokens) == 1 and all(
            c.claimed_by_id == reviewer.id and c.lease_is_live(now=now) for c in members
        ):
            return tokens.pop()  # already held, whole
        for case in members:
            if case.status != Case.Status.OPEN:
                raise GroupError(f"{_label(case)} is already decided; remove it from the group")
            _require_same_queue(group, case)
            if case.lease_is_live(now=now) and case.claimed_by_id != reviewer.id:
                raise GroupError(
                    f"{_label(case)} is being reviewed by {case.claimed_by.get_username()}; "
                    "wait for them, or remove it from the group"
                )
            if problem := decider_conflict(reviewer, case):
                raise GroupError(f"{_label(case)}: {problem}")
        token = uuid.uuid4()
        for case in members:
            _take(case, reviewer, now, source, token=token)
    return token


def _each_member(group_id: int, reviewer, lease_token, service, **kwargs) -> int:
    with transaction.atomic():
        group = _locked_group(reviewer, group_id)
        members = _locked_members(group)
        for case in members:
            try:
                service(reviewer=reviewer, case_id=case.id, lease_token=lease_token, **kwargs)
            except ValidationError as error:
                raise GroupError(f"{_label(case)}: {' '.join(error.messages)}") from None
    return len(members)


def renew_group_lease(*, reviewer, group_id: int, lease_token, source=CONSOLE) -> int:
    """Renew the lease on every member together (or none)."""
    return _each_member(group_id, reviewer, lease_token, renew_lease, source=source)


def release_group(*, reviewer, group_id: int, lease_token, source=CONSOLE) -> int:
    """Give every member back to its queue together."""
    return _each_member(
        group_id, reviewer, lease_token, release_case, reason="group released", source=source
    )


def _require_lease(reviewer, group: CaseGroup, members: list[Case], lease_token) -> None:
    now = timezone.now()
    token = str(lease_token or "")
    for case in members:
        if case.claimed_by_id != reviewer.id or str(case.lease_token) != token:
            raise GroupError(f"you do not hold the lease on {_label(case)}; claim the group first")
        if not case.lease_is_live(now=now):
            raise GroupError(f"your lease on {_label(case)} expired; claim the group again")


def confirm_group(*, reviewer, group_id: int, lease_token, source=CONSOLE) -> CaseGroup:
    """The reviewer has looked at every member and says they are the same content."""
    now = timezone.now()
    with transaction.atomic():
        group = _locked_group(reviewer, group_id)
        members = _locked_members(group)
        if len(members) < 2:
            raise GroupError(f"group {group.id} has fewer than two members: nothing to confirm")
        _require_lease(reviewer, group, members, lease_token)
        if group.status == CaseGroup.Status.CONFIRMED:
            return group
        group.status = CaseGroup.Status.CONFIRMED
        group.confirmed_by, group.confirmed_at = reviewer, now
        group.save(update_fields=["status", "confirmed_by", "confirmed_at"])
        ids = [case.id for case in members]
        record_events(
            PendingEvent(
                Kind.GROUP_CONFIRMED,
                case,
                actor=reviewer,
                source=source,
                data={"group_id": group.id, "member_case_ids": ids},
            )
            for case in members
        )
    return group


def remove_member(
    *, reviewer, group_id: int, case_id: int, reason: str, source=CONSOLE
) -> GroupMember:
    """Take a case out of the group (it is then decided on its own). A reason is required."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why this case is not a near-duplicate of the rest"})
    now = timezone.now()
    with transaction.atomic():
        group = _locked_group(reviewer, group_id)
        member = (
            GroupMember.objects.active()
            .select_for_update()
            .select_related("case")
            .filter(group=group, case_id=case_id)
            .first()
        )
        if member is None:
            raise GroupError(f"case {case_id} is not in group {group.id}")
        member.removed_at, member.removed_by, member.removal_reason = now, reviewer, reason
        member.save(update_fields=["removed_at", "removed_by", "removal_reason"])
        record_events(
            [
                PendingEvent(
                    Kind.GROUP_MEMBER_REMOVED,
                    member.case,
                    actor=reviewer,
                    source=source,
                    data={"group_id": group.id, "reason": reason},
                )
            ]
        )
    return member


def _changed(expected: Iterable[int], members: list[Case]) -> str:
    expected, now_ids = set(expected), {case.id for case in members}
    parts = []
    if joined := sorted(now_ids - expected):
        parts.append("joined: " + ", ".join(f"case {i}" for i in joined))
    if left := sorted(expected - now_ids):
        parts.append("left: " + ", ".join(f"case {i}" for i in left))
    return "; ".join(parts)


def decide_group(
    *,
    reviewer,
    group_id: int,
    lease_token,
    member_ids: Iterable[int],
    outcome: str,
    action: str = "",
    rule_ids=(),
    note: str = "",
    source: AuditEvent.Source = CONSOLE,
) -> list[Decision]:
    """Decide every member of a confirmed group the same way, all or nothing.

    `member_ids` are the members the reviewer saw: if the group changed since, nothing is
    decided. Each member goes through `decide_case`, which checks its lease, the reviewer's
    standing on it, blind-first calls, outcomes and cited rules as for any decision."""
    now = timezone.now()
    with transaction.atomic():
        group = _locked_group(reviewer, group_id)
        if group.status != CaseGroup.Status.CONFIRMED:
            raise GroupError(
                f"group {group.id} is not confirmed: look at every member and confirm it first"
            )
        members = _locked_members(group)
        if changed := _changed(member_ids, members):
            raise GroupError(
                f"group {group.id} changed since you opened it ({changed}); nothing was decided, "
                "look at it again"
            )
        if len(members) < 2:
            raise GroupError(f"group {group.id} has fewer than two members: decide the case alone")
        decisions = []
        for case in members:
            try:
                _require_same_queue(group, case)
                decisions.append(
                    decide_case(
                        reviewer=reviewer,
                        case_id=case.id,
                        lease_token=lease_token,
                        outcome=outcome,
                        action=action,
                        rule_ids=rule_ids,
                        note=note,
                        source=source,
                        group=group,
                    )
                )
            except (ValidationError, PermissionDenied) as error:
                reason = " ".join(getattr(error, "messages", None) or [str(error)])
                raise GroupError(
                    f"{_label(case)} cannot be decided with group {group.id}: "
                    f"{reason.rstrip('.')}. Nothing was decided; remove it from the group "
                    "or resolve it, then decide the group again."
                ) from None
        group.status = CaseGroup.Status.DECIDED
        group.decided_by, group.decided_at = reviewer, now
        group.save(update_fields=["status", "decided_by", "decided_at"])
    return decisions
