"""The case page's second-opinion panel and the quality page's agreement per second-opinion model.

Second opinions are model output: on a blind-first queue they are withheld exactly like the
safeguard draft (the panel is given `hidden` from the draft's view and then reads no opinion at
all), until the reviewer's own call is recorded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from appeals.models import Case, Outcome, SecondOpinion
from appeals.outcomes import is_removing
from policies.models import SecondOpinionSetting
from policies.second_opinion import ADAPTERS
from policies.second_opinion_settings import Adapter

FAILURE_LABELS = {
    "not_configured": "not configured",
    "timeout": "no answer in time",
    "unreachable": "the model server could not be reached",
    "http_error": "the model server refused the request",
    "malformed_response": "the server's reply is not a chat completion",
    "empty_answer": "the model returned nothing",
    "malformed_answer": "the answer is not in the model's published format",
    "unknown_category": "the model named a category it does not have",
}
VERDICT_PILLS = {"violating": "pill-danger", "not_violating": "pill-ok", "uncertain": "pill-warn"}


@dataclass
class OpinionRow:
    opinion: SecondOpinion
    label: str
    categories: list[tuple[str, str]]  # (category as the model names it, its name)
    pill: str
    failure_label: str


@dataclass
class SecondOpinionPanel:
    hidden: bool = False
    rows: list[OpinionRow] = field(default_factory=list)
    waiting: int = 0  # configured models that have not answered yet

    @property
    def shown(self) -> bool:
        return self.hidden or bool(self.rows) or bool(self.waiting)


def _label(adapter: str) -> str:
    return Adapter(adapter).label if adapter in Adapter.values else adapter


def _categories(adapter: str, categories: list[str]) -> list[tuple[str, str]]:
    """Each category with its name where the model answers with a code (Llama Guard's S2)."""
    names = ADAPTERS[adapter].categories if adapter in ADAPTERS else {}
    return [(c, "" if names.get(c, c) == c else names[c]) for c in categories]


def second_opinion_panel(case: Case, *, hidden: bool) -> SecondOpinionPanel:
    """What the panel shows; nothing of any opinion when `hidden` (blind-first)."""
    configured = set(
        SecondOpinionSetting.objects.enabled()
        .filter(policy_id=case.policy_version.policy_id)
        .values_list("id", flat=True)
    )
    if hidden:
        return SecondOpinionPanel(hidden=bool(configured) or case.second_opinions.exists())
    opinions = list(case.second_opinions.order_by("adapter", "model_name", "id"))
    rows = [
        OpinionRow(
            opinion=o,
            label=_label(o.adapter),
            categories=_categories(o.adapter, o.categories),
            pill=VERDICT_PILLS.get(o.verdict, ""),
            failure_label=FAILURE_LABELS.get(o.failure_reason, o.failure_reason),
        )
        for o in opinions
    ]
    answered = {o.setting_id for o in opinions}
    return SecondOpinionPanel(rows=rows, waiting=len(configured - answered))


# --- the quality page --------------------------------------------------------------------------


@dataclass
class ModelAgreement:
    label: str
    model_name: str
    n: int = 0  # decided cases where the model gave a violating / not violating verdict
    agreed: int = 0
    uncertain: int = 0  # "uncertain" verdicts, not counted in n
    failed: int = 0
    rules_n: int = 0  # of n, those where the model's categories mapped to rules
    rules_exact: int = 0

    @property
    def rate(self) -> float | None:
        return self.agreed / self.n if self.n else None

    @property
    def rules_rate(self) -> float | None:
        return self.rules_exact / self.rules_n if self.rules_n else None


def _human_says_violating(is_appeal: bool, outcome: str, original_action: str) -> bool | None:
    """Whether the person's decision found the content violating (what a guard model judges)."""
    if not is_appeal:
        return {Outcome.VIOLATING: True, Outcome.NOT_VIOLATING: False}.get(outcome)
    if outcome not in (Outcome.UPHOLD, Outcome.OVERTURN):
        return None
    removed = is_removing(original_action)
    return removed if outcome == Outcome.UPHOLD else not removed


def agreement_by_model() -> list[ModelAgreement]:
    """Per second-opinion model: how often its verdict matches the human decision, and where its
    categories were mapped to rules, how often those rules are exactly the decision's. One query,
    streamed."""
    rows = (
        SecondOpinion.objects.filter(case__decision__isnull=False)
        .values_list(
            "adapter",
            "model_name",
            "verdict",
            "rule_ids",
            "case__kind",
            "case__original_action",
            "case__decision__outcome",
            "case__decision__rule_ids",
        )
        .order_by()
    )
    table: dict[tuple[str, str], ModelAgreement] = defaultdict(lambda: ModelAgreement("", ""))
    for (
        adapter,
        model_name,
        verdict,
        rule_ids,
        kind,
        original,
        outcome,
        decided_rules,
    ) in rows.iterator(chunk_size=2000):
        entry = table[(adapter, model_name)]
        entry.label, entry.model_name = _label(adapter), model_name
        if not verdict:
            entry.failed += 1
            continue
        if verdict == SecondOpinion.Verdict.UNCERTAIN:
            entry.uncertain += 1
            continue
        human = _human_says_violating(kind == Case.Kind.APPEAL, outcome, original)
        if human is None:
            continue
        entry.n += 1
        entry.agreed += (verdict == SecondOpinion.Verdict.VIOLATING) == human
        if rule_ids:
            entry.rules_n += 1
            entry.rules_exact += set(rule_ids) == set(decided_rules or [])
    return sorted(table.values(), key=lambda e: (-e.n, e.label, e.model_name))
