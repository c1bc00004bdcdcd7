"""Personas and shared fixtures. State is set up through the services, as in real casework.

alice and bob review flags; carol is a senior reviewer (appeals, escalations); dave is a policy
admin; erin is an auditor; mallory has no role at all.
"""

from __future__ import annotations

import pytest

from tests import builders, dbroles, media_server


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
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On PostgreSQL with two roles, create and migrate the test database as the owner."""
    if dbroles.two_roles():
        dbroles.switch_to_owner()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Grant the runtime role its privileges (as the owner), then run the tests as the runtime
    role, as the deployed app runs; the owner drops the test database at the end."""
    from django.core.management import call_command
    from django.test import TransactionTestCase

    if dbroles.two_roles():
        with django_db_blocker.unblock():
            call_command("grant_runtime_role", role=dbroles.runtime_role(), verbosity=0)
        dbroles.switch_to_runtime()

    # Django's flush between transactional tests empties the audit table: only the owner, with
    # the triggers off, may do that (tests/dbroles.py).
    flush = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        with dbroles.flushing_as_owner(self._databases_names(include_mirrors=False)):
            flush(self)

    patch = pytest.MonkeyPatch()
    patch.setattr(TransactionTestCase, "_fixture_teardown", _fixture_teardown)
    yield
    patch.undo()
    if dbroles.two_roles():
        dbroles.switch_to_owner()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Personas are created in almost every test; PBKDF2's deliberate slowness buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _plain_http_test_servers():
    """The test client and live_server speak plain http; outside debug the settings redirect it
    to https. Tests of that redirect (tests/reviewer/test_security.py) turn it back on."""
    from django.test import override_settings

    with override_settings(SECURE_SSL_REDIRECT=False):
        yield


# --- media (appeals/media/) ------------------------------------------------------------------


@pytest.fixture
def media_storage(settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def platform_media(settings, monkeypatch):
    """A stand-in platform media server; only its own address and port are allowed, and the
    fetcher's connections are held to loopback (tests/media_server.py: LoopbackOnly)."""
    from appeals.media import fetch

    monkeypatch.setattr(fetch, "new_client", media_server.loopback_client)
    with media_server.media_server(
        {"/p.png": media_server.serve_bytes(media_server.PNG)}
    ) as server:
        settings.MEDIA_FETCH_ALLOW = [f"127.0.0.1:{server.port}"]
        yield server


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
