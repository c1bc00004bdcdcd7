"""Personas and shared fixtures. State is set up through the services, as in real casework.

alice and bob review flags; carol is a senior reviewer (appeals, escalations); dave is a policy
admin; erin is an auditor; mallory has no role at all.
"""

from __future__ import annotations

import pytest

from tests import builders


@pytest.fixture
def roles(db):
    from appeals.roles import bootstrap_roles

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


@pytest.fixture(scope="session")
def checkpoint_key_file(tmp_path_factory):
    """One Ed25519 signing key for the whole run, in a file as production would keep it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path_factory.mktemp("checkpoint-key") / "key.pem"
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path, checkpoint_key_file):
    """Every test signs audit checkpoints into its own directory, never into the real var dir."""
    directory = tmp_path / "audit-checkpoints"
    settings.AUDIT_CHECKPOINT_KEY_FILE = str(checkpoint_key_file)
    settings.STORAGES = {
        **settings.STORAGES,
        "audit_checkpoints": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(directory)},
        },
    }
    return directory
