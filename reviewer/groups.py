"""The near-duplicate group page: the members side by side, claim / confirm / remove / release,
and one decision form for the whole group (thin views over appeals/review/groups.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from appeals.models import AuditEvent, Case, CaseGroup, GroupMember, MediaAsset, Recommendation
from appeals.review import groups
from appeals.review.decisions import is_blind_first
from appeals.review.permissions import can_work_queue
from policies.models import PolicyRule

from . import blind_first
from .forms import DecisionForm, LeaseForm

MEDIA_TYPES = ("image", "video")


class GroupDecisionForm(DecisionForm):
    """The case page's decision form, plus the members the reviewer saw on the page."""

    member_ids = forms.CharField(widget=forms.HiddenInput)

    def clean_member_ids(self) -> list[int]:
        raw = self.cleaned_data["member_ids"]
        try:
            return sorted({int(part) for part in raw.split(",") if part.strip()})
        except ValueError:
            raise ValidationError(
                "the list of members is not valid; open the group again"
            ) from None


def annotate_groups(cases):
    """The queue list's marker: the group each case is in now (None if none)."""
    return cases.annotate(
        near_duplicate_group=Subquery(
            GroupMember.objects.active().filter(case_id=OuterRef("id")).values("group_id")[:1]
        )
    )


def _viewable_group(request, group_id: int) -> CaseGroup:
    group = get_object_or_404(
        CaseGroup.objects.select_related("policy_version__policy", "confirmed_by", "decided_by"),
        id=group_id,
    )
    user = request.user
    if not (can_work_queue(user, group.queue) or user.has_perm("appeals.view_all_cases")):
        raise PermissionDenied(f"you may not see the {group.get_queue_display()} queue")
    return group


def _drafts_shown(user, cases, *, blind: bool) -> dict[int, Recommendation]:
    """Each member's latest ready draft, in one query; none for a blind-first queue, nor for an
    item on which the user still owes a blind call elsewhere (reviewer/blind_first.py)."""
    if blind or not cases:
        return {}
    queues = [q for q in blind_first.blind_first_queues() if can_work_queue(user, q)]
    withheld = set()
    if queues:
        withheld = set(
            Case.objects.filter(
                item_id__in=[c.item_id for c in cases], status=Case.Status.OPEN, queue__in=queues
            )
            .exclude(events__kind=AuditEvent.Kind.BLIND_CALL, events__actor=user)
            .values_list("item_id", flat=True)
        )
    drafts: dict[int, Recommendation] = {}
    ready = Recommendation.objects.filter(
        case_id__in=[c.id for c in cases if c.item_id not in withheld],
        status=Recommendation.Status.READY,
    ).order_by("case_id", "-finished_at", "-id")
    for rec in ready:
        drafts.setdefault(rec.case_id, rec)  # the latest, as latest_ready_recommendation
    return drafts


def _member_rows(group: CaseGroup, user, *, blind: bool) -> list[dict]:
    if group.status == CaseGroup.Status.DECIDED:
        decided = list(group.decisions.select_related("case__item").order_by("case_id"))
        cases = [decision.case for decision in decided]
        decisions = {decision.case_id: decision for decision in decided}
    else:
        cases, decisions = list(groups.member_cases(group)), {}
    similarity = dict(GroupMember.objects.filter(group=group).values_list("case_id", "similarity"))
    assets = {
        a.item_id: a
        for a in MediaAsset.objects.filter(
            item_id__in=[c.item_id for c in cases if c.item.content_type in MEDIA_TYPES]
        )
    }
    drafts = _drafts_shown(user, cases, blind=blind)
    return [
        {
            "case": case,
            "item": case.item,
            "similarity": similarity.get(case.id),
            "media": assets.get(case.item_id),
            "is_media": case.item.content_type in MEDIA_TYPES,
            "rec": drafts.get(case.id),
            "decision": decisions.get(case.id),
        }
        for case in cases
    ]


