import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from appeals.models import Case, Queue
from appeals.review import decisions, queueing
from appeals.review.queueing import LeaseError
from tests.builders import flag

pytestmark = pytest.mark.django_db


def test_claim_next_follows_priority_then_due_date_then_age(alice, platform, spam_policy):
    older = flag(platform)
    newer = flag(platform)
    trusted = flag(platform, source="trusted_flagger")
    Case.objects.filter(id=newer.id).update(due_at=timezone.now())  # due soonest
    order = [queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS) for _ in range(1)]
    assert order[0].id == trusted.id
    queueing.release_case(reviewer=alice, case_id=trusted.id, lease_token=order[0].lease_token)
    Case.objects.filter(id=trusted.id).update(status="decided", claimed_by=None)
    assert queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS).id == newer.id
    del older


def test_a_reviewer_gets_their_own_live_claim_back_first(alice, platform, spam_policy):
    flag(platform)
    flag(platform)
    first = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    again = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    assert again.id == first.id


def test_two_reviewers_get_different_cases(alice, bob, platform, spam_policy):
    flag(platform)
    flag(platform)
    a = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    b = queueing.claim_next_case(reviewer=bob, queue=Queue.FLAGS)
    assert a.id != b.id
    assert queueing.claim_next_case(reviewer=bob, queue=Queue.FLAGS).id == b.id


def test_expired_lease_returns_case_to_queue(alice, bob, platform, spam_policy):
    case = flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    Case.objects.filter(id=case.id).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    taken = queueing.claim_next_case(reviewer=bob, queue=Queue.FLAGS)
    assert taken.id == case.id
    assert list(
        case.events.filter(kind="lease_expired").values_list("data__previous_holder_id", flat=True)
    ) == [alice.id]
    with pytest.raises(LeaseError):
        decisions.decide_case(
            reviewer=alice,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
        )


def test_decision_with_someone_elses_lease_is_refused(alice, bob, platform, spam_policy):
    flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    with pytest.raises(LeaseError):
        decisions.decide_case(
            reviewer=bob,
            case_id=claimed.id,
            lease_token=claimed.lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
        )


def test_decision_with_expired_lease_is_refused(alice, platform, spam_policy):
    flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    Case.objects.filter(id=claimed.id).update(
        lease_expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with pytest.raises(LeaseError, match="expired"):
        decisions.decide_case(
            reviewer=alice,
            case_id=claimed.id,
            lease_token=claimed.lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
        )


def test_skipped_case_is_not_offered_to_the_same_reviewer(alice, bob, platform, spam_policy):
    case = flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    with pytest.raises(ValidationError):
        queueing.skip_case(
            reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, reason=" "
        )
    queueing.skip_case(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, reason="not my language"
    )
    assert queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS) is None
    assert queueing.claim_next_case(reviewer=bob, queue=Queue.FLAGS).id == case.id
    assert case.events.filter(kind="skipped").count() == 1


def test_release_is_recorded_and_case_is_claimable_again(alice, bob, platform, spam_policy):
    case = flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    queueing.release_case(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, reason="break"
    )
    assert case.events.filter(kind="released").get().data == {"reason": "break"}
    assert queueing.claim_next_case(reviewer=bob, queue=Queue.FLAGS).id == case.id


def test_escalated_case_moves_to_the_senior_queue(alice, carol, platform, spam_policy):
    case = flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    queueing.escalate_case(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, reason="possible threat"
    )
    with pytest.raises(PermissionDenied):
        queueing.claim_next_case(reviewer=alice, queue=Queue.ESCALATIONS)
    assert queueing.claim_next_case(reviewer=carol, queue=Queue.ESCALATIONS).id == case.id


def test_renewing_a_lease_extends_it(alice, platform, spam_policy):
    flag(platform)
    claimed = queueing.claim_next_case(reviewer=alice, queue=Queue.FLAGS)
    Case.objects.filter(id=claimed.id).update(
        lease_expires_at=timezone.now() + dt.timedelta(seconds=5)
    )
    renewed = queueing.renew_lease(
        reviewer=alice, case_id=claimed.id, lease_token=claimed.lease_token
    )
    assert renewed.lease_expires_at > timezone.now() + dt.timedelta(seconds=500)


def test_a_user_without_a_role_cannot_claim(mallory, platform, spam_policy):
    flag(platform)
    with pytest.raises(PermissionDenied):
        queueing.claim_next_case(reviewer=mallory, queue=Queue.FLAGS)
