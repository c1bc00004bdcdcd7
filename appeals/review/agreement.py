"""Agreement between the model's recommendation and a person's call, on three levels.

The one place these are worked out; the decide service stores them on the decision, the data
migration `0011_three_level_agreement` filled them in for older decisions, and the quality page
and the exports only read what was stored.

- **Verdict**: the person's outcome is the outcome the model's verdict means for the case
  (`outcomes.model_outcome_for`).
- **Rules**: the rules the model cited (those the case's policy version defines, as accepting the
  draft would cite them) against the rules the person cited. *Exact* when the two sets are
  equal; *overlap* is their Jaccard index, |M ∩ R| / |M ∪ R|, from 0 (nothing in common) to 1
  (the same rules). Only compared when either side cited a rule: two empty sets say nothing.
- **Action**: the person's action against the action the model's outcome implies
  (`outcomes.default_action`: remove for a violation, none otherwise; for an appeal, the
  original action kept or reversed).

The model's side is exactly what its Accept button decides (`outcomes.acceptance`), so a decision
that accepted the recommendation agrees on every level. A blind call (a blind-first queue's call
before the draft is shown) is compared the same way; it records an outcome and rules, so its
action is the one its outcome implies. Nothing here is given a value when the model gave no
verdict (None: not compared).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from appeals import outcomes


@dataclass(frozen=True)
class Levels:
    """How one call compares with the model's, level by level (None: not compared)."""

    verdict: bool | None = None
    rules_exact: bool | None = None
    rules_overlap: float | None = None
    action: bool | None = None


def rule_overlap(model_rule_ids: Iterable[str], rule_ids: Iterable[str]) -> float | None:
    """The Jaccard index of two sets of rule ids; None when both are empty."""
    model, person = set(model_rule_ids), set(rule_ids)
    union = model | person
    if not union:
        return None
    return len(model & person) / len(union)


def compare(
    model: outcomes.Acceptance | None, *, outcome: str, action: str, rule_ids: Iterable[str]
) -> Levels:
    """One call (outcome, action, rules) against what accepting the model's draft decides."""
    if model is None:
        return Levels()
    overlap = rule_overlap(model.rule_ids, rule_ids)
    return Levels(
        verdict=outcome == model.outcome,
        rules_exact=None if overlap is None else overlap == 1.0,
        rules_overlap=overlap,
        action=action == model.action,
    )


def decision_fields(
    case,
    recommendation,
    known_rule_ids: Iterable[str],
    *,
    outcome: str,
    action: str,
    rule_ids: Iterable[str],
    blind_outcome: str = "",
    blind_rule_ids: Iterable[str] = (),
) -> dict:
    """The agreement fields of a `Decision`, final call and blind call, by field name.

    `case` needs `is_appeal` and `original_action`; `recommendation` (or None) `violation` and
    `rule_ids`: the data migration passes its historical rows through here too.
    """
    model = outcomes.acceptance(case, recommendation, known_rule_ids)
    final = compare(model, outcome=outcome, action=action, rule_ids=rule_ids)
    blind = Levels()
    if blind_outcome:
        blind = compare(
            model,
            outcome=blind_outcome,
            action=outcomes.default_action(case, blind_outcome),
            rule_ids=blind_rule_ids,
        )
    return {
        "model_action": model.action if model else "",
        "agrees_with_model": final.verdict,
        "rules_agree": final.rules_exact,
        "rules_overlap": final.rules_overlap,
        "action_agrees": final.action,
        "blind_agrees_with_model": blind.verdict,
        "blind_rules_agree": blind.rules_exact,
        "blind_rules_overlap": blind.rules_overlap,
        "blind_action_agrees": blind.action,
    }
