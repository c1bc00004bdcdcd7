"""The workbench's audited steps: evaluation runs, golden items from decided cases, publishing.

`policies.workbench` holds the rows and the mechanics; this module is where they meet cases,
decisions and the audit log (which `policies` may not import). Every step here is one service:
keyword-only, atomic, side effects (the Celery task) sent after commit.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q

from policies.models import PolicyVersion
from policies.workbench import gate, golden, runs, versions
from policies.workbench.models import EvaluationRun, GoldenSet

from .audit import record_event
from .models import AuditEvent, Case, Decision, Outcome
from .outcomes import REMOVING_ACTIONS

MANAGE = "policies.manage_policy"
OVERRIDE = "policies.override_publish_gate"


def require_manage(user) -> None:
    if not (user.is_active and user.has_perm(MANAGE)):
        raise PermissionDenied("only a policy admin may do this")


# --- evaluation runs ------------------------------------------------------------------------


def enqueue_run(run_id: int) -> None:
    from policies.tasks import run_evaluation

    run_evaluation.delay(run_id)


def start_evaluation(
    *,
    version: PolicyVersion,
    golden_set: GoldenSet,
    actor=None,
    actor_label: str = "system",
    source: AuditEvent.Source = AuditEvent.Source.CONSOLE,
    limit: int | None = None,
    enqueue: bool = True,
) -> EvaluationRun:
    """Queue a run of `version` on `golden_set` (an audit event), and send it to the gpu queue."""
    if actor is not None:
        require_manage(actor)
    with transaction.atomic():
        run = runs.create_run(version=version, golden_set=golden_set, actor=actor, limit=limit)
        record_event(
            AuditEvent.Kind.EVALUATION_REQUESTED,
            case=None,
            source=source,
            actor=actor,
            actor_label=actor_label,
            data={
                "run_id": run.id,
                "policy_version_id": version.id,
                "policy_version": version.label,
                "policy_sha256": version.sha256,
                "golden_set_id": golden_set.id,
                "golden_set": golden_set.name,
                "items": run.item_count,
            },
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_run(run.id))
    return run


# --- golden items from decided cases --------------------------------------------------------


def expected_label(decision: Decision) -> tuple[bool, tuple[str, ...]]:
    """The human decision as a golden label: (violating?, rule ids)."""
    case = decision.case
    if decision.outcome in (Outcome.VIOLATING, Outcome.NOT_VIOLATING):
        violating = decision.outcome == Outcome.VIOLATING
        return violating, tuple(decision.rule_ids) if violating else ()
    # An appeal: upholding a removal says the content violates; overturning it says it doesn't.
    removed = case.original_action in REMOVING_ACTIONS
    violating = (decision.outcome == Outcome.UPHOLD) == removed
    rules = tuple(decision.rule_ids or case.original_rule_ids) if violating else ()
    return violating, rules


def _items_from_decisions(decisions, *, note: str) -> list[golden.ParsedItem]:
    items = []
    for decision in decisions:
        violating, rules = expected_label(decision)
        case = decision.case
        items.append(
            golden.ParsedItem(
                line=0,
                content=case.item.content,
                content_type=case.item.content_type,
                expected_violation=violating,
                expected_rule_ids=rules,
                note=note,
                source=f"case {case.id} decided by {decision.decided_by.get_username()}",
                source_case_id=case.id,
            )
        )
    return items


def _decided(queryset):
    return queryset.select_related("case__item", "decided_by")


@transaction.atomic
def add_case_to_golden_set(*, case: Case, golden_set: GoldenSet, actor) -> int:
    """The human decision on `case` becomes a golden item (once per set). Returns items added."""
    require_manage(actor)
    decision = Decision.objects.filter(case=case).select_related("case__item", "decided_by").first()
    if decision is None:
        raise ValidationError(f"case {case.id} has no decision yet")
    if case.policy_version.policy_id != golden_set.policy_id:
        raise ValidationError("the case was decided under another policy than the golden set's")
    added = golden.add_items(
        golden_set=golden_set, items=_items_from_decisions([decision], note="added from a case")
    )
    return len(added)


def _period(queryset, since: dt.datetime | None, until: dt.datetime | None):
    if since is not None:
        queryset = queryset.filter(decided_at__gte=since)
    if until is not None:
        queryset = queryset.filter(decided_at__lt=until)
    return queryset


def require_senior(user) -> None:
    if not (user.is_active and user.has_perm(OVERRIDE)):
        raise PermissionDenied("only a senior reviewer may do this")


@transaction.atomic
def add_overturned_appeals(*, golden_set: GoldenSet, actor, since=None, until=None) -> int:
    """Every appeal of the set's policy overturned in [since, until) becomes a golden item."""
    require_senior(actor)
    decisions = _period(
        Decision.objects.filter(
            outcome=Outcome.OVERTURN,
            case__kind=Case.Kind.APPEAL,
            case__policy_version__policy_id=golden_set.policy_id,
        ),
        since,
        until,
    ).order_by("decided_at", "id")
    items = _items_from_decisions(_decided(decisions), note="overturned on appeal")
    return len(golden.add_items(golden_set=golden_set, items=items))


