"""A person's decision on a case: checked against the lease, the policy and the appeal rules.

The model's recommendation is stored beside the decision, with whether the two agree. Nothing
here lets the model close a case: a decision always has a human `decided_by`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.drafts.services import latest_ready_recommendation
from appeals.models import (
    APPEAL_OUTCOMES,
    FLAG_OUTCOMES,
    REMOVING_ACTIONS,
    Action,
    Case,
    Decision,
    Outcome,
    Recommendation,
)

from .permissions import require_queue
from .queueing import locked_case_with_lease


def model_outcome_for(case: Case, recommendation: Recommendation | None) -> str:
    """What the model's verdict means as an outcome of this case ('' when there is none)."""
    if recommendation is None or recommendation.violation is None:
        return ""
    if not case.is_appeal:
        return Outcome.VIOLATING if recommendation.violation else Outcome.NOT_VIOLATING
    original_was_action = case.original_action in REMOVING_ACTIONS
    # The model judges the content afresh: the original decision stands if the two agree.
    return Outcome.UPHOLD if recommendation.violation == original_was_action else Outcome.OVERTURN


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


def _check_outcome(case: Case, outcome: str, action: str, rule_ids: list[str]) -> str:
    allowed = APPEAL_OUTCOMES if case.is_appeal else FLAG_OUTCOMES
    if outcome not in allowed:
        raise ValidationError(
            {
                "outcome": f"{outcome!r} is not an outcome for {'an appeal' if case.is_appeal else 'a flag'}; "
                f"choose one of {', '.join(allowed)}"
            }
        )
    if case.is_appeal:
        # Upholding keeps the original action; overturning reverses it.
        if outcome == Outcome.UPHOLD:
            action = case.original_action
        else:
            action = (
                Action.NONE
                if case.original_action in REMOVING_ACTIONS
                else (action or Action.REMOVE)
            )
        if action not in Action.values:
            raise ValidationError({"action": f"{action!r} is not an action"})
    elif outcome == Outcome.VIOLATING:
        if action not in REMOVING_ACTIONS:
            raise ValidationError(
                {"action": "a violating item needs an action: remove, restrict or label"}
            )
    else:
        if action not in ("", Action.NONE):
            raise ValidationError(
                {"action": "an item that does not violate the policy gets no action"}
            )
        action = Action.NONE
    removing = action in REMOVING_ACTIONS
    if removing and not rule_ids:
        raise ValidationError({"rule_ids": "cite at least one rule of the policy for this action"})
    return action


def _require_may_decide(reviewer, case: Case) -> None:
    require_queue(reviewer, case.queue)
    if case.appealed_decision_id and case.appealed_decision.decided_by_id == reviewer.id:
        raise PermissionDenied(
            "you took the decision under appeal; another reviewer must decide the appeal"
        )


def record_blind_call(*, reviewer, case_id: int, lease_token, outcome: str, rule_ids=()) -> Case:
    """In a blind-first queue, the reviewer's own call before the model's draft is shown."""
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        _require_may_decide(reviewer, case)
        allowed = APPEAL_OUTCOMES if case.is_appeal else FLAG_OUTCOMES
        if outcome not in allowed:
            raise ValidationError({"outcome": f"choose one of {', '.join(allowed)}"})
        rule_ids = _clean_rule_ids(case, rule_ids)
        record_events(
            [
                PendingEvent(
                    "blind_call",
                    case,
                    actor=reviewer,
                    data={"outcome": outcome, "rule_ids": rule_ids},
                )
            ]
        )
    return case


def blind_call_for(case: Case, reviewer) -> dict | None:
    event = (
        case.events.filter(kind="blind_call", actor=reviewer).order_by("-id").values("data").first()
    )
    return event["data"] if event else None


def decide_case(
    *,
    reviewer,
    case_id: int,
    lease_token,
    outcome: str,
    action: str = "",
    rule_ids=(),
    note: str = "",
    accepted_recommendation: bool = False,
    recommendation_shown: bool = True,
) -> Decision:
    """Record the reviewer's final decision. Requires the live lease token."""
    now = timezone.now()
    with transaction.atomic():
        case = locked_case_with_lease(
            reviewer=reviewer, case_id=case_id, lease_token=lease_token, now=now
        )
        _require_may_decide(reviewer, case)
        rule_ids = _clean_rule_ids(case, rule_ids)
        action = _check_outcome(case, outcome, action, rule_ids)
        recommendation = latest_ready_recommendation(case)
        model_outcome = model_outcome_for(case, recommendation)
        blind = blind_call_for(case, reviewer)
        blind_outcome = blind["outcome"] if blind else ""
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
            agrees_with_model=(outcome == model_outcome) if model_outcome else None,
            accepted_recommendation=accepted_recommendation and bool(model_outcome),
            recommendation_shown=recommendation_shown,
            blind_outcome=blind_outcome,
            blind_rule_ids=blind["rule_ids"] if blind else [],
            blind_agrees_with_model=(blind_outcome == model_outcome)
            if (blind and model_outcome)
            else None,
            claimed_at=case.claimed_at,
        )
        case.status = Case.Status.DECIDED
        case.claimed_by = None
        case.lease_token = None
        case.lease_expires_at = None
        case.save(update_fields=["status", "claimed_by", "lease_token", "lease_expires_at"])
        record_events(
            [
                PendingEvent(
                    "decided",
                    case,
                    actor=reviewer,
                    data={
                        "decision_id": decision.id,
                        "outcome": outcome,
                        "action": action,
                        "rule_ids": rule_ids,
                        "recommendation_id": recommendation.id if recommendation else None,
                        "model_outcome": model_outcome,
                        "agrees_with_model": decision.agrees_with_model,
                        "accepted_recommendation": decision.accepted_recommendation,
                    },
                )
            ]
        )
        transaction.on_commit(lambda: _after_decision(decision.id))
    return decision


def _after_decision(decision_id: int) -> None:
    """Side effects once the decision is safely stored (callbacks to the platform)."""
    from appeals.disclosure import hooks

    hooks.decision_recorded(decision_id)
