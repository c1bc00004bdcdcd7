"""The demo's golden sets from the shared datasets: counts, labels and licences."""

from __future__ import annotations

import pytest

from appeals.demo import load_policies
from policies.workbench.datasets import load_demo_golden_sets, spam_items, teen_safety_items
from policies.workbench.models import GoldenSet
from tests.paths import DATASETS, shared_path

pytestmark = pytest.mark.django_db


def test_the_spam_golden_set_has_its_forty_labelled_rows():
    items = spam_items(shared_path("spam-policy-example", "golden_dataset.csv"))
    assert len(items) == 40
    assert {i.expected_rule_ids for i in items if i.expected_violation} == {
        ("SP2",),
        ("SP3",),
        ("SP4",),
    }
    assert sum(not i.expected_violation for i in items) == 21


def test_teen_safety_rows_keep_their_tier_as_the_expected_rule():
    items = teen_safety_items(
        shared_path("teen-safety-policy-pack", "datasets", "graphic-violent-content.csv")
    )
    assert items and all(i.content for i in items)
    for item in items:
        tier = item.note.removeprefix("labelled ")
        assert item.expected_violation == (not tier.endswith("0"))
        assert item.expected_rule_ids == ((tier,) if item.expected_violation else ())


def test_load_demo_golden_sets_loads_seven_gating_sets_with_licences_once():
    shared_path("teen-safety-policy-pack")
    load_policies(DATASETS)
    sets = load_demo_golden_sets(DATASETS)
    assert len(sets) == 7
    assert all(s.gates_publishing and s.items.exists() for s in sets)
    assert all("Apache-2.0" in s.licence_notice for s in sets)
    total = sum(s.items.count() for s in sets)
    assert (
        total == 40 + 183
    )  # the pack's 184 rows, less one graphic-sexual-content row with no label
    assert load_demo_golden_sets(DATASETS) == []
    assert sum(s.items.count() for s in GoldenSet.objects.all()) == total
