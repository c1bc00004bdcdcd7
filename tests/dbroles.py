"""The test database's two roles: created and migrated by the owner, used by the runtime role.

scripts/services.sh creates `appeals_owner` (MIGRATION_DATABASE_URL) and `appeals_app`
(DATABASE_URL). tests/conftest.py creates and migrates the test database as the owner, grants the
runtime role its privileges, and runs every test connected as the runtime role, so the tests see
what the deployed app sees. Django's flush between transactional tests (TRUNCATE on PostgreSQL,
DELETE on SQLite) is refused to the runtime role and by the audit table's triggers, so it runs
through `flushing_as_owner`: as the owner, with the audit table's triggers off inside the flush's
own transaction (no other session ever sees them off).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import connections, transaction

from appeals import dbroles

AUDIT_TABLE = dbroles.AUDIT_TABLE


def two_roles(alias: str = "default") -> bool:
    """Whether the tests run with an owner and a runtime role (PostgreSQL through `make test`)."""
    owner = dbroles.owner_settings()
    connection = connections[alias]
    return connection.vendor == "postgresql" and owner is not None


def _credentials(settings_dict: dict) -> dict:
    return {"USER": settings_dict.get("USER", ""), "PASSWORD": settings_dict.get("PASSWORD", "")}


RUNTIME_CREDENTIALS: dict[str, dict] = {}


def switch_to_owner(alias: str = "default") -> None:
    """Connect `alias` as the owner from now on (editing the settings in place, as
    pytest-django's own test-database set-up does)."""
    connection = connections[alias]
    RUNTIME_CREDENTIALS.setdefault(alias, _credentials(connection.settings_dict))
    connection.close()
    connection.settings_dict.update(_credentials(dbroles.owner_settings()))


def switch_to_runtime(alias: str = "default") -> None:
    connection = connections[alias]
    connection.close()
    connection.settings_dict.update(RUNTIME_CREDENTIALS[alias])


def runtime_role(alias: str = "default") -> str:
    return RUNTIME_CREDENTIALS.get(alias, _credentials(connections[alias].settings_dict))["USER"]


def _sqlite_guards() -> list[str]:
    return importlib.import_module("appeals.migrations.0005_audit_guards").SQLITE_FORWARD


@contextmanager
def flushing_as_owner(aliases: Iterable[str]) -> Iterator[None]:
    """Let Django's flush empty the audit table, for the block only, in one transaction."""
    aliases = list(aliases)
    for alias in aliases:
        if two_roles(alias):
            switch_to_owner(alias)
    try:
        with _atomic_all(aliases):
            for alias in aliases:
                connection = connections[alias]
                with connection.cursor() as cursor:
                    if connection.vendor == "postgresql":
                        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER USER")
                    elif connection.vendor == "sqlite":
                        cursor.execute("DROP TRIGGER IF EXISTS appeals_auditevent_no_delete")
            yield
            for alias in aliases:
                connection = connections[alias]
                with connection.cursor() as cursor:
                    if connection.vendor == "postgresql":
                        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER USER")
                    elif connection.vendor == "sqlite":
                        for statement in _sqlite_guards():
                            cursor.execute(statement)
    finally:
        for alias in aliases:
            if two_roles(alias):
                switch_to_runtime(alias)


@contextmanager
def _atomic_all(aliases: list[str]) -> Iterator[None]:
    if not aliases:
        yield
        return
    with transaction.atomic(using=aliases[0]), _atomic_all(aliases[1:]):
        yield


def _connect(url_settings: dict, dbname: str):
    import psycopg

    return psycopg.connect(
        host=url_settings.get("HOST") or "127.0.0.1",
        port=url_settings.get("PORT") or 5432,
        user=url_settings.get("USER"),
        password=url_settings.get("PASSWORD") or None,
        dbname=dbname,
        autocommit=False,
    )


@contextmanager
def owner_connection(alias: str = "default"):
    """A psycopg connection to the test database as its owner, committed at the end: the
    tamperer who holds the database (but is not a superuser)."""
    with _connect(dbroles.owner_settings(), connections[alias].settings_dict["NAME"]) as conn:
        yield conn


def superuser_url() -> str:
    """SUPERUSER_DATABASE_URL (scripts/services.sh env), or empty."""
    return os.environ.get("SUPERUSER_DATABASE_URL", "")


def database_url(user_settings: dict, alias: str = "default") -> str:
    """A postgres:// URL to the test database for the given credentials."""
    from urllib.parse import quote

    params = connections[alias].settings_dict
    password = user_settings.get("PASSWORD") or ""
    auth = quote(user_settings.get("USER") or "postgres", safe="") + (
        f":{quote(password, safe='')}" if password else ""
    )
    return (
        f"postgres://{auth}@{params.get('HOST') or '127.0.0.1'}:{params.get('PORT') or 5432}"
        f"/{params['NAME']}"
    )
