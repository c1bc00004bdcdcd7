"""The audit log is a hash chain: altering, removing, inserting or reordering an event is caught.

Tampering is done the way an attacker who holds the database would: raw SQL as the table's owner
with its append-only triggers switched off. The tests themselves run as the app's runtime role,
which can do none of that (tests/appeals/test_audit_guards.py), so the tamperer works in a
session of its own and the tests commit what it must see (transactional tests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from appeals.audit import record_event, verify_chain
from appeals.models import AuditEvent, Queue
from appeals.review import decisions, queueing
from tests import dbroles
from tests.builders import flag

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "appeals_auditevent"
# The spam policy's own events (policy_changed, policy_version_added, policy_version_published)
# open every chain here.
POLICY_EVENTS = 3


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _sql(statement: str, params=()):
    """Run one tampering statement with the audit table's triggers off, as its owner."""
    if dbroles.two_roles():
        with dbroles.owner_connection() as owner:
            owner.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
            owner.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no FK checks left pending
            owner.execute(statement, params)
            owner.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        return
    with transaction.atomic(), connection.cursor() as cursor:
        if _postgres():
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        else:  # SQLite cannot switch a trigger off; the flush after the test puts them back
            cursor.execute("DROP TRIGGER IF EXISTS appeals_auditevent_no_update")
            cursor.execute("DROP TRIGGER IF EXISTS appeals_auditevent_no_delete")
        cursor.execute(statement, params)
        if _postgres():
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")


def _refused(operation: str) -> str:
    """What refuses the app's own `operation` on the audit table: the missing privilege where
    the app runs as the runtime role, otherwise the append-only trigger."""
    if dbroles.two_roles():
        return f"permission denied for table {TABLE}"
    return f"append-only: {operation}"


@pytest.fixture
def casework(alice, platform, spam_policy):
    """Two flags; alice claims and decides the first. Returns the events in chain order."""
    first = flag(platform)
    flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    decisions.decide_case(
        reviewer=alice,
        case_id=claimed.id,
        lease_token=claimed.lease_token,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
    )
    # After the policy's own two events (policy_changed, policy_version_added: no case).
    events = list(AuditEvent.objects.filter(case__isnull=False).order_by("id"))
    assert [e.kind for e in events] == ["received", "received", "claimed", "decided"]
    assert events[0].case_id == first.id
    return events


def test_untouched_chain_verifies(casework):
    report = verify_chain()
    assert report.ok
    assert report.events_checked == POLICY_EVENTS + 4
    assert report.head_hash == casework[-1].hash


def test_each_event_links_to_the_one_before(casework):
    chain = list(AuditEvent.objects.order_by("id"))
    assert chain[0].prev_hash == "0" * 64
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.prev_hash == before.hash


def test_verify_audit_command_reports_an_intact_chain(casework, capsys):
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert f"audit chain intact: {POLICY_EVENTS + 4} events" in out
    assert casework[-1].hash in out


def test_altered_data_is_caught_and_named(casework):
    decided = casework[3]
    forged = json.dumps({**decided.data, "outcome": "not_violating", "action": "none"})
    cast = "CAST(%s AS jsonb)" if _postgres() else "%s"
    _sql(f"UPDATE {TABLE} SET data = {cast} WHERE id = %s", [forged, decided.id])

    report = verify_chain()
    assert not report.ok
    assert report.first_broken_id == decided.id
    assert report.broken_kind == "decided"
    assert report.broken_case_id == decided.case_id
    assert "altered" in report.problem
    assert report.events_checked == POLICY_EVENTS + 3


def test_altered_actor_is_caught(casework):
    _sql(f"UPDATE {TABLE} SET actor_label = %s WHERE id = %s", ["bob", casework[2].id])
    assert verify_chain().first_broken_id == casework[2].id


def test_deleted_event_is_caught_at_the_next_one(casework):
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [casework[1].id])
    report = verify_chain()
    assert report.first_broken_id == casework[2].id
    assert "removed" in report.problem


