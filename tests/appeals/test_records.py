"""The chain covers the records, and a decision keeps what it told (issue 10, items 3 and 5).

Every event that writes a decision, recommendation, item, case, policy, policy version or rule
carries the row's content hash; `verify_audit --records` names each row edited, deleted or
added outside the application. The tamperer holds the database (a superuser session, triggers
off, as in test_checkpoints.py); the app itself runs as its runtime role.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import transaction

from appeals.disclosure import callbacks, exports
from appeals.disclosure.export_rows import ExportFilters
from appeals.drafts.services import finish_draft, start_drafts
from appeals.models import AuditEvent, Decision
from appeals.record_check import adopt_unrecorded_rows, verify_records
from appeals.review import decisions, queueing
from policies.models import Policy, PolicyRule
from policies.safeguard.types import Draft, DraftStatus, Provenance
from policies.services import save_policy_settings
from tests.appeals import test_checkpoints
from tests.appeals.test_checkpoints import _problems, as_superuser
from tests.builders import flag

# The fixtures that run `manage.py verify_audit` in a subprocess and skip off PostgreSQL.
verify_audit = test_checkpoints.verify_audit
on_postgres = test_checkpoints.on_postgres

EXIT_RECORDS = 5
FLAG_NOTICE_WINDOW = "You can appeal this decision within 183 days, until "


def drafted(case, *, reasoning="SP2.b covers irrelevant ads; this is one."):
    """The model's draft for `case`, stored through the worker's own services."""
    rec = case.recommendations.order_by("-id").first()
    token = start_drafts([rec.id])[rec.id]
    draft = Draft(
        case_key=str(case.id),
        status=DraftStatus.READY,
        provenance=Provenance(
            backend="test-data",
            model_id="openai/gpt-oss-safeguard-20b",
            model_revision="r1",
            policy_version_id=str(case.policy_version_id),
            policy_sha256="a" * 64,
            prompt_sha256="b" * 64,
            reasoning_effort="low",
            conversation_date=dt.date(2026, 11, 26),
        ),
        violation=True,
        rule_ids=("SP2.b",),
        confidence="high",
        rationale="An irrelevant ad.",
        reasoning=reasoning,
        raw_output='{"violation": 1}',
    )
    assert finish_draft(rec.id, token, draft)
    return rec


def decide(alice, case, **fields) -> Decision:
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    return decisions.decide_case(
        reviewer=alice,
        case_id=case.id,
        lease_token=claimed.lease_token,
        **{"outcome": "violating", "action": "remove", "rule_ids": ["SP2.b"], **fields},
    )


@pytest.fixture
def history(alice, platform, spam_policy):
    """A flag the model drafted and alice decided, and a second flag still waiting."""
    case = flag(platform, external_id="ad-1")
    rec = drafted(case)
    decision = decide(alice, case)
    waiting = flag(platform, external_id="ad-2")
    return {"case": case, "recommendation": rec, "decision": decision, "waiting": waiting}


# --- every write carries the row's hash --------------------------------------------------------


@pytest.mark.django_db
def test_each_write_carries_the_hash_of_the_row_it_wrote(history):
    decision, rec, case = history["decision"], history["recommendation"], history["case"]
    hashes = {}
    for data in AuditEvent.objects.order_by("id").values_list("data", flat=True):
        hashes.update(data.get("row_hashes", {}))
    version = case.policy_version
    expected = {
        f"decision:{decision.id}",
        f"recommendation:{rec.id}",
        f"case:{case.id}",
        f"item:{case.item_id}",
        f"policy:{version.policy_id}",
        f"policy_version:{version.id}",
        *(f"policy_rule:{rule_id}" for rule_id in version.rules.values_list("id", flat=True)),
    }
    assert expected <= set(hashes)
    report = verify_records()
    assert report.ok, [p.describe() for p in report.problems]
    assert report.checked["decision"] == 1 and report.checked["item"] == 2


@pytest.mark.django_db
def test_a_draft_still_waiting_is_not_taken_for_an_unrecorded_row(history):
    # The second flag's recommendation has said nothing yet: its first event comes when it ends.
    assert history["waiting"].recommendations.get().status == "pending"
    assert verify_records().ok


# --- tampering, by someone who holds the database ----------------------------------------------


TAMPERING = {
    "decision edited": (
        "UPDATE appeals_decision SET outcome = 'not_violating', action = 'none' WHERE id = %(decision)s",
        "decision {decision} was changed after audit event",
    ),
    "decision deleted": (
        "DELETE FROM appeals_decision WHERE id = %(decision)s",
        "decision {decision} was deleted: audit event",
    ),
    "decision's stored notice edited": (
        "UPDATE appeals_decision SET notice = 'You can appeal within 1 days.' WHERE id = %(decision)s",
        "decision {decision} was changed after audit event",
    ),
    "recommendation's verdict edited": (
        "UPDATE appeals_recommendation SET violation = false WHERE id = %(recommendation)s",
        "recommendation {recommendation} was changed after audit event",
    ),
    "recommendation's reasoning edited": (
        "UPDATE appeals_recommendation SET reasoning = 'Nothing wrong here.' WHERE id = %(recommendation)s",
        "recommendation {recommendation} was changed after audit event",
    ),
    "item's content edited": (
        "UPDATE appeals_item SET content = 'A harmless post.' WHERE id = %(item)s",
        "item {item} was changed after audit event",
    ),
    "policy rule's text edited": (
        "UPDATE policies_policyrule SET text = 'SP2.b Anything goes' WHERE id = %(rule)s",
        "policy rule {rule} was changed after audit event",
    ),
    "policy rule deleted": (
        "DELETE FROM policies_policyrule WHERE id = %(rule)s",
        "policy rule {rule} was deleted: audit event",
    ),
    "policy's appeal window edited": (
        "UPDATE policies_policy SET appeal_window_days = 1 WHERE id = %(policy)s",
        "policy {policy} was changed after audit event",
    ),
    "rule added without an event": (
        "INSERT INTO policies_policyrule (version_id, rule_id, text, position) "
        "VALUES (%(version)s, 'SP9', 'SP9 Invented later', 99) RETURNING id",
        "policy rule {inserted} has no audit event",
    ),
    "appeal case rewritten": (
        "UPDATE appeals_case SET statement = 'x', kind = 'appeal' WHERE id = %(case)s",
        "case {case} was changed after audit event",
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_audit_records_names_each_row_changed_outside_the_application(
    on_postgres, history, verify_audit, tampering
):
    case = history["case"]
    ids = {
        "decision": history["decision"].id,
        "recommendation": history["recommendation"].id,
        "item": case.item_id,
        "case": case.id,
        "rule": PolicyRule.objects.get(version_id=case.policy_version_id, rule_id="SP2.b").id,
        "policy": case.policy_version.policy_id,
        "version": case.policy_version_id,
    }
    clean = verify_audit("--records", "--no-checkpoint")
    assert clean.returncode == 0, clean.stderr
    assert "records match the audit chain: 2 items, 2 cases, 2 recommendations, 1 decisions" in (
        clean.stdout
    )

    statement, expected = TAMPERING[tampering]
    with as_superuser() as cursor:
        cursor.execute(statement, ids)
        if "RETURNING" in statement:
            ids["inserted"] = cursor.fetchone()[0]

    result = verify_audit("--records", "--no-checkpoint")

    assert result.returncode == EXIT_RECORDS, result.stdout + result.stderr
    assert "audit chain intact" in result.stdout  # the chain itself was not touched
    lines = _problems(result)
    assert any(line.startswith("record " + expected.format(**ids)) for line in lines), lines
    assert lines[-1] == "1 records do not match the audit chain"


@pytest.mark.django_db
@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_on_sqlite_the_same_tampering_is_named_too(history, tampering):
    """SQLite, the embedded default: whoever holds the file edits it directly."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL is covered through manage.py as a superuser, above")
    case = history["case"]
    ids = {
        "decision": history["decision"].id,
        "recommendation": history["recommendation"].id,
        "item": case.item_id,
        "case": case.id,
        "rule": PolicyRule.objects.get(version_id=case.policy_version_id, rule_id="SP2.b").id,
        "policy": case.policy_version.policy_id,
        "version": case.policy_version_id,
    }
    assert verify_records().ok
    statement, expected = TAMPERING[tampering]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.execute(statement.replace("false", "0"), ids)
        if "RETURNING" in statement:
            ids["inserted"] = cursor.fetchone()[0]
        cursor.execute("PRAGMA foreign_keys = ON")
    problems = [problem.describe() for problem in verify_records().problems]
    assert len(problems) == 1 and problems[0].startswith(expected.format(**ids)), problems


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_rows_from_before_hashing_are_adopted_once_and_checked_from_then_on(
    on_postgres, history, verify_audit
):
    # A row written without an event, as every row was before records were hashed.
    with as_superuser() as cursor:
        cursor.execute(
            "INSERT INTO policies_policy (slug, name, reasoning_effort, appeal_window_days, "
            "decide_within_hours, appeal_decide_within_hours, dsa_mapping, created_at) "
            "VALUES ('legacy', 'Legacy', '', 183, 24, 72, '{}', now()) RETURNING id"
        )
        legacy = cursor.fetchone()[0]
    result = verify_audit("--records", "--no-checkpoint")
    assert result.returncode == EXIT_RECORDS
    assert f"record policy {legacy} has no audit event" in result.stderr

    adopted = verify_audit("--adopt-unrecorded")
    assert adopted.returncode == 0, adopted.stderr
    assert "1 rows without an audit event adopted into the chain" in adopted.stdout
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.RECORDS_ADOPTED)
    assert list(event.data["row_hashes"]) == [f"policy:{legacy}"]
    assert event.source == AuditEvent.Source.COMMAND and event.actor_label == "verify_audit"
    again = verify_audit("--records", "--no-checkpoint")
    assert again.returncode == 0, again.stderr
    # From then on the adopted row is checked like any other.
    with as_superuser() as cursor:
        cursor.execute("UPDATE policies_policy SET appeal_window_days = 1 WHERE id = %s", [legacy])
    assert f"record policy {legacy} was changed after audit event {event.id}" in (
        verify_audit("--records", "--no-checkpoint").stderr
    )


