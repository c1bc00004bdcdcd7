"""Agreement numbers for an evaluation run: framework-free, plain values in and out.

The class measured is "violating". An item the model gave no usable answer for (a failed draft)
counts against the version: as a miss when the expected label is violating, as a false alarm
otherwise, so a version cannot score better by failing on the hard items. Rule ids compare
case-insensitively and exactly (citing the tier `SP2` for an expected `SP2.b` is not a match).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

NO_ANSWER = "no_answer"


@dataclass(frozen=True, slots=True)
class Observation:
    """One item of a run: what was expected and what the model said (`predicted` None = failed)."""

    key: str
    expected: bool
    predicted: bool | None
    expected_rules: tuple[str, ...] = ()
    cited_rules: tuple[str, ...] = ()
    language: str = ""
    failure_reason: str = ""
    must_pass: bool = False
    group: str = ""
    tokens: int = 0
    latency_ms: int = 0

    @property
    def answered(self) -> bool:
        return self.predicted is not None

    @property
    def effective_prediction(self) -> bool:
        """What the item counts as: no answer is the opposite of the expected label."""
        return (not self.expected) if self.predicted is None else self.predicted

    @property
    def passed(self) -> bool:
        return self.predicted is not None and self.predicted == self.expected

    @property
    def reason(self) -> str:
        """Why it failed, in one word: a draft failure, a false positive or a false negative."""
        if self.predicted is None:
            return self.failure_reason or NO_ANSWER
        if self.predicted == self.expected:
            return ""
        return "false_positive" if self.predicted else "false_negative"


@dataclass(frozen=True, slots=True)
class Binary:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    @property
    def kappa(self) -> float | None:
        """Cohen's κ between expected and predicted labels (None when chance agreement is 1)."""
        n = self.n
        if n == 0:
            return None
        observed = (self.tp + self.tn) / n
        expected_yes = (self.tp + self.fn) / n
        predicted_yes = (self.tp + self.fp) / n
        chance = expected_yes * predicted_yes + (1 - expected_yes) * (1 - predicted_yes)
        if chance >= 1:
            return None
        return (observed - chance) / (1 - chance)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def binary(observations: Sequence[Observation]) -> Binary:
    tp = fp = fn = tn = 0
    for o in observations:
        predicted = o.effective_prediction
        if o.expected and predicted:
            tp += 1
        elif o.expected:
            fn += 1
        elif predicted:
            fp += 1
        else:
            tn += 1
    return Binary(tp, fp, fn, tn)


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule: str
    cited: int
    expected: int
    correct: int

    @property
    def precision(self) -> float | None:
        return _ratio(self.correct, self.cited)

    @property
    def recall(self) -> float | None:
        return _ratio(self.correct, self.expected)


def _norm(rules: Sequence[str]) -> set[str]:
    return {r.strip().lower() for r in rules if r.strip()}


def rule_scores(observations: Sequence[Observation]) -> tuple[RuleScore, list[RuleScore]]:
    """Micro-averaged (all rules together) and per-rule precision/recall of cited vs expected."""
    cited: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for o in observations:
        c, e = _norm(o.cited_rules), _norm(o.expected_rules)
        cited.update(c)
        expected.update(e)
        correct.update(c & e)
    per_rule = [
        RuleScore(rule, cited[rule], expected[rule], correct[rule])
        for rule in sorted(set(cited) | set(expected))
    ]
    total = RuleScore("all", sum(cited.values()), sum(expected.values()), sum(correct.values()))
    return total, per_rule


def confusion(observations: Sequence[Observation]) -> dict[str, dict[str, int]]:
    """expected label → {violating, not_violating, no_answer} counts."""
    table = {
        label: {"violating": 0, "not_violating": 0, NO_ANSWER: 0}
        for label in ("violating", "not_violating")
    }
    for o in observations:
        row = table["violating" if o.expected else "not_violating"]
        if o.predicted is None:
            row[NO_ANSWER] += 1
        else:
            row["violating" if o.predicted else "not_violating"] += 1
    return table


def _binary_dict(b: Binary) -> dict:
    return {
        "n": b.n,
        "tp": b.tp,
        "fp": b.fp,
        "fn": b.fn,
        "tn": b.tn,
        "precision": b.precision,
        "recall": b.recall,
        "f1": b.f1,
        "accuracy": b.accuracy,
        "kappa": b.kappa,
    }


