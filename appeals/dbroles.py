"""The two database roles on PostgreSQL, and the guards that keep the audit table append-only.

The owner role (MIGRATION_DATABASE_URL) owns the tables and runs the migrations. The runtime
role (DATABASE_URL), which the web processes and workers use, may read every table and change
the ordinary ones, but may only SELECT and INSERT on the audit table: it cannot UPDATE, DELETE,
TRUNCATE, ALTER it, or disable or drop its triggers, because all of that needs privileges it is
never granted or ownership it does not have. README, "Security", says how to set the roles up.

What lives here: switching a connection to the owner for a migration, the idempotent grants
(`grant_runtime_privileges`), and the inspections behind the system checks (appeals.checks).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

AUDIT_TABLE = "appeals_auditevent"
# The triggers that refuse changes to the audit table (migrations 0002 and 0005_audit_guards).
AUDIT_TRIGGERS = {
    "postgresql": (
        "appeals_auditevent_no_update",
        "appeals_auditevent_no_delete",
        "appeals_auditevent_no_truncate",
    ),
    "sqlite": ("appeals_auditevent_no_update", "appeals_auditevent_no_delete"),
}
# What the runtime role may do to the audit table, and what it must never be able to do.
AUDIT_RUNTIME_PRIVILEGES = ("SELECT", "INSERT")
AUDIT_REFUSED_PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def owner_settings() -> dict | None:
    """The owner's connection settings (MIGRATION_DATABASE_URL), or None when it is not set."""
    return getattr(settings, "MIGRATION_DATABASE", None)


def quote_role(name: str) -> str:
    """A role name as an SQL identifier; names that would need quoting are refused."""
    if not _ROLE_NAME.match(name or ""):
        raise ValueError(
            f"{name!r} is not a usable role name: letters, digits, _ and $, starting with a "
            "letter or _, at most 63 characters"
        )
    return f'"{name}"'


@contextmanager
def connected_as_owner(alias: str = DEFAULT_DB_ALIAS) -> Iterator[BaseDatabaseWrapper]:
    """Point `alias`'s connection at the owner role for the block, then back at the runtime role.

    A no-op without MIGRATION_DATABASE_URL (one role does both jobs) or when the alias already
    connects as the owner. The settings dict is replaced, not edited, so `settings.DATABASES`
    keeps naming the runtime role (the grants after a migration read it from there).
    """
    connection = connections[alias]
    owner = owner_settings()
    if (
        owner is None
        or alias != DEFAULT_DB_ALIAS  # MIGRATION_DATABASE_URL is the owner of DATABASE_URL's
        or connection.vendor != "postgresql"
        or owner.get("USER") == connection.settings_dict.get("USER")
    ):
        yield connection
        return
    runtime_settings = connection.settings_dict
    connection.close()
    connection.settings_dict = {
        **runtime_settings,
        "USER": owner.get("USER", ""),
        "PASSWORD": owner.get("PASSWORD", ""),
    }
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict = runtime_settings


