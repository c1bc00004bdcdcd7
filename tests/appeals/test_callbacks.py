"""Decision callbacks: a real HTTP server on loopback receives them and checks the signature.

Delivery goes through the outbox (appeals/disclosure/outbox.py): the task runs synchronously
through its own `.run` (no eager mode); a failed attempt leaves the row pending with its next
attempt due later, which is what the sweep picks up (tests/appeals/test_outbox.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.conf import settings
from django.utils import timezone

from appeals.disclosure import callbacks, tasks
from appeals.disclosure.callbacks import SignatureError, sign, verify
from appeals.models import AuditEvent, CallbackDelivery, Platform
from appeals.review import decisions, queueing
from tests.builders import flag
from tests.callback_receiver import Receiver
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_0123456789"


@pytest.fixture
def decided(alice, platform, spam_policy):
    """alice removed an ad; the model had drafted it with reasoning the platform must not see.
    The platform has a callback URL (nothing listens there until a test points it elsewhere)."""
    point_platform_at("http://127.0.0.1:9/unused")
    case = flag(platform, external_id="ad-1")
    ready_draft(case, reasoning="SECRET reasoning", rationale="SECRET rationale")
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    return decisions.decide_case(
        reviewer=alice,
        case_id=case.id,
        lease_token=claimed.lease_token,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
        note="SECRET note",
    )


def point_platform_at(url: str) -> None:
    Platform.objects.filter(slug="acme").update(callback_url=url, callback_secret=SECRET)


def run_task(decision_id: int, *, times: int = 20) -> list[str]:
    """Run the task until it stops failing, as the sweep would (minus the waits): each retry
    happens once its row is due."""
    results = []
    for _ in range(times):
        CallbackDelivery.objects.filter(decision_id=decision_id, status="pending").update(
            next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
        )
        result = tasks.deliver_decision_callback.run(decision_id)
        results.append(result)
        if result != "retry":
            return results
    return results


def callback_events(decision):
    return list(
        AuditEvent.objects.filter(case_id=decision.case_id, kind__startswith="callback_")
        .order_by("id")
        .values_list("kind", "data")
    )


def test_the_platform_receives_a_signed_decision_it_can_verify(decided):
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert run_task(decided.id) == ["delivered"]
    [(headers, body)] = receiver.requests
    timestamp = verify(SECRET, body, headers["X-Appeals-Signature"])
    assert abs(time.time() - timestamp) < 60
    assert headers["Idempotency-Key"] == f"decision-{decided.id}"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["decision_id"] == decided.id
    assert payload["case_id"] == decided.case_id
    assert payload["case_external_id"] == payload["item_external_id"] == "ad-1"
    assert (payload["outcome"], payload["action"], payload["rule_ids"]) == (
        "violating",
        "remove",
        ["SP2.b"],
    )
    assert payload["decided_at"] == decided.decided_at.isoformat()
    assert "SP2.b: Irrelevant ads" in payload["notice"]
    assert b"SECRET" not in body


def test_a_receiver_rejects_a_forged_altered_or_stale_callback(decided):
    body = callbacks.body_for(decided)
    header = sign(SECRET, body)
    assert verify(SECRET, body, header)
    with pytest.raises(SignatureError, match="does not match"):
        verify("another secret", body, header)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, body.replace(b"remove", b"label"), header)
    stale = sign(SECRET, body, timestamp=int(time.time()) - 301)
    with pytest.raises(SignatureError, match="tolerance is 300s"):
        verify(SECRET, body, stale)
    assert verify(SECRET, body, stale, tolerance=600)
    with pytest.raises(SignatureError):
        verify(SECRET, body, "v1=abc")
    with pytest.raises(SignatureError):
        verify(SECRET, body, None)
    # During a secret rotation the sender may add a second v1; either may match.
    rotated = f"{header},v1={'0' * 64}"
    assert verify(SECRET, body, rotated)


def test_a_500_then_a_200_makes_two_attempts_and_one_delivery(decided):
    with Receiver(statuses=[500]) as receiver:
        point_platform_at(receiver.url)
        assert run_task(decided.id) == ["retry", "delivered"]
    assert len(receiver.requests) == 2
    (first_headers, first_body), (second_headers, second_body) = receiver.requests
    assert first_body == second_body
    assert first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"]
    assert [h["X-Appeals-Delivery-Attempt"] for h, _ in receiver.requests] == ["1", "2"]
    events = callback_events(decided)
    assert [kind for kind, _ in events] == [
        "callback_attempted",
        "callback_attempted",
        "callback_delivered",
    ]
    assert [data["status_code"] for _, data in events[:2]] == [500, 200]
    assert [data["attempt"] for _, data in events] == [1, 2, 2]


def test_a_delivered_callback_is_not_sent_again(decided):
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        run_task(decided.id)
        assert run_task(decided.id) == ["skipped"]
    assert len(receiver.requests) == 1


def test_429_is_retried_but_other_4xx_are_final(decided):
    with Receiver(statuses=[429, 403]) as receiver:
        point_platform_at(receiver.url)
        assert run_task(decided.id) == ["retry", "failed"]
    kinds = [kind for kind, _ in callback_events(decided)]
    assert kinds == ["callback_attempted", "callback_attempted", "callback_failed"]
    assert "403, which is not retried" in callback_events(decided)[-1][1]["reason"]


def test_network_errors_are_retried_and_recorded(decided):
    with Receiver() as receiver:
        url = receiver.url
    point_platform_at(url)  # the server is gone: connection refused
    before = timezone.now()
    assert tasks.deliver_decision_callback.run(decided.id) == "retry"
    [(kind, data)] = callback_events(decided)
    assert kind == "callback_attempted"
    assert data["status_code"] is None
    assert "ConnectError" in data["error"]
    row = CallbackDelivery.objects.get(decision=decided)
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 1, None)
    assert "ConnectError" in row.last_error
    # Not due again at once: the first backoff is 15-30 s (base 30 s, equal jitter).
    wait = (row.next_attempt_at - before).total_seconds()
    assert 15 <= wait <= 31
    assert data["next_attempt_at"] == row.next_attempt_at.isoformat()
    assert tasks.deliver_decision_callback.run(decided.id) == "skipped"


def test_it_gives_up_after_the_last_retry(decided):
    with Receiver(statuses=[503] * 20) as receiver:
        point_platform_at(receiver.url)
        results = run_task(decided.id)
    assert results == ["retry"] * 8 + ["failed"]
    assert len(receiver.requests) == settings.CALLBACK_MAX_ATTEMPTS == 9
    kind, data = callback_events(decided)[-1]
    assert kind == "callback_failed"
    assert data["reason"] == "gave up after 9 attempts"
    row = CallbackDelivery.objects.get(decision=decided)
    assert (row.status, row.attempts, row.last_error) == ("failed", 9, "HTTP 503")


def test_a_platform_without_a_callback_url_gets_no_outbox_row(alice, platform, spam_policy):
    case = flag(platform)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    decision = decisions.decide_case(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, outcome="not_violating"
    )
    assert not CallbackDelivery.objects.filter(decision=decision).exists()
    assert tasks.deliver_decision_callback.run(decision.id) == "skipped"
    assert callback_events(decision) == []


def test_a_committed_decision_has_its_outbox_row_and_queues_the_callback(
    alice, platform, spam_policy, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(
        tasks.deliver_decision_callback,
        "apply_async",
        lambda args, **options: queued.append((args, options)),
    )
    point_platform_at("https://platform.example/hooks")
    case = flag(platform)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    with django_capture_on_commit_callbacks(execute=False) as on_commit:
        decision = decisions.decide_case(
            reviewer=alice,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome="not_violating",
        )
        # Written in the decision's transaction, before anything is queued.
        row = CallbackDelivery.objects.get(decision=decision)
        assert (row.status, row.attempts, row.next_attempt_at) == (
            "pending",
            0,
            decision.decided_at,
        )
    assert queued == []
    for callback in on_commit:
        callback()
    assert [args for args, _ in queued] == [(decision.id,)]
    # The web process does not wait on a dead broker: one quick retry, then the sweep's turn.
    assert queued[0][1]["retry_policy"]["max_retries"] == 1


def test_callbacks_and_their_sweep_go_to_the_default_queue():
    assert settings.CELERY_TASK_ROUTES["appeals.tasks.deliver_decision_callback"] == {
        "queue": "default"
    }
    assert settings.CELERY_TASK_ROUTES["appeals.tasks.sweep_callbacks"] == {"queue": "default"}
    assert settings.CELERY_BEAT_SCHEDULE["sweep-callbacks"] == {
        "task": "appeals.tasks.sweep_callbacks",
        "schedule": 30.0,
    }
