"""The app's own database role cannot rewrite the audit log, and the guards survive migrations.

The adversary here is the application's runtime role (DATABASE_URL): it may SELECT and INSERT on
the audit table and nothing else there. Every way it could empty or rewrite the log is tried and
must be refused: UPDATE, DELETE, TRUNCATE (directly or cascading from another table), disabling,
dropping or replacing the triggers, taking the table over, and session settings (including the
`appeals.allow_audit_truncate` escape hatch that migration 0005_audit_guards removed). The table's
owner is refused by the triggers too, unless it switches them off on purpose.

On SQLite the triggers are the whole guard: they must exist after a fresh `migrate` and after
upgrading a database that migration 0003 left without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.db import DatabaseError, connection, transaction

from appeals import dbroles as app_dbroles
from appeals.audit import verify_chain
from appeals.models import AuditEvent
from tests import dbroles
from tests.builders import flag

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE = app_dbroles.AUDIT_TABLE


def _needs_two_roles():
    if not dbroles.two_roles():
        pytest.skip(
            "needs PostgreSQL with an owner and a runtime role: run through `make test` "
            "(scripts/services.sh env sets DATABASE_URL and MIGRATION_DATABASE_URL)"
        )


def _current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


def _manage(*args: str, env: dict, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "reviewer.settings",
            "CELERY_BROKER_URL": "memory://",
            "TEST_DATABASE_NAME": "",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def events(platform, spam_policy):
    flag(platform)
    flag(platform, external_id="second")
    return list(AuditEvent.objects.order_by("id"))


# --- the runtime role -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_tests_run_as_a_runtime_role_that_is_not_the_owner():
    _needs_two_roles()
    role = _current_user()
    assert role == dbroles.runtime_role()
    assert role != app_dbroles.owner_settings()["USER"]
    assert app_dbroles.role_problems(connection, role) == []
    assert app_dbroles.missing_audit_triggers(connection) == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'INSERT')",
            [role, TABLE, role, TABLE],
        )
        assert cursor.fetchone() == (True, True)


RUNTIME_ROLE_REFUSED = {
    "update": f"UPDATE {TABLE} SET actor_label = 'mallory'",
    "delete": f"DELETE FROM {TABLE}",
    "truncate": f"TRUNCATE {TABLE}",
    "truncate cascading from the cases": "TRUNCATE appeals_case CASCADE",
    "select for update": f"SELECT id FROM {TABLE} FOR UPDATE",
    "lock the table": f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE",
    "disable one trigger": f"ALTER TABLE {TABLE} DISABLE TRIGGER appeals_auditevent_no_update",
    "disable user triggers": f"ALTER TABLE {TABLE} DISABLE TRIGGER USER",
    "disable all triggers": f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL",
    "drop a trigger": f"DROP TRIGGER appeals_auditevent_no_delete ON {TABLE}",
    "replace the trigger function": (
        "CREATE OR REPLACE FUNCTION appeals_audit_refuse_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$"
    ),
    "drop the trigger function": "DROP FUNCTION appeals_audit_refuse_change() CASCADE",
    "add a trigger of its own": (
        f"CREATE TRIGGER rewrite BEFORE INSERT ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"
    ),
    "add a rule": f"CREATE RULE hide AS ON INSERT TO {TABLE} DO INSTEAD NOTHING",
    "rename the table": f"ALTER TABLE {TABLE} RENAME TO appeals_auditevent_old",
    "take the table over": f"ALTER TABLE {TABLE} OWNER TO CURRENT_USER",
    "drop the table": f"DROP TABLE {TABLE} CASCADE",
    "replication role (triggers off)": "SET session_replication_role = replica",
    "become the owner": "SET ROLE {owner}",
    "become the owner for the session": "SET SESSION AUTHORIZATION {owner}",
    "create a table beside it": "CREATE TABLE appeals_auditevent_copy (id int)",
}


@pytest.mark.django_db
@pytest.mark.parametrize("statement", RUNTIME_ROLE_REFUSED.values(), ids=RUNTIME_ROLE_REFUSED)
def test_the_runtime_role_cannot_touch_the_audit_log(events, statement):
    _needs_two_roles()
    statement = statement.format(owner=app_dbroles.owner_settings()["USER"])
    with pytest.raises(DatabaseError, match="permission denied|must be owner"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(statement)
    assert list(AuditEvent.objects.order_by("id")) == events
    assert AuditEvent.objects.get(id=events[0].id).actor_label == events[0].actor_label
    assert app_dbroles.missing_audit_triggers(connection) == []
    assert verify_chain().ok


@pytest.mark.django_db
def test_the_old_truncate_escape_hatch_lets_nothing_through(events):
    _needs_two_roles()
    with pytest.raises(DatabaseError, match="permission denied"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL appeals.allow_audit_truncate = 'on'")
            cursor.execute(f"TRUNCATE {TABLE} CASCADE")
    assert AuditEvent.objects.count() == len(events)


@pytest.mark.django_db(transaction=True)
def test_even_the_owner_is_refused_by_the_triggers_unless_it_switches_them_off(events):
    """The owner could switch them off (that is what the chain and checkpoints are for), but a
    hurried operator's UPDATE, DELETE or TRUNCATE, or the old session setting, is refused."""
    _needs_two_roles()
    import psycopg

    for statement in (
        f"UPDATE {TABLE} SET actor_label = 'mallory'",
        f"DELETE FROM {TABLE}",
        f"TRUNCATE {TABLE} CASCADE",
    ):
        operation = statement.split()[0]
        with dbroles.owner_connection() as owner:
            owner.execute("SET appeals.allow_audit_truncate = 'on'")
            owner.execute("SET CONSTRAINTS ALL IMMEDIATE")
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match=f"append-only: {operation}"
            ):
                owner.execute(statement)
    assert AuditEvent.objects.count() == len(events)
    assert verify_chain().ok