def role_exists(connection, role: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        return cursor.fetchone() is not None


def role_problems(connection, role: str) -> list[str]:
    """Why `role` would not be a safe runtime role: it is a superuser, or it owns (or may act as
    the owner of) the audit table or its schema, or it holds privileges it must not have there.

    Empty when the audit table does not exist yet or the role is fine.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.rolsuper, r.rolbypassrls,
                   pg_has_role(r.oid, c.relowner, 'MEMBER') AS acts_as_table_owner,
                   pg_get_userbyid(c.relowner) AS table_owner,
                   pg_has_role(r.oid, n.nspowner, 'MEMBER') AS acts_as_schema_owner,
                   n.nspname
            FROM pg_roles r, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE r.rolname = %s AND c.oid = to_regclass(%s)
            """,
            [role, AUDIT_TABLE],
        )
        row = cursor.fetchone()
        if row is None:
            return []
        superuser, bypassrls, table_owner_ok, table_owner, schema_owner_ok, schema = row
        problems = []
        if superuser:
            problems.append(f"role {role!r} is a superuser: it can do anything to the audit table")
            return problems
        if table_owner_ok:
            problems.append(
                f"role {role!r} owns the audit table {AUDIT_TABLE} (or is a member of its owner "
                f"{table_owner!r}): it can disable or drop the triggers and rewrite or empty it"
            )
        if schema_owner_ok:
            problems.append(
                f"role {role!r} owns the schema {schema!r} (or is a member of its owner): it can "
                f"drop the audit table {AUDIT_TABLE}"
            )
        held = []
        for privilege in AUDIT_REFUSED_PRIVILEGES:
            check = (
                "has_any_column_privilege"
                if privilege in ("UPDATE", "REFERENCES")
                else ("has_table_privilege")
            )
            cursor.execute(f"SELECT {check}(%s, %s, %s)", [role, AUDIT_TABLE, privilege])
            if cursor.fetchone()[0]:
                held.append(privilege)
        if held:
            problems.append(
                f"role {role!r} holds {', '.join(held)} on the audit table {AUDIT_TABLE}; it "
                "needs only SELECT and INSERT (manage.py grant_runtime_role takes the rest away)"
            )
        cursor.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", [role, schema])
        if cursor.fetchone()[0]:
            # CVE-2018-1058: functions or operators planted in a schema on the owner's search
            # path run with the owner's rights the next time it migrates.
            problems.append(
                f"role {role!r} holds CREATE on the schema {schema!r}: it could plant functions "
                "that run as the owner during a migration (REVOKE CREATE ON SCHEMA "
                f"{schema} FROM PUBLIC)"
            )
        if bypassrls:
            problems.append(f"role {role!r} bypasses row-level security")
        return problems


def missing_audit_triggers(connection) -> list[str]:
    """The append-only triggers that should be on the audit table and are not (empty when the
    table does not exist yet)."""
    expected = AUDIT_TRIGGERS.get(connection.vendor)
    if expected is None:
        return []
    with connection.cursor() as cursor:
        if AUDIT_TABLE not in connection.introspection.table_names(cursor):
            return []
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) "
                "AND NOT tgisinternal AND tgenabled <> 'D'",
                [AUDIT_TABLE],
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                [AUDIT_TABLE],
            )
        present = {row[0] for row in cursor.fetchall()}
    return [name for name in expected if name not in present]


def grant_runtime_privileges(connection, role: str) -> list[str]:
    """Give `role` what the app needs and no more; run as the owner. Idempotent.

    Every table in the schema: SELECT, INSERT, UPDATE, DELETE (never TRUNCATE, TRIGGER or
    REFERENCES). The audit table: SELECT and INSERT only. django_migrations: SELECT only.
    Sequences: USAGE and SELECT. Default privileges do the same for tables the owner creates
    later; `manage.py migrate` (as the owner) runs this again after migrating, which also takes
    UPDATE and DELETE on the audit table back if a migration ever rebuilds it.

    Returns the statements run.
    """
    quoted = quote_role(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_schema()")
        owner, schema = cursor.fetchone()
        tables = set(connection.introspection.table_names(cursor))
    schema_q = connection.ops.quote_name(schema)
    owner_q = quote_role(owner)
    statements = [
        f"GRANT USAGE ON SCHEMA {schema_q} TO {quoted}",
        f"REVOKE CREATE ON SCHEMA {schema_q} FROM {quoted}",
        # PostgreSQL 15's default; older clusters let every role create in public.
        f"REVOKE CREATE ON SCHEMA {schema_q} FROM PUBLIC",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_q} TO {quoted}",
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema_q} FROM {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_q} TO {quoted}",
        f"REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA {schema_q} FROM {quoted}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_q} IN SCHEMA {schema_q} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_q} IN SCHEMA {schema_q} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {quoted}",
    ]
    refused = ", ".join(AUDIT_REFUSED_PRIVILEGES)
    if AUDIT_TABLE in tables:
        statements += [
            f"REVOKE {refused} ON {AUDIT_TABLE} FROM {quoted}",
            f"REVOKE {refused} ON {AUDIT_TABLE} FROM PUBLIC",
        ]
    if "django_migrations" in tables:
        statements.append(
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON django_migrations FROM {quoted}"
        )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return statements
