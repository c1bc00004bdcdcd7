"""The policy workbench's pages: golden sets, draft versions, evaluation runs, compare, publish.

Thin views over `appeals.policy_workbench` (the audited steps) and `policies.workbench` (rows,
metrics, diffs). Every page needs `policies.manage_policy`; the gate override needs
`policies.override_publish_gate` and is checked again in the service.
"""

from __future__ import annotations

import csv
import io
import json

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from appeals import policy_workbench
from appeals.disclosure.export_columns import neutralise
from appeals.models import Case
from policies.models import Policy, PolicyVersion
from policies.workbench import gate, golden, metrics, runs, versions
from policies.workbench.models import EvaluationRun, GoldenSet

ITEMS_SHOWN = 200
DISAGREEMENTS_SHOWN = 200


def _require_admin(user) -> None:
    if not user.has_perm("policies.manage_policy"):
        raise PermissionDenied("the policy workbench is for policy admins")


class ImportForm(forms.Form):
    policy = forms.ModelChoiceField(queryset=Policy.objects.all())
    name = forms.CharField(max_length=200)
    file = forms.FileField(help_text="CSV with a header, or JSON Lines")
    gates_publishing = forms.BooleanField(required=False, label="Gates publishing")


class RunForm(forms.Form):
    golden_set = forms.ModelChoiceField(queryset=GoldenSet.objects.none())
    limit = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args, policy, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["golden_set"].queryset = GoldenSet.objects.filter(policy=policy)


@require_GET
def index(request):
    _require_admin(request.user)
    policies = Policy.objects.prefetch_related("versions", "golden_sets").order_by("name")
    recent = EvaluationRun.objects.select_related("policy_version__policy", "golden_set")[:15]
    return render(
        request,
        "reviewer/workbench/index.html",
        {"policies": policies, "runs": recent, "form": ImportForm()},
    )


@require_POST
def import_set(request):
    _require_admin(request.user)
    form = ImportForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            golden_set = golden.import_golden_set(
                policy=form.cleaned_data["policy"],
                name=form.cleaned_data["name"],
                data=upload.read(),
                fmt=golden.guess_format(upload.name),
                actor=request.user,
                gates_publishing=form.cleaned_data["gates_publishing"],
            )
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, message)
        else:
            messages.success(request, f"Imported {golden_set.items.count()} items.")
            return redirect("workbench_set", golden_set.id)
    else:
        messages.error(request, "Choose a policy, a name and a file.")
    return redirect("workbench")


@require_GET
def golden_set_page(request, set_id: int):
    _require_admin(request.user)
    golden_set = get_object_or_404(GoldenSet.objects.select_related("policy"), id=set_id)
    items = golden_set.items.order_by("position")
    return render(
        request,
        "reviewer/workbench/golden_set.html",
        {
            "golden_set": golden_set,
            "items": items[:ITEMS_SHOWN],
            "count": items.count(),
            "can_bulk": request.user.has_perm("policies.override_publish_gate"),
        },
    )


@require_POST
def make_gate(request, set_id: int):
    _require_admin(request.user)
    golden_set = get_object_or_404(GoldenSet, id=set_id)
    golden.make_gating_set(golden_set)
    messages.success(request, f"{golden_set.name!r} now gates publishing of its policy.")
    return redirect("workbench_set", set_id)