def summarise(observations: Sequence[Observation]) -> dict:
    """Everything the run page and `manage.py evaluate` show, as a JSON-ready dict."""
    overall = binary(observations)
    rules_all, per_rule = rule_scores(observations)
    by_language: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_language[o.language or "unknown"].append(o)
    failures = Counter(o.reason for o in observations if o.reason)
    return {
        **_binary_dict(overall),
        "answered": sum(1 for o in observations if o.answered),
        "passed": sum(1 for o in observations if o.passed),
        "rule_precision": rules_all.precision,
        "rule_recall": rules_all.recall,
        "rules": [
            {
                "rule": r.rule,
                "cited": r.cited,
                "expected": r.expected,
                "correct": r.correct,
                "precision": r.precision,
                "recall": r.recall,
            }
            for r in per_rule
        ],
        "confusion": confusion(observations),
        "by_language": {
            lang: _binary_dict(binary(group)) for lang, group in sorted(by_language.items())
        },
        "failures": dict(sorted(failures.items())),
        "by_group": _pass_rates(observations),
        "must_pass_failed": [o.key for o in observations if o.must_pass and not o.passed],
        "tokens": sum(o.tokens for o in observations),
        "latency_ms": sum(o.latency_ms for o in observations),
    }


def _pass_rates(observations: Sequence[Observation]) -> dict[str, dict]:
    """Items and pass rate per group (HateCheck's functionalities), for items that have one."""
    groups: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        if o.group:
            groups[o.group].append(o)
    return {
        name: {
            "n": len(group),
            "passed": sum(o.passed for o in group),
            "pass_rate": sum(o.passed for o in group) / len(group),
        }
        for name, group in sorted(groups.items())
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, interpolating linearly between neighbours."""
    if not sorted_values:
        raise ValueError("no values")
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


METRICS: dict[str, Callable[[Binary], float | None]] = {
    "f1": lambda b: b.f1,
    "precision": lambda b: b.precision,
    "recall": lambda b: b.recall,
    "accuracy": lambda b: b.accuracy,
    "kappa": lambda b: b.kappa,
}


@dataclass(frozen=True, slots=True)
class Delta:
    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    low: float | None  # the bootstrap interval of the delta
    high: float | None
    samples: int = 0
    level: float = 0.95


@dataclass(frozen=True, slots=True)
class Comparison:
    paired: int  # items both runs answered for (matched by key)
    deltas: list[Delta] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)  # wrong in the baseline, right now
    broken: list[str] = field(default_factory=list)  # right in the baseline, wrong now


def compare(
    baseline: Sequence[Observation],
    candidate: Sequence[Observation],
    *,
    resamples: int = 2000,
    seed: int = 13,
    level: float = 0.95,
) -> Comparison:
    """Metric deltas (candidate − baseline) on the items both runs cover, with a paired
    percentile bootstrap interval: items are resampled with replacement, the same draw for
    both runs, `resamples` times, from a fixed seed (the same inputs give the same interval)."""
    by_key = {o.key: o for o in baseline}
    pairs = [(by_key[o.key], o) for o in candidate if o.key in by_key]
    fixed = [c.key for b, c in pairs if not b.passed and c.passed]
    broken = [c.key for b, c in pairs if b.passed and not c.passed]
    if not pairs:
        return Comparison(0, [], fixed, broken)
    base_obs = [b for b, _ in pairs]
    cand_obs = [c for _, c in pairs]
    rng = random.Random(seed)
    n = len(pairs)
    draws = [[rng.randrange(n) for _ in range(n)] for _ in range(resamples)]
    # One confusion table per draw and run (integer counts: cheap), then every metric from it.
    tables = [
        (binary([base_obs[i] for i in draw]), binary([cand_obs[i] for i in draw])) for draw in draws
    ]
    whole_b, whole_c = binary(base_obs), binary(cand_obs)
    tail = (1 - level) / 2
    deltas = []
    for name, metric in METRICS.items():
        point_b, point_c = metric(whole_b), metric(whole_c)
        point = None if point_b is None or point_c is None else point_c - point_b
        samples = []
        for tb, tc in tables:
            mb, mc = metric(tb), metric(tc)
            if mb is not None and mc is not None:
                samples.append(mc - mb)
        samples.sort()
        low = percentile(samples, tail) if samples else None
        high = percentile(samples, 1 - tail) if samples else None
        deltas.append(Delta(name, point_b, point_c, point, low, high, len(samples), level))
    return Comparison(n, deltas, fixed, broken)
