"""The review console's pages: thin views over the appeals services.

One view and one template per page; fragments that htmx swaps are named partials of that page's
template (partial name = element id = hx-target). Every view checks permissions itself; templates
only hide what the user may not do. Errors a reviewer can fix come back as a message on the page.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Q, Subquery, Window
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from appeals.drafts import inputs as draft_inputs
from appeals.drafts.services import latest_recommendation
from appeals.media import services as media
from appeals.models import (
    AuditEvent,
    Case,
    Decision,
    MediaAsset,
    Queue,
    QueueSetting,
    Recommendation,
)
from appeals.outcomes import acceptance
from appeals.review.appeal_links import decider_conflict, prior_final_decision
from appeals.review.decisions import (
    blind_call_for,
    decide_case,
    is_blind_first,
    record_blind_call,
)
from appeals.review.groups import group_of
from appeals.review.permissions import (
    can_work_queue,
    require_queue,
    require_view_case,
    workable_queues,
)
from appeals.review.queueing import (
    claim_case,
    claim_next_case,
    escalate_case,
    release_case,
    renew_lease,
    skip_case,
)
from appeals.review.redraft import is_senior, may_retry_draft, retry_draft
from appeals.triage.services import fast_tier_panel
from policies.models import Policy, PolicyRule, PolicyVersion

from . import blind_first as blind_first_rules
from . import fast_tier_filters, groups, quality
from .callbacks import undelivered_callbacks
from .fast_tier_filters import FastTierFilterForm
from .forms import BlindCallForm, DecisionForm, LeaseForm, QueueFilterForm, ReasonForm
from .precedents import precedents_panel
from .preferences import media_prefs
from .second_opinions import agreement_by_model, second_opinion_panel
from .unrenderable import set_aside_unrenderable_case

QUEUE_PAGE_SIZE = 50
HISTORY_LIMIT = 8
TIMELINE_LIMIT = 300
MEDIA_TYPES = ("image", "video")
# Our copy of a platform's image or video is a document of its own: no scripts, no subresources,
# no sniffing, nothing shared through caches, not embeddable by other sites.
MEDIA_RESPONSE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; "
    "style-src 'unsafe-inline'; sandbox",
    "Cache-Control": "private, max-age=300",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# --- helpers -------------------------------------------------------------------------------


def _queue_or_404(queue: str) -> Queue:
    if queue not in Queue.values:
        raise Http404("no such queue")
    return Queue(queue)


def _require_console_user(user) -> None:
    """Policy texts and the dashboard's data are for people with some role here."""
    if not (
        workable_queues(user)
        or user.has_perm("appeals.view_all_cases")
        or user.has_perm("policies.view_policyversion")
    ):
        raise PermissionDenied("you have no role in the review console")


def _error_messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [
            f"{field.replace('_', ' ')}: {message}" if field != "__all__" else message
            for field, field_messages in error.message_dict.items()
            for message in field_messages
        ]
    return list(error.messages)


def _form_errors(form) -> list[str]:
    return [
        f"{form.fields[field].label or field}: {message}" if field in form.fields else message
        for field, field_messages in form.errors.items()
        for message in field_messages
    ]


def _next_case(request, queue: str):
    """Straight on to the next case in the same queue, or the dashboard when it is empty."""
    if can_work_queue(request.user, queue):
        case = claim_next_case(reviewer=request.user, queue=queue)
        if case is not None:
            return redirect("case_detail", case_id=case.id)
        messages.info(request, f"The {Queue(queue).label} queue is empty. Nice work.")
    return redirect("dashboard")


# --- dashboard -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueCard:
    queue: str
    label: str
    open_count: int
    oldest: dt.datetime | None
    past_due: int
    blind_first: bool


# Counts above this are shown as "10,000+": an exact count would cost O(open cases).
COUNT_CAP = 10_000