@pytest.mark.django_db
def test_adopting_covers_only_rows_no_event_names(history):
    Policy.objects.create(slug="legacy", name="Legacy")  # outside the services: no event
    report = verify_records()
    assert [p.describe() for p in report.problems] == [
        f"policy {Policy.objects.get(slug='legacy').id} has no audit event: it was added or "
        "rewritten outside the application"
    ]
    with transaction.atomic():
        assert adopt_unrecorded_rows() == 1
    assert adopt_unrecorded_rows() == 0
    assert verify_records().ok


# --- policy settings changes are audit events --------------------------------------------------


def _admin_change(client, policy, **fields):
    form = {
        "slug": policy.slug,
        "name": policy.name,
        "reasoning_effort": policy.reasoning_effort,
        "appeal_window_days": policy.appeal_window_days,
        "decide_within_hours": policy.decide_within_hours,
        "appeal_decide_within_hours": policy.appeal_decide_within_hours,
        "dsa_mapping": json.dumps(policy.dsa_mapping),
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **fields,
    }
    return client.post(f"/admin/policies/policy/{policy.id}/change/", form)


@pytest.mark.django_db
def test_a_policy_edited_in_the_admin_is_an_audit_event_naming_old_and_new(
    client, dave, spam_policy
):
    client.force_login(dave)
    policy = spam_policy.policy
    response = _admin_change(
        client, policy, name="Spam and scams", appeal_window_days=1, decide_within_hours=12
    )
    assert response.status_code == 302, response.content.decode()[-2000:]

    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.POLICY_CHANGED).latest("id")
    assert (event.actor_id, event.source) == (dave.id, AuditEvent.Source.ADMIN)
    assert event.data["policy"] == "spam" and event.data["created"] is False
    assert event.data["changes"] == {
        "name": {"from": "Spam", "to": "Spam and scams"},
        "appeal_window_days": {"from": 183, "to": 1},
        "decide_within_hours": {"from": 24, "to": 12},
    }
    assert verify_records().ok  # the event carries the policy's new hash

    # Saving the form unchanged records nothing.
    before = AuditEvent.objects.count()
    policy.refresh_from_db()
    assert _admin_change(client, policy).status_code == 302
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_publishing_a_version_is_an_audit_event(dave, spam_policy):
    from policies.services import import_policy_version, publish_policy_version
    from tests.builders import POLICY_TEXT

    draft = import_policy_version(
        slug="spam", name="Spam", text=POLICY_TEXT + "\nSP3.b Chain letters\n", publish=False
    )
    added = AuditEvent.objects.filter(kind=AuditEvent.Kind.POLICY_VERSION_ADDED).latest("id")
    assert added.data["policy_version_id"] == draft.id and added.data["status"] == "draft"
    publish_policy_version(version=draft, actor=dave, via="admin")
    # The fixture's v1 was published as it was imported; this is the draft's own event.
    published = AuditEvent.objects.get(
        kind=AuditEvent.Kind.POLICY_VERSION_PUBLISHED, data__policy_version_id=draft.id
    )
    assert published.actor_id == dave.id
    assert verify_records().ok