# --- the system check ---------------------------------------------------------------------------


def _our_warnings() -> list:
    return [m for m in run_checks(databases=["default"]) if m.id.startswith("appeals.W01")]


@pytest.mark.django_db
def test_the_check_is_quiet_for_a_proper_runtime_role():
    _needs_two_roles()
    assert _our_warnings() == []


@pytest.mark.django_db
def test_the_check_warns_when_the_app_connects_as_the_owner():
    _needs_two_roles()
    owner_url = dbroles.database_url(app_dbroles.owner_settings())
    result = _manage(
        "check",
        "--database",
        "default",
        env={"DATABASE_URL": owner_url, "MIGRATION_DATABASE_URL": ""},
    )
    assert "appeals.W012" in result.stderr, result.stderr
    assert "owns the audit table appeals_auditevent" in result.stderr
    assert "owns the schema" in result.stderr


@pytest.mark.django_db
def test_the_check_names_a_superuser_role():
    _needs_two_roles()
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_roles WHERE rolsuper LIMIT 1")
        superuser = cursor.fetchone()[0]
    problems = app_dbroles.role_problems(connection, superuser)
    assert problems == [f"role {superuser!r} is a superuser: it can do anything to the audit table"]


@pytest.mark.django_db(transaction=True)
def test_the_check_warns_about_a_switched_off_trigger_and_stray_privileges():
    _needs_two_roles()
    runtime = dbroles.runtime_role()
    with dbroles.owner_connection() as owner:
        owner.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER appeals_auditevent_no_truncate")
        owner.execute(f"GRANT UPDATE, TRUNCATE ON {TABLE} TO {runtime}")
        owner.execute(f"GRANT CREATE ON SCHEMA public TO {runtime}")
    try:
        messages = {}
        for message in _our_warnings():
            messages.setdefault(message.id, []).append(message.msg)
        assert "appeals_auditevent_no_truncate" in messages["appeals.W011"][0]
        assert len(messages["appeals.W012"]) == 2
        assert "holds UPDATE, TRUNCATE on the audit table" in messages["appeals.W012"][0]
        assert "holds CREATE on the schema 'public'" in messages["appeals.W012"][1]
        # The command takes the privileges back; it is safe to run again and again.
        for _ in range(2):
            result = _manage(
                "grant_runtime_role",
                env={
                    "DATABASE_URL": dbroles.database_url({"USER": runtime}),
                    "MIGRATION_DATABASE_URL": dbroles.database_url(app_dbroles.owner_settings()),
                },
            )
            assert result.returncode == 0, result.stderr
            assert f"Runtime role {runtime!r}: exists" in result.stdout
        assert "appeals.W012" not in {m.id for m in _our_warnings()}
    finally:
        with dbroles.owner_connection() as owner:
            owner.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
            owner.execute(f"REVOKE UPDATE, TRUNCATE ON {TABLE} FROM {runtime}")
            owner.execute(f"REVOKE CREATE ON SCHEMA public FROM {runtime}")
    assert _our_warnings() == []


