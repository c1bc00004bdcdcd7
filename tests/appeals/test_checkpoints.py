"""Signed checkpoints of the audit chain's head, kept outside the database.

The adversary here holds the database (superuser, triggers off): they can empty the audit table
or rebuild a chain whose links all verify. What they do not hold is the checkpoint signing key or
the place checkpoints are kept, so `verify_audit` still names what they did against the last
checkpoint, and refuses checkpoints they forge.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from django.conf import settings
from django.db import connection, transaction

from appeals.audit import event_hash, record_event, verify_chain
from appeals.disclosure import checkpoints, tasks
from appeals.models import AuditEvent, Queue
from appeals.review import decisions, queueing
from tests import dbroles, workers
from tests.builders import flag
from tests.workers import REPO_ROOT, celery_worker, wait_for

TABLE = "appeals_auditevent"
# The spam policy's own events (policy_changed, policy_version_added, policy_version_published)
# open every chain here.
POLICY_EVENTS = 3


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def casework(alice, platform, n: int = 2):
    """n flags; alice claims and decides the first."""
    for _ in range(n):
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


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _forge(directory, *, private_key, key_id: str, events: int = 999, head: int = 1) -> str:
    """A checkpoint file in the right format and name, signed with `private_key`."""
    payload = {
        "head_event_id": head,
        "head_hash": "f" * 64,
        "head_created_at": None,
        "events": events,
        "signed_at": "2026-01-01T00:00:00+00:00",
        "key_id": key_id,
    }
    content = checkpoints._file_bytes(checkpoints.sign_payload(payload, private_key))
    import datetime as dt

    name = checkpoints.checkpoint_name(
        signed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), head_event_id=head, content=content
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)
    return name


# --- The service, on either database -------------------------------------------------------


@pytest.mark.django_db
def test_a_checkpoint_signs_the_chain_head_into_its_own_file(alice, platform, spam_policy):
    casework(alice, platform)
    head = AuditEvent.objects.order_by("-id").first()

    written = checkpoints.write_checkpoint()

    assert (written.head_event_id, written.head_hash) == (head.id, head.hash)
    assert written.events == AuditEvent.objects.count() == POLICY_EVENTS + 4
    path = checkpoints.checkpoint_storage().path(written.name)
    document = json.loads(open(path, "rb").read())
    assert set(document) == {"format", "payload", "signature"}
    assert document["payload"]["key_id"] == written.key_id
    good, refused = checkpoints.read_checkpoints(public_key=checkpoints.verifying_key())
    assert (good, refused) == ([written], [])


@pytest.mark.django_db
def test_a_checkpoint_is_never_overwritten(alice, platform, spam_policy, checkpoint_dir):
    import datetime as dt

    casework(alice, platform)
    now = dt.datetime(2026, 11, 26, 4, 0, tzinfo=dt.UTC)
    first = checkpoints.write_checkpoint(now=now)
    before = (checkpoint_dir / first.name).read_bytes()

    with pytest.raises(checkpoints.CheckpointExists, match="never overwritten"):
        checkpoints.write_checkpoint(now=now)

    assert (checkpoint_dir / first.name).read_bytes() == before
    assert len(list(checkpoint_dir.iterdir())) == 1


@pytest.mark.django_db
def test_the_next_checkpoint_extends_the_last(alice, platform, spam_policy):
    casework(alice, platform)
    first = checkpoints.write_checkpoint()
    flag(platform)
    second = checkpoints.write_checkpoint()
    assert second.events == first.events + 1
    assert second.head_event_id > first.head_event_id
    assert checkpoints.compare_chain([first, second]) == []


def _rehash_after(cursor, events, changed):
    """Re-hash every event from `changed` on with the application's own chain function, so the
    chain's links all verify again, and write them back (triggers must be off)."""
    prev_hash = None
    for event in events:
        if prev_hash is not None:
            event.prev_hash = prev_hash
        if event.id >= changed.id:
            event.hash = event_hash(event)
            cursor.execute(
                f"UPDATE {TABLE} SET actor_label = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.actor_label, event.prev_hash, event.hash, event.id],
            )
        prev_hash = event.hash


