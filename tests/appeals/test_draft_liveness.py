"""Slow models and dead workers: a draft that is still being worked on keeps its run; one whose
worker died is taken back within seconds of the stall limit, and no request ever gets two answers.

The first tests drive the services directly; the last two run the product as deployed: a GPU
worker drafting through a stand-in model server (tests/model_server.py) whose latency the test
sets, and a second worker that runs the beat schedule and takes the recovery sweep, with Redis.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.db import close_old_connections, connection
from django.utils import timezone

from appeals.drafts import services as drafting
from appeals.drafts.heartbeat import Heartbeat
from appeals.models import AuditEvent, Recommendation
from policies.safeguard.types import Draft, DraftStatus, Provenance
from tests.builders import flag
from tests.model_server import model_server
from tests.test_management_commands import manage
from tests.workers import celery_worker, child_pids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection

Kind = AuditEvent.Kind


def _kinds(case) -> list[str]:
    return list(AuditEvent.objects.filter(case=case).values_list("kind", flat=True))


def _answer(rec: Recommendation) -> Draft:
    return Draft(
        case_key=str(rec.case_id),
        status=DraftStatus.READY,
        provenance=Provenance(
            backend="openai",
            model_id="openai/gpt-oss-safeguard-20b",
            model_revision="server:openai/gpt-oss-safeguard-20b",
            policy_version_id=str(rec.policy_version_id),
            policy_sha256="0" * 64,
            prompt_sha256="1" * 64,
            reasoning_effort="medium",
            conversation_date=dt.date(2026, 11, 26),
            latency_ms=8000,
        ),
        violation=True,
        policy_category="SP2",
        rule_ids=("SP2.b",),
        confidence="high",
        rationale="An advert for rings.",
    )


def _started(platform, settings) -> tuple[Recommendation, uuid.UUID]:
    settings.DRAFT_STALL_SECONDS = 60
    case = flag(platform)
    rec = Recommendation.objects.get(case=case)
    taken = drafting.start_drafts([rec.id])
    rec.refresh_from_db()
    return rec, taken[rec.id]


def test_a_slow_draft_that_keeps_its_heartbeat_is_not_taken_back(platform, spam_policy, settings):
    rec, _ = _started(platform, settings)
    # Started long ago, but the worker beat a moment ago: slow, not dead.
    Recommendation.objects.filter(id=rec.id).update(
        started_at=timezone.now() - dt.timedelta(hours=1), heartbeat_at=timezone.now()
    )
    assert drafting.recover_stalled_drafts() == 0
    rec.refresh_from_db()
    assert rec.status == "running" and rec.run_token is not None
    assert Kind.DRAFT_RECOVERED not in _kinds(rec.case)


def test_a_draft_whose_heartbeat_went_quiet_is_taken_back_and_sent_again(
    platform, spam_policy, settings
):
    rec, _ = _started(platform, settings)
    assert rec.heartbeat_at == rec.started_at  # the first beat is the start itself
    assert drafting.recover_stalled_drafts(now=timezone.now() + dt.timedelta(seconds=59)) == 0
    assert drafting.recover_stalled_drafts(now=timezone.now() + dt.timedelta(seconds=61)) == 1
    rec.refresh_from_db()
    assert rec.status == "pending" and rec.run_token is None
    assert _kinds(rec.case)[-1] == Kind.DRAFT_RECOVERED


def test_a_running_draft_from_before_heartbeats_is_judged_by_its_start(
    platform, spam_policy, settings
):
    rec, _ = _started(platform, settings)
    Recommendation.objects.filter(id=rec.id).update(
        heartbeat_at=None, started_at=timezone.now() - dt.timedelta(seconds=61)
    )
    assert drafting.recover_stalled_drafts() == 1
    rec.refresh_from_db()
    assert rec.status == "pending"


def test_an_answer_from_a_run_that_was_taken_back_is_discarded_and_audited(
    platform, spam_policy, settings
):
    rec, old_token = _started(platform, settings)
    drafting.recover_stalled_drafts(now=timezone.now() + dt.timedelta(seconds=61))
    new_token = drafting.start_drafts([rec.id])[rec.id]

    # The first run's answer arrives late: it is not stored, and the trail says so.
    assert drafting.finish_draft(rec.id, old_token, _answer(rec)) is False
    rec.refresh_from_db()
    assert rec.status == "running" and rec.violation is None
    discarded = AuditEvent.objects.filter(case=rec.case, kind=Kind.DRAFT_DISCARDED).get()
    assert discarded.data["recommendation_id"] == rec.id
    assert discarded.data["status_now"] == "running"
    assert discarded.data["rule_ids"] == ["SP2.b"]

    # The live run's answer is stored; a second finisher of the same run is discarded too.
    assert drafting.finish_draft(rec.id, new_token, _answer(rec)) is True
    assert drafting.finish_draft(rec.id, new_token, _answer(rec)) is False
    rec.refresh_from_db()
    assert rec.status == "ready" and rec.attempts == 2
    kinds = _kinds(rec.case)
    assert kinds.count(Kind.DRAFTED) == 1
    assert kinds.count(Kind.DRAFT_DISCARDED) == 2


def test_the_heartbeat_beats_while_the_run_owns_the_draft_and_stops_when_it_does_not(
    platform, spam_policy, settings
):
    rec, token = _started(platform, settings)
    first = rec.heartbeat_at
    with Heartbeat({rec.id: token}, interval=0.1) as heartbeat:
        wait_for(lambda: heartbeat.beats >= 3, timeout=10, what="three beats")
        rec.refresh_from_db()
        assert rec.heartbeat_at > first
        # The sweep (or another run) takes the draft: this run no longer owns it.
        Recommendation.objects.filter(id=rec.id).update(run_token=uuid.uuid4())
        taken_back_at = timezone.now()
        wait_for(lambda: not heartbeat._thread.is_alive(), timeout=10, what="the beat to stop")
    rec.refresh_from_db()
    assert rec.heartbeat_at <= taken_back_at


def test_a_drain_s_live_heartbeat_covers_drafts_claimed_after_it_started(
    platform, spam_policy, settings
):
    """The feeder claims drafts while the engine runs: its heartbeat reads the mapping afresh on
    every beat and keeps going while the mapping is empty between claims."""
    tokens: dict = {}
    with Heartbeat(tokens, live=True, interval=0.1) as heartbeat:
        wait_for(lambda: heartbeat.beats >= 2, timeout=10, what="beats over an empty mapping")
        rec, token = _started(platform, settings)
        first = rec.heartbeat_at
        tokens[rec.id] = token
        wait_for(
            lambda: Recommendation.objects.get(id=rec.id).heartbeat_at > first,
            timeout=10,
            what="the claimed draft's heartbeat",
        )
        del tokens[rec.id]
        assert heartbeat._thread.is_alive()
    assert not heartbeat._thread.is_alive()


def test_a_run_still_beating_past_the_longest_run_goes_quiet(platform, spam_policy, settings):
    rec, token = _started(platform, settings)
    with Heartbeat({rec.id: token}, interval=0.1, max_run_seconds=0.5) as heartbeat:
        wait_for(lambda: not heartbeat._thread.is_alive(), timeout=10, what="the beat to stop")
        rec.refresh_from_db()
        stopped_at = rec.heartbeat_at
        time.sleep(0.3)
    rec.refresh_from_db()
    assert rec.heartbeat_at == stopped_at and rec.status == "running"


def test_a_stall_limit_that_a_late_heartbeat_would_cross_is_refused_at_start():
    result = manage(
        "check", env={"DRAFT_HEARTBEAT_SECONDS": "10", "DRAFT_STALL_SECONDS": "20"}, timeout=60
    )
    assert result.returncode != 0
    assert "DRAFT_STALL_SECONDS (20) must be more than twice DRAFT_HEARTBEAT_SECONDS" in (
        result.stderr
    )


def test_the_production_defaults_take_back_a_dead_workers_draft_within_two_minutes():
    # Worst case: the last beat just before the worker died, the sweep just before the stall.
    worst = (
        django_settings.DRAFT_HEARTBEAT_SECONDS
        + django_settings.DRAFT_STALL_SECONDS
        + django_settings.DRAFT_SWEEP_SECONDS
    )
    assert worst <= 120
    beat = django_settings.CELERY_BEAT_SCHEDULE["recover-stalled-drafts"]
    assert beat["schedule"] == django_settings.DRAFT_SWEEP_SECONDS


# --- Through real workers ------------------------------------------------------------------

# Short limits so the test runs in seconds: beat every second, stalled after five.
LIVENESS = {
    "DRAFT_HEARTBEAT_SECONDS": "1",
    "DRAFT_STALL_SECONDS": "5",
    "DRAFT_SWEEP_SECONDS": "1",
    "DRAFT_MAX_ATTEMPTS": "3",
}
SWEEP_DONE = "Task appeals.tasks.recover_stalled_drafts["


@pytest.fixture
def broker_url():
    url = django_settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


def _env(server) -> dict:
    return {
        "SAFEGUARD_BACKEND": "openai",
        "SAFEGUARD_BASE_URL": server.base_url,
        "SAFEGUARD_MODEL": "openai/gpt-oss-safeguard-20b",
        "SAFEGUARD_MAX_RETRIES": "0",
        "SAFEGUARD_TIMEOUT_SECONDS": "60",
        **LIVENESS,
    }


def _sweeps(log_path) -> int:
    text = log_path.read_text() if log_path.exists() else ""
    return sum(1 for line in text.splitlines() if SWEEP_DONE in line and "succeeded" in line)


def _finished(case):
    def check():
        close_old_connections()
        return Recommendation.objects.filter(case=case, status__in=["ready", "failed"]).first()

    return check


def _sweeper(broker_url, env, tmp_path):
    """The worker of the default queue, with the beat schedule: it runs the recovery sweep."""
    return celery_worker(
        broker_url=broker_url,
        queues="default",
        env=env,
        log_path=tmp_path / "sweeper.log",
        beat_schedule=tmp_path / "beat-schedule",
    )


def _logs(tmp_path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in tmp_path.glob("*.log"))


@pytest.mark.integration
def test_a_model_slower_than_the_stall_limit_still_yields_exactly_one_draft(
    broker_url, platform, spam_policy, tmp_path
):
    with model_server(latency=8) as server:
        env = _env(server)
        with _sweeper(broker_url, env, tmp_path):
            wait_for(lambda: _sweeps(tmp_path / "sweeper.log"), timeout=60, what="the first sweep")
            with celery_worker(
                broker_url=broker_url, queues="gpu", env=env, log_path=tmp_path / "gpu.log"
            ):
                case = flag(platform)
                sweeps_before = _sweeps(tmp_path / "sweeper.log")
                rec = wait_for(_finished(case), timeout=90, what="the draft")
                sweeps_during = _sweeps(tmp_path / "sweeper.log") - sweeps_before
                time.sleep(2)  # a sweep or two after the finish: they must leave it alone

    assert rec.status == "ready", (rec.failure_reason, rec.failure_detail, _logs(tmp_path))
    assert rec.finished_at - rec.started_at > dt.timedelta(seconds=5), "slower than the limit"
    assert sweeps_during >= 3, "the sweep ran while the model worked"
    assert rec.attempts == 1 and server.requests == 1
    assert rec.violation is True and "SP2.b" in rec.rule_ids
    assert Recommendation.objects.filter(case=case).count() == 1
    kinds = _kinds(case)
    assert kinds.count(Kind.DRAFTED) == 1
    assert Kind.DRAFT_RECOVERED not in kinds and Kind.DRAFT_DISCARDED not in kinds


@pytest.mark.integration
def test_a_worker_killed_mid_draft_is_replaced_and_its_draft_finishes_within_two_minutes(
    broker_url, platform, spam_policy, tmp_path
):
    with model_server(latency=3) as server:
        env = _env(server)
        with _sweeper(broker_url, env, tmp_path):
            wait_for(lambda: _sweeps(tmp_path / "sweeper.log"), timeout=60, what="the first sweep")
            case = flag(platform)
            with celery_worker(
                broker_url=broker_url, queues="gpu", env=env, log_path=tmp_path / "gpu-1.log"
            ) as worker:
                # Killed while the model is answering: the row is running, its message unacked.
                wait_for(server.request_arrived.is_set, timeout=60, what="the model request")
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=10)
                killed_at = time.monotonic()
            rec = Recommendation.objects.get(case=case)
            assert rec.status == "running" and rec.attempts == 1

            # A supervisor (systemd, Kubernetes) starts a replacement.
            with celery_worker(
                broker_url=broker_url, queues="gpu", env=env, log_path=tmp_path / "gpu-2.log"
            ):
                rec = wait_for(_finished(case), timeout=120, what="the recovered draft")
                took = time.monotonic() - killed_at

    assert took < 120
    assert rec.status == "ready", (rec.failure_reason, rec.failure_detail, _logs(tmp_path))
    assert rec.attempts == 2 and server.requests == 2
    assert Recommendation.objects.filter(case=case).count() == 1, "no duplicate recommendation"
    kinds = _kinds(case)
    assert kinds.count(Kind.DRAFTED) == 1
    assert kinds.count(Kind.DRAFT_RECOVERED) == 1
    assert Kind.DRAFT_DISCARDED not in kinds


@pytest.mark.integration
def test_a_prefork_child_killed_mid_draft_is_replaced_by_its_pool_and_the_draft_finishes(
    broker_url, platform, spam_policy, tmp_path
):
    """The prefork pool replaces a dead child itself and, the task being rejected on worker loss,
    gives its message back at once; that message finds the draft still `running` and leaves it,
    and the sweep brings it back once its heartbeat has gone quiet."""
    with model_server(latency=3) as server:
        env = _env(server)
        with _sweeper(broker_url, env, tmp_path):
            wait_for(lambda: _sweeps(tmp_path / "sweeper.log"), timeout=60, what="the first sweep")
            with celery_worker(
                broker_url=broker_url,
                queues="gpu",
                env=env,
                log_path=tmp_path / "gpu.log",
                pool="prefork",
            ) as worker:
                children = wait_for(lambda: child_pids(worker.pid), timeout=60, what="the pool")
                case = flag(platform)
                wait_for(server.request_arrived.is_set, timeout=60, what="the model request")
                os.kill(children[0], signal.SIGKILL)
                killed_at = time.monotonic()
                rec = wait_for(_finished(case), timeout=120, what="the recovered draft")
                took = time.monotonic() - killed_at
                assert worker.poll() is None, "the worker itself lives on"
                replacement = child_pids(worker.pid)

    assert took < 120
    assert replacement and children[0] not in replacement
    assert rec.status == "ready", (rec.failure_reason, rec.failure_detail, _logs(tmp_path))
    assert rec.attempts == 2 and server.requests == 2
    assert Recommendation.objects.filter(case=case).count() == 1
    kinds = _kinds(case)
    assert kinds.count(Kind.DRAFTED) == 1 and kinds.count(Kind.DRAFT_RECOVERED) == 1
    assert "WorkerLostError" in (tmp_path / "gpu.log").read_text()