@pytest.mark.django_db(transaction=True)
def test_the_check_warns_when_the_runtime_role_may_become_the_owner():
    """Membership in the owner role is ownership: `SET ROLE` and the triggers are gone."""
    _needs_two_roles()
    superuser_url = dbroles.superuser_url()
    if not superuser_url:
        pytest.skip("needs SUPERUSER_DATABASE_URL (scripts/services.sh env) to grant membership")
    import psycopg

    owner, runtime = app_dbroles.owner_settings()["USER"], dbroles.runtime_role()
    with psycopg.connect(superuser_url, autocommit=True) as su:
        su.execute(f"GRANT {owner} TO {runtime}")
        try:
            warnings = _our_warnings()
            assert {w.id for w in warnings} == {"appeals.W012"}
            assert f"is a member of its owner '{owner}'" in warnings[0].msg
        finally:
            su.execute(f"REVOKE {owner} FROM {runtime}")
    assert _our_warnings() == []


# --- grant_runtime_role refuses what would not be safe -------------------------------------------


@pytest.mark.django_db
def test_grant_runtime_role_refuses_the_owner_as_the_runtime_role():
    _needs_two_roles()
    owner_url = dbroles.database_url(app_dbroles.owner_settings())
    result = _manage(
        "grant_runtime_role", env={"DATABASE_URL": owner_url, "MIGRATION_DATABASE_URL": ""}
    )
    assert result.returncode == 1
    assert "the runtime role and the owner are the same role" in result.stderr