@pytest.mark.django_db(transaction=True)
def test_a_chain_rewritten_since_the_last_checkpoint_is_not_signed(alice, platform, spam_policy):
    casework(alice, platform)
    checkpoints.write_checkpoint()
    events = list(AuditEvent.objects.order_by("id"))
    claimed = next(e for e in events if e.kind == "claimed")
    claimed.actor_label = "bob"
    with _tampering_cursor() as cursor:
        _rehash_after(cursor, events, claimed)
    assert verify_chain().ok
    with pytest.raises(checkpoints.ChainDoesNotExtendCheckpoint, match="no longer has"):
        checkpoints.write_checkpoint()


@pytest.mark.django_db
def test_a_forged_checkpoint_is_refused_naming_the_key(
    alice, platform, spam_policy, checkpoint_dir
):
    casework(alice, platform)
    real = checkpoints.write_checkpoint()
    other = Ed25519PrivateKey.generate()
    wrong_key = _forge(
        checkpoint_dir, private_key=other, key_id=checkpoints.key_id(other.public_key())
    )
    borrowed_id = _forge(checkpoint_dir, private_key=other, key_id=real.key_id, head=2)

    good, refused = checkpoints.read_checkpoints(public_key=checkpoints.verifying_key())

    assert good == [real]
    reasons = {r.name: r.reason for r in refused}
    assert f"not the configured key {real.key_id}" in reasons[wrong_key]
    assert reasons[borrowed_id].startswith("bad signature")


@pytest.mark.django_db
def test_the_periodic_task_writes_a_checkpoint(alice, platform, spam_policy, checkpoint_dir):
    casework(alice, platform)
    name = tasks.write_audit_checkpoint()
    assert (checkpoint_dir / name).exists()
    # Nothing new in the chain: the beat does not pile up identical heads.
    assert tasks.write_audit_checkpoint() == name
    flag(platform)
    assert tasks.write_audit_checkpoint() != name
    assert len(list(checkpoint_dir.iterdir())) == 2
    assert settings.CELERY_BEAT_SCHEDULE["write-audit-checkpoint"]["task"] == (
        "appeals.tasks.write_audit_checkpoint"
    )
    assert settings.CELERY_TASK_ROUTES["appeals.tasks.write_audit_checkpoint"] == {
        "queue": "default"
    }


# --- Keys ----------------------------------------------------------------------------------


def test_the_key_can_come_from_the_environment_as_base64_or_pem(settings):
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    settings.AUDIT_CHECKPOINT_KEY_FILE = ""
    for value in (base64.b64encode(seed).decode(), _pem(key)):
        settings.AUDIT_CHECKPOINT_KEY = value
        assert checkpoints.key_id(checkpoints.verifying_key()) == checkpoints.key_id(
            key.public_key()
        )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not base64!", "AUDIT_CHECKPOINT_KEY is not an Ed25519 private key"),
        (base64.b64encode(b"short").decode(), "5 bytes after base64"),
        (_pem(generate_private_key(public_exponent=65537, key_size=1024)), "not an Ed25519 key"),
    ],
)
def test_a_bad_key_is_named(settings, value, problem):
    settings.AUDIT_CHECKPOINT_KEY_FILE = ""
    settings.AUDIT_CHECKPOINT_KEY = value
    with pytest.raises(checkpoints.CheckpointKeyError, match=problem):
        checkpoints.signing_key()


def test_a_missing_key_file_is_named(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_KEY_FILE = str(tmp_path / "nowhere.pem")
    with pytest.raises(checkpoints.CheckpointKeyError, match="AUDIT_CHECKPOINT_KEY_FILE: cannot"):
        checkpoints.signing_key()


def test_the_embedded_default_generates_a_private_key_into_the_var_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_KEY_FILE = ""
    settings.VAR_DIR = tmp_path
    assert checkpoints.verifying_key() is None  # verifying never creates a key
    key = checkpoints.signing_key()
    path = tmp_path / "audit-checkpoint-key.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    assert checkpoints.key_id(checkpoints.signing_key().public_key()) == checkpoints.key_id(
        key.public_key()
    )


