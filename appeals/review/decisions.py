"""A person's decision on a case: checked against the lease, the policy and the appeal rules.

The model's recommendation is stored beside the decision, with whether the two agree. Nothing
here lets the model close a case: a decision always has a human `decided_by`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from appeals import outcomes
from appeals.audit import PendingEvent, record_events
from appeals.disclosure import hooks
from appeals.disclosure.told import disclosure_for
from appeals.drafts.services import latest_ready_recommendation, latest_recommendation
from appeals.models import AuditEvent, Case, CaseGroup, Decision, QueueSetting

from . import agreement, appeal_links
from .permissions import require_queue
from .queueing import clear_lease, locked_case_with_lease

Kind = AuditEvent.Kind
CONSOLE = AuditEvent.Source.CONSOLE


def _clean_rule_ids(case: Case, rule_ids, *, field: str = "rule_ids") -> list[str]:
    known = set(case.policy_version.rules.values_list("rule_id", flat=True))
    cleaned: list[str] = []
    for rule_id in rule_ids or []:
        rule_id = str(rule_id).strip()
        if not rule_id:
            continue
        if rule_id not in known:
            raise ValidationError(
                {field: f"rule {rule_id!r} is not defined in {case.policy_version.label}"}
            )
        if rule_id not in cleaned:
            cleaned.append(rule_id)
    return cleaned


def is_blind_first(queue: str) -> bool:
    """Does this queue hide the model's draft until the reviewer has made their own call?"""
    return QueueSetting.objects.filter(queue=queue, blind_first=True).exists()


def _require_may_decide(reviewer, case: Case) -> None:
    require_queue(reviewer, case.queue)
    appeal_links.require_not_decider(reviewer, case)


def record_blind_call(
    *,
    reviewer,
    case_id: int,
    lease_token,
    outcome: str,
    rule_ids=(),
    source: AuditEvent.Source = CONSOLE,
) -> Case:
    """In a blind-first queue, the reviewer's own call before the model's draft is shown."""
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        _require_may_decide(reviewer, case)
        outcomes.check_outcome(case, outcome)
        rule_ids = _clean_rule_ids(case, rule_ids)
        record_events(
            [
                PendingEvent(
                    Kind.BLIND_CALL,
                    case,
                    actor=reviewer,
                    source=source,
                    data={"outcome": outcome, "rule_ids": rule_ids},
                )
            ]
        )
    return case


def blind_call_for(case: Case, reviewer) -> dict | None:
    event = (
        case.events.filter(kind=Kind.BLIND_CALL, actor=reviewer)
        .order_by("-id")
        .values("data")
        .first()
    )
    return event["data"] if event else None


def _group_fields(group: CaseGroup | None) -> dict:
    if group is None:
        return {}
    confirmed_by = group.confirmed_by
    return {
        "group_id": group.id,
        "group_confirmed_by": confirmed_by.get_username() if confirmed_by else None,
    }


def decide_case(
    *,
    reviewer,
    case_id: int,
    lease_token,
    outcome: str,
    action: str = "",
    rule_ids=(),
    note: str = "",
    supersedes: int | None = None,
    source: AuditEvent.Source = CONSOLE,
    group: CaseGroup | None = None,
) -> Decision:
    """Record the reviewer's final decision. Requires the live lease token.

    In a blind-first queue the reviewer's own call must come first. Whether the decision accepted
    the model's recommendation is worked out here from what was decided (`appeals.outcomes`).
    A decision that contradicts the latest final decision on the item must name it in
    `supersedes` (appeals/review/appeal_links.py); a flag decision links the appeals waiting for it.
    A decision taken for a near-duplicate group (appeals/review/groups.py) names the group.
    """
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        _require_may_decide(reviewer, case)
        blind = blind_call_for(case, reviewer)
        if blind is None and is_blind_first(case.queue):
            raise ValidationError(
                "This queue is blind-first: record your own call before deciding."
            )
        rule_ids = _clean_rule_ids(case, rule_ids)
        action = outcomes.action_for(case, outcome, action)
        outcomes.check_rules_cited(action, rule_ids)
        superseded = appeal_links.check_supersedes(
            case, outcome=outcome, action=action, supersedes=supersedes
        )
        recommendation = latest_ready_recommendation(case)
        model_outcome = outcomes.model_outcome_for(case, recommendation)
        # The draft was on the page if the newest request is the ready one (a newer request in
        # flight shows its progress instead); a blind-first queue showed it after the blind call.
        latest = latest_recommendation(case)
        shown = recommendation is not None and latest is not None and latest.id == recommendation.id
        known = list(case.policy_version.rules.values_list("rule_id", flat=True))
        accepted = shown and outcomes.accepts_recommendation(
            case, recommendation, known, outcome=outcome, action=action, rule_ids=rule_ids
        )
        blind_outcome = blind["outcome"] if blind else ""
        # Verdict, rules and action, for the final decision and the blind call (`agreement`).
        levels = agreement.decision_fields(
            case,
            recommendation,
            known,
            outcome=outcome,
            action=action,
            rule_ids=rule_ids,
            blind_outcome=blind_outcome,
            blind_rule_ids=blind["rule_ids"] if blind else (),
        )
        told = disclosure_for(
            case,
            outcome=outcome,
            action=action,
            rule_ids=rule_ids,
            decided_at=now,
            model_assisted=recommendation is not None,
        )
        decision = Decision.objects.create(
            case=case,
            decided_by=reviewer,
            decided_at=now,
            outcome=outcome,
            action=action,
            rule_ids=rule_ids,
            note=note.strip(),
            recommendation=recommendation,
            model_outcome=model_outcome,
            accepted_recommendation=accepted,
            recommendation_shown=shown,
            blind_outcome=blind_outcome,
            blind_rule_ids=blind["rule_ids"] if blind else [],
            claimed_at=case.claimed_at,
            **levels,
            supersedes=superseded,
            near_duplicate_group=group,
            **told,
        )
        case.status = Case.Status.DECIDED
        case.save(update_fields=["status", *clear_lease(case)])
        record_events(
            [
                PendingEvent(
                    Kind.DECIDED,
                    case,
                    actor=reviewer,
                    source=source,
                    data={
                        "decision_id": decision.id,
                        "outcome": outcome,
                        "action": action,
                        "rule_ids": rule_ids,
                        "recommendation_id": recommendation.id if recommendation else None,
                        "model_outcome": model_outcome,
                        "agrees_with_model": decision.agrees_with_model,
                        "rules_agree": decision.rules_agree,
                        "rules_overlap": decision.rules_overlap,
                        "action_agrees": decision.action_agrees,
                        "accepted_recommendation": decision.accepted_recommendation,
                        "supersedes_decision_id": superseded.id if superseded else None,
                        **_group_fields(group),
                    },
                    records=(decision,),
                )
            ]
            + appeal_links.link_open_appeals(decision, now=now, source=source)
        )
        # The platform's callback is written with the decision (an outbox row) and sent after
        # commit; nothing is lost if the broker or the platform is down then.
        hooks.decision_recorded(decision, source=source)
    return decision
