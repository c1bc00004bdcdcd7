"""Drafts follow the configuration: a draft that failed "not configured" is asked for again when
a worker starts with a model configured, without anyone pressing Retry (issue 11.6)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import close_old_connections, connection

from appeals.drafts.requeue import requeue_unconfigured_drafts
from appeals.models import AuditEvent, Recommendation
from appeals.review import queueing
from appeals.review.redraft import requeue_failed_drafts, retry_draft
from tests.builders import decide, flag
from tests.policies.test_safeguard_check import stand_in_server  # noqa: F401 (fixture)
from tests.reviewer.drafts import failed_draft, ready_draft
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _latest(case):
    return case.recommendations.order_by("-id").first()


def test_only_open_cases_whose_latest_draft_failed_unconfigured_are_asked_again(
    platform, spam_policy, alice
):
    waiting = flag(platform)
    failed_draft(waiting)
    timed_out = flag(platform)
    failed_draft(timed_out, reason="timeout", detail="ran past 60 s")
    decided = flag(platform)
    failed_draft(decided)
    decide(alice, decided, "violating", "remove", ["SP2.b"])
    drafted_since = flag(platform)
    failed_draft(drafted_since)
    Recommendation.objects.create(case=drafted_since, policy_version=drafted_since.policy_version)
    ready_draft(drafted_since)

    assert requeue_unconfigured_drafts() == [waiting.id]
    assert _latest(waiting).status == "pending"
    event = AuditEvent.objects.filter(case=waiting).order_by("-id").first()
    assert (event.kind, event.source, event.actor_label) == ("draft_requested", "worker", "worker")
    assert event.data["why"] == "a model is configured now"
    # Twice (two workers starting together) asks once: the case has a draft in flight now.
    assert requeue_unconfigured_drafts() == []
    assert waiting.recommendations.count() == 2


def test_a_senior_requeues_a_queues_failed_drafts_and_it_is_audited(
    platform, spam_policy, alice, carol
):
    one, two, fine = flag(platform), flag(platform), flag(platform)
    failed_draft(one, reason="backend_error", detail="server said 502")
    failed_draft(two)
    ready_draft(fine)
    with pytest.raises(PermissionDenied):
        requeue_failed_drafts(queue="flags", actor=alice)
    assert sorted(requeue_failed_drafts(queue="flags", actor=carol)) == sorted([one.id, two.id])
    summary = AuditEvent.objects.get(kind=AuditEvent.Kind.DRAFTS_REQUEUED)
    assert (summary.actor_id, summary.data) == (carol.id, {"queue": "flags", "cases": 2})
    assert AuditEvent.objects.filter(kind="draft_requested", actor=carol).count() == 2
    with pytest.raises(ValidationError, match="'nope' is not a queue"):
        requeue_failed_drafts(queue="nope", actor=carol)


def test_retry_draft_is_for_open_cases_by_the_lease_holder_or_a_senior(
    platform, spam_policy, alice, bob, carol
):
    case = flag(platform)
    failed_draft(case, reason="timeout", detail="slow")
    with pytest.raises(PermissionDenied):  # nobody holds it; alice is no senior
        retry_draft(case_id=case.id, actor=alice)
    queueing.claim_case(reviewer=bob, case_id=case.id)
    with pytest.raises(PermissionDenied):  # bob holds it, not alice
        retry_draft(case_id=case.id, actor=alice)
    assert retry_draft(case_id=case.id, actor=bob).status == "pending"
    failed_draft(case, reason="timeout", detail="slow again")
    assert retry_draft(case_id=case.id, actor=carol).status == "pending"  # a senior may

    closed = flag(platform)
    failed_draft(closed, reason="timeout", detail="slow")
    decide(bob, closed, "not_violating")
    with pytest.raises(ValidationError, match="closed"):
        retry_draft(case_id=closed.id, actor=carol)


def test_the_case_page_offers_retry_only_to_the_holder_and_seniors(
    client, platform, spam_policy, alice, carol
):
    case = flag(platform)
    failed_draft(case, reason="timeout", detail="slow")
    client.force_login(alice)
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert "Retry draft" not in page
    assert client.post(f"/cases/{case.id}/retry-draft/").status_code == 403
    client.force_login(carol)
    assert "Retry draft" in client.get(f"/cases/{case.id}/").content.decode()


# --- through a real worker ------------------------------------------------------------------


@pytest.fixture
def broker_url():
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


def _settled(case_id, status):
    def check():
        close_old_connections()
        return Recommendation.objects.filter(case_id=case_id, status=status).first()

    return check


@pytest.mark.integration
def test_unconfigured_drafts_become_ready_when_the_worker_restarts_with_a_server(
    broker_url,
    stand_in_server,  # noqa: F811 - the fixture imported above
    platform,
    spam_policy,
    tmp_path,  # noqa: F811
):
    base_url, received = stand_in_server
    case = flag(platform, content="Gold rings, 90% off, today only! DM me.")
    picture = flag(
        platform,
        content="(image post)",
        content_type="image",
        metadata={"caption": "Rings at 90% off, link in bio", "alt_text": "Three gold rings"},
    )
    unconfigured = {"SAFEGUARD_BACKEND": "openai", "SAFEGUARD_BASE_URL": ""}
    with celery_worker(broker_url=broker_url, env=unconfigured, log_path=tmp_path / "w1.log"):
        failed = wait_for(_settled(case.id, "failed"), timeout=60, what="the unconfigured draft")
    assert failed.failure_reason == "not_configured"
    assert received == []

    configured = {
        "SAFEGUARD_BACKEND": "openai",
        "SAFEGUARD_BASE_URL": base_url,
        "SAFEGUARD_MODEL": "openai/gpt-oss-safeguard-20b",
        "SAFEGUARD_MAX_RETRIES": "0",
    }
    # Nobody presses Retry: the worker's start is what asks again.
    with celery_worker(broker_url=broker_url, env=configured, log_path=tmp_path / "w2.log"):
        ready = wait_for(_settled(case.id, "ready"), timeout=60, what="the re-queued draft")
        seen = wait_for(_settled(picture.id, "ready"), timeout=60, what="the image's draft")
    log = (tmp_path / "w2.log").read_text()
    assert "Re-queued 2 draft(s) that had failed as not configured" in log
    # The text-only model read the image's caption and alt text, labelled, and says so.
    assert seen.model_saw == "caption"
    prompts = [body["messages"][-1]["content"] for body in received]
    assert any(
        "<context>\nCaption: Rings at 90% off, link in bio\nAlt text: Three gold rings\n</context>"
        in prompt
        for prompt in prompts
    ), prompts
    assert ready.violation is True and "SP2.b" in ready.rule_ids
    assert ready.model_saw == "text"
    assert any("Gold rings, 90% off" in prompt for prompt in prompts)
    # The fast tier's TRIAGED event (default queue) has no fixed place among the draft's events.
    kinds = list(
        AuditEvent.objects.filter(case=case).exclude(kind="triaged").values_list("kind", flat=True)
    )
    assert kinds == [
        "received",
        "draft_started",
        "draft_failed",
        "draft_requested",
        "draft_started",
        "drafted",
    ]


def test_the_case_page_says_the_draft_will_come_once_a_model_is_configured(
    client, platform, spam_policy, alice, monkeypatch
):
    case = flag(platform)
    failed_draft(case)
    client.force_login(alice)
    assert "No model is configured." in client.get(f"/cases/{case.id}/").content.decode()
    monkeypatch.setenv("SAFEGUARD_BACKEND", "openai")
    monkeypatch.setenv("SAFEGUARD_BASE_URL", "http://127.0.0.1:9/v1")
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert "A model is configured now." in page
    assert "asked for again when a worker starts" in page
