"""Precedents through the entry points people use: `manage.py rebuild_precedents` in a
subprocess (on PostgreSQL here and on SQLite in a child process), a real Celery worker on the
`default` queue embedding new cases after intake, the service tests re-run on SQLite, and the
embedding model loaded with the network cut off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from appeals.models import Embedding
from appeals.precedents import index as precedent_index
from appeals.precedents import services as precedents
from tests.builders import decide, flag
from tests.workers import REPO_ROOT

RINGS = "Buy gold rings here! Cheap gold rings and necklaces, free shipping today only"
PHOTO = "How do I upload a photo of my cat to my profile page?"


def manage(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "reviewer.settings", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.django_db(transaction=True)
def test_rebuild_precedents_embeds_what_is_missing_and_writes_the_index(
    platform, spam_policy, alice, tmp_path, settings
):
    from tests.workers import test_database_url

    decided = flag(platform, content=RINGS)
    other = flag(platform, content=PHOTO)
    still_open = flag(platform, content=RINGS + " and bracelets")
    decide(alice, decided, "violating", "remove", ["SP2.b"])
    decide(alice, other, "not_violating")
    precedents.embed_items([other.item_id])  # the rest are embedded by the command
    env = {
        "DATABASE_URL": test_database_url(),
        "MIGRATION_DATABASE_URL": "",
        "PRECEDENTS_INDEX_DIR": str(tmp_path / "index"),
    }
    refused = manage("rebuild_precedents", "--embed-missing", "--batch-size", "0", env=env)
    assert refused.returncode == 1 and "--batch-size must be at least 1" in refused.stderr

    result = manage("rebuild_precedents", "--embed-missing", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Embedded 2 of 2 items" in result.stdout
    assert "2 decided items" in result.stdout
    assert Embedding.objects.filter(item_id=still_open.item_id).exists()

    settings.PRECEDENTS_INDEX_DIR = str(tmp_path / "index")
    precedent_index.forget()
    try:
        on_disk = precedent_index.load()
        assert sorted(on_disk.index.keys) == sorted(precedent_index.build().index.keys)
        assert sorted(int(k) for k in on_disk.index.keys) == sorted(
            [decided.item_id, other.item_id]
        )
    finally:
        precedent_index.forget()


SQLITE_COMMAND = r"""
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from appeals.review.roles import bootstrap_roles
from tests import builders
bootstrap_roles()
platform = builders.make_platform()
builders.make_policy()
alice = builders.make_user("alice", "reviewer")
case = builders.flag(platform, content="Buy gold rings here! Cheap gold rings today")
builders.flag(platform, content="How do I upload a photo?")
builders.decide(alice, case, "violating", "remove", ["SP2.b"])
"""


def test_rebuild_precedents_on_sqlite(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "CELERY_BROKER_URL": "memory://",
        "PRECEDENTS_INDEX_DIR": str(tmp_path / "index"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "reviewer.settings", **env}
    setup = subprocess.run(
        [sys.executable, "-c", SQLITE_COMMAND],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    help_text = manage("rebuild_precedents", "--help", env=env)
    assert help_text.returncode == 0 and "--embed-missing" in help_text.stdout
    result = manage("rebuild_precedents", "--embed-missing", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Embedded 2 of 2 items" in result.stdout and "1 decided items" in result.stdout
    assert (tmp_path / "index" / "precedents.usearch").stat().st_size > 0


def test_the_service_tests_pass_on_sqlite(tmp_path):
    """tests/appeals/test_precedents.py again, on the quickstart's database."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "CELERY_BROKER_URL": "memory://",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/appeals/test_precedents.py",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


NO_NETWORK = r"""
import socket
def refuse(*args, **kwargs):
    raise OSError("network use refused by the test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    __import__("os").environ.pop(name, None)  # the embedder sets them itself
from appeals.precedents import embedder
vectors = embedder.embed(["gold rings for sale", "cheap gold rings", "the weather is nice"])
print(float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2]))
"""


def test_the_embedding_model_loads_from_its_wheel_with_the_network_cut_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    near, far = map(float, result.stdout.split())
    assert near > 0.6 > far


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_real_worker_on_the_default_queue_embeds_new_cases_after_intake(
    platform, spam_policy, alice, tmp_path
):
    import redis
    from django.conf import settings
    from django.db import close_old_connections, connection

    from tests.workers import celery_worker, wait_for

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    decided = flag(platform, content=RINGS)
    query = flag(platform, content=RINGS + " and silver necklaces")
    decide(alice, decided, "violating", "remove", ["SP2.b"])

    def embedded(item_id):
        def check():
            close_old_connections()
            return Embedding.objects.filter(item_id=item_id).first()

        return check

    index_dir = tmp_path / "index"
    env = {"PRECEDENTS_INDEX_DIR": str(index_dir)}
    with celery_worker(broker_url=url, queues="default", env=env, log_path=tmp_path / "w.log"):
        wait_for(embedded(decided.item_id), timeout=180, what="embedding")
        wait_for(embedded(query.item_id), timeout=60, what="embedding")
        wait_for(lambda: (index_dir / "precedents.json").exists(), timeout=60, what="index file")
    redis.Redis.from_url(url).flushdb()
    settings.PRECEDENTS_INDEX_DIR = str(index_dir)
    precedent_index.forget()
    try:
        found = precedents.similar_decided_cases(query, visible=lambda case: True)
    finally:
        precedent_index.forget()
    assert [p.case.id for p in found.cases] == [decided.id]
