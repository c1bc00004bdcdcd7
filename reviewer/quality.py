"""Model–reviewer agreement and review quality, computed in the database.

Pure functions (`agreement`, `cohen_kappa`) work on confusion counts; the query functions ask
the database for those counts with GROUP BY, so the page costs a handful of aggregate queries
however many decisions there are. Only decisions where the model gave a verdict count towards
agreement; an outcome pair is (what the model's verdict meant for the case, what the person decided).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Concat, NullIf, TruncWeek
from django.utils import timezone

from appeals.models import Action, Case, Decision, Outcome

Pair = tuple[str, str]  # (model outcome, reviewer outcome)


def cohen_kappa(counts: Mapping[Pair, int]) -> float | None:
    """Cohen's kappa for two raters from their confusion counts; None when it is undefined."""
    n = sum(counts.values())
    if n == 0:
        return None
    labels = {label for pair in counts for label in pair}
    observed = sum(c for (a, b), c in counts.items() if a == b) / n
    model_totals: dict[str, int] = defaultdict(int)
    reviewer_totals: dict[str, int] = defaultdict(int)
    for (a, b), c in counts.items():
        model_totals[a] += c
        reviewer_totals[b] += c
    expected = sum(model_totals[label] * reviewer_totals[label] for label in labels) / (n * n)
    if expected >= 1.0:
        # Both raters used a single, identical label throughout: agreement is total but
        # kappa is 0/0. Report it as undefined rather than pretend.
        return None
    return (observed - expected) / (1 - expected)


@dataclass
class Agreement:
    label: str
    n: int = 0
    agreed: int = 0
    kappa: float | None = None
    counts: dict[Pair, int] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.n if self.n else None

    @property
    def rate_pct(self) -> float:
        return round(100 * self.rate, 1) if self.rate is not None else 0.0


def agreement(label: str, counts: Mapping[Pair, int]) -> Agreement:
    n = sum(counts.values())
    agreed = sum(c for (a, b), c in counts.items() if a == b)
    return Agreement(
        label=label, n=n, agreed=agreed, kappa=cohen_kappa(counts), counts=dict(counts)
    )


def group_agreement(rows: Iterable[tuple[str, str, str, int]]) -> list[Agreement]:
    """(group label, model outcome, reviewer outcome, count) rows → one Agreement per group."""
    grouped: dict[str, dict[Pair, int]] = defaultdict(dict)
    for label, model_outcome, outcome, n in rows:
        pair = (model_outcome, outcome)
        grouped[label][pair] = grouped[label].get(pair, 0) + n
    result = [agreement(label, counts) for label, counts in grouped.items()]
    return sorted(result, key=lambda a: (-a.n, a.label))


@dataclass
class Levels:
    """One group's agreement on three levels: verdict, rules (exact and overlap), action.

    Verdict and action are labels, so each has a confusion table and Cohen's κ. Rules are a set
    per decision: the share of exact matches and the mean overlap (Jaccard index), over the
    decisions where the model or the reviewer cited a rule (`rules_n`); κ has no meaning there.
    """

    label: str
    verdict: Agreement
    action: Agreement
    rules_n: int = 0
    rules_exact: int = 0
    rules_overlap_sum: float = 0.0

    @property
    def n(self) -> int:
        return self.verdict.n

    @property
    def rules_exact_rate(self) -> float | None:
        return self.rules_exact / self.rules_n if self.rules_n else None

    @property
    def rules_overlap_mean(self) -> float | None:
        return self.rules_overlap_sum / self.rules_n if self.rules_n else None


# One row of a grouped query: (label, model outcome, outcome, model action, action, decisions,
# decisions with rules compared, exact rule matches, sum of rule overlaps).
LevelRow = tuple[str, str, str, str, str, int, int, int, float | None]


