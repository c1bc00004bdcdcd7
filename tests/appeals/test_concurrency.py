"""Claiming under real concurrency, on PostgreSQL: no case is handed to two reviewers."""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from appeals.models import Case, Queue
from appeals.review import queueing
from tests.builders import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

REVIEWERS = 16
CASES = 2000


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SELECT … FOR UPDATE SKIP LOCKED is tested on PostgreSQL (set DATABASE_URL)")


def _seed_cases(platform, n):
    from appeals.intake.bulk import receive_items_bulk
    from appeals.intake.schemas import ItemIn

    payloads = [
        ItemIn(external_id=f"c-{i}", policy="spam", content=f"Buy gold rings here! #{i}")
        for i in range(n)
    ]
    for start in range(0, n, 500):
        outcomes = receive_items_bulk(
            platform=platform, payloads=payloads[start : start + 500], invalid={}
        )
        assert all(o.status == 201 for o in outcomes)


def test_sixteen_reviewers_claim_two_thousand_cases_each_exactly_once(
    postgres_only, roles, platform, spam_policy, settings
):
    settings.CELERY_BROKER_URL = "memory://"
    _seed_cases(platform, CASES)
    reviewers = [make_user(f"reviewer{i}", "reviewer") for i in range(REVIEWERS)]
    claims: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(REVIEWERS)

    def work(reviewer):
        try:
            start.wait()
            while True:
                case = queueing.claim_next_case(reviewer=reviewer, queue=Queue.FLAGS)
                if case is None:
                    break
                with lock:
                    claims.append((case.id, reviewer.id))
                # Finish the case so the next claim moves on (a decision needs the lease).
                Case.objects.filter(id=case.id, lease_token=case.lease_token).update(
                    status=Case.Status.DECIDED,
                    claimed_by=None,
                    lease_token=None,
                    lease_expires_at=None,
                )
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    counts = Counter(case_id for case_id, _ in claims)
    assert len(counts) == CASES, "every case was claimed"
    assert max(counts.values()) == 1, "no case was claimed twice"
    assert Case.objects.filter(status=Case.Status.OPEN).count() == 0
    per_reviewer = Counter(reviewer_id for _, reviewer_id in claims)
    assert len(per_reviewer) > 1, "the work was shared"
    assert Case.objects.filter(events__kind="claimed").count() == CASES


def test_concurrent_claims_with_live_leases_never_overlap(
    postgres_only, roles, platform, spam_policy, settings
):
    settings.CELERY_BROKER_URL = "memory://"
    _seed_cases(platform, 40)
    reviewers = [make_user(f"r{i}", "reviewer") for i in range(REVIEWERS)]
    held: dict[int, int] = {}
    errors = []
    barrier = threading.Barrier(REVIEWERS)
    lock = threading.Lock()

    def work(reviewer):
        try:
            barrier.wait()
            case = queueing.claim_next_case(reviewer=reviewer, queue=Queue.FLAGS)
            with lock:
                assert case.id not in held, f"case {case.id} handed to two reviewers"
                held[case.id] = reviewer.id
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert len(held) == REVIEWERS
    rows = dict(Case.objects.filter(id__in=held).values_list("id", "claimed_by_id"))
    assert rows == held
