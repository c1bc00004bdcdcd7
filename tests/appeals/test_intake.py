"""Intake as casework: acme flags items and forwards appeals; what each step leaves behind."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from appeals.drafts import services as drafting
from appeals.intake import bulk as bulk_intake
from appeals.intake import services as intake
from appeals.intake.schemas import AppealIn, FieldProblem, InvalidPayload, ItemIn, parse_payload
from appeals.models import AuditEvent, Case, Decision, Item, Recommendation
from tests.builders import appeal, flag

pytestmark = pytest.mark.django_db


def item(external_id: str, **fields) -> ItemIn:
    return ItemIn(
        external_id=external_id,
        policy=fields.pop("policy", "spam"),
        content=fields.pop("content", "Buy gold rings here!"),
        **fields,
    )


def bulk(platform, payloads, invalid=None):
    return bulk_intake.receive_items_bulk(
        platform=platform, payloads=payloads, invalid=invalid or {}
    )


def test_received_item_is_a_flag_case_with_a_pending_draft_and_a_received_event(
    platform, spam_policy
):
    case = intake.receive_item(platform=platform, payload=item("p-1")).case
    assert (case.kind, case.queue, case.status) == ("flag", "flags", "open")
    assert case.due_at == case.created_at + dt.timedelta(hours=24)
    assert case.recommendations.get().status == Recommendation.Status.PENDING
    event = case.events.get()
    assert (event.kind, event.actor_label, event.data["external_id"]) == (
        "received",
        "api:acme",
        "p-1",
    )


def test_trusted_flaggers_items_are_queued_ahead(platform, spam_policy):
    ordinary = flag(platform)
    trusted = flag(platform, source="trusted_flagger")
    assert trusted.priority > ordinary.priority


def test_item_resent_with_the_same_body_returns_the_existing_case_and_writes_nothing(
    platform, spam_policy
):
    first = intake.receive_item(platform=platform, payload=item("p-1"))
    again = intake.receive_item(platform=platform, payload=item("p-1"))
    assert (first.created, again.created, again.case.id) == (True, False, first.case.id)
    # One event for the case (beside the policy's own, which name no case).
    assert AuditEvent.objects.filter(case__isnull=False).count() == 1
    assert Recommendation.objects.count() == 1


def test_item_resent_with_another_body_is_a_conflict_on_external_id(platform, spam_policy):
    intake.receive_item(platform=platform, payload=item("p-1"))
    with pytest.raises(FieldProblem) as refused:
        intake.receive_item(platform=platform, payload=item("p-1", content="other words"))
    assert (refused.value.field, refused.value.status) == ("external_id", 409)


def test_item_under_a_policy_that_does_not_exist_is_refused_on_policy(platform, spam_policy):
    with pytest.raises(FieldProblem) as refused:
        intake.receive_item(platform=platform, payload=item("p-1", policy="fraud"))
    assert refused.value.field == "policy"
    assert Item.objects.count() == 0


def test_duplicate_that_lost_the_race_gets_the_winners_case(platform, spam_policy, monkeypatch):
    winner = intake.receive_item(platform=platform, payload=item("p-1")).case
    real_existing = intake._existing
    calls = []

    def missed_first_time(*args):
        calls.append(args)
        return None if len(calls) == 1 else real_existing(*args)

    monkeypatch.setattr(intake, "_existing", missed_first_time)
    result = intake.receive_item(platform=platform, payload=item("p-1"))
    assert (result.created, result.case.id) == (False, winner.id)
    assert Case.objects.count() == 1


# --- Bulk ------------------------------------------------------------------------------------


def test_bulk_writes_each_valid_item_with_its_draft_request_and_event(platform, spam_policy):
    invalid = {1: [{"field": "content", "problem": "is required"}]}
    outcomes = bulk(platform, [item("a"), None, item("b"), item("c", policy="fraud")], invalid)
    assert [o.status for o in outcomes] == [201, 422, 201, 422]
    assert outcomes[3].problems[0]["field"] == "policy"
    cases = Case.objects.order_by("external_id")
    assert [c.external_id for c in cases] == ["a", "b"]
    for case in cases:
        assert case.recommendations.get().status == "pending"
        assert list(case.events.values_list("kind", flat=True)) == ["received"]


def test_bulk_repeats_point_at_their_first_occurrence(platform, spam_policy):
    outcomes = bulk(platform, [item("a"), item("a"), item("a", content="changed"), item("b")])
    assert [o.status for o in outcomes] == [201, 200, 409, 201]
    assert outcomes[0].case.id == outcomes[1].case.id
    assert "item 0" in outcomes[2].problems[0]["problem"]


def test_bulk_item_an_appeal_brought_in_is_a_conflict_for_that_item_only(platform, spam_policy):
    appeal(platform, item_external_id="shared", content="Visit my shop", policy="spam")
    outcomes = bulk(platform, [item("shared"), item("fresh")])
    assert [o.status for o in outcomes] == [409, 201]
    assert outcomes[0].problems[0]["field"] == "external_id"


def test_bulk_falls_back_to_one_at_a_time_when_another_request_took_an_id(
    platform, spam_policy, monkeypatch
):
    real_create = bulk_intake._create_flags_together

    def another_request_first(platform_, rows, **kwargs):
        intake.receive_item(
            platform=platform_, payload=item("b")
        )  # commits between check and write
        return real_create(platform_, rows, **kwargs)

    monkeypatch.setattr(bulk_intake, "_create_flags_together", another_request_first)
    outcomes = bulk(platform, [item("a"), item("b"), item("c")])
    assert [o.status for o in outcomes] == [201, 200, 201]
    assert Case.objects.count() == 3 and Recommendation.objects.count() == 3
    assert AuditEvent.objects.filter(kind="received").count() == 3


def test_bulk_costs_a_few_queries_per_batch_not_per_item(
    platform, spam_policy, django_assert_max_num_queries
):
    bulk(platform, [item("warm-up")])
    # SQLite splits bulk inserts by its bound-parameter limit; PostgreSQL does not.
    with django_assert_max_num_queries(300 // 10):
        bulk(platform, [item(f"many-{i}") for i in range(300)])
    assert Case.objects.count() == 301


# --- Appeals ---------------------------------------------------------------------------------


def appeal_in(**overrides) -> AppealIn:
    data = {
        "external_id": "ap-1",
        "item_external_id": "p-1",
        "statement": "It was my shop.",
        "original_decision": {
            "outcome": "remove",
            "rule_ids": ["SP2.b"],
            "decided_at": timezone.now() - dt.timedelta(days=3),
        },
    }
    data.update(overrides)
    return AppealIn.model_validate(data)


def test_appeal_against_a_decided_flag_points_at_that_decision_and_marks_it_appealed(
    platform, spam_policy, alice
):
    flagged = flag(platform, external_id="p-1")
    decision = Decision.objects.create(
        case=flagged, decided_by=alice, outcome="violating", action="remove", rule_ids=["SP2.b"]
    )
    case = intake.receive_appeal(platform=platform, payload=appeal_in()).case
    assert (case.kind, case.queue, case.appealed_decision_id) == ("appeal", "appeals", decision.id)
    assert case.item_id == flagged.item_id
    assert flagged.events.filter(kind="appealed").get().data == {"appeal_case_id": case.id}


def test_appeal_for_an_item_not_here_needs_its_content_and_policy(platform, spam_policy):
    with pytest.raises(FieldProblem) as refused:
        intake.receive_appeal(platform=platform, payload=appeal_in(policy="spam"))
    assert refused.value.field == "content"
    with pytest.raises(FieldProblem) as refused:
        intake.receive_appeal(platform=platform, payload=appeal_in(content="Visit my shop"))
    assert refused.value.field == "policy"
    assert Item.objects.count() == 0


def test_appeal_naming_another_policy_than_its_items_is_refused(platform, spam_policy):
    from tests.builders import make_policy

    make_policy(slug="fraud", name="Fraud")
    flag(platform, external_id="p-1")
    with pytest.raises(FieldProblem) as refused:
        intake.receive_appeal(platform=platform, payload=appeal_in(policy="fraud"))
    assert refused.value.field == "policy"


def test_appeal_after_the_policys_window_is_refused_as_too_late(platform, spam_policy):
    flag(platform, external_id="p-1")
    late = {"outcome": "remove", "decided_at": timezone.now() - dt.timedelta(days=184)}
    with pytest.raises(FieldProblem) as refused:
        intake.receive_appeal(platform=platform, payload=appeal_in(original_decision=late))
    assert refused.value.field == "original_decision.decided_at"
    assert "too late" in refused.value.problem
    assert Case.objects.filter(kind="appeal").count() == 0


def test_appeal_against_a_decision_in_the_future_is_refused(platform, spam_policy):
    flag(platform, external_id="p-1")
    future = {"outcome": "remove", "decided_at": timezone.now() + dt.timedelta(hours=1)}
    with pytest.raises(FieldProblem) as refused:
        intake.receive_appeal(platform=platform, payload=appeal_in(original_decision=future))
    assert "future" in refused.value.problem


# --- Payload rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("content", "a\x00b", "NUL"),
        ("external_id", "a\x00", "NUL"),
        ("metadata", {"k": float("inf")}, "infinite"),
        ("metadata", {"k\x00": 1}, "NUL"),
        ("flagged_at", "2026-01-01T00:00:00", "timezone"),
        ("flagged_at", "1900-01-01T00:00:00Z", "1970"),
    ],
)
def test_values_no_database_can_store_are_refused_by_field(field, value, problem):
    data = {"external_id": "p-1", "policy": "spam", "content": "x", field: value}
    with pytest.raises(InvalidPayload) as refused:
        parse_payload(ItemIn, data)
    assert refused.value.problems[0]["field"] == field
    assert problem in refused.value.problems[0]["problem"]


def test_times_are_kept_in_utc_whatever_offset_they_came_with(platform, spam_policy):
    payload = parse_payload(
        ItemIn,
        {
            "external_id": "p-1",
            "policy": "spam",
            "content": "x",
            "flagged_at": "2026-11-23T23:30:00+23:30",
        },
    )
    assert payload.flagged_at == dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)
    case = intake.receive_item(platform=platform, payload=payload).case
    case.item.refresh_from_db()
    assert case.item.flagged_at == dt.datetime(2026, 11, 23, 0, 0, tzinfo=dt.UTC)


def test_every_problem_in_a_payload_is_named_at_once():
    with pytest.raises(InvalidPayload) as refused:
        parse_payload(AppealIn, {"statement": "", "original_decision": {"outcome": "ban"}, "x": 1})
    named = {p["field"] for p in refused.value.problems}
    assert {
        "external_id",
        "item_external_id",
        "statement",
        "original_decision.outcome",
        "original_decision.decided_at",
        "x",
    } <= named


# --- Real concurrency, on PostgreSQL ------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_item_sent_by_eight_clients_at_once_makes_one_case(
    platform, spam_policy, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are tested on PostgreSQL (set DATABASE_URL)")
    monkeypatch.setattr(drafting, "_enqueue_on_commit", lambda ids: None)  # no broker needed
    start = threading.Barrier(8)
    results, errors = [], []

    def send():
        try:
            start.wait()
            results.append(intake.receive_item(platform=platform, payload=item("race")))
        except (IntegrityError, FieldProblem) as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.created for r in results) == 1
    assert len({r.case.id for r in results}) == 1
    assert Case.objects.count() == 1 and Recommendation.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_bulk_requests_with_the_same_items_in_opposite_orders_do_not_deadlock(
    platform, spam_policy, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers are tested on PostgreSQL (set DATABASE_URL)")
    monkeypatch.setattr(drafting, "_enqueue_on_commit", lambda ids: None)
    outcomes, errors = [], []
    for round_ in range(5):
        payloads = [item(f"both-{round_}-{n}") for n in range(300)]
        start = threading.Barrier(2)

        def send(order, start=start):
            try:
                start.wait()
                outcomes.extend(bulk(platform, order))
            except Exception as error:  # surfaced below
                errors.append(error)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=send, args=(order,)) for order in (payloads, payloads[::-1])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sorted(o.status for o in outcomes) == [200] * 1500 + [201] * 1500
    assert Case.objects.count() == 1500 and Recommendation.objects.count() == 1500
