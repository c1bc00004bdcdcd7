"""Metrics against values worked out by hand on fixed data."""

from __future__ import annotations

import pytest

from policies.workbench.metrics import Observation, binary, compare, percentile, summarise


def obs(key, expected, predicted, exp_rules=(), cited=(), language="en", **kw):
    return Observation(
        str(key), expected, predicted, tuple(exp_rules), tuple(cited), language, **kw
    )


# 10 items: tp=4 (1-4), fn=1 (5), fn by failure (6), fp=2 (7, 8), tn=2 (9, 10).
FIXED = [
    obs(1, True, True, ["SP2.b"], ["SP2.b"]),
    obs(2, True, True, ["SP2.b"], ["SP2.a"]),
    obs(3, True, True, ["SP3.a"], ["SP3.a", "SP2.b"]),
    obs(4, True, True, ["SP2.a"], ["sp2.a"], language="de"),
    obs(5, True, False, ["SP2.a"], [], language="de"),
    obs(6, True, None, ["SP3.a"], [], failure_reason="timeout", must_pass=True),
    obs(7, False, True, [], ["SP2.b"]),
    obs(8, False, True, [], ["SP2.a"], language="de"),
    obs(9, False, False),
    obs(10, False, False, language="de"),
]


def test_binary_metrics_equal_hand_computed_values():
    b = binary(FIXED)
    assert (b.tp, b.fp, b.fn, b.tn) == (4, 2, 2, 2)
    assert b.precision == pytest.approx(4 / 6)
    assert b.recall == pytest.approx(4 / 6)
    assert b.f1 == pytest.approx(8 / 12)
    # po = 6/10; p(expected yes) = 6/10, p(predicted yes) = 6/10; pe = .36 + .16 = .52
    assert b.kappa == pytest.approx((0.6 - 0.52) / (1 - 0.52))


def test_a_failed_item_counts_against_the_version():
    # Expected not violating, no answer: a false alarm, not a free pass.
    b = binary([obs(1, False, None), obs(2, True, True)])
    assert (b.tp, b.fp, b.fn, b.tn) == (1, 1, 0, 0)


def test_rule_level_precision_and_recall_by_hand():
    s = summarise(FIXED)
    # cited: 1,1,2,1,0,0,1,1 = 7; expected: 6 (items 1-6); correct: 1 (1) + 0 (2) + 1 (3) + 1 (4)
    assert s["rule_precision"] == pytest.approx(3 / 7)
    assert s["rule_recall"] == pytest.approx(3 / 6)
    per_rule = {r["rule"]: r for r in s["rules"]}
    assert per_rule["sp2.a"] == {
        "rule": "sp2.a",
        "cited": 3,
        "expected": 2,
        "correct": 1,
        "precision": 1 / 3,
        "recall": 0.5,
    }


def test_summary_confusion_languages_failures_and_must_pass():
    s = summarise(FIXED)
    assert s["confusion"] == {
        "violating": {"violating": 4, "not_violating": 1, "no_answer": 1},
        "not_violating": {"violating": 2, "not_violating": 2, "no_answer": 0},
    }
    # de: items 4 (tp), 5 (fn), 8 (fp), 10 (tn)
    de = s["by_language"]["de"]
    assert (de["tp"], de["fn"], de["fp"], de["tn"]) == (1, 1, 1, 1)
    assert de["f1"] == pytest.approx(0.5)
    assert s["failures"] == {"false_negative": 1, "false_positive": 2, "timeout": 1}
    assert s["must_pass_failed"] == ["6"]
    assert (s["answered"], s["passed"]) == (9, 6)


def test_kappa_is_none_when_chance_agreement_is_certain():
    assert binary([obs(1, True, True), obs(2, True, True)]).kappa is None


def test_percentile_interpolates_by_hand():
    assert percentile([0.0, 1.0, 2.0, 3.0], 0.5) == pytest.approx(1.5)
    assert percentile([0.0, 10.0], 0.025) == pytest.approx(0.25)
    assert percentile([5.0], 0.9) == 5.0


def test_bootstrap_interval_of_a_constant_delta_is_that_constant():
    # Every item wrong before, right after: any resample has accuracy 0 → 1.
    base = [obs(i, i % 2 == 0, i % 2 != 0) for i in range(20)]
    cand = [obs(i, i % 2 == 0, i % 2 == 0) for i in range(20)]
    result = compare(base, cand, resamples=200)
    accuracy = next(d for d in result.deltas if d.metric == "accuracy")
    assert (accuracy.delta, accuracy.low, accuracy.high) == (1.0, 1.0, 1.0)
    assert sorted(result.fixed, key=int) == [str(i) for i in range(20)] and result.broken == []


def test_bootstrap_is_reproducible_and_brackets_the_point_estimate():
    base = [obs(i, i % 3 == 0, (i % 3 == 0) if i % 4 else None) for i in range(60)]
    cand = [obs(i, i % 3 == 0, (i % 3 == 0) if i % 5 else (i % 3 != 0)) for i in range(60)]
    first = compare(base, cand, resamples=500, seed=7)
    again = compare(base, cand, resamples=500, seed=7)
    assert first == again
    for d in first.deltas:
        if d.delta is not None:
            assert d.low <= d.delta <= d.high, d
    # One-item sets by hand: the only resample is the item itself.
    single = compare([obs(1, True, False)], [obs(1, True, True)], resamples=10)
    recall = next(d for d in single.deltas if d.metric == "recall")
    assert (recall.baseline, recall.candidate, recall.low, recall.high) == (0.0, 1.0, 1.0, 1.0)


def test_pass_rates_per_group_by_hand():
    data = [
        obs(1, True, True, group="derog_h"),
        obs(2, True, False, group="derog_h"),
        obs(3, False, False, group="counter_quote_nh"),
        obs(4, False, None, group="counter_quote_nh"),
        obs(5, False, False, group="counter_quote_nh"),
        obs(6, True, True),
    ]
    assert summarise(data)["by_group"] == {
        "counter_quote_nh": {"n": 3, "passed": 2, "pass_rate": 2 / 3},
        "derog_h": {"n": 2, "passed": 1, "pass_rate": 0.5},
    }
