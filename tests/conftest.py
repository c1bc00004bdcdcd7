"""Personas and shared fixtures. State is set up through the services, as in real casework.

alice and bob review flags; carol is a senior reviewer (appeals, escalations); dave is a policy
admin; erin is an auditor; mallory has no role at all.
"""

from __future__ import annotations

import pytest

from tests import builders


@pytest.fixture
def roles(db):
    from appeals.review.roles import bootstrap_roles

    return bootstrap_roles()


@pytest.fixture
def alice(roles):
    return builders.make_user("alice", "reviewer")


@pytest.fixture
def bob(roles):
    return builders.make_user("bob", "reviewer")


@pytest.fixture
def carol(roles):
    return builders.make_user("carol", "senior_reviewer")


@pytest.fixture
def dave(roles):
    return builders.make_user("dave", "policy_admin")


@pytest.fixture
def erin(roles):
    return builders.make_user("erin", "auditor")


@pytest.fixture
def mallory(roles):
    return builders.make_user("mallory")


@pytest.fixture
def platform(db):
    return builders.make_platform()


@pytest.fixture
def spam_policy(db):
    return builders.make_policy()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL, let Django's flush between transactional tests truncate the audit table.

    The audit table refuses TRUNCATE (migration appeals 0002) unless the session sets
    `appeals.allow_audit_truncate`; this throwaway test database sets it for every session.
    """
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database()")
                name = cursor.fetchone()[0]
                cursor.execute(
                    f"ALTER DATABASE {connection.ops.quote_name(name)} "
                    "SET appeals.allow_audit_truncate = 'on'"
                )
            connection.close()  # new sessions pick the setting up


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Personas are created in almost every test; PBKDF2's deliberate slowness buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