def _context(request, group: CaseGroup, *, errors=(), form=None) -> dict:
    user = request.user
    now = timezone.now()
    blind = is_blind_first(group.queue)
    rows = _member_rows(group, user, blind=blind)
    token = groups.group_lease(user, group, now=now) if group.status != "decided" else None
    rules = list(
        PolicyRule.objects.filter(version_id=group.policy_version_id)
        .order_by("position")
        .values("rule_id", "text")
    )
    may_work = can_work_queue(user, group.queue)
    if form is None and token and group.status == CaseGroup.Status.CONFIRMED and rows:
        form = GroupDecisionForm(
            initial={
                "lease_token": token,
                "member_ids": ",".join(str(row["case"].id) for row in rows),
            },
            case=rows[0]["case"],
            rule_ids=[r["rule_id"] for r in rules],
        )
    held_by = sorted(
        {
            row["case"].claimed_by.get_username()
            for row in rows
            if row["case"].claimed_by_id
            and row["case"].claimed_by_id != user.id
            and row["case"].lease_is_live(now=now)
        }
    )
    return {
        "group": group,
        "rows": rows,
        "removed": GroupMember.objects.filter(group=group, removed_at__isnull=False)
        .select_related("removed_by")
        .order_by("removed_at"),
        "lease_token": token,
        "lease_expires_at": min((r["case"].lease_expires_at for r in rows), default=None)
        if token
        else None,
        "may_work": may_work,
        "held_by": held_by,
        "blind_first": blind,
        "form": form,
        "rules": rules,
        "errors": list(errors),
        "now": now,
    }


def _render(request, group, *, errors=(), form=None, status=200):
    return render(
        request,
        "reviewer/group.html",
        _context(request, group, errors=errors, form=form),
        status=status,
    )


def _messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [m for messages_ in error.message_dict.values() for m in messages_]
    return list(error.messages)


@require_GET
def group_detail(request, group_id):
    return _render(request, _viewable_group(request, group_id))


def _workable_group(request, group_id: int) -> CaseGroup:
    group = _viewable_group(request, group_id)
    if not can_work_queue(request.user, group.queue):
        raise PermissionDenied(f"you may not work the {group.get_queue_display()} queue")
    return group


def _action(request, group_id, act):
    group = _workable_group(request, group_id)
    try:
        act(group)
    except ValidationError as error:
        for message in _messages(error):
            messages.error(request, message)
    return redirect("group_detail", group_id=group.id)


@require_POST
def group_claim(request, group_id):
    def act(group):
        groups.claim_group(reviewer=request.user, group_id=group.id)
        messages.success(request, f"You hold every case of group {group.id}.")

    return _action(request, group_id, act)


def _lease(request) -> str:
    form = LeaseForm(request.POST)
    if not form.is_valid():
        raise ValidationError([m for ms in form.errors.values() for m in ms])
    return form.cleaned_data["lease_token"]


@require_POST
def group_confirm(request, group_id):
    def act(group):
        groups.confirm_group(reviewer=request.user, group_id=group.id, lease_token=_lease(request))
        messages.success(request, f"Group {group.id} confirmed: decide it once for every member.")

    return _action(request, group_id, act)


@require_POST
def group_release(request, group_id):
    def act(group):
        groups.release_group(reviewer=request.user, group_id=group.id, lease_token=_lease(request))
        messages.info(request, f"Released every case of group {group.id}.")

    return _action(request, group_id, act)


@require_POST
def group_renew_lease(request, group_id):
    """Keep every member's lease alive while the page is open (htmx posts this)."""
    group = _workable_group(request, group_id)
    try:
        groups.renew_group_lease(
            reviewer=request.user, group_id=group.id, lease_token=_lease(request)
        )
    except ValidationError as error:
        return HttpResponse(" ".join(_messages(error)), status=400)
    return HttpResponse(status=204)


@require_POST
def group_remove_member(request, group_id, case_id):
    def act(group):
        reason = request.POST.get("reason", "")[:2000]
        groups.remove_member(
            reviewer=request.user, group_id=group.id, case_id=case_id, reason=reason
        )
        messages.info(request, f"Case {case_id} left group {group.id}; decide it on its own.")

    return _action(request, group_id, act)


@require_POST
def group_decide(request, group_id):
    group = _workable_group(request, group_id)
    members = list(groups.member_cases(group)[:1])
    if not members:
        return _render(request, group, errors=["this group has no members left"], status=400)
    rule_ids = list(
        PolicyRule.objects.filter(version_id=group.policy_version_id).values_list(
            "rule_id", flat=True
        )
    )
    form = GroupDecisionForm(request.POST, case=members[0], rule_ids=rule_ids)
    if not form.is_valid():
        errors = [m for ms in form.errors.values() for m in ms]
        return _render(request, group, errors=errors, form=form, status=400)
    data = form.cleaned_data
    try:
        decisions = groups.decide_group(
            reviewer=request.user,
            group_id=group.id,
            lease_token=data["lease_token"],
            member_ids=data["member_ids"],
            outcome=data["outcome"],
            action=data["action"],
            rule_ids=data["rule_ids"],
            note=data["note"],
        )
    except ValidationError as error:
        return _render(request, group, errors=_messages(error), form=form, status=400)
    messages.success(
        request,
        f"Group {group.id}: {len(decisions)} cases decided "
        f"({decisions[0].get_outcome_display().lower()}), each with its own decision and notice.",
    )
    return redirect("group_detail", group_id=group.id)
