"""The callback outbox: the row written with the decision, the sweep, claims, the broker being down,
and what seniors see and do on the dashboard.

The platform is a real HTTP server on loopback (tests/callback_receiver.py). "The broker is down"
is a Redis URL on a loopback port nobody listens on, through Celery's real publishing path.
"""

from __future__ import annotations

import datetime as dt
import random
import socket
import threading
import time

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from appeals.audit import PendingEvent, record_events, verify_chain
from appeals.disclosure import outbox
from appeals.models import AuditEvent, CallbackDelivery, Decision, Platform
from appeals.review import queueing
from tests.builders import decide, flag
from tests.callback_receiver import Receiver
from tests.workers import celery_publishing_to

pytestmark = pytest.mark.django_db

SECRET = "whsec_outbox_test"


def point_platform_at(url: str) -> None:
    Platform.objects.filter(slug="acme").update(callback_url=url, callback_secret=SECRET)


def callback_kinds(decision) -> list[str]:
    return list(
        AuditEvent.objects.filter(case_id=decision.case_id, kind__startswith="callback")
        .order_by("id")
        .values_list("kind", flat=True)
    )


def make_due(*decisions) -> None:
    CallbackDelivery.objects.filter(decision__in=decisions).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker_down():
    """Celery's app publishes to a Redis that is not there (and back to the real one after)."""
    with celery_publishing_to(f"redis://127.0.0.1:{closed_port()}/0"):
        yield


# --- backoff ---------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter(settings):
    settings.CALLBACK_RETRY_BASE_SECONDS = 30
    settings.CALLBACK_RETRY_MAX_SECONDS = 3600
    rng = random.Random(7)
    for attempt, full in [(1, 30), (2, 60), (3, 120), (5, 480), (8, 3600), (20, 3600)]:
        waits = [outbox.backoff_seconds(attempt, rng=rng) for _ in range(200)]
        assert full / 2 <= min(waits) and max(waits) <= full
        assert max(waits) - min(waits) > full / 4, "jittered, not one fixed delay"


# --- the sweep -------------------------------------------------------------------------------


def test_the_sweep_delivers_what_is_due_and_leaves_the_rest(alice, platform, spam_policy):
    point_platform_at("http://127.0.0.1:9/unused")
    due = decide(alice, flag(platform), "not_violating")
    later = decide(alice, flag(platform), "not_violating")
    make_due(due)
    CallbackDelivery.objects.filter(decision=later).update(
        next_attempt_at=timezone.now() + dt.timedelta(minutes=5), attempts=1
    )
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert outbox.sweep_callbacks() == {"delivered": 1}
        assert outbox.sweep_callbacks() == {}
    [(headers, body)] = receiver.requests
    assert headers["Idempotency-Key"] == f"decision-{due.id}"
    assert CallbackDelivery.objects.get(decision=due).status == "delivered"
    assert CallbackDelivery.objects.get(decision=later).status == "pending"
    assert callback_kinds(due) == ["callback_attempted", "callback_delivered"]
    assert callback_kinds(later) == []