@pytest.mark.django_db
def test_a_signing_key_that_does_not_match_the_public_key_is_refused(
    settings, alice, platform, spam_policy, checkpoint_dir
):
    settings.AUDIT_CHECKPOINT_PUBLIC_KEY = checkpoints.public_key_pem(
        Ed25519PrivateKey.generate().public_key()
    )
    with pytest.raises(checkpoints.CheckpointKeyError, match="does not match"):
        checkpoints.write_checkpoint()
    assert not checkpoint_dir.exists() or not list(checkpoint_dir.iterdir())


# --- `manage.py verify_audit` against a database someone else holds (PostgreSQL) ----------


@contextmanager
def _tampering_cursor():
    """A cursor with the append-only guards off, committed at the end: what someone who holds
    the database does (on SQLite: drops the triggers, and puts them back afterwards)."""
    if _postgres():
        with as_superuser() as cursor:
            yield cursor
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS appeals_auditevent_no_update")
        cursor.execute("DROP TRIGGER IF EXISTS appeals_auditevent_no_delete")
        yield cursor
        for statement in dbroles._sqlite_guards():
            cursor.execute(statement)


@contextmanager
def as_superuser():
    """A committed session, as a superuser, with every user trigger off
    (`session_replication_role = replica`): what someone who holds the database does. The app
    itself runs as a runtime role that can do none of this (tests/appeals/test_audit_guards.py).
    """
    import psycopg

    url = dbroles.superuser_url()
    if not url:
        pytest.fail("SUPERUSER_DATABASE_URL is not set: run through `make test` (scripts/test.sh)")
    with psycopg.connect(url, dbname=connection.settings_dict["NAME"], autocommit=True) as conn:
        cursor = conn.cursor()
        cursor.execute("SET session_replication_role = replica")
        yield cursor


@pytest.fixture
def on_postgres(db):
    if not _postgres():
        pytest.skip("needs PostgreSQL: run through `make test` (scripts/test.sh)")


