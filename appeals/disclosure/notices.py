"""The plain-language notice a platform sends its user about a decision (DSA Art. 17 style).

Built only from what the person decided (outcome, action, cited rules) and the wording of the
rules cited, as the policy version stood: never from the model's reasoning or rationale, nor
from the reviewer's internal note. Exports and callbacks carry the same text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from appeals.models import Action, Case, Decision, Outcome
from appeals.outcomes import is_removing
from policies.models import PolicyRule

# Markdown and list decoration at the start of a rule's first line: "## ", "- ", "* **", "`".
_LEADING_DECORATION = re.compile(r"^[\s#>*\-•`_]+")
_TRAILING_DECORATION = re.compile(r"[\s*`_]+$")

_ACTION_DONE = {
    Action.REMOVE: "the content has been removed",
    Action.RESTRICT: "the content's visibility has been restricted",
    Action.LABEL: "a label has been added to the content",
}
_ACTION_STAYS = {
    Action.REMOVE: "The content stays removed.",
    Action.RESTRICT: "The content's visibility stays restricted.",
    Action.LABEL: "The label stays on the content.",
}
_ACTION_UNDONE = {
    Action.REMOVE: "The content will be restored.",
    Action.RESTRICT: "The restriction on the content's visibility will be lifted.",
    Action.LABEL: "The label will be taken off the content.",
}


def rule_line(rule_id: str, text: str) -> str:
    """`SP2.b: Irrelevant ads - "Buy gold rings here!"`: the id and the first line of its text."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    first = _TRAILING_DECORATION.sub("", _LEADING_DECORATION.sub("", first))
    # Sub-rules start with their own id ("SP2.b Irrelevant ads …"): don't say it twice.
    if first.startswith(rule_id):
        first = _LEADING_DECORATION.sub("", first[len(rule_id) :].lstrip(" :.–—-*`"))
    first = first.strip()
    return f"{rule_id}: {first}" if first else rule_id


@dataclass(frozen=True)
class NoticeFacts:
    """Everything a notice may say, and nothing else."""

    case_kind: str
    outcome: str
    action: str
    rule_lines: tuple[str, ...]
    policy_name: str
    appeal_window_days: int
    decided_at: dt.datetime
    model_assisted: bool
    original_action: str = ""
    original_decided_at: dt.datetime | None = None


def compose_notice(facts: NoticeFacts) -> str:
    """The notice's text, from the facts alone (pure: the export calls it per row)."""
    policy = f"our {facts.policy_name} policy"
    rules = "\n".join(f"- {line}" for line in facts.rule_lines)
    who = "A person on our review team made this decision"
    if facts.model_assisted:
        who += ", after checking a recommendation prepared by an automated system"
    who += "."
    paragraphs: list[str] = []

    if facts.case_kind == Case.Kind.APPEAL:
        original = _ACTION_DONE.get(facts.original_action, "no action was taken")
        when = f" of {facts.original_decided_at:%Y-%m-%d}" if facts.original_decided_at else ""
        paragraphs.append(
            f"We have reviewed your appeal against the decision{when}, under which {original}."
        )
        if facts.outcome == Outcome.UPHOLD:
            if is_removing(facts.original_action):
                paragraphs.append(
                    f"We upheld that decision: the content breaks {policy}, in these rules:\n{rules}"
                    if rules
                    else f"We upheld that decision under {policy}."
                )
                paragraphs.append(_ACTION_STAYS[facts.original_action])
            else:
                paragraphs.append(
                    f"We upheld that decision: the content does not break {policy}. "
                    "No action is taken."
                )
        else:
            if is_removing(facts.original_action):
                paragraphs.append(
                    f"We reversed that decision: on a fresh review, the content does "
                    f"not break {policy}."
                )
                paragraphs.append(_ACTION_UNDONE[facts.original_action])
            else:
                done = _ACTION_DONE.get(facts.action, "action has been taken")
                paragraphs.append(
                    f"We reversed that decision: the content breaks {policy}, in "
                    f"these rules:\n{rules}"
                )
                paragraphs.append(f"As a result, {done}.")
        paragraphs.append(who + " It was not made by the person who took the original decision.")
        paragraphs.append(
            "This is the final decision of our internal complaint-handling system. You may refer "
            "it to a certified out-of-court dispute settlement body, or seek redress in court."
        )
        return "\n\n".join(paragraphs)

    if facts.outcome == Outcome.VIOLATING and is_removing(facts.action):
        paragraphs.append(
            f"We reviewed the content against {policy} and found that it breaks "
            f"these rules:\n{rules}"
        )
        paragraphs.append(f"As a result, {_ACTION_DONE[facts.action]}.")
        paragraphs.append(who)
        closes = facts.decided_at + dt.timedelta(days=facts.appeal_window_days)
        paragraphs.append(
            f"You can appeal this decision within {facts.appeal_window_days} days, until "
            f"{closes:%Y-%m-%d}."
        )
    else:
        paragraphs.append(
            f"We reviewed the reported content against {policy} and found that it "
            "does not break its rules. No action has been taken."
        )
        paragraphs.append(who)
    return "\n\n".join(paragraphs)


class RuleLines:
    """Rule id → its notice line, per policy version; one query per version, then cached."""

    def __init__(self) -> None:
        self._by_version: dict[int, dict[str, str]] = {}

    def for_version(self, version_id: int) -> dict[str, str]:
        lines = self._by_version.get(version_id)
        if lines is None:
            lines = {
                rule_id: rule_line(rule_id, text)
                for rule_id, text in PolicyRule.objects.filter(version_id=version_id).values_list(
                    "rule_id", "text"
                )
            }
            self._by_version[version_id] = lines
        return lines

    def lines(self, version_id: int, rule_ids) -> tuple[str, ...]:
        known = self.for_version(version_id)
        return tuple(known.get(rule_id, rule_id) for rule_id in rule_ids or ())


def notice_for(decision: Decision, *, rule_lines: RuleLines | None = None) -> str:
    """The notice for one decision."""
    case = decision.case
    policy = case.policy_version.policy
    rule_lines = rule_lines or RuleLines()
    return compose_notice(
        NoticeFacts(
            case_kind=case.kind,
            outcome=decision.outcome,
            action=decision.action,
            rule_lines=rule_lines.lines(case.policy_version_id, decision.rule_ids),
            policy_name=policy.name,
            appeal_window_days=policy.appeal_window_days,
            decided_at=decision.decided_at,
            model_assisted=decision.recommendation_id is not None,
            original_action=case.original_action,
            original_decided_at=case.original_decided_at,
        )
    )
