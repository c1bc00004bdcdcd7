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
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.utils import timezone

from appeals.models import Case, Decision, Outcome

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


def _with_model_verdict():
    return Decision.objects.exclude(model_outcome="")


def _grouped(group_field: str, label_fn=str) -> list[Agreement]:
    rows = (
        _with_model_verdict()
        .values(group_field, "model_outcome", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    return group_agreement(
        (label_fn(row[group_field]), row["model_outcome"], row["outcome"], row["n"]) for row in rows
    )


def by_policy_version() -> list[Agreement]:
    rows = (
        _with_model_verdict()
        .values(
            "case__policy_version__policy__slug",
            "case__policy_version__number",
            "model_outcome",
            "outcome",
        )
        .annotate(n=Count("id"))
        .order_by()
    )
    return group_agreement(
        (
            f"{r['case__policy_version__policy__slug']} v{r['case__policy_version__number']}",
            r["model_outcome"],
            r["outcome"],
            r["n"],
        )
        for r in rows
    )


def by_model() -> list[Agreement]:
    return _grouped("recommendation__model_id", lambda v: v or "(unknown model)")


def by_reviewer() -> list[Agreement]:
    return _grouped("decided_by__username")


def by_rule() -> list[Agreement]:
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
        f"SELECT {rule}, d.model_outcome, d.outcome, COUNT(*) FROM {decision} d "
        f"JOIN {recommendation} r ON r.id = d.recommendation_id {unnest} "
        f"WHERE d.model_outcome <> '' GROUP BY {rule}, d.model_outcome, d.outcome"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    return group_agreement((str(r[0]), r[1], r[2], r[3]) for r in rows)


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


def overall_counts() -> dict[Pair, int]:
    rows = (
        _with_model_verdict().values("model_outcome", "outcome").annotate(n=Count("id")).order_by()
    )
    return {(r["model_outcome"], r["outcome"]): r["n"] for r in rows}


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
    )
    c = Case.objects.open().aggregate(
        open_cases=Count("id"), past_due=Count("id", filter=Q(due_at__lt=now))
    )
    return Totals(**d, **c)


@dataclass(frozen=True)
class Report:
    overall: Agreement
    matrix: dict
    by_policy_version: list[Agreement]
    by_model: list[Agreement]
    by_reviewer: list[Agreement]
    by_rule: list[Agreement]
    totals: Totals
    median_time_to_decision: dt.timedelta | None


def build_report() -> Report:
    counts = overall_counts()
    return Report(
        overall=agreement("All decisions", counts),
        matrix=confusion_matrix(counts),
        by_policy_version=by_policy_version(),
        by_model=by_model(),
        by_reviewer=by_reviewer(),
        by_rule=by_rule(),
        totals=totals(),
        median_time_to_decision=median_time_to_decision(),
    )