@transaction.atomic
def add_disagreements(*, golden_set: GoldenSet, actor, since=None, until=None) -> int:
    """Every decision of the period where the reviewer disagreed with the model's draft."""
    require_senior(actor)
    decisions = _period(
        Decision.objects.filter(
            agrees_with_model=False, case__policy_version__policy_id=golden_set.policy_id
        ),
        since,
        until,
    ).order_by("decided_at", "id")
    items = _items_from_decisions(_decided(decisions), note="reviewer disagreed with the model")
    return len(golden.add_items(golden_set=golden_set, items=items))


@transaction.atomic
def replay_set(*, version: PolicyVersion, size: int, actor=None) -> GoldenSet:
    """A golden set of the `size` most recent human-decided cases of the version's policy."""
    if size < 1:
        raise ValidationError("a replay needs at least one case")
    decisions = list(
        _decided(
            Decision.objects.filter(case__policy_version__policy_id=version.policy_id).order_by(
                F("decided_at").desc(), "-id"
            )
        )[:size]
    )
    if not decisions:
        raise ValidationError(f"{version.policy.slug} has no decided cases to replay")
    golden_set = GoldenSet.objects.create(
        policy=version.policy,
        name=f"replay of {len(decisions)} cases to {decisions[0].decided_at:%Y-%m-%d %H:%M:%S.%f}",
        kind=GoldenSet.Kind.REPLAY,
        description="the human decision is the expected label",
        created_by=actor,
    )
    golden.add_items(golden_set=golden_set, items=_items_from_decisions(decisions, note="replay"))
    return golden_set


# --- publishing -----------------------------------------------------------------------------


def publish_version(
    *,
    version: PolicyVersion,
    actor,
    override_reason: str = "",
    actor_label: str = "system",
    source: AuditEvent.Source = AuditEvent.Source.CONSOLE,
) -> gate.GateResult:
    """Publish a draft if the gate passes; otherwise only with a senior's override and reason.

    Raises ValidationError with the gate's problems when refused. Both the publication and an
    override are audit events, written in the same transaction as the status change."""
    require_manage(actor)
    override_reason = override_reason.strip()
    with transaction.atomic():
        version = PolicyVersion.objects.select_for_update().get(id=version.id)
        if version.status != PolicyVersion.Status.DRAFT:
            raise ValidationError(f"{version.label} is already published")
        result = gate.check_gate(version)
        if not result.passed:
            if not override_reason:
                raise ValidationError(
                    ["publishing refused: " + "; ".join(result.problems)]
                    + ["a senior reviewer may publish anyway with a reason"]
                )
            require_senior(actor)
            record_event(
                AuditEvent.Kind.PUBLISH_GATE_OVERRIDDEN,
                case=None,
                source=source,
                actor=actor,
                actor_label=actor_label,
                data={
                    "policy_version": version.label,
                    "reason": override_reason,
                    **result.as_dict(),
                },
            )
        versions.mark_published(version=version, actor=actor)
        # The same kind as every other publish path (appeals.policy_audit), with the row's hash
        # and the gate's result beside it.
        record_event(
            AuditEvent.Kind.POLICY_VERSION_PUBLISHED,
            case=None,
            source=source,
            actor=actor,
            actor_label=actor_label,
            records=(version,),
            data={
                "policy_id": version.policy_id,
                "policy_version_id": version.id,
                "policy_version": version.label,
                "policy_sha256": version.sha256,
                "overridden": not result.passed,
                **result.as_dict(),
            },
        )
    return result


def recent_workbench_events(limit: int = 20):
    kinds = [
        AuditEvent.Kind.EVALUATION_REQUESTED,
        AuditEvent.Kind.POLICY_VERSION_PUBLISHED,
        AuditEvent.Kind.PUBLISH_GATE_OVERRIDDEN,
    ]
    return AuditEvent.objects.filter(Q(kind__in=kinds)).order_by("-id")[:limit]
