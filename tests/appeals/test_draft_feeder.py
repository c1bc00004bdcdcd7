"""The GPU worker's drain loop (appeals/drafts/feeder.py): claims, the stream, a real worker.

- claims: two workers claiming at once never take the same draft, and take only pending drafts
  of the policy version asked for;
- the drain with the tiny CPU checkpoint stores, for every case, the very tokens that drafting
  the case alone (the one-request path) gives;
- a real Celery worker on Redis, with the OpenAI-compatible backend against a stand-in server,
  keeps SAFEGUARD_MAX_CONCURRENCY requests in flight across the task messages of one intake.
"""

from __future__ import annotations

import gzip
import json
import threading

import pytest
import redis
from django.conf import settings
from django.db import close_old_connections, connection

from appeals.drafts import feeder
from appeals.drafts import services as drafting
from appeals.models import AuditEvent, Recommendation
from bench.openai_standin import StandinServer
from policies.services import import_policy_version
from tests import safeguard_fixtures as fx
from tests.builders import flag
from tests.paths import shared_path
from tests.workers import celery_worker, wait_for

PENDING = Recommendation.Status.PENDING


def _moderation_texts(count: int) -> list[str]:
    """Real texts of different lengths (cut to keep a CPU test short)."""
    texts: list[str] = []
    lengths: set[int] = set()
    with gzip.open(
        shared_path("openai-moderation", "samples-1680.jsonl.gz"), "rt", encoding="utf-8"
    ) as handle:
        for line in handle:
            text = json.loads(line)["prompt"].strip()[:300]
            if text and len(text) not in lengths:
                lengths.add(len(text))
                texts.append(text)
            if len(texts) == count:
                return texts
    return texts


@pytest.fixture
def fixture_policy(db):
    return import_policy_version(
        slug="fixture-spam", name="Fixture spam policy", text=fx.FIXTURE_POLICY_TEXT
    )


