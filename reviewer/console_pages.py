"""Pages for the roles that have no queue to work: the audit log (auditors, seniors) and the
policies list (policy admins and anyone with a role here), plus the senior's "re-queue failed
drafts" action on a queue. Thin views over services, permission checks in each view.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from appeals.disclosure import checkpoints
from appeals.models import AuditEvent, Queue
from appeals.review.redraft import requeue_failed_drafts
from policies.models import Policy, PolicyVersion

AUDIT_PAGE_SIZE = 100
MAX_FILTER_CHARS = 200


class AuditFilterForm(forms.Form):
    """The audit log's filters, from the query string. Bad values are named on the page."""

    case = forms.IntegerField(required=False, min_value=1, max_value=2**62, label="Case")
    actor = forms.CharField(required=False, max_length=MAX_FILTER_CHARS, label="Actor")
    kind = forms.ChoiceField(
        required=False, choices=[("", "Any kind"), *AuditEvent.Kind.choices], label="Kind"
    )
    source = forms.ChoiceField(
        required=False, choices=[("", "Any source"), *AuditEvent.Source.choices], label="Source"
    )
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="Until", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    before = forms.IntegerField(
        required=False, min_value=1, max_value=2**62, widget=forms.HiddenInput
    )


def _chain_status() -> dict:
    """The last signed checkpoint that verifies, and how far the chain has grown since: cheap
    (one file read and one indexed query), never a walk of the chain per page view."""
    try:
        key = checkpoints.verifying_key()
    except checkpoints.CheckpointError as error:
        return {"state": "error", "detail": str(error)}
    if key is None:
        return {"state": "unconfigured"}
    latest = checkpoints.latest_checkpoint(public_key=key)
    head = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    if latest is None:
        return {"state": "none", "head": head}
    newer = AuditEvent.objects.filter(id__gt=latest.head_event_id or 0).values("id")
    since = newer[:10_001].count()  # capped: "10,000+" is all the page needs
    return {"state": "signed", "checkpoint": latest, "head": head, "since": since}


@require_GET
def audit_log(request):
    if not request.user.has_perm("appeals.view_audit"):
        raise PermissionDenied("the audit log is for auditors and senior reviewers")
    form = AuditFilterForm(request.GET)
    events = AuditEvent.objects.all()
    errors = []
    if form.is_valid():
        data = form.cleaned_data
        if data["case"]:
            events = events.filter(case_id=data["case"])
        if data["actor"]:
            events = events.filter(actor_label=data["actor"])
        if data["kind"]:
            events = events.filter(kind=data["kind"])
        if data["source"]:
            events = events.filter(source=data["source"])
        if data["since"]:
            events = events.filter(created_at__gte=data["since"])
        if data["until"]:
            events = events.filter(created_at__lt=data["until"])
        if data["before"]:
            events = events.filter(id__lt=data["before"])
    else:
        errors = [
            f"{form.fields[name].label or name}: {message}"
            for name, field_errors in form.errors.items()
            for message in field_errors
        ]
        events = events.none()
    page = list(
        events.order_by("-id").values(
            "id", "case_id", "kind", "actor_label", "source", "created_at", "data", "hash"
        )[: AUDIT_PAGE_SIZE + 1]
    )
    has_more = len(page) > AUDIT_PAGE_SIZE
    page = page[:AUDIT_PAGE_SIZE]
    kinds = dict(AuditEvent.Kind.choices)
    sources = dict(AuditEvent.Source.choices)
    for event in page:
        event["label"] = kinds.get(event["kind"], event["kind"])
        event["source_label"] = sources.get(event["source"], event["source"] or "—")
    next_query = ""
    if has_more:
        params = request.GET.copy()
        params["before"] = str(page[-1]["id"])
        next_query = params.urlencode()
    return render(
        request,
        "reviewer/audit_log.html",
        {
            "form": form,
            "events": page,
            "errors": errors,
            "next_query": next_query,
            "chain": _chain_status(),
            "can_export": request.user.has_perm("appeals.export_decisions"),
        },
    )


def _may_read_policies(user) -> bool:
    return (
        user.has_perm("policies.view_policyversion")
        or user.has_perm("appeals.view_all_cases")
        or any(user.has_perm(p) for p in ("appeals.review_flags", "appeals.review_appeals"))
    )


@require_GET
def policies_page(request):
    if not _may_read_policies(request.user):
        raise PermissionDenied("you have no role in the review console")
    policies = list(Policy.objects.order_by("name"))
    versions = PolicyVersion.objects.order_by("policy_id", "-number").annotate(
        rule_count=Count("rules")
    )
    by_policy: dict[int, list] = {}
    for version in versions:
        by_policy.setdefault(version.policy_id, []).append(version)
    rows = [(policy, by_policy.get(policy.id, [])) for policy in policies]
    return render(
        request,
        "reviewer/policies.html",
        {
            "rows": rows,
            "can_edit": request.user.is_staff and request.user.has_perm("policies.change_policy"),
        },
    )


@require_POST
def queue_requeue_drafts(request, queue):
    if queue not in Queue.values:
        raise Http404("no such queue")
    requeued = requeue_failed_drafts(queue=queue, actor=request.user)
    if requeued:
        messages.success(
            request,
            f"Asked again for {len(requeued)} failed draft{'s' if len(requeued) != 1 else ''} "
            f"in {Queue(queue).label}.",
        )
    else:
        messages.info(request, f"No open case in {Queue(queue).label} has a failed draft.")
    return redirect("queue_list", queue=queue)