def test_a_claim_whose_worker_died_is_taken_over_and_the_lost_attempt_audited(
    alice, platform, spam_policy
):
    point_platform_at("http://127.0.0.1:9/unused")
    decision = decide(alice, flag(platform), "not_violating")
    make_due(decision)
    # A worker claimed the row and was killed before it could record anything.
    assert outbox._claim(decision.id, timezone.now()) is not None
    row = CallbackDelivery.objects.get(decision=decision)
    assert (row.status, row.attempts) == ("delivering", 1)
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert outbox.sweep_callbacks() == {}, "the claim still holds"
        after_lapse = row.claimed_until + dt.timedelta(seconds=1)
        assert outbox.sweep_callbacks(now=after_lapse) == {"delivered": 1}
    assert [h["X-Appeals-Delivery-Attempt"] for h, _ in receiver.requests] == ["2"]
    events = list(
        AuditEvent.objects.filter(case_id=decision.case_id, kind__startswith="callback")
        .order_by("id")
        .values_list("kind", "data")
    )
    assert [kind for kind, _ in events] == [
        "callback_attempted",
        "callback_attempted",
        "callback_delivered",
    ]
    assert events[0][1]["stage"] == "lapsed" and events[0][1]["attempt"] == 1
    assert events[1][1]["attempt"] == 2 and events[1][1]["status_code"] == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_sweeps_never_deliver_the_same_callback_twice(alice, platform, spam_policy):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers need PostgreSQL")
    point_platform_at("http://127.0.0.1:9/unused")
    decided = [decide(alice, flag(platform), "not_violating") for _ in range(6)]
    make_due(*decided)
    results, errors = [], []
    start = threading.Barrier(4)

    def sweep():
        try:
            start.wait()
            results.append(outbox.sweep_callbacks())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    with Receiver() as receiver:
        point_platform_at(receiver.url)
        threads = [threading.Thread(target=sweep) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
    keys = sorted(headers["Idempotency-Key"] for headers, _ in receiver.requests)
    assert keys == sorted(f"decision-{d.id}" for d in decided), "each exactly once"
    assert sum(r.get("delivered", 0) for r in results) == 6
    assert set(CallbackDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    for decision in decided:
        assert callback_kinds(decision) == ["callback_attempted", "callback_delivered"]


def test_a_late_or_duplicate_task_message_finds_nothing_to_do(alice, platform, spam_policy):
    from appeals.disclosure import tasks

    with Receiver() as receiver:
        point_platform_at(receiver.url)
        decision = decide(alice, flag(platform), "not_violating")
        assert tasks.deliver_decision_callback.run(decision.id) == "delivered"
        assert tasks.deliver_decision_callback.run(decision.id) == "skipped"
        assert outbox.sweep_callbacks() == {}
    assert len(receiver.requests) == 1


# --- the broker is down at decision time -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_the_decision_stands_and_the_hand_off_is_an_attempt(
    broker_down, alice, platform, spam_policy
):
    point_platform_at("http://127.0.0.1:9/unused")
    case = flag(platform)
    started = time.monotonic()
    decision = decide(alice, case, "not_violating")  # commits; the hand-off runs after commit
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"the decision waited {elapsed:.1f} s on a dead broker"
    assert Decision.objects.filter(id=decision.id).exists()
    row = CallbackDelivery.objects.get(decision=decision)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "could not queue the delivery" in row.last_error
    assert row.next_attempt_at <= timezone.now(), "due at the next sweep"
    event = AuditEvent.objects.get(case=case, kind=AuditEvent.Kind.CALLBACK_ATTEMPTED)
    assert event.data["stage"] == "enqueue" and event.data["attempt"] == 1
    assert event.source == "console"
    # The sweep (once a worker runs it) delivers it.
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert outbox.sweep_callbacks() == {"delivered": 1}
    assert [h["X-Appeals-Delivery-Attempt"] for h, _ in receiver.requests] == ["2"]
    assert callback_kinds(decision) == [
        "callback_attempted",
        "callback_attempted",
        "callback_delivered",
    ]
    assert verify_chain().ok


@pytest.mark.django_db(transaction=True)
def test_the_decide_page_works_with_the_broker_down(
    broker_down, client, alice, platform, spam_policy
):
    point_platform_at("http://127.0.0.1:9/unused")
    case = flag(platform)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {"lease_token": claimed.lease_token, "outcome": "not_violating"},
    )
    assert response.status_code == 302, response.content[:500]
    decision = Decision.objects.get(case=case)
    row = CallbackDelivery.objects.get(decision=decision)
    assert (row.status, row.attempts) == ("pending", 1)


# --- seniors: the dashboard panel and "retry now" ---------------------------------------------


@pytest.fixture
def given_up(alice, platform, spam_policy):
    """A callback the platform refused with 410: given up, with the error kept."""
    point_platform_at("http://127.0.0.1:9/unused")
    decision = decide(alice, flag(platform), "not_violating")
    with Receiver(statuses=[410]) as receiver:
        point_platform_at(receiver.url)
        assert outbox.deliver(decision_id=decision.id).status == "failed"
    return CallbackDelivery.objects.get(decision=decision)


