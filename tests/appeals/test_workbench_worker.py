"""Evaluation runs through a real Celery worker and Redis, against a stand-in model server:
a worker killed mid-run leaves every item's result exactly once after recovery."""

from __future__ import annotations

import datetime as dt
import signal

import pytest
import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count
from django.utils import timezone

from appeals import policy_workbench
from policies.tasks import run_evaluation
from policies.workbench import golden, runs
from policies.workbench.models import EvaluationResult, EvaluationRun
from tests.standin_server import StandInServer
from tests.workers import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

ITEMS = 120


@pytest.fixture
def broker_url():
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


def _set(policy):
    lines = "".join(
        f'{{"content": "item {i}: {"buy gold now" if i % 3 == 0 else "hello there"}", '
        f'"expected": {"true" if i % 3 == 0 else "false"}, "language": "en"}}\n'
        for i in range(ITEMS)
    )
    return golden.import_golden_set(policy=policy, name="big", data=lines, fmt="jsonl")


def _count(run_id):
    close_old_connections()
    return EvaluationResult.objects.filter(run_id=run_id).count()


def test_a_worker_killed_mid_run_leaves_every_result_exactly_once(
    broker_url, spam_policy, dave, tmp_path, settings
):
    golden_set = _set(spam_policy.policy)
    with StandInServer(latency=0.2) as server:
        env = {
            "SAFEGUARD_BACKEND": "openai",
            "SAFEGUARD_BASE_URL": server.base_url,
            "SAFEGUARD_MODEL": "stand-in",
            "WORKBENCH_CHUNK_SIZE": "10",
            "WORKBENCH_MAX_CONCURRENCY": "10",
        }
        run = policy_workbench.start_evaluation(
            version=spam_policy, golden_set=golden_set, actor=dave
        )  # sent to the gpu queue on commit
        with celery_worker(broker_url=broker_url, env=env, log_path=tmp_path / "w1.log") as w:
            wait_for(lambda: _count(run.id) >= 30, timeout=60, what="a few chunks")
            w.send_signal(signal.SIGKILL)
            w.wait(timeout=10)
        partial = _count(run.id)
        assert 30 <= partial < ITEMS
        run.refresh_from_db()
        assert run.status == "running"

        settings.WORKBENCH_STALL_SECONDS = 10
        with celery_worker(broker_url=broker_url, env=env, log_path=tmp_path / "w2.log"):
            # What the beat task does every minute, as if the stall limit had passed.
            resent = runs.recover_stalled_runs(now=timezone.now() + dt.timedelta(seconds=11))
            assert resent == [run.id]
            for run_id in resent:
                run_evaluation.delay(run_id)

            def finished():
                close_old_connections()
                return EvaluationRun.objects.get(id=run.id).status == "done"

            wait_for(finished, timeout=90, what="the resumed run to finish")

    run.refresh_from_db()
    assert run.attempts == 2
    per_item = EvaluationResult.objects.filter(run=run).values("item_id").annotate(n=Count("id"))
    assert len(per_item) == ITEMS and {row["n"] for row in per_item} == {1}
    assert run.metrics["n"] == ITEMS and run.metrics["f1"] == 1.0
    # The resumed worker drafted only what was missing (a chunk in flight at the kill is redone).
    assert server.requests <= ITEMS + 10