def _queue_stats(queues: list[str], now: dt.datetime) -> dict[str, dict]:
    """Open count, oldest case and past-due count per queue, cheap whatever the backlog.

    Each figure walks a partial index on open cases and stops early: counts are capped at
    COUNT_CAP (shown as "10,000+"), the oldest case is the first entry of the age index.
    """
    stats = {}
    for queue in queues:
        open_cases = Case.objects.in_queue(queue)
        stats[queue] = {
            "open_count": open_cases.values("id")[: COUNT_CAP + 1].count(),
            "past_due": open_cases.filter(due_at__lt=now).values("id")[: COUNT_CAP + 1].count(),
            "oldest": open_cases.order_by("created_at")
            .values_list("created_at", flat=True)
            .first(),
        }
    return stats


@require_GET
def dashboard(request):
    now = timezone.now()
    queues = workable_queues(request.user)
    stats = _queue_stats(queues, now)
    blind = (
        set(
            QueueSetting.objects.filter(queue__in=queues, blind_first=True).values_list(
                "queue", flat=True
            )
        )
        if queues
        else set()
    )
    cards = [
        QueueCard(
            queue=queue,
            label=Queue(queue).label,
            open_count=stats.get(queue, {}).get("open_count", 0),
            oldest=stats.get(queue, {}).get("oldest"),
            past_due=stats.get(queue, {}).get("past_due", 0),
            blind_first=queue in blind,
        )
        for queue in queues
    ]
    mine = list(
        Case.objects.held_by(request.user, now=now)
        .select_related("item", "policy_version__policy")
        .order_by("claimed_at")[:50]
    )
    return render(
        request,
        "reviewer/dashboard.html",
        {
            "cards": cards,
            "mine": mine,
            "now": now,
            "can_see_quality": request.user.has_perm("appeals.view_all_cases"),
            "text_prefs": media_prefs(request.user) if mine else None,
            **undelivered_callbacks(request.user),
        },
    )


@require_POST
def start_reviewing(request, queue):
    queue = _queue_or_404(queue)
    require_queue(request.user, queue)
    held = Case.objects.held_by(request.user).filter(queue=queue).order_by("claimed_at").first()
    if held is not None:
        # "Next" never stacks claims: the case already held comes first, and the page says so.
        messages.info(
            request,
            f"You still hold case {held.id}: decide, escalate, skip or release it before the next.",
        )
        return redirect("case_detail", case_id=held.id)
    case = claim_next_case(reviewer=request.user, queue=queue)
    if case is None:
        messages.info(request, f"No cases are waiting in {queue.label}.")
        return redirect("dashboard")
    return redirect("case_detail", case_id=case.id)


# --- queue list ----------------------------------------------------------------------------