def test_seniors_see_undelivered_callbacks_with_the_last_error(client, carol, given_up):
    client.force_login(carol)
    response = client.get(reverse("dashboard"))
    page = response.content.decode()
    assert 'id="undelivered-callbacks"' in page
    assert "HTTP 410" in page
    assert "Given up" in page
    assert reverse("retry_callback", args=[given_up.id]) in page
    assert response.context["undelivered_count"] == 1


def test_reviewers_neither_see_nor_retry_callbacks(client, alice, given_up):
    client.force_login(alice)
    assert 'id="undelivered-callbacks"' not in client.get(reverse("dashboard")).content.decode()
    response = client.post(reverse("retry_callback", args=[given_up.id]))
    assert response.status_code == 403
    given_up.refresh_from_db()
    assert given_up.status == "failed"


def test_retry_now_makes_a_given_up_callback_due_and_is_audited(
    client, carol, given_up, django_capture_on_commit_callbacks, monkeypatch
):
    from appeals.disclosure import tasks

    queued = []
    monkeypatch.setattr(
        tasks.deliver_decision_callback, "apply_async", lambda args, **kw: queued.append(args)
    )
    client.force_login(carol)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("retry_callback", args=[given_up.id]))
    assert response.status_code == 302
    given_up.refresh_from_db()
    assert given_up.status == "pending"
    assert given_up.attempt_limit == 1 + 9, "a fresh round of attempts"
    assert queued == [(given_up.decision_id,)]
    event = AuditEvent.objects.filter(kind=AuditEvent.Kind.CALLBACK_RETRY_REQUESTED).get()
    assert (event.actor, event.source) == (carol, "console")
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert outbox.sweep_callbacks() == {"delivered": 1}
    assert client.get(reverse("dashboard")).context["undelivered_count"] == 0


def test_a_delivered_callback_cannot_be_retried(client, carol, alice, platform, spam_policy):
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        decision = decide(alice, flag(platform), "not_violating")
        outbox.deliver(decision_id=decision.id)
    row = CallbackDelivery.objects.get(decision=decision)
    client.force_login(carol)
    response = client.post(reverse("retry_callback", args=[row.id]), follow=True)
    assert "already been delivered" in response.content.decode()
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.CALLBACK_RETRY_REQUESTED).exists()


# --- the upgrade: decisions from before the outbox ---------------------------------------------


def test_the_migration_queues_callbacks_the_log_shows_were_never_settled(
    alice, platform, spam_policy
):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("appeals.migrations.0009_callback_outbox")
    point_platform_at("http://127.0.0.1:9/unused")
    lost, delivered, silent = (decide(alice, flag(platform), "not_violating") for _ in range(3))
    CallbackDelivery.objects.all().delete()  # as before the outbox existed

    def attempted(decision, **data):
        return PendingEvent(
            AuditEvent.Kind.CALLBACK_ATTEMPTED,
            decision.case,
            actor_label="worker",
            source=AuditEvent.Source.WORKER,
            data={"decision_id": decision.id, **data},
        )

    record_events(
        [
            attempted(lost, attempt=1, status_code=503, error=""),
            attempted(lost, attempt=2, status_code=None, error="ConnectError: refused"),
            attempted(delivered, attempt=1, status_code=200, error=""),
            PendingEvent(
                AuditEvent.Kind.CALLBACK_DELIVERED,
                delivered.case,
                actor_label="worker",
                source=AuditEvent.Source.WORKER,
                data={"decision_id": delivered.id, "attempt": 1, "status_code": 200},
            ),
        ]
    )
    migration.queue_undelivered_callbacks(apps, None)
    rows = {row.decision_id: row for row in CallbackDelivery.objects.all()}
    assert set(rows) == {lost.id, delivered.id}, "no row where the log says nothing"
    assert (rows[lost.id].status, rows[lost.id].attempts) == ("pending", 2)
    assert rows[lost.id].last_error == "ConnectError: refused"
    assert rows[delivered.id].status == "delivered" and rows[delivered.id].delivered_at
    with Receiver() as receiver:
        point_platform_at(receiver.url)
        assert outbox.sweep_callbacks() == {"delivered": 1}
    assert [h["Idempotency-Key"] for h, _ in receiver.requests] == [f"decision-{lost.id}"]
    assert not CallbackDelivery.objects.filter(decision=silent).exists()
