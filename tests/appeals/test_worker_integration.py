"""End to end through a real Celery worker, Redis and the real transformers code path.

The worker drafts with a tiny GptOss checkpoint built offline (tests/safeguard_fixtures.py),
trained to answer the fixture policy's cases; everything else is the product as deployed.
"""

from __future__ import annotations

import datetime as dt
import signal

import pytest
import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from appeals.drafts import services as drafting
from appeals.models import AuditEvent, Case, Queue, Recommendation
from appeals.review import decisions, queueing
from policies.services import import_policy_version
from tests import safeguard_fixtures as fx
from tests.builders import flag
from tests.workers import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture
def broker_url():
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def tiny_model():
    return fx.build_tiny_checkpoint()


@pytest.fixture
def model_env(tiny_model):
    return {
        "SAFEGUARD_BACKEND": "transformers",
        "SAFEGUARD_MODEL": str(tiny_model),
        "SAFEGUARD_DEVICE": "cpu",
        "SAFEGUARD_MAX_NEW_TOKENS": "256",
        "DRAFT_STALL_SECONDS": "10",
        "DRAFT_HEARTBEAT_SECONDS": "2",
    }


@pytest.fixture
def fixture_policy(db):
    return import_policy_version(
        slug="fixture-spam", name="Fixture spam policy", text=fx.FIXTURE_POLICY_TEXT
    )


def _ready(case_id):
    def check():
        close_old_connections()
        return Recommendation.objects.filter(
            case_id=case_id, status__in=["ready", "failed"]
        ).first()

    return check


def test_intake_to_decision_through_a_real_worker(
    broker_url, model_env, fixture_policy, platform, alice, tmp_path
):
    followers = fx.FIXTURE_CASES[1]
    report = fx.FIXTURE_CASES[0]
    spam_case = flag(platform, policy="fixture-spam", content=followers.case.content)
    ok_case = flag(platform, policy="fixture-spam", content=report.case.content)

    with celery_worker(broker_url=broker_url, env=model_env, log_path=tmp_path / "worker.log"):
        spam_rec = wait_for(_ready(spam_case.id), timeout=180, what="the draft of the spam case")
        ok_rec = wait_for(_ready(ok_case.id), timeout=60, what="the draft of the ordinary case")

    assert spam_rec.status == "ready", (
        spam_rec.failure_reason,
        spam_rec.failure_detail,
        (tmp_path / "worker.log").read_text()[-3000:],
    )
    assert spam_rec.violation is True
    assert set(spam_rec.rule_ids) == set(followers.rule_ids)
    assert spam_rec.backend == "transformers"
    assert spam_rec.policy_sha256 == fixture_policy.sha256
    assert len(spam_rec.prompt_sha256) == 64
    assert spam_rec.reasoning  # the analysis channel, kept for audit
    assert ok_rec.status == "ready" and ok_rec.violation is False

    # A person decides; the model's recommendation is stored beside the decision.
    case = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    assert case.id == spam_case.id
    decision = decisions.decide_case(
        reviewer=alice,
        case_id=case.id,
        lease_token=case.lease_token,
        outcome="violating",
        action="remove",
        rule_ids=["FX1.a"],
    )
    assert decision.recommendation_id == spam_rec.id
    assert decision.agrees_with_model is True
    # The fast tier's TRIAGED event runs on the default queue beside the draft: its place among
    # the draft's events is not fixed, so it is checked apart.
    events = list(
        AuditEvent.objects.filter(case=spam_case)
        .exclude(kind="triaged")
        .values_list("kind", "source")
    )
    assert events == [
        ("received", "api"),
        ("draft_started", "worker"),
        ("drafted", "worker"),
        ("claimed", "console"),
        ("decided", "console"),
    ]
    assert AuditEvent.objects.filter(case=spam_case, kind="triaged", source="worker").count() == 1


def test_a_worker_killed_mid_draft_loses_and_duplicates_nothing(
    broker_url, model_env, fixture_policy, platform, tmp_path, settings
):
    settings.DRAFT_STALL_SECONDS = 10
    case = flag(platform, policy="fixture-spam", content=fx.FIXTURE_CASES[2].case.content)

    def running():
        close_old_connections()
        return Recommendation.objects.filter(case=case, status="running").exists()

    # The model loads lazily on the first draft, after the row is marked running: kill then.
    with celery_worker(
        broker_url=broker_url, env=model_env, log_path=tmp_path / "w1.log"
    ) as worker:
        wait_for(running, timeout=60, interval=0.005, what="the draft to start")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

    rec = Recommendation.objects.get(case=case)
    assert rec.status == "running" and rec.attempts == 1

    with celery_worker(broker_url=broker_url, env=model_env, log_path=tmp_path / "w2.log"):
        # What the beat schedule runs every minute, here as if the stall limit had passed.
        recovered = drafting.recover_stalled_drafts(now=timezone.now() + dt.timedelta(seconds=11))
        assert recovered == 1
        wait_for(_ready(case.id), timeout=180, what="the recovered draft")

    recs = list(Recommendation.objects.filter(case=case))
    assert len(recs) == 1, "no duplicate recommendation"
    assert recs[0].status == "ready" and recs[0].attempts == 2
    assert recs[0].violation is True and list(recs[0].rule_ids) == ["FX2.a"]
    kinds = list(AuditEvent.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds.count("drafted") == 1
    assert "draft_recovered" in kinds


def test_running_the_same_draft_twice_stores_one_answer(
    broker_url, model_env, fixture_policy, platform, tmp_path
):
    case = flag(platform, policy="fixture-spam", content=fx.FIXTURE_CASES[0].case.content)
    rec = Recommendation.objects.get(case=case)
    from appeals.drafts.tasks import draft_recommendations

    with celery_worker(broker_url=broker_url, env=model_env, log_path=tmp_path / "w.log"):
        draft_recommendations.delay([rec.id])  # a duplicate delivery of the same request
        wait_for(_ready(case.id), timeout=180, what="the draft")
        draft_recommendations.delay([rec.id])
        import time

        time.sleep(2)
    rec.refresh_from_db()
    assert rec.status == "ready" and rec.attempts == 1
    assert AuditEvent.objects.filter(case=case, kind="drafted").count() == 1


def test_without_a_gpu_or_server_the_draft_says_which_setting_fixes_it(
    broker_url, platform, spam_policy, tmp_path
):
    case = flag(platform)
    env = {"SAFEGUARD_BACKEND": "auto", "SAFEGUARD_BASE_URL": "", "SAFEGUARD_DEVICE": "auto"}
    with celery_worker(broker_url=broker_url, env=env, log_path=tmp_path / "w.log"):
        rec = wait_for(_ready(case.id), timeout=60, what="the draft to fail")
    assert rec.status == "failed"
    assert rec.failure_reason == "not_configured"
    assert "SAFEGUARD_BASE_URL" in rec.failure_detail
    assert "SAFEGUARD_BASE_URL" in (tmp_path / "w.log").read_text()
    assert Case.objects.get(id=case.id).status == "open", "the model never closes a case"
