"""Demo decisions, so that a fresh quickstart shows precedents (similar decided cases).

A third of the demo's flags are decided by the demo senior through the same claim and decide
services a person uses, each from its dataset's own human label: the moderation eval set's
labels (sexual content → GS1, graphic violence → GV1, anything else not violating) and the spam
golden set's rule labels (SP0 not violating, SP2.a etc. violating under that rule). The rest stay
open to be reviewed; an item with an appeal is left alone.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from .models import Action, AuditEvent, Case, Outcome, Platform
from .review.decisions import decide_case
from .review.queueing import claim_case

DECIDER = "senior"
EVERY = 3  # decide every third flag
LABELLED = ["label", "labels"]  # item metadata keys of a data set's human label


def _decision_from_label(case: Case, known: set[str]) -> tuple[str, list[str]]:
    metadata = case.item.metadata or {}
    if metadata.get("dataset") == "spam-policy-example":
        label = str(metadata.get("label", "")).strip()
        if not label or label.startswith("SP0"):
            return Outcome.NOT_VIOLATING, []
        rule = label if label in known else label.split(".")[0]
        return (Outcome.VIOLATING, [rule]) if rule in known else (Outcome.NOT_VIOLATING, [])
    labels = metadata.get("labels") or {}
    if labels.get("S") == 1 and "GS1" in known:
        return Outcome.VIOLATING, ["GS1"]
    if labels.get("V2") == 1 and "GV1" in known:
        return Outcome.VIOLATING, ["GV1"]
    return Outcome.NOT_VIOLATING, []


def decide_demo_cases(platform: Platform) -> int:
    """Decide every third demo flag from its label (those still open); returns how many."""
    decider = get_user_model().objects.filter(username=DECIDER, is_active=True).first()
    if decider is None:
        return 0
    # Every third of the demo's labelled flags, by id: a second load decides nothing new. Flags
    # with no label of their own (the drawn pictures, the near-duplicate copies) stay open.
    cases = (
        Case.objects.filter(platform=platform, kind=Case.Kind.FLAG)
        .filter(item__metadata__has_any_keys=LABELLED)
        .exclude(item__cases__kind=Case.Kind.APPEAL)
        .select_related("item", "policy_version")
        .order_by("id")
    )
    decided = 0
    for position, case in enumerate(cases):
        if position % EVERY != EVERY - 1 or case.status != Case.Status.OPEN:
            continue
        known = set(case.policy_version.rules.values_list("rule_id", flat=True))
        outcome, rule_ids = _decision_from_label(case, known)
        claimed = claim_case(reviewer=decider, case_id=case.id, source=AuditEvent.Source.COMMAND)
        decide_case(
            reviewer=decider,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome=outcome,
            action=Action.REMOVE if outcome == Outcome.VIOLATING else Action.NONE,
            rule_ids=rule_ids,
            note="Demo decision, from the dataset's human label.",
            source=AuditEvent.Source.COMMAND,
        )
        decided += 1
    return decided