def _encode_cursor(case: Case) -> str:
    raw = json.dumps([case.priority, case.due_at.isoformat(), case.created_at.isoformat(), case.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# Ours are under 150 characters; anything much longer was not made here.
MAX_CURSOR_CHARS = 512


def _decode_cursor(value: str):
    """The cursor `_encode_cursor` made, or None for anything else (the first page is shown)."""
    if len(value) > MAX_CURSOR_CHARS:
        return None
    try:
        padded = value + "=" * (-len(value) % 4)
        priority, due_at, created_at, case_id = json.loads(base64.urlsafe_b64decode(padded))
        due_at, created_at = parse_datetime(due_at), parse_datetime(created_at)
        if due_at is None or created_at is None or None in (due_at.tzinfo, created_at.tzinfo):
            return None
        # In UTC, as stored: a year the database cannot hold fails here, not in the query.
        due_at, created_at = due_at.astimezone(dt.UTC), created_at.astimezone(dt.UTC)
        return int(priority), due_at, created_at, int(case_id)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None


def _after_cursor(cursor) -> Q:
    """Rows after `cursor` in queue order (-priority, due_at, created_at, id): a keyset, no OFFSET."""
    priority, due_at, created_at, case_id = cursor
    return (
        Q(priority__lt=priority)
        | Q(priority=priority, due_at__gt=due_at)
        | Q(priority=priority, due_at=due_at, created_at__gt=created_at)
        | Q(priority=priority, due_at=due_at, created_at=created_at, id__gt=case_id)
    )


def _model_verdict_subquery():
    return Subquery(
        Recommendation.objects.filter(case=OuterRef("id"), status=Recommendation.Status.READY)
        .order_by("-finished_at", "-id")
        .values("violation")[:1]
    )


@require_GET
def queue_list(request, queue):
    queue = _queue_or_404(queue)
    user = request.user
    if not (can_work_queue(user, queue) or user.has_perm("appeals.view_all_cases")):
        raise PermissionDenied(f"you may not see the {queue.label} queue")
    policies = list(Policy.objects.order_by("name").values_list("id", "name"))
    form = QueueFilterForm(request.GET, policies=policies)
    filters = form.filters()

    # Blind-first: open cases carry no trace of the model's draft, not even as a filter.
    blind = is_blind_first(queue)
    hide_model = blind and filters["status"] == Case.Status.OPEN
    if blind:
        form.fields.pop("verdict", None)
        filters.pop("verdict", None)
    cases = Case.objects.filter(queue=queue, status=filters["status"])
    if not hide_model:
        cases = cases.annotate(model_violation=_model_verdict_subquery())
    if filters.get("policy"):
        cases = cases.filter(policy_version__policy_id=filters["policy"])
    if filters.get("source"):
        cases = cases.filter(item__source=filters["source"])
    verdict = filters.get("verdict")
    if verdict and not hide_model:
        if verdict == "none":
            cases = cases.filter(model_violation__isnull=True)
        else:
            cases = cases.filter(model_violation=(verdict == "violating"))
    if filters.get("agreement"):
        cases = cases.filter(decision__agrees_with_model=(filters["agreement"] == "agree"))
    # The fast tier's column and filters (appeals/triage/).
    fast_form = FastTierFilterForm(request.GET)
    cases = fast_tier_filters.annotate_and_filter(cases, fast_form)
    cases = groups.annotate_groups(cases)  # the near-duplicate group marker
    cursor = _decode_cursor(request.GET.get("after", ""))
    if cursor is not None:
        cases = cases.filter(_after_cursor(cursor))
    page = list(
        cases.select_related(
            "item", "policy_version__policy", "claimed_by", "decision", "appealed_decision"
        ).queue_order()[: QUEUE_PAGE_SIZE + 1]
    )
    has_next = len(page) > QUEUE_PAGE_SIZE
    page = page[:QUEUE_PAGE_SIZE]
    next_query = ""
    if has_next:
        params = request.GET.copy()
        params["after"] = _encode_cursor(page[-1])
        next_query = params.urlencode()
    first_query = ""
    if cursor is not None:
        params = request.GET.copy()
        params.pop("after", None)
        first_query = params.urlencode() or "_"
    now = timezone.now()
    template = (
        "reviewer/queue.html#queue-results"
        if request.htmx and request.htmx.target == "queue-results"
        else "reviewer/queue.html"
    )
    return render(
        request,
        template,
        {
            "queue": queue,
            "form": form,
            "cases": page,
            "next_query": next_query,
            "first_query": first_query,
            "now": now,
            "can_work": can_work_queue(user, queue),
            "hide_model": hide_model,
            "can_requeue": is_senior(user),
            "fast_form": fast_form,
            # Harmful text blurred in the excerpts as on the case page (reviewer/preferences.py).
            "text_prefs": media_prefs(user) if page else None,
        },
    )


# --- case page -----------------------------------------------------------------------------


def _case_queryset():
    return Case.objects.select_related(
        "item",
        "platform",
        "policy_version__policy",
        "claimed_by",
        "decision__decided_by",
        "decision__supersedes",
        "decision__superseded_by",
        "appealed_decision__decided_by",
    )


def _decision_of(case: Case) -> Decision | None:
    try:
        return case.decision
    except Decision.DoesNotExist:
        return None


def _superseded_by(case: Case) -> Decision | None:
    decision = _decision_of(case)
    try:
        return decision.superseded_by if decision is not None else None
    except Decision.DoesNotExist:
        return None


def _blind_first(queue: str) -> bool:
    return is_blind_first(queue)


@dataclass
class DraftView:
    """What the recommendation panel shows, worked out once for the page and its partials."""

    recommendation: Recommendation | None
    hidden_until_blind_call: bool
    blind_call: dict | None
    model_outcome: str
    accept_rule_ids: list[str]
    accept_action: str
    accept_problem: str

    @property
    def shown(self) -> bool:
        rec = self.recommendation
        return rec is not None and rec.is_ready and not self.hidden_until_blind_call


def _draft_view(
    case: Case, user, *, blind_first: bool, known_rule_ids: set[str], blind_queues=frozenset()
) -> DraftView:
    rec = latest_recommendation(case)
    blind_call = None
    hidden = False
    if blind_first and case.status == Case.Status.OPEN:
        blind_call = blind_call_for(case, user)
        hidden = blind_call is None
    if not hidden:
        # The same content's draft on another case of the item is the same verdict: hidden too
        # while this user owes a blind call on an open blind-first case of that item.
        hidden = blind_first_rules.owes_blind_call_on_item(case, user, queues=blind_queues)
    accept = acceptance(case, rec, known_rule_ids) if rec is not None and rec.is_ready else None
    if accept is None:
        return DraftView(rec, hidden, blind_call, "", [], "", "")
    return DraftView(
        rec, hidden, blind_call, accept.outcome, accept.rule_ids, accept.action, accept.problem
    )


def _model_configured() -> bool:
    """Whether this process's configuration could draft (the worker re-queues on start)."""
    from policies.engine import engine_config
    from policies.safeguard import unavailable_reason

    return unavailable_reason(engine_config()) is None


def _unseen_media(case: Case, rec: Recommendation | None) -> str:
    """For an image or video case, what the model read instead of the pixels ('' otherwise)."""
    if case.item.content_type not in MEDIA_TYPES or rec is None or not rec.is_ready:
        return ""
    saw = rec.model_saw or draft_inputs.model_saw(case.item)
    return Recommendation.Input(saw).label if saw in Recommendation.Input.values else saw


def _history(case: Case, field: str, value: str) -> dict | None:
    """Earlier cases here from the same author (or reporter): a count and the latest few.

    One query: the window function counts every match before LIMIT keeps the latest few.
    """
    if not value:
        return None
    latest = list(
        Case.objects.filter(
            platform_id=case.platform_id,
            created_at__lte=case.created_at,
            **{f"item__{field}": value},
        )
        .exclude(id=case.id)
        .annotate(total=Window(Count("id")))
        .order_by("-created_at", "-id")
        .values("id", "kind", "status", "created_at", "total")[:HISTORY_LIMIT]
    )
    return {"id": value, "count": latest[0]["total"] if latest else 0, "cases": latest}


def _case_context(request, case: Case, *, errors=(), reveal: bool = False) -> dict:
    user = request.user
    now = timezone.now()
    rules = list(
        PolicyRule.objects.filter(version_id=case.policy_version_id)
        .order_by("position")
        .values("rule_id", "text")
    )
    known = {rule["rule_id"] for rule in rules}
    blind_queues = blind_first_rules.blind_first_queues()
    blind_first = case.queue in blind_queues
    draft = _draft_view(
        case, user, blind_first=blind_first, known_rule_ids=known, blind_queues=blind_queues
    )
    holds_lease = (
        case.status == Case.Status.OPEN
        and case.claimed_by_id == user.id
        and case.lease_is_live(now=now)
    )
    may_work = can_work_queue(user, case.queue)
    conflict = decider_conflict(user, case) if case.status == Case.Status.OPEN else ""
    decision_form = blind_form = None
    if holds_lease:
        initial = {"lease_token": case.lease_token}
        decision_form = DecisionForm(
            initial=initial, case=case, rule_ids=[r["rule_id"] for r in rules]
        )
        if draft.hidden_until_blind_call and blind_first and draft.blind_call is None:
            blind_form = BlindCallForm(
                initial=initial, case=case, rule_ids=[r["rule_id"] for r in rules]
            )
    rule_text = {rule["rule_id"]: rule["text"] for rule in rules}
    timeline = list(
        AuditEvent.objects.filter(case_id=case.id)
        .order_by("id")
        .values("id", "kind", "actor_label", "source", "created_at", "data")[:TIMELINE_LIMIT]
    )
    if draft.hidden_until_blind_call:
        timeline = blind_first_rules.redact_timeline(timeline)
    for event in timeline:
        event["label"] = (
            AuditEvent.Kind(event["kind"]).label
            if event["kind"] in AuditEvent.Kind.values
            else event["kind"]
        )
        source = event["source"]
        event["source_label"] = (
            AuditEvent.Source(source).label if source in AuditEvent.Source.values else source
        )
    return {
        "case": case,
        "item": case.item,
        "decision": _decision_of(case),
        "media": MediaAsset.objects.filter(item_id=case.item_id).first()
        if case.item.content_type in MEDIA_TYPES
        else None,
        "is_media": case.item.content_type in MEDIA_TYPES,
        "media_prefs": media_prefs(user),
        "reveal": reveal,
        "author_history": _history(case, "author_id", case.item.author_id),
        "reporter_history": _history(case, "reporter_id", case.item.reporter_id),
        "rules": rules,
        "original_rules": [(r, rule_text.get(r, "")) for r in case.original_rule_ids],
        "rule_text": rule_text,
        # Only rules the version defines are linked: a platform's or a model's id may be anything.
        "known_rule_ids": known,
        "draft": draft,
        "rec": draft.recommendation,
        "may_retry": may_retry_draft(user, case),
        "model_configured": _model_configured(),
        "item_context": draft_inputs.item_context(case.item),
        "unseen_media": _unseen_media(case, draft.recommendation),
        "blind_first": blind_first,
        "holds_lease": holds_lease,
        "may_work": may_work,
        "may_claim": may_work
        and case.status == Case.Status.OPEN
        and not holds_lease
        and not conflict,
        "decider_conflict": conflict,
        "held_by_other": case.status == Case.Status.OPEN
        and case.lease_is_live(now=now)
        and case.claimed_by_id != user.id,
        "decision_form": decision_form,
        "prior_decision": prior_final_decision(case) if holds_lease else None,
        "superseded_by": _superseded_by(case),
        "blind_form": blind_form,
        "errors": list(errors),
        "timeline": timeline,
        "now": now,
        "fast_tier": fast_tier_panel(
            case,
            has_draft=draft.recommendation is not None,
            # The timeline holds the TRIAGED event unless it was cut short before it.
            triaged=any(e["kind"] == AuditEvent.Kind.TRIAGED for e in timeline)
            or (None if len(timeline) >= TIMELINE_LIMIT else False),
        ),
        "second_opinions": second_opinion_panel(case, hidden=draft.hidden_until_blind_call),
        "case_group": group_of(case),
        "precedents": precedents_panel(case, user, draft),
    }


def _render_case(
    request,
    case: Case,
    *,
    errors=(),
    status: int = 200,
    template: str = "reviewer/case.html",
    reveal: bool = False,
):
    try:
        context = _case_context(request, case, errors=errors, reveal=reveal)
        return render(request, template, context, status=status)
    except Exception as error:  # noqa: BLE001 - any failure: never hand the case out again
        return set_aside_unrenderable_case(request, case, error)


def _viewable_case(request, case_id: int) -> Case:
    case = get_object_or_404(_case_queryset(), id=case_id)
    require_view_case(request.user, case)
    return case


@require_GET
def case_detail(request, case_id):
    case = _viewable_case(request, case_id)
    reveal = request.GET.get("reveal") == "1"
    template = "reviewer/case.html"
    if request.htmx and request.htmx.target in ("case-media", "recommendation"):
        template = f"reviewer/case.html#{request.htmx.target}"
    return _render_case(request, case, template=template, reveal=reveal)


@require_GET
def case_media(request, case_id, variant):
    """Our stored copy of the case's media: the blurred preview, or the original once the
    reviewer reveals it. Whoever may read the case may load these; nobody else."""
    case = _viewable_case(request, case_id)
    asset = get_object_or_404(MediaAsset, item_id=case.item_id, status=MediaAsset.Status.STORED)
    stored = asset.original if variant == "original" else asset.preview
    extension = stored.rsplit(".", 1)[-1]
    content_type = (
        asset.mime
        if variant == "original"
        else {"jpg": "image/jpeg", "png": "image/png"}.get(extension, "application/octet-stream")
    )
    response = FileResponse(
        media.open_stored(stored),
        content_type=content_type,
        as_attachment=False,
        filename=f"case-{case.id}-{variant}.{extension}",
    )
    for header, value in MEDIA_RESPONSE_HEADERS.items():
        response[header] = value
    return response


def _workable_case(request, case_id: int) -> Case:
    case = get_object_or_404(_case_queryset(), id=case_id)
    require_queue(request.user, case.queue)
    return case


@require_POST
def case_claim(request, case_id):
    case = _workable_case(request, case_id)
    try:
        claim_case(reviewer=request.user, case_id=case.id)
    except ValidationError as error:
        for message in _error_messages(error):
            messages.error(request, message)
    return redirect("case_detail", case_id=case.id)


@require_POST
def case_decide(request, case_id):
    case = _workable_case(request, case_id)
    rule_ids = list(
        PolicyRule.objects.filter(version_id=case.policy_version_id).values_list(
            "rule_id", flat=True
        )
    )
    form = DecisionForm(request.POST, case=case, rule_ids=rule_ids)
    if not form.is_valid():
        return _render_case(request, case, errors=_form_errors(form), status=400)
    data = form.cleaned_data
    if request.POST.get("via") == "accept" and request.POST.get("media_checked") != "1":
        unseen = _unseen_media(case, latest_recommendation(case))
        if unseen:
            return _render_case(
                request,
                case,
                errors=[
                    f"The model did not see this {case.item.content_type} (it read: "
                    f"{unseen.lower()}). Tick that you looked at it yourself to accept its "
                    "recommendation."
                ],
                status=400,
            )
    try:
        decision = decide_case(
            reviewer=request.user,
            case_id=case.id,
            lease_token=data["lease_token"],
            outcome=data["outcome"],
            action=data["action"],
            rule_ids=data["rule_ids"],
            note=data["note"],
            supersedes=data.get("supersedes"),
        )
    except ValidationError as error:
        return _render_case(request, case, errors=_error_messages(error), status=400)
    messages.success(
        request,
        f"Case {case.id}: {decision.get_outcome_display().lower()}"
        f"{' (model accepted)' if decision.accepted_recommendation else ''}.",
    )
    if request.POST.get("then") == "stay":
        return redirect("case_detail", case_id=case.id)
    return _next_case(request, case.queue)


@require_POST
def case_blind_call(request, case_id):
    case = _workable_case(request, case_id)
    rule_ids = list(
        PolicyRule.objects.filter(version_id=case.policy_version_id).values_list(
            "rule_id", flat=True
        )
    )
    form = BlindCallForm(request.POST, case=case, rule_ids=rule_ids)
    if not form.is_valid():
        return _render_case(request, case, errors=_form_errors(form), status=400)
    try:
        record_blind_call(
            reviewer=request.user,
            case_id=case.id,
            lease_token=form.cleaned_data["lease_token"],
            outcome=form.cleaned_data["outcome"],
            rule_ids=form.cleaned_data["rule_ids"],
        )
    except ValidationError as error:
        return _render_case(request, case, errors=_error_messages(error), status=400)
    messages.success(request, "Your call is recorded. Here is what the model said.")
    return redirect(reverse("case_detail", args=[case.id]) + "#recommendation")


def _reason_action(request, case_id, service, *, then):
    case = _workable_case(request, case_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return _render_case(request, case, errors=_form_errors(form), status=400)
    queue = case.queue
    try:
        service(
            reviewer=request.user,
            case_id=case.id,
            lease_token=form.cleaned_data["lease_token"],
            reason=form.cleaned_data["reason"],
        )
    except ValidationError as error:
        return _render_case(request, case, errors=_error_messages(error), status=400)
    return then(case, queue)


@require_POST
def case_escalate(request, case_id):
    def then(case, queue):
        messages.success(request, f"Case {case.id} escalated to a senior reviewer.")
        return _next_case(request, queue)

    return _reason_action(request, case_id, escalate_case, then=then)


@require_POST
def case_skip(request, case_id):
    def then(case, queue):
        messages.info(request, f"Skipped case {case.id}; it will not be offered to you again.")
        return _next_case(request, queue)

    return _reason_action(request, case_id, skip_case, then=then)


@require_POST
def case_release(request, case_id):
    def then(case, queue):
        messages.info(request, f"Released case {case.id} back to {Queue(queue).label}.")
        return redirect("dashboard")

    return _reason_action(request, case_id, release_case, then=then)


@require_POST
def case_retry_draft(request, case_id):
    case = get_object_or_404(_case_queryset(), id=case_id)
    require_view_case(request.user, case)
    try:
        retry_draft(case_id=case.id, actor=request.user)
    except ValidationError as error:
        return _render_case(request, case, errors=_error_messages(error), status=400)
    if request.htmx:
        return _render_case(request, case, template="reviewer/case.html#recommendation")
    messages.info(request, "A new draft was requested.")
    return redirect(reverse("case_detail", args=[case.id]) + "#recommendation")


@require_POST
def case_renew_lease(request, case_id):
    """Keep the lease alive while the page is open (htmx posts this every few minutes)."""
    case = _workable_case(request, case_id)
    form = LeaseForm(request.POST)
    if not form.is_valid():
        return HttpResponse(status=400)
    try:
        renew_lease(
            reviewer=request.user, case_id=case.id, lease_token=form.cleaned_data["lease_token"]
        )
    except ValidationError:
        return HttpResponse(status=409)
    return HttpResponse(status=204)


# --- policies ------------------------------------------------------------------------------


@require_GET
def policy_version(request, version_id):
    _require_console_user(request.user)
    version = get_object_or_404(PolicyVersion.objects.select_related("policy"), id=version_id)
    rules = list(version.rules.order_by("position"))
    return render(request, "reviewer/policy_version.html", {"version": version, "rules": rules})


@require_GET
def policy_rule(request, version_id, rule_id):
    _require_console_user(request.user)
    if "\x00" in rule_id:  # no rule has one, and PostgreSQL refuses it in a query
        raise Http404("no such rule")
    rule = get_object_or_404(
        PolicyRule.objects.select_related("version__policy"), version_id=version_id, rule_id=rule_id
    )
    template = "reviewer/rule.html#rule-panel" if request.htmx else "reviewer/rule.html"
    return render(request, template, {"rule": rule, "version": rule.version})


# --- agreement and quality -----------------------------------------------------------------


@require_GET
def quality_page(request):
    if not request.user.has_perm("appeals.view_all_cases"):
        raise PermissionDenied("the agreement page is for senior reviewers and auditors")
    return render(
        request,
        "reviewer/quality.html",
        {"report": quality.build_report(), "second_opinions": agreement_by_model()},
    )