def group_levels(rows: Iterable[LevelRow], *, order: str = "size") -> list[Levels]:
    """Grouped query rows → one `Levels` per group, the largest first (or by label)."""
    verdicts: dict[str, dict[Pair, int]] = defaultdict(dict)
    actions: dict[str, dict[Pair, int]] = defaultdict(dict)
    rules: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for label, model_outcome, outcome, model_action, action, n, rules_n, exact, overlap in rows:
        pair = (model_outcome, outcome)
        verdicts[label][pair] = verdicts[label].get(pair, 0) + n
        pair = (model_action, action)
        actions[label][pair] = actions[label].get(pair, 0) + n
        total = rules[label]
        total[0] += rules_n
        total[1] += exact
        total[2] += overlap or 0.0
    result = [
        Levels(
            label=label,
            verdict=agreement(label, counts),
            action=agreement(label, actions[label]),
            rules_n=rules[label][0],
            rules_exact=rules[label][1],
            rules_overlap_sum=rules[label][2],
        )
        for label, counts in verdicts.items()
    ]
    if order == "label":
        return sorted(result, key=lambda g: g.label)
    return sorted(result, key=lambda g: (-g.n, g.label))


def overall_levels(groups: Iterable[Levels], label: str = "All decisions") -> Levels:
    """The sum of disjoint groups (each decision in exactly one of them)."""
    verdicts: dict[Pair, int] = defaultdict(int)
    actions: dict[Pair, int] = defaultdict(int)
    rules_n = exact = 0
    overlap = 0.0
    for group in groups:
        for pair, n in group.verdict.counts.items():
            verdicts[pair] += n
        for pair, n in group.action.counts.items():
            actions[pair] += n
        rules_n += group.rules_n
        exact += group.rules_exact
        overlap += group.rules_overlap_sum
    return Levels(
        label=label,
        verdict=agreement(label, verdicts),
        action=agreement(label, actions),
        rules_n=rules_n,
        rules_exact=exact,
        rules_overlap_sum=overlap,
    )


def _with_model_verdict():
    return Decision.objects.exclude(model_outcome="")


_LEVEL_COLUMNS = ("model_outcome", "outcome", "model_action", "action")


def _level_rows(queryset, label_fn=str) -> Iterable[LevelRow]:
    """`queryset` (values() of one `group` column) counted by the level columns."""
    rows = (
        queryset.values("group", *_LEVEL_COLUMNS)
        .annotate(
            n=Count("id"),
            rules_n=Count("id", filter=Q(rules_agree__isnull=False)),
            rules_exact=Count("id", filter=Q(rules_agree=True)),
            rules_overlap=Sum("rules_overlap"),
        )
        .order_by()
    )
    return (
        (
            label_fn(r["group"]),
            r["model_outcome"],
            r["outcome"],
            r["model_action"],
            r["action"],
            r["n"],
            r["rules_n"],
            r["rules_exact"],
            r["rules_overlap"],
        )
        for r in rows
    )


def _grouped(group, label_fn=str, *, order: str = "size") -> list[Levels]:
    queryset = _with_model_verdict().annotate(group=group)
    return group_levels(_level_rows(queryset, label_fn), order=order)


def by_policy_version() -> list[Levels]:
    label = Concat(
        F("case__policy_version__policy__slug"),
        Value(" v"),
        Cast("case__policy_version__number", CharField()),
        output_field=CharField(),
    )
    return _grouped(label)


def by_model() -> list[Levels]:
    return _grouped(F("recommendation__model_id"), lambda v: v or "(unknown model)")


def by_reviewer() -> list[Levels]:
    return _grouped(F("decided_by__username"))


def by_language() -> list[Levels]:
    """By the item's language: the one the fast tier detected (`Item.language`, appeals/triage/),
    else the one the platform sent (item metadata "language").

    Empty until some item carries a language: then the rest are grouped as "(not known)".
    """
    language = Coalesce(
        NullIf(F("case__item__language"), Value("")),
        KeyTextTransform("language", "case__item__metadata"),
        output_field=CharField(),
    )
    groups = _grouped(language, lambda v: v or "(not known)")
    if all(group.label == "(not known)" for group in groups):
        return []
    return groups


def by_week() -> list[Levels]:
    """Week by week (weeks start on Monday, in the site's time zone), oldest first."""
    return _grouped(
        TruncWeek("decided_at"),
        lambda v: v.date().isoformat() if isinstance(v, dt.datetime) else str(v),
        order="label",
    )


