"""Django's `migrate`, run as the owner role when MIGRATION_DATABASE_URL is set.

The web processes and workers connect with DATABASE_URL as a runtime role that cannot create or
alter tables (README, "Security"); a plain `manage.py migrate` connects as the owner instead and,
afterwards, brings the runtime role's privileges up to date for any tables the migrations added.
Without MIGRATION_DATABASE_URL this is Django's own command, unchanged.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.commands import migrate

from appeals import dbroles


class Command(migrate.Command):
    help = (
        "Updates database schema, connected as the owner role (MIGRATION_DATABASE_URL) when it "
        "is set; then grants the runtime role (DATABASE_URL) what it needs on new tables."
    )

    def handle(self, *args, **options):
        database = options["database"]
        runtime_role = settings.DATABASES[database].get("USER", "")
        if not options["skip_checks"]:
            # As the app connects (the runtime role): the checks judge that role, not the owner.
            self.check(databases=[database])
            options["skip_checks"] = True
        with dbroles.connected_as_owner(database) as connection:
            super().handle(*args, **options)
            if (
                connection.vendor != "postgresql"
                or dbroles.owner_settings() is None
                or runtime_role == connection.settings_dict.get("USER")
                or options["plan"]
            ):
                return
            if not dbroles.role_exists(connection, runtime_role):
                self.stderr.write(
                    f"The runtime role {runtime_role!r} (DATABASE_URL) does not exist yet: "
                    "create it with manage.py grant_runtime_role."
                )
                return
            dbroles.grant_runtime_privileges(connection, runtime_role)
            if options["verbosity"] >= 1:
                self.stdout.write(
                    f"Privileges of the runtime role {runtime_role!r} brought up to date "
                    f"(audit table: {', '.join(dbroles.AUDIT_RUNTIME_PRIVILEGES)} only)."
                )