@pytest.fixture
def verify_audit(tmp_path, checkpoint_dir, checkpoint_key_file):
    """Run `manage.py verify_audit` in a subprocess against the test database."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "verify_audit", *args],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "DATABASE_URL": workers.test_database_url(),
                "MIGRATION_DATABASE_URL": "",
                "TEST_DATABASE_NAME": "",
                "APPEALS_VAR_DIR": str(tmp_path / "var"),
                "AUDIT_CHECKPOINT_DIR": str(checkpoint_dir),
                "AUDIT_CHECKPOINT_KEY_FILE": str(checkpoint_key_file),
                "DJANGO_SETTINGS_MODULE": "reviewer.settings",
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def _problems(result) -> list[str]:
    """The lines verify_audit printed to stderr (Django prefixes the first with the error's class)."""
    return result.stderr.strip().removeprefix("CommandError: ").splitlines()


def _written(result) -> str:
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("checkpoint written: "))
    return line.split("checkpoint ")[2].split(" ")[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_an_emptied_log_is_reported_against_the_last_checkpoint(
    on_postgres, alice, platform, spam_policy, verify_audit
):
    casework(alice, platform)
    first = _written(verify_audit())
    flag(platform)
    last = _written(verify_audit())
    assert first != last

    with as_superuser() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    assert verify_chain().ok  # an empty chain has no broken link

    result = verify_audit()

    assert result.returncode == 1
    lines = _problems(result)
    assert lines[0].startswith(
        f"audit chain emptied since checkpoint {last} ({POLICY_EVENTS + 5} events, head event"
    )
    assert f"the log has 0 events; the checkpoint counted {POLICY_EVENTS + 5}" in lines[0]
    assert f"emptied since checkpoint {first} ({POLICY_EVENTS + 4} events" in result.stderr
    assert "checkpoint written" not in result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_consistently_rebuilt_chain_is_reported_against_the_last_checkpoint(
    on_postgres, alice, platform, spam_policy, verify_audit
):
    casework(alice, platform)
    last = _written(verify_audit())
    # Rewrite the decision as "not violating" and re-hash it and every event after it with the
    # application's own chain function, so the chain's links all verify again.
    events = list(AuditEvent.objects.order_by("id"))
    decided = next(e for e in events if e.kind == "decided")
    decided.data = {**decided.data, "outcome": "not_violating", "action": "none"}
    prev_hash = None
    with as_superuser() as cursor:
        for event in events:
            if prev_hash is not None:
                event.prev_hash = prev_hash
            if event.id >= decided.id:
                event.hash = event_hash(event)
                cursor.execute(
                    f"UPDATE {TABLE} SET data = CAST(%s AS jsonb), prev_hash = %s, hash = %s "
                    "WHERE id = %s",
                    [json.dumps(event.data), event.prev_hash, event.hash, event.id],
                )
            prev_hash = event.hash
    assert verify_chain().ok  # the chain alone no longer shows anything

    result = verify_audit()

    assert result.returncode == 1, result.stdout
    first_line = _problems(result)[0]
    assert first_line.startswith(
        f"audit chain rewritten since checkpoint {last} ({POLICY_EVENTS + 4} events"
    )
    assert f"event {decided.id} has hash {decided.hash[:12]}" in first_line


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_chain_rebuilt_from_scratch_is_reported_as_a_fork(
    on_postgres, alice, platform, spam_policy, verify_audit
):
    casework(alice, platform)
    last = _written(verify_audit())
    old_head = AuditEvent.objects.order_by("-id").first()
    received = list(AuditEvent.objects.filter(kind="received").order_by("id"))
    with as_superuser() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    # A new history with only the two flags in it, appended by the application's own code.
    with transaction.atomic():
        for event in received:
            record_event(
                AuditEvent.Kind.RECEIVED,
                case=event.case,
                source=AuditEvent.Source.API,
                actor_label=event.actor_label,
            )
    assert verify_chain().ok

    result = verify_audit()

    assert result.returncode == 1
    assert _problems(result)[0].startswith(
        f"audit chain rebuilt since checkpoint {last} ({POLICY_EVENTS + 4} events"
    )
    # Ids come from a sequence: the new events carry new ids past the old head.
    assert AuditEvent.objects.order_by("-id").first().id > old_head.id
    assert f"event {old_head.id}, the head the checkpoint signed, is gone" in result.stderr
    assert "rebuilt (a fork)" in result.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_removing_the_newest_events_is_reported_as_a_truncation(
    on_postgres, alice, platform, spam_policy, verify_audit
):
    casework(alice, platform)
    last = _written(verify_audit())
    newest = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True)[:2])
    with as_superuser() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = ANY(%s)", [newest])
    assert verify_chain().ok  # a shorter chain still links up

    result = verify_audit()

    assert result.returncode == 1
    assert _problems(result)[0].startswith(
        f"audit chain truncated since checkpoint {last} ({POLICY_EVENTS + 4} events"
    )
    assert "the chain ends at event" in result.stderr
    assert f"with {POLICY_EVENTS + 2} events" in result.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_healthy_chain_that_grew_since_the_last_checkpoint_verifies(
    on_postgres, alice, platform, spam_policy, verify_audit, checkpoint_dir
):
    casework(alice, platform)
    first = _written(verify_audit())
    flag(platform)
    flag(platform)

    result = verify_audit()

    assert result.returncode == 0, result.stderr
    assert f"audit chain intact: {POLICY_EVENTS + 6} events" in result.stdout
    assert f"consistent with 1 signed checkpoints; latest: checkpoint {first}" in result.stdout
    second = _written(result)
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == sorted([first, second])

    quiet = verify_audit("--no-checkpoint")
    assert quiet.returncode == 0
    assert "consistent with 2 signed checkpoints" in quiet.stdout
    assert len(list(checkpoint_dir.iterdir())) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_forged_checkpoints_are_refused_and_named(
    on_postgres, alice, platform, spam_policy, verify_audit, checkpoint_dir
):
    casework(alice, platform)
    real = _written(verify_audit())
    other = Ed25519PrivateKey.generate()
    forged = _forge(
        checkpoint_dir, private_key=other, key_id=checkpoints.key_id(other.public_key())
    )

    result = verify_audit()

    assert result.returncode == 3
    assert f"checkpoint {forged} refused: signed with key id" in result.stderr
    assert f"consistent with 1 signed checkpoints; latest: checkpoint {real}" in result.stdout
    assert "checkpoint written" not in result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_tampered_or_malformed_checkpoint_file_is_refused(
    on_postgres, alice, platform, spam_policy, verify_audit, checkpoint_dir
):
    casework(alice, platform)
    real = _written(verify_audit())
    path = checkpoint_dir / real
    document = json.loads(path.read_bytes())
    # Lower the count the checkpoint signed, so a later truncation would pass: the file was
    # edited, and the signature no longer covers it.
    document["payload"]["events"] = 1
    path.chmod(0o600)
    path.write_bytes(checkpoints._file_bytes(document))
    # The same edit in a file renamed to match its new content.
    content = checkpoints._file_bytes(document)
    import hashlib

    renamed = real.rsplit("-", 1)[0] + f"-{hashlib.sha256(content).hexdigest()[:16]}.json"
    (checkpoint_dir / renamed).write_bytes(content)
    (checkpoint_dir / "notes.txt").write_text("hello")
    junk = "20260101T000000000000Z-event1-" + hashlib.sha256(b"{oops").hexdigest()[:16] + ".json"
    (checkpoint_dir / junk).write_bytes(b"{oops")

    result = verify_audit()

    assert result.returncode == 3, result.stdout + result.stderr
    assert f"checkpoint {real} refused: its content does not match the digest" in result.stderr
    assert f"checkpoint {renamed} refused: bad signature" in result.stderr
    assert "checkpoint notes.txt refused: not a checkpoint file name" in result.stderr
    assert f"checkpoint {junk} refused: malformed: not JSON" in result.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_an_auditor_verifies_with_the_public_key_alone(
    on_postgres, alice, platform, spam_policy, verify_audit, checkpoint_dir, checkpoint_key_file
):
    casework(alice, platform)
    _written(verify_audit())
    public = verify_audit("--public-key")
    assert public.returncode == 0
    pem = public.stdout.split("\n", 1)[1]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")

    auditor = {"AUDIT_CHECKPOINT_KEY_FILE": "", "AUDIT_CHECKPOINT_PUBLIC_KEY": pem}
    result = verify_audit(env=auditor)
    assert result.returncode == 0, result.stderr
    assert "consistent with 1 signed checkpoints" in result.stdout
    assert "verify-only: no signing key here" in result.stdout

    with as_superuser() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    assert verify_audit(env=auditor).returncode == 1
    no_key = verify_audit(env={"AUDIT_CHECKPOINT_KEY_FILE": ""})
    assert no_key.returncode == 4
    assert "no key to verify them" in no_key.stderr