@require_GET
def export_set(request, set_id: int, fmt: str):
    _require_admin(request.user)
    golden_set = get_object_or_404(GoldenSet, id=set_id)
    body = golden.export_golden_set(golden_set, fmt=fmt)
    response = HttpResponse(body, content_type="text/csv" if fmt == "csv" else "application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="golden-set-{set_id}.{fmt}"'
    return response


@require_POST
def add_to_set(request, set_id: int):
    """Add one decided case, or (a senior) every overturned appeal / disagreement of a period."""
    _require_admin(request.user)
    golden_set = get_object_or_404(GoldenSet, id=set_id)
    what = request.POST.get("what", "case")
    try:
        if what == "case":
            raw = request.POST.get("case_id", "")
            case = Case.objects.filter(id=int(raw)).first() if raw.isdigit() else None
            if case is None:
                raise ValidationError(f"no case {raw!r}")
            added = policy_workbench.add_case_to_golden_set(
                case=case, golden_set=golden_set, actor=request.user
            )
        else:
            since = parse_date(request.POST.get("since") or "")
            until = parse_date(request.POST.get("until") or "")
            service = (
                policy_workbench.add_overturned_appeals
                if what == "overturned"
                else policy_workbench.add_disagreements
            )
            added = service(golden_set=golden_set, actor=request.user, since=since, until=until)
    except (ValidationError, ValueError) as exc:
        messages.error(request, "; ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"Added {added} item{'s' if added != 1 else ''}.")
    return redirect("workbench_set", set_id)


@require_GET
def version_page(request, version_id: int):
    _require_admin(request.user)
    version = get_object_or_404(PolicyVersion.objects.select_related("policy"), id=version_id)
    others = version.policy.versions.exclude(id=version.id).order_by("-number")
    against = None
    if request.GET.get("against"):
        against = get_object_or_404(others, id=request.GET["against"])
    else:
        against = version.policy.current_version()
        if against is not None and against.id == version.id:
            against = others.first()
    diff_text, rule_changes = versions.diff_versions(against, version) if against else ("", [])
    context = {
        "version": version,
        "others": others,
        "against": against,
        "diff_text": diff_text,
        "rule_changes": rule_changes,
        "checks": versions.check_version(version),
        "run_form": RunForm(policy=version.policy),
        "runs": version.evaluation_runs.select_related("golden_set")[:10],
        "gate": gate.check_gate(version) if version.status == "draft" else None,
        "can_override": request.user.has_perm("policies.override_publish_gate"),
    }
    return render(request, "reviewer/workbench/version.html", context)


@require_POST
def new_draft(request, version_id: int):
    """A new draft that starts from this version's text."""
    _require_admin(request.user)
    base = get_object_or_404(PolicyVersion, id=version_id)
    draft = versions.create_draft(policy=base.policy, text=base.text, actor=request.user)
    messages.success(request, f"Draft {draft.label} created from {base.label}.")
    return redirect("workbench_version", draft.id)


@require_POST
def save_draft(request, version_id: int):
    _require_admin(request.user)
    version = get_object_or_404(PolicyVersion, id=version_id)
    try:
        versions.update_draft(
            version=version, text=request.POST.get("text", ""), actor=request.user
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"Draft {version.label} saved.")
    return redirect("workbench_version", version.id)


@require_POST
def start_run(request, version_id: int):
    _require_admin(request.user)
    version = get_object_or_404(PolicyVersion, id=version_id)
    form = RunForm(request.POST, policy=version.policy)
    if not form.is_valid():
        messages.error(request, "Choose a golden set of this policy.")
        return redirect("workbench_version", version.id)
    try:
        run = policy_workbench.start_evaluation(
            version=version,
            golden_set=form.cleaned_data["golden_set"],
            actor=request.user,
            limit=form.cleaned_data["limit"],
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("workbench_version", version.id)
    return redirect("workbench_run", run.id)


@require_POST
def start_replay(request, version_id: int):
    """Run the version on the N most recent human-decided cases of its policy."""
    _require_admin(request.user)
    version = get_object_or_404(PolicyVersion, id=version_id)
    raw = request.POST.get("cases", "")
    try:
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise ValidationError("the number of cases must be between 1 and 10,000")
        golden_set = policy_workbench.replay_set(version=version, size=int(raw), actor=request.user)
        run = policy_workbench.start_evaluation(
            version=version, golden_set=golden_set, actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("workbench_version", version.id)
    return redirect("workbench_run", run.id)


@require_POST
def publish(request, version_id: int):
    _require_admin(request.user)
    version = get_object_or_404(PolicyVersion, id=version_id)
    try:
        result = policy_workbench.publish_version(
            version=version,
            actor=request.user,
            override_reason=request.POST.get("override_reason", ""),
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        how = "with the gate passed" if result.passed else "over the gate, with your reason"
        messages.success(request, f"{version.label} published {how}.")
    return redirect("workbench_version", version.id)


def _disagreements(run: EvaluationRun):
    results = run.results.select_related("item").order_by("item__position")
    rows = []
    for r in results:
        passed = r.ready and r.violation == r.item.expected_violation
        if not passed:
            rows.append(r)
            if len(rows) >= DISAGREEMENTS_SHOWN:
                break
    return rows


@require_GET
def run_page(request, run_id: int):
    _require_admin(request.user)
    run = get_object_or_404(
        EvaluationRun.objects.select_related("policy_version__policy", "golden_set"), id=run_id
    )
    done, total = runs.progress(run)
    context = {"run": run, "done": done, "total": total}
    if request.htmx and request.GET.get("partial") == "run-progress":
        if not run.is_active:
            # The run finished: reload the whole page once so its results appear.
            response = HttpResponseStopPolling()
            response["HX-Refresh"] = "true"
            return response
        return render(request, "reviewer/workbench/run.html#run-progress", context)
    context["disagreements"] = _disagreements(run) if run.status == "done" else []
    context["others"] = (
        EvaluationRun.objects.finished()
        .filter(golden_set=run.golden_set)
        .exclude(id=run.id)
        .select_related("policy_version")[:20]
    )
    return render(request, "reviewer/workbench/run.html", context)


@require_POST
def cancel(request, run_id: int):
    _require_admin(request.user)
    run = get_object_or_404(EvaluationRun, id=run_id)
    if runs.cancel_run(run):
        messages.success(request, f"Run {run.id} cancelled.")
    return redirect("workbench_run", run.id)


@require_GET
def export_run(request, run_id: int, fmt: str):
    _require_admin(request.user)
    run = get_object_or_404(EvaluationRun, id=run_id)
    records = [
        {
            "item_position": r.item.position,
            "content": r.item.content,
            "language": r.item.language,
            "expected": "violating" if r.item.expected_violation else "not_violating",
            "expected_rule_ids": " ".join(r.item.expected_rule_ids),
            "answered": r.ready,
            "violation": r.violation,
            "rule_ids": " ".join(r.rule_ids),
            "failure_reason": r.failure_reason,
            "rationale": r.rationale,
            "case_id": r.item.source_case_id,
            "tokens": r.tokens_in + r.tokens_out,
            "latency_ms": r.latency_ms,
        }
        for r in run.results.select_related("item").order_by("item__position")
    ]
    if fmt == "jsonl":
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        content_type = "application/jsonl"
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else ["content"])
        writer.writeheader()
        # Run results are read in spreadsheets: make text that starts like a formula inert.
        writer.writerows(
            {k: neutralise(v) if isinstance(v, str) else v for k, v in r.items()} for r in records
        )
        body, content_type = out.getvalue(), "text/csv"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="evaluation-run-{run.id}.{fmt}"'
    return response


@require_GET
def compare(request):
    _require_admin(request.user)
    base = get_object_or_404(
        EvaluationRun.objects.select_related("policy_version"), id=request.GET.get("a") or 0
    )
    cand = get_object_or_404(
        EvaluationRun.objects.select_related("policy_version"), id=request.GET.get("b") or 0
    )
    if base.golden_set_id != cand.golden_set_id:
        messages.error(request, "Runs compare only on the same golden set.")
        return redirect("workbench_run", cand.id)
    result = metrics.compare(runs.observations(base), runs.observations(cand))
    items = {
        str(i.id): i for i in base.golden_set.items.filter(id__in=[*result.fixed, *result.broken])
    }
    return render(
        request,
        "reviewer/workbench/compare.html",
        {
            "base": base,
            "cand": cand,
            "result": result,
            "fixed": [items[k] for k in result.fixed],
            "broken": [items[k] for k in result.broken],
        },
    )


urlpatterns = [
    path("workbench/", index, name="workbench"),
    path("workbench/golden-sets/import/", import_set, name="workbench_import"),
    path("workbench/golden-sets/<int:set_id>/", golden_set_page, name="workbench_set"),
    path("workbench/golden-sets/<int:set_id>/add/", add_to_set, name="workbench_set_add"),
    path("workbench/golden-sets/<int:set_id>/gate/", make_gate, name="workbench_set_gate"),
    path(
        "workbench/golden-sets/<int:set_id>/export.<str:fmt>",
        export_set,
        name="workbench_set_export",
    ),
    path("workbench/versions/<int:version_id>/", version_page, name="workbench_version"),
    path("workbench/versions/<int:version_id>/new-draft/", new_draft, name="workbench_new_draft"),
    path("workbench/versions/<int:version_id>/save/", save_draft, name="workbench_save"),
    path("workbench/versions/<int:version_id>/run/", start_run, name="workbench_start_run"),
    path("workbench/versions/<int:version_id>/replay/", start_replay, name="workbench_replay"),
    path("workbench/versions/<int:version_id>/publish/", publish, name="workbench_publish"),
    path("workbench/runs/<int:run_id>/", run_page, name="workbench_run"),
    path("workbench/runs/<int:run_id>/cancel/", cancel, name="workbench_cancel"),
    path("workbench/runs/<int:run_id>/export.<str:fmt>", export_run, name="workbench_run_export"),
    path("workbench/compare/", compare, name="workbench_compare"),
]
