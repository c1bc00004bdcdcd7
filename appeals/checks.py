"""System checks on the database the app connects to (`manage.py check --database default`;
`manage.py migrate` runs them too): the audit table's guards are in place, and on PostgreSQL
the role the app connects as cannot take them down.
"""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError, connections

from . import dbroles


@register(Tags.database)
def check_audit_guards(app_configs=None, databases=None, **kwargs):
    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        try:
            missing = dbroles.missing_audit_triggers(connection)
            problems = []
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT current_user")
                    role = cursor.fetchone()[0]
                problems = dbroles.role_problems(connection, role)
        except DatabaseError as exc:
            warnings.append(
                Warning(
                    f"could not inspect the audit table's guards on {alias!r}: {exc}",
                    id="appeals.W010",
                )
            )
            continue
        if missing:
            warnings.append(
                Warning(
                    f"the audit table {dbroles.AUDIT_TABLE} on {alias!r} lacks its append-only "
                    f"trigger(s) {', '.join(missing)}",
                    hint="Run manage.py migrate (migration appeals 0005_audit_guards restores "
                    "them); on PostgreSQL, ALTER TABLE … ENABLE TRIGGER USER as the owner.",
                    id="appeals.W011",
                )
            )
        for problem in problems:
            warnings.append(
                Warning(
                    f"the app connects to {alias!r} as a role that can rewrite the audit log: "
                    f"{problem}",
                    hint="Connect the app (DATABASE_URL) as a runtime role and migrate as the "
                    "owner (MIGRATION_DATABASE_URL); manage.py grant_runtime_role sets the "
                    "runtime role up. README, Security.",
                    id="appeals.W012",
                )
            )
    return warnings
