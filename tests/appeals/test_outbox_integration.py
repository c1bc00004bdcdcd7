"""The callback outbox end to end: a real Celery worker running beat, a Redis of the test's own that
is stopped at decision time and started again later, and a stand-in platform on loopback.

Done when (issue 10.6): the decision succeeds through the decide page while Redis is down, the
callback is delivered exactly once after Redis comes back, and both attempts (the failed hand-off
to the broker and the delivery) are in the audit chain.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.db import close_old_connections, connection
from django.urls import reverse

from appeals.audit import verify_chain
from appeals.models import AuditEvent, CallbackDelivery, Decision, Platform
from appeals.review import queueing
from tests.builders import flag
from tests.callback_receiver import Receiver
from tests.workers import celery_publishing_to, celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server on a loopback port of its own, so stopping it disturbs no other test."""

    def __init__(self, workdir):
        self.port = _free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def answers():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_for(answers, timeout=10, what="redis-server to answer")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path):
    if connection.vendor != "postgresql" or shutil.which("redis-server") is None:
        pytest.skip("needs PostgreSQL and redis-server: run through `make test` (scripts/test.sh)")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_down_at_decision_time_the_callback_arrives_once_after_it_returns(
    own_redis, client, alice, platform, spam_policy, tmp_path
):
    case = flag(platform, external_id="post-77")
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    env = {
        "CALLBACK_SWEEP_SECONDS": "1",
        "CALLBACK_RETRY_BASE_SECONDS": "1",
        "CALLBACK_TIMEOUT_SECONDS": "5",
    }
    log_path = tmp_path / "worker.log"

    with (
        Receiver() as platform_server,
        celery_publishing_to(own_redis.url),
        celery_worker(
            broker_url=own_redis.url,
            queues="default",
            env=env,
            log_path=log_path,
            beat_schedule=tmp_path / "beat-schedule",
        ),
    ):
        Platform.objects.filter(id=platform.id).update(
            callback_url=platform_server.url, callback_secret="whsec_integration"
        )
        wait_for(lambda: "ready" in log_path.read_text(), timeout=60, what="the worker to be ready")

        own_redis.stop()
        started = time.monotonic()
        response = client.post(
            reverse("case_decide", args=[case.id]),
            {"lease_token": claimed.lease_token, "outcome": "not_violating"},
        )
        decide_seconds = time.monotonic() - started
        assert response.status_code == 302, response.content[:500]
        assert decide_seconds < 5, f"the decide page waited {decide_seconds:.1f} s on the broker"
        decision = Decision.objects.get(case=case)
        row = CallbackDelivery.objects.get(decision=decision)
        assert (row.status, row.attempts) == ("pending", 1)
        assert "could not queue the delivery" in row.last_error

        time.sleep(3)  # beat ticks meanwhile and cannot reach the broker: nothing is sent
        assert platform_server.requests == []

        own_redis.start()

        def delivered():
            close_old_connections()
            return CallbackDelivery.objects.filter(decision=decision, status="delivered").first()

        wait_for(delivered, timeout=120, interval=0.2, what=f"the delivery ({log_path})")
        time.sleep(4)  # several more sweeps: none sends it again

    assert len(platform_server.requests) == 1, "delivered exactly once"
    [(headers, body)] = platform_server.requests
    assert headers["Idempotency-Key"] == f"decision-{decision.id}"
    assert headers["X-Appeals-Delivery-Attempt"] == "2"
    assert b'"case_external_id":"post-77"' in body

    events = list(
        AuditEvent.objects.filter(case=case, kind__startswith="callback")
        .order_by("id")
        .values_list("kind", "source", "data")
    )
    assert [(kind, source) for kind, source, _ in events] == [
        ("callback_attempted", "console"),
        ("callback_attempted", "worker"),
        ("callback_delivered", "worker"),
    ]
    enqueue, attempt, done = (data for _, _, data in events)
    assert enqueue["stage"] == "enqueue" and enqueue["attempt"] == 1
    assert attempt["attempt"] == 2 and attempt["status_code"] == 200
    assert done["attempt"] == 2
    assert verify_chain().ok
