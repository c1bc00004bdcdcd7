"""The case page's precedents panel: the five most similar decided cases the viewer may read,
and, where the model's draft is shown, how their outcomes and rules compare with it.

What the viewer may read is the console's own rule (`can_view_case`), applied to every hit after
the database re-check (appeals/precedents/services.py). Blind-first: the panel shows people's
decisions on other items, never a model's draft, and the comparison with this case's draft only
where the draft itself is shown (`DraftView.shown`); a precedent's model verdict is never shown.
A failure here never takes the case page down: the panel says precedents are unavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appeals.models import Case
from appeals.precedents.services import Precedent, similar_decided_cases
from appeals.review.permissions import can_view_case

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    precedent: Precedent
    same_policy: bool
    agrees_with_draft: bool | None  # None where no draft verdict is shown

    @property
    def case(self) -> Case:
        return self.precedent.case

    @property
    def decision(self):
        return self.precedent.decision

    @property
    def percent(self) -> int:
        return max(0, round(self.precedent.similarity * 100))


@dataclass(frozen=True)
class DraftComparison:
    draft_violation: bool
    agree: int  # precedents whose decision went the draft's way
    total: int
    rules: list[tuple[str, int]] = field(default_factory=list)  # draft rule → same-policy cites
    precedent_rules: list[tuple[str, int]] = field(default_factory=list)  # rules the draft left out
    same_policy: int = 0

    @property
    def majority_differs(self) -> bool:
        return self.total > 0 and self.agree * 2 < self.total


@dataclass(frozen=True)
class PrecedentsPanel:
    status: str
    message: str = ""
    rows: tuple[Row, ...] = ()
    comparison: DraftComparison | None = None

    @property
    def pending(self) -> bool:
        return self.status == "not_embedded"


def _related(a: str, b: str) -> bool:
    """The same rule, or one a sub-rule of the other (GS1 and GS1.a)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _compare(rows: list[Row], rec) -> DraftComparison:
    draft_rules = list(rec.rule_ids or [])
    same = [row for row in rows if row.same_policy]
    cited: dict[str, int] = {}
    for row in same:
        for rule in row.decision.rule_ids or []:
            cited[rule] = cited.get(rule, 0) + 1
    rules = [
        (rule, sum(1 for row in same if any(_related(rule, r) for r in row.decision.rule_ids)))
        for rule in draft_rules
    ]
    others = sorted(
        (
            (rule, count)
            for rule, count in cited.items()
            if not any(_related(rule, d) for d in draft_rules)
        ),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return DraftComparison(
        draft_violation=bool(rec.violation),
        agree=sum(1 for row in rows if row.agrees_with_draft),
        total=len(rows),
        rules=rules,
        precedent_rules=others,
        same_policy=len(same),
    )


def precedents_panel(case: Case, user, draft) -> PrecedentsPanel:
    """The panel for `case` as `user` sees it; `draft` is the page's DraftView."""
    try:
        found = similar_decided_cases(case, visible=lambda other: can_view_case(user, other))
    except Exception:  # noqa: BLE001 - a cache that fails must not take the case page down
        log.exception("precedents for case %s failed", case.id)
        return PrecedentsPanel(
            "unavailable", "Precedents are unavailable just now (the error is in the log)."
        )
    rec = draft.recommendation if draft.shown else None
    verdict = rec.violation if rec is not None else None
    rows = [
        Row(
            precedent,
            precedent.case.policy_version.policy_id == case.policy_version.policy_id,
            None if verdict is None else precedent.removed == bool(verdict),
        )
        for precedent in found.cases
    ]
    comparison = _compare(rows, rec) if verdict is not None and rows else None
    return PrecedentsPanel(found.status, found.message, tuple(rows), comparison)
