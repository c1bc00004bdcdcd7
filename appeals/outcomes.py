"""What an outcome means: the one home of the rules that tie outcomes, actions and rules together.

Forms, views, services, notices and the DSA statements all ask here; nothing else writes these
rules down. The vocabulary itself (`Outcome`, `Action`) lives on the models, as field choices.

- A flag is decided violating (with an action that removes, restricts or labels) or not violating
  (no action). An appeal upholds the original decision (its action stands) or overturns it (a
  removing action is undone; an original "no action" becomes a removal, or the action picked).
- An action that removes, restricts or labels must cite at least one rule of the policy.
- The model's verdict (violation or not) becomes an outcome: for a flag directly, for an appeal by
  comparing it with the original decision.
- Accepting the model's recommendation means deciding exactly what its Accept button decides:
  the model's outcome, the action that outcome implies, and the draft's rules (those the policy
  version defines). Whether a decision accepted it is worked out from the decision itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from appeals.models import Action, Case, Outcome, Recommendation

FLAG_OUTCOMES = (Outcome.VIOLATING, Outcome.NOT_VIOLATING)
APPEAL_OUTCOMES = (Outcome.UPHOLD, Outcome.OVERTURN)
REMOVING_ACTIONS = (Action.REMOVE, Action.RESTRICT, Action.LABEL)


def is_removing(action: str) -> bool:
    """Does this action take the content down, restrict it or label it?"""
    return action in REMOVING_ACTIONS


def outcomes_for(case: Case) -> tuple[str, ...]:
    return APPEAL_OUTCOMES if case.is_appeal else FLAG_OUTCOMES


def outcome_choices(case: Case) -> list[tuple[str, str]]:
    return [(value, Outcome(value).label) for value in outcomes_for(case)]


def check_outcome(case: Case, outcome: str) -> None:
    allowed = outcomes_for(case)
    if outcome not in allowed:
        kind = "an appeal" if case.is_appeal else "a flag"
        raise ValidationError(
            {
                "outcome": f"{outcome!r} is not an outcome for {kind}; choose one of {', '.join(allowed)}"
            }
        )


def default_action(case: Case, outcome: str) -> str:
    """The action an outcome implies when the reviewer picks none ('' for an unknown outcome)."""
    if case.is_appeal:
        if outcome == Outcome.UPHOLD:
            return case.original_action
        if outcome == Outcome.OVERTURN:
            return Action.NONE if is_removing(case.original_action) else Action.REMOVE
        return ""
    if outcome == Outcome.VIOLATING:
        return Action.REMOVE
    if outcome == Outcome.NOT_VIOLATING:
        return Action.NONE
    return ""


def action_for(case: Case, outcome: str, action: str) -> str:
    """The action a decision records, checked against its outcome. Raises ValidationError."""
    check_outcome(case, outcome)
    if case.is_appeal:
        # Upholding keeps the original action; overturning reverses it (a reversal of "no action"
        # removes, unless the reviewer picked another restricting action).
        if outcome == Outcome.UPHOLD or is_removing(case.original_action):
            action = default_action(case, outcome)
        else:
            action = action or default_action(case, outcome)
        if action not in Action.values:
            raise ValidationError({"action": f"{action!r} is not an action"})
        return action
    if outcome == Outcome.VIOLATING:
        if not is_removing(action):
            raise ValidationError(
                {"action": "a violating item needs an action: remove, restrict or label"}
            )
        return action
    if action not in ("", Action.NONE):
        raise ValidationError({"action": "an item that does not violate the policy gets no action"})
    return Action.NONE


def check_rules_cited(action: str, rule_ids: list[str]) -> None:
    if is_removing(action) and not rule_ids:
        raise ValidationError({"rule_ids": "cite at least one rule of the policy for this action"})


def restricts_content(*, is_appeal: bool, outcome: str, action: str) -> bool:
    """Does the decision leave a restriction on the content (what a DSA statement is about)?"""
    if not is_removing(action):
        return False
    return outcome == (Outcome.OVERTURN if is_appeal else Outcome.VIOLATING)


def model_outcome_for(case: Case, recommendation: Recommendation | None) -> str:
    """What the model's verdict means as an outcome of this case ('' when there is none)."""
    if recommendation is None or recommendation.violation is None:
        return ""
    if not case.is_appeal:
        return Outcome.VIOLATING if recommendation.violation else Outcome.NOT_VIOLATING
    # The model judges the content afresh: the original decision stands if the two agree.
    original_was_action = is_removing(case.original_action)
    return Outcome.UPHOLD if recommendation.violation == original_was_action else Outcome.OVERTURN


@dataclass(frozen=True)
class Acceptance:
    """What accepting the draft decides, or why it cannot be accepted as it is."""

    outcome: str
    action: str
    rule_ids: list[str]
    problem: str = ""


def acceptance(
    case: Case, recommendation: Recommendation | None, known_rule_ids: Iterable[str]
) -> Acceptance | None:
    """The decision that accepting this recommendation records (None without a verdict)."""
    outcome = model_outcome_for(case, recommendation)
    if not outcome:
        return None
    known = set(known_rule_ids)
    rule_ids = [rule_id for rule_id in recommendation.rule_ids if rule_id in known]
    action = default_action(case, outcome)
    problem = ""
    if is_removing(action) and not rule_ids:
        problem = "The draft cites no rule of this policy version, so it cannot be accepted as is."
    return Acceptance(outcome, action, rule_ids, problem)


def accepts_recommendation(
    case: Case,
    recommendation: Recommendation | None,
    known_rule_ids: Iterable[str],
    *,
    outcome: str,
    action: str,
    rule_ids: Iterable[str],
) -> bool:
    """Is this decision the recommendation accepted as it is? Computed, never taken on trust."""
    accepted = acceptance(case, recommendation, known_rule_ids)
    return (
        accepted is not None
        and not accepted.problem
        and outcome == accepted.outcome
        and action == accepted.action
        and set(rule_ids) == set(accepted.rule_ids)
    )
