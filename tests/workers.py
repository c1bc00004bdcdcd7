"""A real Celery worker, started as a subprocess against the test database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The test database, as the role the tests connect as (the runtime role with `make test`)."""
    from tests.dbroles import database_url

    return database_url(connection.settings_dict)


@contextmanager
def celery_worker(
    *,
    broker_url: str,
    queues: str = "default,gpu",
    env: dict | None = None,
    log_path: Path | None = None,
    beat_schedule: Path | None = None,
    pool: str = "solo",
):
    """Run `celery worker --pool solo` (or `pool`, one process) until the block ends; yields the
    Popen.

    With `beat_schedule` (a file path) the worker also runs the beat schedule (`--beat`), as a
    deployment's beat process would: the periodic tasks are sent, and this worker takes them if it
    consumes their queue.
    """
    beat = ["--beat", "--schedule", str(beat_schedule)] if beat_schedule else []
    worker_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "MIGRATION_DATABASE_URL": "",  # a worker never migrates
        "TEST_DATABASE_NAME": "",
        "CELERY_BROKER_URL": broker_url,
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log = open(log_path or os.devnull, "ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "reviewer",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            "1",
            "--queues",
            queues,
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"test-{os.getpid()}-{time.monotonic_ns()}@localhost",
            *beat,
        ],
        cwd=REPO_ROOT,
        env=worker_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (a prefork worker's pool), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def celery_publishing_to(broker_url: str):
    """This process's Celery app publishes to `broker_url` for the block (the web process's
    broker, as a test needs it: one that is stopped, or one of the test's own)."""
    from reviewer.celery import app

    names = ("broker_url", "broker_write_url", "broker_read_url")
    original = {name: app.conf[name] for name in names}

    def repoint(urls):
        for name in names:
            app.conf[name] = urls[name]
        app._pool = None  # the connection pools are built from the URL on first use
        app.amqp._producer_pool = None

    repoint(dict.fromkeys(names, broker_url))
    try:
        yield app
    finally:
        repoint(original)