def by_rule() -> list[Levels]:
    """Agreement on the cases where the model cited each rule (a case counts once per rule)."""
    decision = Decision._meta.db_table
    recommendation = Decision._meta.get_field("recommendation").related_model._meta.db_table
    if connection.vendor == "postgresql":
        unnest = "CROSS JOIN LATERAL jsonb_array_elements_text(r.rule_ids::jsonb) AS cited(rule_id)"
        rule = "cited.rule_id"
    else:
        unnest = ", json_each(r.rule_ids) AS cited"
        rule = "cited.value"
    sql = (
        f"SELECT {rule}, d.model_outcome, d.outcome, d.model_action, d.action, COUNT(*), "
        f"COUNT(d.rules_agree), SUM(CASE WHEN d.rules_agree THEN 1 ELSE 0 END), "
        f"SUM(d.rules_overlap) FROM {decision} d "
        f"JOIN {recommendation} r ON r.id = d.recommendation_id {unnest} "
        f"WHERE d.model_outcome <> '' "
        f"GROUP BY {rule}, d.model_outcome, d.outcome, d.model_action, d.action"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    return group_levels((str(r[0]), *r[1:]) for r in rows)


SHORT_LABELS = {
    Outcome.VIOLATING: "Violating",
    Outcome.NOT_VIOLATING: "Not violating",
    Outcome.UPHOLD: "Uphold",
    Outcome.OVERTURN: "Overturn",
}


def confusion_matrix(counts: Mapping[Pair, int]) -> dict:
    """Rows: the model's outcome; columns: the reviewer's. Only labels that occur."""
    order = [o.value for o in Outcome]
    labels = [o for o in order if any(o in pair for pair in counts)]
    return {
        "labels": [(label, SHORT_LABELS[label]) for label in labels],
        "rows": [(SHORT_LABELS[m], [counts.get((m, r), 0) for r in labels]) for m in labels],
    }


def action_matrix(counts: Mapping[Pair, int]) -> dict:
    """Rows: the action the model's outcome implies; columns: the reviewer's action."""
    order = [a.value for a in Action]
    labels = [a for a in order if any(a in pair for pair in counts)]
    return {
        "labels": [(label, Action(label).label) for label in labels],
        "rows": [(Action(m).label, [counts.get((m, r), 0) for r in labels]) for m in labels],
    }


def median_time_to_decision() -> dt.timedelta | None:
    """From the case arriving to a person deciding it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d.decided_at - c.created_at) "
                f"FROM {Decision._meta.db_table} d JOIN {Case._meta.db_table} c ON c.id = d.case_id"
            )
            (value,) = cursor.fetchone()
        return value
    durations = Decision.objects.annotate(
        took=ExpressionWrapper(
            F("decided_at") - F("case__created_at"), output_field=DurationField()
        )
    ).order_by("took")
    n = durations.count()
    if not n:
        return None
    return durations.values_list("took", flat=True)[n // 2]


@dataclass(frozen=True)
class CallAgreement:
    """One kind of call's agreement with the model on the three levels (the blind-first table)."""

    label: str
    n: int
    verdict: int
    rules_n: int
    rules_exact: int
    action: int

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def verdict_rate(self):
        return self._rate(self.verdict, self.n)

    @property
    def rules_exact_rate(self):
        return self._rate(self.rules_exact, self.rules_n)

    @property
    def action_rate(self):
        return self._rate(self.action, self.n)


@dataclass(frozen=True)
class Totals:
    decisions: int
    with_model: int
    appeals_decided: int
    overturned: int
    blind_n: int
    blind_agreed: int
    blind_after_reveal_agreed: int
    shown_n: int
    shown_agreed: int
    past_due: int
    open_cases: int
    # The rule and action levels of the same three kinds of call.
    blind_rules_n: int = 0
    blind_rules_agreed: int = 0
    blind_action_agreed: int = 0
    blind_after_reveal_rules_n: int = 0
    blind_after_reveal_rules_agreed: int = 0
    blind_after_reveal_action_agreed: int = 0
    shown_rules_n: int = 0
    shown_rules_agreed: int = 0
    shown_action_agreed: int = 0

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def overturn_rate(self):
        return self._rate(self.overturned, self.appeals_decided)

    @property
    def blind_rate(self):
        return self._rate(self.blind_agreed, self.blind_n)

    @property
    def blind_after_reveal_rate(self):
        return self._rate(self.blind_after_reveal_agreed, self.blind_n)

    @property
    def shown_rate(self):
        return self._rate(self.shown_agreed, self.shown_n)

    @property
    def calls(self) -> list[CallAgreement]:
        """Blind calls, the final decisions after their reveal, and decisions with the draft
        shown from the start, each on the three levels."""
        return [
            CallAgreement(
                "Blind call, before seeing the draft",
                self.blind_n,
                self.blind_agreed,
                self.blind_rules_n,
                self.blind_rules_agreed,
                self.blind_action_agreed,
            ),
            CallAgreement(
                "Final decision after the reveal",
                self.blind_n,
                self.blind_after_reveal_agreed,
                self.blind_after_reveal_rules_n,
                self.blind_after_reveal_rules_agreed,
                self.blind_after_reveal_action_agreed,
            ),
            CallAgreement(
                "Draft shown from the start",
                self.shown_n,
                self.shown_agreed,
                self.shown_rules_n,
                self.shown_rules_agreed,
                self.shown_action_agreed,
            ),
        ]


def totals(*, now: dt.datetime | None = None) -> Totals:
    now = now or timezone.now()
    blind = Q(~Q(blind_outcome=""), ~Q(model_outcome=""))
    shown = Q(blind_outcome="", recommendation_shown=True) & ~Q(model_outcome="")
    d = Decision.objects.aggregate(
        decisions=Count("id"),
        with_model=Count("id", filter=~Q(model_outcome="")),
        appeals_decided=Count("id", filter=Q(case__kind=Case.Kind.APPEAL)),
        overturned=Count("id", filter=Q(case__kind=Case.Kind.APPEAL, outcome=Outcome.OVERTURN)),
        blind_n=Count("id", filter=blind),
        blind_agreed=Count("id", filter=blind & Q(blind_agrees_with_model=True)),
        blind_after_reveal_agreed=Count("id", filter=blind & Q(agrees_with_model=True)),
        shown_n=Count("id", filter=shown),
        shown_agreed=Count("id", filter=shown & Q(agrees_with_model=True)),
        blind_rules_n=Count("id", filter=blind & Q(blind_rules_agree__isnull=False)),
        blind_rules_agreed=Count("id", filter=blind & Q(blind_rules_agree=True)),
        blind_action_agreed=Count("id", filter=blind & Q(blind_action_agrees=True)),
        blind_after_reveal_rules_n=Count("id", filter=blind & Q(rules_agree__isnull=False)),
        blind_after_reveal_rules_agreed=Count("id", filter=blind & Q(rules_agree=True)),
        blind_after_reveal_action_agreed=Count("id", filter=blind & Q(action_agrees=True)),
        shown_rules_n=Count("id", filter=shown & Q(rules_agree__isnull=False)),
        shown_rules_agreed=Count("id", filter=shown & Q(rules_agree=True)),
        shown_action_agreed=Count("id", filter=shown & Q(action_agrees=True)),
    )
    c = Case.objects.open().aggregate(
        open_cases=Count("id"), past_due=Count("id", filter=Q(due_at__lt=now))
    )
    return Totals(**d, **c)


@dataclass(frozen=True)
class Report:
    overall: Levels
    matrix: dict
    action_matrix: dict
    by_policy_version: list[Levels]
    by_model: list[Levels]
    by_reviewer: list[Levels]
    by_rule: list[Levels]
    by_language: list[Levels]
    by_week: list[Levels]
    totals: Totals
    median_time_to_decision: dt.timedelta | None


def build_report() -> Report:
    """Every figure of the quality page, in a fixed number of aggregate queries (nine)."""
    versions = by_policy_version()
    overall = overall_levels(versions)  # each decision is under exactly one policy version
    return Report(
        overall=overall,
        matrix=confusion_matrix(overall.verdict.counts),
        action_matrix=action_matrix(overall.action.counts),
        by_policy_version=versions,
        by_model=by_model(),
        by_reviewer=by_reviewer(),
        by_rule=by_rule(),
        by_language=by_language(),
        by_week=by_week(),
        totals=totals(),
        median_time_to_decision=median_time_to_decision(),
    )