def test_reordered_events_are_caught(casework):
    a, b = casework[1], casework[2]
    columns = (
        "kind",
        "case_id",
        "actor_id",
        "actor_label",
        "created_at",
        "data",
        "prev_hash",
        "hash",
    )
    # Swap the two rows' contents, so b's event now sits in a's place in id order. The hash is
    # unique, so park one row's hash first.
    _sql(f"UPDATE {TABLE} SET hash = %s WHERE id = %s", ["parked", a.id])
    for target, source in ((b, a), (a, b)):
        values = [getattr(source, c) if c != "data" else json.dumps(source.data) for c in columns]
        cast = "CAST(%s AS jsonb)" if _postgres() else "%s"
        assignments = ", ".join(f"{c} = {cast if c == 'data' else '%s'}" for c in columns)
        _sql(f"UPDATE {TABLE} SET {assignments} WHERE id = %s", [*values, target.id])
    report = verify_chain()
    assert report.first_broken_id == a.id
    assert report.broken_kind == "claimed"
    assert "inserted or moved" in report.problem


def test_inserted_event_is_caught(casework, alice):
    """A forged event slipped in before the decision: its own hash cannot be made to fit."""
    decided = casework[3]
    # Move the decision up one id so there is room for the forgery where it used to be.
    new_id = decided.id + 1000
    _sql(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [new_id, decided.id])
    forged = AuditEvent(
        id=decided.id,
        case_id=decided.case_id,
        kind="released",
        actor=alice,
        actor_label="alice",
        created_at=decided.created_at,
        data={"reason": ""},
        prev_hash=casework[2].hash,
        hash="f" * 64,
    )
    forged.save(force_insert=True)  # inserting is what the app may do
    report = verify_chain()
    assert report.first_broken_id == decided.id
    assert report.broken_kind == "released"
    assert "altered" in report.problem


def test_inserted_event_with_a_recomputed_hash_still_breaks_the_next_link(casework, alice):
    from appeals.audit import event_hash

    decided = casework[3]
    _sql(f"UPDATE {TABLE} SET id = %s WHERE id = %s", [decided.id + 1000, decided.id])
    forged = AuditEvent(
        id=decided.id,
        case_id=decided.case_id,
        kind="released",
        actor=alice,
        actor_label="alice",
        created_at=decided.created_at,
        data={"reason": ""},
        prev_hash=casework[2].hash,
    )
    forged.hash = event_hash(forged)
    forged.save(force_insert=True)  # inserting is what the app may do
    report = verify_chain()
    assert report.first_broken_id == decided.id + 1000
    assert report.broken_kind == "decided"
    assert "removed" in report.problem


def test_removing_the_newest_events_is_caught_with_the_remembered_head(casework):
    head = verify_chain().head_hash
    _sql(f"DELETE FROM {TABLE} WHERE id = %s", [casework[3].id])
    assert verify_chain().ok  # a shorter chain is still a chain...
    report = verify_chain(expect_head=head)  # ...but not the one we remembered
    assert not report.ok
    assert "expected head" in report.problem
    with pytest.raises(CommandError, match="expected head"):
        call_command("verify_audit", "--expect-head", head)


def test_verify_audit_command_names_the_broken_link_and_fails(casework):
    decided = casework[3]
    _sql(f"UPDATE {TABLE} SET actor_label = %s WHERE id = %s", ["mallory", decided.id])
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    message = str(excinfo.value)
    assert f"event {decided.id} (decided, case {decided.case_id})" in message
    assert "altered" in message
    assert excinfo.value.returncode == 1


def test_chunked_walk_matches_a_single_pass(casework):
    assert (
        verify_chain(chunk_size=1).events_checked
        == verify_chain().events_checked
        == POLICY_EVENTS + 4
    )


def test_events_are_only_recorded_inside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record_event(AuditEvent.Kind.EXPORTED, case=None, source=AuditEvent.Source.COMMAND, data={})


