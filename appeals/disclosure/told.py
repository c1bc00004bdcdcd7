"""What a decision tells the platform and the user, worked out once, when it is taken.

The notice's text, the policy's name, the appeal window and its deadline, and the DSA mapping
of the rules cited are stored on the `Decision` (see `decide_case`); exports and callbacks read
them from there. Editing a policy afterwards (its name, its window, its mapping) changes what
later decisions say, never what earlier ones said.
"""

from __future__ import annotations

import datetime as dt

from appeals.models import Case

from .dsa import effective_mapping
from .notices import NoticeFacts, RuleLines, compose_notice


def mapping_for_rules(mapping: dict, rule_ids) -> dict:
    """`mapping` cut down to what `dsa.entry_for_rule` reads for these rules: the default, and
    the entries of each rule and of its tier."""
    wanted = set()
    for rule_id in rule_ids or ():
        wanted.update({rule_id, rule_id.split(".", 1)[0]})
    kept: dict = {}
    if "default" in mapping:
        kept["default"] = mapping["default"]
    rules = {key: entry for key, entry in mapping.get("rules", {}).items() if key in wanted}
    if rules:
        kept["rules"] = rules
    return kept


def disclosure_fields(
    *,
    case_kind: str,
    outcome: str,
    action: str,
    rule_ids,
    rule_lines: tuple[str, ...],
    policy_slug: str,
    policy_name: str,
    appeal_window_days: int,
    dsa_mapping,
    decided_at: dt.datetime,
    model_assisted: bool,
    original_action: str = "",
    original_decided_at: dt.datetime | None = None,
) -> dict:
    """The Decision fields that record what was told (pure: the data migration calls it too)."""
    notice = compose_notice(
        NoticeFacts(
            case_kind=case_kind,
            outcome=outcome,
            action=action,
            rule_lines=rule_lines,
            policy_name=policy_name,
            appeal_window_days=appeal_window_days,
            decided_at=decided_at,
            model_assisted=model_assisted,
            original_action=original_action,
            original_decided_at=original_decided_at,
        )
    )
    is_flag = case_kind == Case.Kind.FLAG
    return {
        "notice": notice,
        "policy_name": policy_name,
        "appeal_window_days": appeal_window_days if is_flag else None,
        "appeal_deadline": decided_at + dt.timedelta(days=appeal_window_days) if is_flag else None,
        "dsa_mapping": mapping_for_rules(effective_mapping(policy_slug, dsa_mapping), rule_ids),
    }


def disclosure_for(
    case: Case,
    *,
    outcome: str,
    action: str,
    rule_ids,
    decided_at: dt.datetime,
    model_assisted: bool,
) -> dict:
    """What a decision on `case` tells, under its policy as it stands now."""
    policy = case.policy_version.policy
    return disclosure_fields(
        case_kind=case.kind,
        outcome=outcome,
        action=action,
        rule_ids=rule_ids,
        rule_lines=RuleLines().lines(case.policy_version_id, rule_ids),
        policy_slug=policy.slug,
        policy_name=policy.name,
        appeal_window_days=policy.appeal_window_days,
        dsa_mapping=policy.dsa_mapping,
        decided_at=decided_at,
        model_assisted=model_assisted,
        original_action=case.original_action,
        original_decided_at=case.original_decided_at,
    )