@pytest.mark.django_db
def test_grant_runtime_role_refuses_a_superuser_and_says_what_it_cannot_create():
    _needs_two_roles()
    env = {
        "DATABASE_URL": dbroles.database_url({"USER": dbroles.runtime_role()}),
        "MIGRATION_DATABASE_URL": dbroles.database_url(app_dbroles.owner_settings()),
    }
    result = _manage("grant_runtime_role", "--role", "postgres", env=env)
    assert result.returncode == 1
    assert "refusing to use this role as the runtime role" in result.stderr
    assert "superuser" in result.stderr
    # The owner has no CREATEROLE here: the command says so, with the statement to hand on.
    result = _manage("grant_runtime_role", "--role", "appeals_nobody", env=env)
    assert result.returncode == 1
    assert "could not create the role 'appeals_nobody'" in result.stderr
    assert 'Ask a superuser to run: CREATE ROLE "appeals_nobody" LOGIN' in result.stderr
    result = _manage("grant_runtime_role", "--role", 'x"; DROP TABLE y; --', env=env)
    assert result.returncode == 1
    assert "is not a usable role name" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_grant_runtime_role_creates_a_missing_role_with_the_apps_password():
    _needs_two_roles()
    superuser_url = dbroles.superuser_url()
    if not superuser_url:
        pytest.skip("needs SUPERUSER_DATABASE_URL (scripts/services.sh env) to create a role")
    import dj_database_url
    import psycopg

    superuser = dj_database_url.parse(superuser_url)
    role = f"appeals_new_{uuid.uuid4().hex[:8]}"
    env = {
        "DATABASE_URL": dbroles.database_url({"USER": role, "PASSWORD": "s3cret pass'word"}),
        "MIGRATION_DATABASE_URL": dbroles.database_url(superuser),
    }
    try:
        result = _manage("grant_runtime_role", env=env)
        assert result.returncode == 0, result.stderr
        assert f"Runtime role {role!r}: created" in result.stdout
        # It logs in with the password DATABASE_URL gives, and sees what the app needs.
        params = connection.settings_dict
        with psycopg.connect(
            host=params["HOST"],
            port=params["PORT"],
            dbname=params["NAME"],
            user=role,
            password="s3cret pass'word",
        ) as conn:
            conn.execute(f"SELECT count(*) FROM {TABLE}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DELETE FROM {TABLE}")
        assert app_dbroles.role_problems(connection, role) == []
    finally:
        with psycopg.connect(superuser_url.rsplit("/", 1)[0] + f"/{params['NAME']}") as su:
            su.execute(f'DROP OWNED BY "{role}"')
            su.execute(f'DROP ROLE IF EXISTS "{role}"')


# --- migrate as the owner, on a fresh PostgreSQL database ---------------------------------------