# --- what was said is stored -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_decision_keeps_the_notice_window_deadline_and_dsa_fields_it_was_given(history):
    decision = history["decision"]
    assert decision.policy_name == "Spam"
    assert decision.appeal_window_days == 183
    assert decision.appeal_deadline == decision.decided_at + dt.timedelta(days=183)
    assert FLAG_NOTICE_WINDOW + f"{decision.appeal_deadline:%Y-%m-%d}." in decision.notice
    assert "SP2.b: Irrelevant ads" in decision.notice
    assert decision.dsa_mapping["default"]["category"]


def _export(fmt: str) -> str:
    return "".join(exports.Export(fmt=fmt, filters=ExportFilters()).chunks())


@pytest.mark.django_db(transaction=True)
def test_editing_a_policy_later_changes_no_earlier_notice_export_or_callback(
    dave, history, spam_policy
):
    decision = Decision.objects.get(id=history["decision"].id)
    body_before = callbacks.body_for(decision)
    csv_before, jsonl_before, dsa_before = _export("csv"), _export("jsonl"), _export("dsa")
    assert FLAG_NOTICE_WINDOW in json.loads(jsonl_before.splitlines()[0])["notice"]

    policy = Policy.objects.get(id=spam_policy.policy_id)
    policy.name = "Renamed"
    policy.appeal_window_days = 1
    policy.dsa_mapping = {
        "default": {
            "category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
            "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        }
    }
    save_policy_settings(policy=policy, actor=dave, via="admin")

    edit = AuditEvent.objects.filter(kind=AuditEvent.Kind.POLICY_CHANGED).latest("id")
    assert edit.data["changes"]["appeal_window_days"] == {"from": 183, "to": 1}
    decision = Decision.objects.get(id=decision.id)
    assert callbacks.body_for(decision) == body_before  # a re-sent callback says the same
    payload = json.loads(body_before)
    assert FLAG_NOTICE_WINDOW in payload["notice"] and "within 1 days" not in payload["notice"]
    assert payload["appeal_window_days"] == 183
    assert _export("csv") == csv_before
    assert _export("jsonl") == jsonl_before
    dsa_after = _export("dsa")
    assert dsa_after == dsa_before
    assert "STATEMENT_CATEGORY_SCAMS_AND_FRAUD" not in dsa_after
    assert "Renamed" not in dsa_after and "Spam policy (spam v1)" in dsa_after

    # A decision taken after the edit tells the new terms.
    later = flag(history["case"].platform, external_id="ad-3")
    alice = history["decision"].decided_by
    new = decide(alice, later)
    assert "within 1 days" in new.notice and "our Renamed policy" in new.notice
    assert "STATEMENT_CATEGORY_SCAMS_AND_FRAUD" in _export("dsa")
    assert verify_records().ok


@pytest.mark.django_db(transaction=True)
def test_the_resent_callback_of_an_earlier_decision_carries_the_original_notice(
    dave, history, spam_policy
):
    from tests.appeals.test_callbacks import SECRET, Receiver, point_platform_at

    decision = history["decision"]
    policy = Policy.objects.get(id=spam_policy.policy_id)
    policy.appeal_window_days = 1
    save_policy_settings(policy=policy, actor=dave, via="admin")
    from appeals.disclosure import outbox
    from appeals.models import CallbackDelivery

    with Receiver() as receiver:
        point_platform_at(receiver.url)
        decision.refresh_from_db()
        # The platform's address came later: its callback goes out now through the outbox,
        # after the policy changed (what a senior's "Retry now" re-sends the same way).
        if not CallbackDelivery.objects.filter(decision=decision).exists():
            with transaction.atomic():
                outbox.add_pending_callback(decision)
        outcome = callbacks.deliver_decision(decision.id)
    assert outcome.status == "delivered"
    headers, body = receiver.requests[0]
    callbacks.verify(SECRET, body, headers.get("X-Appeals-Signature"))
    notice = json.loads(body)["notice"]
    assert FLAG_NOTICE_WINDOW in notice and "within 1 days" not in notice


@pytest.mark.django_db
def test_the_data_migration_fills_decisions_from_before_it(history):
    """Migration 0008 fills what an existing decision told from the policy as it stands."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("appeals.migrations.0013_decision_disclosure")
    decision = history["decision"]
    stored = Decision.objects.filter(id=decision.id).values(
        "notice", "policy_name", "appeal_window_days", "appeal_deadline", "dsa_mapping"
    )
    before = stored.get()
    Decision.objects.filter(id=decision.id).update(
        notice="", policy_name="", appeal_window_days=None, appeal_deadline=None, dsa_mapping={}
    )
    migration.fill_disclosure(apps, None)
    assert stored.get() == before


# --- a policy draft written and edited in the workbench -----------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_draft_edited_in_the_workbench_keeps_the_records_check_clean(
    on_postgres, verify_audit, client, dave, spam_policy
):
    """The workbench's new-draft, save and publish posts each leave an event naming the rows they
    wrote; the rules a save removed are said to be removed, and a rule deleted behind the
    application's back is still named."""
    client.force_login(dave)
    response = client.post(f"/workbench/versions/{spam_policy.id}/new-draft/")
    assert response.status_code == 302
    draft = spam_policy.policy.versions.get(number=2)
    added = AuditEvent.objects.get(
        kind=AuditEvent.Kind.POLICY_VERSION_ADDED, data__policy_version_id=draft.id
    )
    assert added.actor == dave and added.source == AuditEvent.Source.CONSOLE
    old_rules = set(draft.rules.values_list("id", flat=True))

    text = spam_policy.text.replace("SP3.a", "SP3.c") + "\nSP4 Chain letters.\n"
    response = client.post(f"/workbench/versions/{draft.id}/save/", {"text": text})
    assert response.status_code == 302
    assert "SP3.c" in draft.rule_ids() and "SP3.a" not in draft.rule_ids()
    edited = AuditEvent.objects.get(kind=AuditEvent.Kind.POLICY_DRAFT_EDITED)
    said = edited.data["row_hashes"]
    assert {f"policy_rule:{i}" for i in old_rules} <= set(said)
    assert all(said[f"policy_rule:{i}"] == "deleted" for i in old_rules)

    clean = verify_audit("--records", "--no-checkpoint")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    gone = draft.rules.get(rule_id="SP4")
    with as_superuser() as cursor:
        cursor.execute("DELETE FROM policies_policyrule WHERE id = %s", [gone.id])
    result = verify_audit("--records", "--no-checkpoint")
    assert result.returncode == EXIT_RECORDS
    assert any(
        line.startswith(f"record policy rule {gone.id} was deleted") for line in _problems(result)
    ), result.stdout
