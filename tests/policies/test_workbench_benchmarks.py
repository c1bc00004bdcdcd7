"""Public benchmarks in the harness: the moderation and HateCheck sets, and a HateCheck run
through `manage.py evaluate` reporting pass rates per functionality (against a stand-in server)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from policies.models import Policy
from policies.workbench import versions
from policies.workbench.benchmarks import (
    HATE_SPEECH_POLICY,
    MODERATION_POLICIES,
    hatecheck_items,
    load_benchmarks,
    moderation_items,
)
from policies.workbench.models import GoldenSet
from tests.paths import DATASETS, shared_path
from tests.standin_server import StandInServer

pytestmark = pytest.mark.django_db


def test_moderation_items_skip_unknown_labels():
    path = shared_path("openai-moderation", "samples-1680.jsonl.gz")
    items = moderation_items(path, "SH")
    assert 1000 < len(items) <= 1680
    assert any(i.expected_violation for i in items) and not all(i.expected_violation for i in items)


def test_hatecheck_items_carry_their_functionality():
    items = hatecheck_items(shared_path("hatecheck", "test_suite_cases.csv"))
    assert len(items) == 3728
    groups = {i.group for i in items}
    assert len(groups) == 29 and "counter_quote_nh" in groups
    assert all(not i.expected_violation for i in items if i.group.endswith("_nh"))


def test_each_benchmark_policy_is_written_in_the_recommended_structure():
    for draft in (*MODERATION_POLICIES, HATE_SPEECH_POLICY):
        text = draft.text()
        for section in ("## Instructions", "## Definitions", "## Examples", f"({draft.prefix}1 -"):
            assert section in text, (draft.slug, section)


def test_load_benchmarks_then_evaluate_hatecheck_per_functionality(monkeypatch):
    shared_path("hatecheck")
    sets = load_benchmarks(DATASETS, limit=60)
    assert len(sets) == 9 and all(s.items.count() == 60 for s in sets)
    assert load_benchmarks(DATASETS, limit=60) == sets  # idempotent
    version = Policy.objects.get(slug="hate-speech").current_version()
    assert all(c.ok for c in versions.check_version(version) if c.name != "length")
    assert GoldenSet.objects.get(policy__slug="hate-speech").licence_notice.endswith("CC-BY-4.0.")

    out = io.StringIO()
    with StandInServer(keywords={"hate": "HS1.a"}) as server:
        monkeypatch.setenv("SAFEGUARD_BACKEND", "openai")
        monkeypatch.setenv("SAFEGUARD_BASE_URL", server.base_url)
        monkeypatch.setenv("SAFEGUARD_MODEL", "stand-in")
        call_command("evaluate", "--policy", "hate-speech", "--golden-set", "HateCheck", stdout=out)
    table = out.getvalue()
    # The first 60 cases are derog_neg_emote_h (all "I hate …": the stand-in flags them all).
    assert "derog_neg_emote_h" in table and "1.000" in table
