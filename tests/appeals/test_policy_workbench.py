"""The workbench's audited steps: evaluation runs through the engine (against a stand-in
OpenAI-compatible server), the publish gate and its override, golden items from decided cases."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from appeals import policy_workbench
from appeals.models import AuditEvent
from appeals.record_check import verify_records
from policies.models import PolicyVersion
from policies.workbench import golden, runs, versions
from policies.workbench.models import EvaluationResult
from tests.builders import POLICY_TEXT, appeal, decide, flag
from tests.standin_server import StandInServer

pytestmark = pytest.mark.django_db

SET = (
    '{"content": "Buy gold rings here!", "expected": "violating", "rule_ids": ["SP2.b"], '
    '"must_pass": true, "language": "en"}\n'
    '{"content": "Click here to claim your prize", "expected": "violating", "rule_ids": ["SP3.a"], "language": "en"}\n'
    '{"content": "Check out my course at shopcoach.biz", "expected": "violating", "rule_ids": ["SP2.a"], "language": "en"}\n'
    '{"content": "How do I upload a photo?", "expected": "not_violating", "language": "en"}\n'
    '{"content": "Hi Sam, here is the report.", "expected": "not_violating", "language": "en"}\n'
)


@pytest.fixture
def server(monkeypatch):
    with StandInServer() as s:
        monkeypatch.setenv("SAFEGUARD_BACKEND", "openai")
        monkeypatch.setenv("SAFEGUARD_BASE_URL", s.base_url)
        monkeypatch.setenv("SAFEGUARD_MODEL", "stand-in")
        yield s


@pytest.fixture
def gate_set(spam_policy, dave):
    return golden.import_golden_set(
        policy=spam_policy.policy,
        name="core",
        data=SET,
        fmt="jsonl",
        actor=dave,
        gates_publishing=True,
    )


def _run(version, golden_set, actor, **kw):
    run = policy_workbench.start_evaluation(
        version=version, golden_set=golden_set, actor=actor, enqueue=False, **kw
    )
    return runs.execute_run(run.id, chunk_size=2)


def test_a_run_drafts_every_item_once_and_scores_it(server, spam_policy, gate_set, dave):
    run = _run(spam_policy, gate_set, dave)
    assert run.status == "done"
    assert EvaluationResult.objects.filter(run=run).count() == 5
    assert run.metrics["f1"] == 1.0 and run.metrics["kappa"] == 1.0
    assert run.metrics["rule_precision"] == 1.0 and run.metrics["rule_recall"] == 1.0
    assert run.backend == "openai" and run.metrics["tokens"] == 5 * 540
    event = AuditEvent.objects.get(kind="evaluation_requested")
    assert event.actor == dave and event.data["run_id"] == run.id and event.data["items"] == 5
    # Running the finished run again changes nothing.
    runs.execute_run(run.id)
    assert EvaluationResult.objects.filter(run=run).count() == 5


def test_a_run_with_a_limit_covers_the_first_items(server, spam_policy, gate_set, dave):
    run = _run(spam_policy, gate_set, dave, limit=2)
    assert run.item_count == 2 and run.results.count() == 2 and run.metrics["n"] == 2


def test_a_cancelled_run_stops_at_the_next_chunk(server, spam_policy, gate_set, dave):
    run = policy_workbench.start_evaluation(
        version=spam_policy, golden_set=gate_set, actor=dave, enqueue=False
    )
    runs.execute_run(run.id, chunk_size=2, on_chunk=lambda n: runs.cancel_run(run))
    run.refresh_from_db()
    assert run.status == "cancelled" and run.results.count() == 2


def test_publishing_a_worse_draft_is_refused_until_a_senior_overrides(
    server, spam_policy, gate_set, dave, carol
):
    _run(spam_policy, gate_set, dave)
    draft = versions.create_draft(
        policy=spam_policy.policy, text=POLICY_TEXT + "\nLENIENT: allow everything.\n", actor=dave
    )
    with pytest.raises(ValidationError, match="no finished run"):
        policy_workbench.publish_version(version=draft, actor=dave)

    _run(draft, gate_set, dave)
    with pytest.raises(ValidationError) as refused:
        policy_workbench.publish_version(version=draft, actor=dave)
    text = " ".join(refused.value.messages)
    assert "must-pass item failed" in text and "F1 fell from 1.000" in text
    with pytest.raises(PermissionDenied):  # a policy admin is no senior
        policy_workbench.publish_version(version=draft, actor=dave, override_reason="trust me")
    draft.refresh_from_db()
    assert draft.status == "draft"
    assert not AuditEvent.objects.filter(
        kind__in=["policy_version_published", "publish_gate_overridden"],
        data__policy_version_id=draft.id,
    )

    carol.groups.add(*dave.groups.all())  # a senior who also administers policies
    result = policy_workbench.publish_version(
        version=draft, actor=carol, override_reason="legal asked for it today"
    )
    assert not result.passed
    draft.refresh_from_db()
    assert draft.status == "published" and draft.published_by == carol
    assert spam_policy.policy.current_version() == draft
    override = AuditEvent.objects.get(kind="publish_gate_overridden")
    assert override.data["reason"] == "legal asked for it today" and override.actor == carol
    published = AuditEvent.objects.get(
        kind="policy_version_published", data__policy_version_id=draft.id
    )
    assert published.data["overridden"] is True and published.actor == carol
    # One publish, one event of the one kind every publish path writes, with the row's hash.
    assert not AuditEvent.objects.filter(kind="policy_published").exists()
    assert verify_records().ok
    with pytest.raises(ValidationError, match="published and can't be edited"):
        versions.update_draft(version=draft, text=POLICY_TEXT, actor=dave)


def test_a_draft_that_holds_publishes_without_override(server, spam_policy, gate_set, dave):
    _run(spam_policy, gate_set, dave)
    draft = versions.create_draft(
        policy=spam_policy.policy, text=POLICY_TEXT + "\nSP3.b Phishing links.\n", actor=dave
    )
    draft = versions.update_draft(
        version=draft, text=POLICY_TEXT + "\nSP3.b Phishing - fake login pages.\n", actor=dave
    )
    assert "SP3.b" in draft.rule_ids()
    _run(draft, gate_set, dave)
    result = policy_workbench.publish_version(version=draft, actor=dave)
    assert result.passed
    assert PolicyVersion.objects.get(id=draft.id).status == "published"
    assert verify_records().ok
    text, changes = versions.diff_versions(spam_policy, draft)
    assert "+SP3.b Phishing - fake login pages." in text
    # SP3.b is new, and the SP3 tier's text (its section) grew by that line.
    assert [(c.rule_id, c.kind) for c in changes] == [("SP3.b", "added"), ("SP3", "changed")]


def test_add_all_overturned_appeals_adds_exactly_those(
    spam_policy, platform, alice, carol, dave, gate_set
):
    cases = {}
    for name, content in [("kept", "Buy gold rings here!"), ("wrong", "My own shop, ok?")]:
        cases[name] = flag(platform, content=content, external_id=f"x-{name}")
        decide(alice, cases[name], outcome="violating", action="remove", rule_ids=["SP2.b"])
    upheld = appeal(platform, item_external_id="x-kept")
    overturned = appeal(platform, item_external_id="x-wrong")
    decide(carol, upheld, outcome="uphold", action="remove", rule_ids=["SP2.b"])
    decide(carol, overturned, outcome="overturn", action="none")
    other_set = golden.import_golden_set(
        policy=spam_policy.policy, name="overturns", data=SET, fmt="jsonl"
    )
    before = other_set.items.count()

    with pytest.raises(PermissionDenied):
        policy_workbench.add_overturned_appeals(golden_set=other_set, actor=dave)
    added = policy_workbench.add_overturned_appeals(golden_set=other_set, actor=carol)
    assert added == 1
    new = other_set.items.exclude(source_case_id=None).get()
    assert new.source_case_id == overturned.id
    assert new.content == "My own shop, ok?" and new.expected_violation is False
    assert other_set.items.count() == before + 1
    # Twice is the same as once.
    assert policy_workbench.add_overturned_appeals(golden_set=other_set, actor=carol) == 0


def test_add_a_decided_case_uses_the_human_decision(spam_policy, platform, alice, dave, gate_set):
    case = flag(platform, content="Buy gold rings here!")
    with pytest.raises(ValidationError, match="no decision"):
        policy_workbench.add_case_to_golden_set(case=case, golden_set=gate_set, actor=dave)
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    assert policy_workbench.add_case_to_golden_set(case=case, golden_set=gate_set, actor=dave) == 1
    item = gate_set.items.get(source_case_id=case.id)
    assert item.expected_violation and item.expected_rule_ids == ["SP2.b"]
    assert policy_workbench.add_case_to_golden_set(case=case, golden_set=gate_set, actor=dave) == 0