# -- claims ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_claim_takes_only_pending_drafts_of_its_policy_version(platform, spam_policy):
    other = import_policy_version(slug="other", name="Other", text=fx.FIXTURE_POLICY_TEXT)
    mine = [flag(platform, content=f"spam {i}") for i in range(5)]
    theirs = [flag(platform, policy="other", content=f"other {i}") for i in range(3)]
    first = Recommendation.objects.get(case=mine[0])
    Recommendation.objects.filter(id=first.id).update(status="failed", failure_reason="timeout")

    taken = feeder.claim_drafts(spam_policy.id, limit=10)

    expected = set(Recommendation.objects.filter(case__in=mine[1:]).values_list("id", flat=True))
    assert set(taken) == expected
    assert len(set(taken.values())) == 1  # one run token for the claim
    for rec in Recommendation.objects.filter(id__in=taken):
        assert rec.status == Recommendation.Status.RUNNING
        assert rec.run_token == taken[rec.id] and rec.attempts == 1 and rec.started_at
    assert not Recommendation.objects.filter(case__in=theirs).exclude(status=PENDING).exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DRAFT_STARTED).count() == 4
    assert feeder.claim_drafts(spam_policy.id, limit=10) == {}  # nothing pending is left
    assert set(feeder.claim_drafts(other.id, limit=2)) <= set(
        Recommendation.objects.filter(case__in=theirs).values_list("id", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_once_never_take_the_same_draft(platform, spam_policy):
    for i in range(120):
        flag(platform, content=f"spam {i}")
    all_ids = set(Recommendation.objects.values_list("id", flat=True))
    claims: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    start = threading.Barrier(len(claims))
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            while taken := feeder.claim_drafts(spam_policy.id, limit=7):
                claims[name].extend(taken)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    taken = [rec_id for ids in claims.values() for rec_id in ids]
    assert len(taken) == len(set(taken)) == len(all_ids)  # every draft once, none twice
    assert set(taken) == all_ids
    assert sum(1 for ids in claims.values() if ids) >= 2  # they really did claim side by side
    assert set(Recommendation.objects.values_list("attempts", flat=True)) == {1}
    started = AuditEvent.objects.filter(kind=AuditEvent.Kind.DRAFT_STARTED)
    assert started.count() == len(all_ids)


# -- the drain with the tiny checkpoint -----------------------------------------------------


@pytest.fixture
def tiny_engine_env(monkeypatch):
    import torch

    # Tiny models on a shared 2-core machine: a second intra-op thread mostly waits (10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("SAFEGUARD_BACKEND", "transformers")
    monkeypatch.setenv("SAFEGUARD_MODEL", str(fx.build_tiny_checkpoint()))
    monkeypatch.setenv("SAFEGUARD_DEVICE", "cpu")
    monkeypatch.setenv("SAFEGUARD_MAX_NEW_TOKENS", "120")  # the fixture answers take 68-89
    monkeypatch.setenv("SAFEGUARD_BATCH_SIZE", "3")  # fewer slots than cases: slots refill
    yield
    torch.set_num_threads(threads)


@pytest.mark.django_db(transaction=True)  # answers are stored on the drain's writer thread
def test_the_drain_stores_the_tokens_of_drafting_each_case_alone(
    platform, fixture_policy, alice, tiny_engine_env
):
    contents = [c.case.content for c in fx.FIXTURE_CASES] + _moderation_texts(6)
    cases = [flag(platform, policy="fixture-spam", content=text) for text in contents]

    stored = feeder.drain_policy_version(fixture_policy.id, claim_size=2)

    assert stored == len(cases)
    drained = {r.case_id: r for r in Recommendation.objects.filter(case__in=cases)}
    assert {r.status for r in drained.values()} <= {"ready", "failed"}
    assert not Recommendation.objects.filter(status__in=Recommendation.IN_FLIGHT).exists()
    for fixture, case in zip(fx.FIXTURE_CASES, cases, strict=False):  # the memorised answers
        assert drained[case.id].status == "ready"
        assert drained[case.id].violation == fixture.violation

    # The same cases again, each drafted on its own through the one-request path.
    for case in cases:
        again = drafting.request_draft(case=case, actor=alice)
        assert drafting.run_drafts([again.id]) == 1
        alone = Recommendation.objects.get(id=again.id)
        first = drained[case.id]
        assert alone.raw_output == first.raw_output, case.item.content[:60]
        assert alone.tokens_out == first.tokens_out and alone.tokens_in == first.tokens_in
        assert (alone.status, alone.failure_reason) == (first.status, first.failure_reason)
        assert alone.prompt_sha256 == first.prompt_sha256


@pytest.mark.django_db(transaction=True)
def test_a_drain_out_of_time_hands_the_rest_to_a_new_task(
    platform, fixture_policy, tiny_engine_env, monkeypatch
):
    cases = [
        flag(platform, policy="fixture-spam", content=c.case.content) for c in fx.FIXTURE_CASES
    ]
    sent: list[list[list[int]]] = []
    monkeypatch.setattr(drafting, "enqueue_drafts", sent.append)

    stored = feeder.drain_policy_version(fixture_policy.id, budget_s=0)

    assert stored == 0
    pending = list(
        Recommendation.objects.filter(case__in=cases, status=PENDING).values_list("id", flat=True)
    )
    assert len(pending) == len(cases)  # nothing claimed, nothing lost
    assert sent == [[sorted(pending)]]


# -- a real worker against a stand-in server ------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_keeps_max_concurrency_requests_in_flight_across_messages(
    platform, spam_policy, tmp_path
):
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    count, concurrency = 60, 20
    with StandinServer(latency_s=0.5) as server:
        env = {
            "SAFEGUARD_BACKEND": "openai",
            "SAFEGUARD_BASE_URL": server.base_url,
            "SAFEGUARD_MODEL": "standin",
            "SAFEGUARD_MAX_CONCURRENCY": str(concurrency),
            "SAFEGUARD_BATCH_SIZE": "8",  # one task message per 8 cases, as intake sends them
        }
        with celery_worker(broker_url=url, queues="gpu", env=env, log_path=tmp_path / "w.log"):
            from appeals.intake.bulk import receive_items_bulk
            from appeals.intake.schemas import ItemIn

            outcomes = receive_items_bulk(
                platform=platform,
                payloads=[
                    ItemIn(external_id=f"bulk-{i}", policy="spam", content=f"spam {i}")
                    for i in range(count)
                ],
                invalid={},
            )
            assert [o.status for o in outcomes] == [201] * count

            def all_done():
                close_old_connections()
                return not Recommendation.objects.filter(
                    status__in=Recommendation.IN_FLIGHT
                ).exists()

            wait_for(all_done, timeout=90, what="every draft answered")
    log = (tmp_path / "w.log").read_text()
    recs = list(Recommendation.objects.all())
    assert len(recs) == count and {r.status for r in recs} == {"ready"}, log[-2000:]
    assert {r.attempts for r in recs} == {1}
    assert server.requests == count  # no draft asked twice
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.DRAFTED).count() == count
    # Task messages carry 8 ids each; the drain kept the pool full across them.
    assert server.peak_in_flight == concurrency, log[-2000:]
    redis.Redis.from_url(url).flushdb()