@pytest.mark.django_db
def test_migrate_runs_as_the_owner_and_leaves_the_runtime_role_append_only():
    """A plain `manage.py migrate` with MIGRATION_DATABASE_URL set: the runtime role alone could
    not have done it; the tables belong to the owner; the runtime role gets what it needs. The
    database is first taken to 0003, as an existing installation would be, where the old
    session setting still let the owner's TRUNCATE through."""
    _needs_two_roles()
    import psycopg

    owner = app_dbroles.owner_settings()
    runtime = dbroles.runtime_role()
    name = f"appeals_migrate_{uuid.uuid4().hex[:8]}"

    def url(user_settings):
        return dbroles.database_url(user_settings).rsplit("/", 1)[0] + f"/{name}"

    def as_owner(*statements, params=()):
        with dbroles._connect(owner, name) as conn:
            for sql in statements:
                cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else None

    env = {"DATABASE_URL": url({"USER": runtime}), "MIGRATION_DATABASE_URL": url(owner)}
    with dbroles._connect(owner, connection.settings_dict["NAME"]) as admin:
        admin.autocommit = True
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        alone = _manage("migrate", env={**env, "MIGRATION_DATABASE_URL": ""})
        assert alone.returncode != 0
        assert "permission denied for schema public" in alone.stderr

        result = _manage("migrate", "appeals", "0003_indexes", env=env)
        assert result.returncode == 0, result.stderr
        # The hole this work closes: the session setting let TRUNCATE through.
        as_owner("SET appeals.allow_audit_truncate = 'on'", f"TRUNCATE {TABLE} CASCADE")

        result = _manage("migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert f"Privileges of the runtime role {runtime!r} brought up to date" in result.stdout
        assert "appeals.W01" not in result.stderr, result.stderr  # the checks judged the app's role
        assert as_owner(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ) == [(owner["USER"],)]
        privileges = as_owner(
            "SELECT p, has_table_privilege(%s, %s, p) FROM unnest(ARRAY['SELECT', 'INSERT', "
            "'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER']) AS p",
            params=[runtime, TABLE],
        )
        assert dict(privileges) == {
            "SELECT": True,
            "INSERT": True,
            "UPDATE": False,
            "DELETE": False,
            "TRUNCATE": False,
            "TRIGGER": False,
        }
        assert as_owner(
            "SELECT has_table_privilege(%s, 'appeals_case', 'UPDATE')", params=[runtime]
        ) == [(True,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only: TRUNCATE"):
            as_owner("SET appeals.allow_audit_truncate = 'on'", f"TRUNCATE {TABLE} CASCADE")
        check = _manage("check", "--database", "default", env=env)
        assert "appeals.W01" not in check.stderr, check.stderr
    finally:
        with dbroles._connect(owner, connection.settings_dict["NAME"]) as admin:
            admin.autocommit = True
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- SQLite: the triggers after a fresh migrate and after an upgrade ----------------------------

SQLITE_SCRIPT = r"""
import sys
import django
django.setup()
from django.db import transaction
from appeals.audit import record_event
from appeals.models import AuditEvent
with transaction.atomic():
    record_event(
        AuditEvent.Kind.EXPORTED,
        case=None,
        source=AuditEvent.Source.COMMAND,
        actor_label="test",
        data={"n": 1},
    )
"""


def _sqlite_env(path: Path) -> dict:
    return {"DATABASE_URL": f"sqlite:///{path}", "MIGRATION_DATABASE_URL": ""}


def _sqlite_triggers(path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [TABLE]
        ).fetchall()
    return {name for (name,) in rows}


def _assert_sqlite_refuses_changes(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        before = db.execute(f"SELECT id, actor_label, hash FROM {TABLE}").fetchall()
        assert before
        with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE"):
            db.execute(f"UPDATE {TABLE} SET actor_label = 'mallory'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE"):
            db.execute(f"DELETE FROM {TABLE}")
        db.rollback()
        assert db.execute(f"SELECT id, actor_label, hash FROM {TABLE}").fetchall() == before
    finally:
        db.close()


def _record_an_event(env: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "reviewer.settings",
            "CELERY_BROKER_URL": "memory://",
            "PYTHONPATH": str(REPO_ROOT),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_sqlite_refuses_update_and_delete_after_a_fresh_migrate(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    result = _manage("migrate", env=_sqlite_env(path))
    assert result.returncode == 0, result.stderr
    assert _sqlite_triggers(path) == set(app_dbroles.AUDIT_TRIGGERS["sqlite"])
    _record_an_event(_sqlite_env(path))
    _assert_sqlite_refuses_changes(path)
    check = _manage("check", "--database", "default", env=_sqlite_env(path))
    assert "appeals.W011" not in check.stderr, check.stderr


def test_sqlite_upgrade_restores_the_triggers_that_0003_dropped(tmp_path):
    path = tmp_path / "upgraded.sqlite3"
    result = _manage("migrate", "appeals", "0003_indexes", env=_sqlite_env(path))
    assert result.returncode == 0, result.stderr
    assert _sqlite_triggers(path) == set()  # the table rebuild in 0003 lost 0002's trigger
    check = _manage("check", "--database", "default", env=_sqlite_env(path))
    assert "appeals.W011" in check.stderr, check.stderr

    result = _manage("migrate", env=_sqlite_env(path))
    assert result.returncode == 0, result.stderr
    assert _sqlite_triggers(path) == set(app_dbroles.AUDIT_TRIGGERS["sqlite"])
    _record_an_event(_sqlite_env(path))
    _assert_sqlite_refuses_changes(path)


@pytest.mark.django_db
def test_the_test_database_has_its_guards():
    """Whichever database this run uses, the migrated test database carries every trigger
    (and the flushes between transactional tests put them back)."""
    assert app_dbroles.missing_audit_triggers(connection) == []
    assert {m.id for m in _our_warnings()} & {"appeals.W011"} == set()


@pytest.mark.django_db
def test_real_workers_connect_as_the_runtime_role():
    """tests/workers.py starts Celery workers with the URL of the role the tests run as."""
    _needs_two_roles()
    import dj_database_url

    from tests.workers import test_database_url

    worker = dj_database_url.parse(test_database_url())
    assert worker["USER"] == dbroles.runtime_role() == _current_user()
    assert worker["NAME"] == connection.settings_dict["NAME"]