def test_the_application_cannot_update_audit_events(casework):
    with pytest.raises(DatabaseError, match=_refused("UPDATE")), transaction.atomic():
        AuditEvent.objects.filter(id=casework[0].id).update(actor_label="someone else")
    assert AuditEvent.objects.get(id=casework[0].id).actor_label == casework[0].actor_label


def test_the_application_cannot_delete_audit_events(casework):
    with pytest.raises(DatabaseError, match=_refused("DELETE")), transaction.atomic():
        AuditEvent.objects.filter(id=casework[0].id).delete()
    with pytest.raises(DatabaseError, match=_refused("DELETE")), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == POLICY_EVENTS + 4


def test_the_application_cannot_truncate_the_audit_log_on_postgres(casework):
    if not _postgres():
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DatabaseError, match=_refused("TRUNCATE")), transaction.atomic():
        with connection.cursor() as cursor:
            # The setting that used to let TRUNCATE through lets nothing through now.
            cursor.execute("SET LOCAL appeals.allow_audit_truncate = 'on'")
            cursor.execute(f"TRUNCATE {TABLE} CASCADE")
    assert AuditEvent.objects.count() == POLICY_EVENTS + 4


@pytest.mark.postgres
def test_concurrent_appends_keep_one_unbroken_chain(platform, spam_policy):
    if not _postgres():
        pytest.skip("concurrent appends are serialised by an advisory lock on PostgreSQL")
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def append(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with transaction.atomic():
                    record_event(
                        AuditEvent.Kind.EXPORTED,
                        case=None,
                        source=AuditEvent.Source.WORKER,
                        actor_label=f"worker-{n}",
                        data={"i": i},
                    )
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = verify_chain()
    assert report.ok, report.problem
    assert report.events_checked == POLICY_EVENTS + 200


# --- Typed kinds and the source of each event ----------------------------------------------


def test_a_kind_or_source_that_is_not_a_member_of_the_enums_is_refused():
    with transaction.atomic():
        with pytest.raises(TypeError, match="not a member of AuditEvent.Kind"):
            record_event("exported", case=None, source=AuditEvent.Source.COMMAND)
        with pytest.raises(TypeError, match="not a member of AuditEvent.Source"):
            record_event(AuditEvent.Kind.EXPORTED, case=None, source="command")
    assert not AuditEvent.objects.exists()


def test_console_decisions_record_their_source(casework):
    assert [e.source for e in casework] == ["api", "api", "console", "console"]


def test_the_source_is_covered_by_the_hash(casework):
    decided = casework[-1]
    _sql(f"UPDATE {TABLE} SET source = 'admin' WHERE id = %s", [decided.id])
    report = verify_chain()
    assert report.first_broken_id == decided.id
    assert "altered" in report.problem


def test_blanking_a_source_is_caught_too(casework):
    _sql(f"UPDATE {TABLE} SET source = '' WHERE id = %s", [casework[0].id])
    assert verify_chain().first_broken_id == casework[0].id


def test_events_from_before_sources_were_kept_still_verify(casework, alice):
    """An event hashed by the old code (no source in the text) stays valid after the migration."""
    from django.utils import timezone

    from appeals.audit import canonical_content

    head = casework[-1]
    created_at = timezone.now()
    old_text = json.dumps(
        {
            "prev_hash": head.hash,
            "kind": "released",
            "case_id": head.case_id,
            "actor_id": alice.id,
            "actor_label": "alice",
            "created_at": created_at.astimezone(dt.UTC).isoformat(),
            "data": {"reason": ""},
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert old_text == canonical_content(
        prev_hash=head.hash,
        kind="released",
        case_id=head.case_id,
        actor_id=alice.id,
        actor_label="alice",
        created_at=created_at,
        data={"reason": ""},
    )
    with transaction.atomic():  # inserted as a row the old code wrote, with no source
        AuditEvent.objects.create(
            case_id=head.case_id,
            kind="released",
            actor=alice,
            actor_label="alice",
            source="",
            created_at=created_at,
            data={"reason": ""},
            prev_hash=head.hash,
            hash=hashlib.sha256(old_text.encode()).hexdigest(),
        )
    assert verify_chain().ok
