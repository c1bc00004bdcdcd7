"""Create the runtime role the app connects as, and grant it what it needs and no more.

Run as the owner (MIGRATION_DATABASE_URL, or DATABASE_URL with --role naming another role).
Idempotent: run it again at any time; `manage.py migrate` repeats the grants after migrating.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction

from appeals import dbroles


class Command(BaseCommand):
    help = (
        "Create the PostgreSQL runtime role (the user in DATABASE_URL, or --role) if it is "
        "missing and grant it SELECT/INSERT/UPDATE/DELETE on the app's tables but only "
        "SELECT and INSERT on the audit table. Connects as the owner (MIGRATION_DATABASE_URL)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--role",
            help="the runtime role (default: the user in DATABASE_URL)",
        )
        parser.add_argument(
            "--no-create",
            action="store_true",
            help="fail instead of creating the role when it does not exist",
        )

    def handle(self, *args, role=None, no_create=False, verbosity=1, **options):
        configured = settings.DATABASES[DEFAULT_DB_ALIAS]
        runtime_role = role or configured.get("USER") or ""
        try:
            dbroles.quote_role(runtime_role)
        except ValueError as exc:
            raise CommandError(f"runtime role: {exc}") from None
        # The password the app will log in with, when the role is the one DATABASE_URL names.
        password = configured.get("PASSWORD") if runtime_role == configured.get("USER") else ""
        with dbroles.connected_as_owner(DEFAULT_DB_ALIAS) as connection:
            if connection.vendor != "postgresql":
                raise CommandError(
                    "database roles are a PostgreSQL matter: DATABASE_URL is "
                    f"{connection.vendor}, where the audit table's triggers are the guard"
                )
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_user")
                owner = cursor.fetchone()[0]
            if runtime_role == owner:
                raise CommandError(
                    f"the runtime role and the owner are the same role ({owner!r}): set "
                    "MIGRATION_DATABASE_URL to the owner and DATABASE_URL to the runtime role, "
                    "or name the runtime role with --role"
                )
            with transaction.atomic(using=connection.alias):
                created = False
                if not dbroles.role_exists(connection, runtime_role):
                    if no_create:
                        raise CommandError(f"the role {runtime_role!r} does not exist")
                    created = self._create_role(connection, runtime_role, password)
                problems = dbroles.role_problems(connection, runtime_role)
                # Privileges it holds are taken away below; ownership or superuser is not.
                fatal = [p for p in problems if f"role {runtime_role!r} holds " not in p]
                if fatal:
                    raise CommandError(
                        "refusing to use this role as the runtime role: " + "; ".join(fatal)
                    )
                statements = dbroles.grant_runtime_privileges(connection, runtime_role)
                remaining = dbroles.role_problems(connection, runtime_role)
                if remaining:
                    raise CommandError("; ".join(remaining))
        if verbosity >= 1:
            self.stdout.write(
                f"Runtime role {runtime_role!r}: {'created' if created else 'exists'}; "
                f"owner {owner!r}."
            )
            if verbosity >= 2:
                for statement in statements:
                    self.stdout.write(f"  {statement};")
            self.stdout.write(
                f"Granted: SELECT, INSERT, UPDATE, DELETE on the app's tables; on the audit "
                f"table {dbroles.AUDIT_TABLE} only {', '.join(dbroles.AUDIT_RUNTIME_PRIVILEGES)}; "
                "the same for tables the owner creates later (default privileges)."
            )

    def _create_role(self, connection, role: str, password: str) -> bool:
        quoted = dbroles.quote_role(role)
        sql = (
            f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            "NOBYPASSRLS"
        )
        with connection.cursor() as cursor:
            try:
                with transaction.atomic(using=connection.alias):
                    if password:
                        # Quoted by the server: CREATE ROLE takes no bind parameters.
                        cursor.execute("SELECT quote_literal(%s)", [password])
                        cursor.execute(f"{sql} PASSWORD {cursor.fetchone()[0]}")
                    else:
                        cursor.execute(sql)
            except DatabaseError as exc:
                raise CommandError(
                    f"could not create the role {role!r} ({exc}). Ask a superuser to run: "
                    f"{sql} PASSWORD '…';  then run this command again"
                ) from None
        return True