# --- The beat task through a real worker ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_the_checkpoint_task_runs_on_a_real_worker(
    alice, platform, spam_policy, tmp_path, checkpoint_dir, checkpoint_key_file
):
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or not _postgres():
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    casework(alice, platform)
    head = AuditEvent.objects.order_by("-id").first()
    env = {
        "APPEALS_VAR_DIR": str(tmp_path / "var"),
        "AUDIT_CHECKPOINT_DIR": str(checkpoint_dir),
        "AUDIT_CHECKPOINT_KEY_FILE": str(checkpoint_key_file),
    }
    with celery_worker(broker_url=url, queues="default", env=env, log_path=tmp_path / "w.log"):
        tasks.write_audit_checkpoint.delay()
        wait_for(
            lambda: checkpoint_dir.exists() and list(checkpoint_dir.iterdir()),
            timeout=60,
            what="the worker's checkpoint",
        )
    good, refused = checkpoints.read_checkpoints(public_key=checkpoints.verifying_key())
    assert refused == []
    # The worker may append events of its own first (the fast tier triages the cases): the
    # checkpoint signs the chain's head as it stood then, at or after the head seen here.
    [checkpoint] = good
    signed = AuditEvent.objects.get(id=checkpoint.head_event_id)
    assert signed.id >= head.id and checkpoint.head_hash == signed.hash
    assert checkpoint.events == AuditEvent.objects.filter(id__lte=signed.id).count()
    redis.Redis.from_url(url).flushdb()
