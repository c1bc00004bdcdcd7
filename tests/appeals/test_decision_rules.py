"""Rules the decide service enforces itself, whatever a form or a client posts.

- Blind-first: in a queue that hides the draft, a final decision needs the reviewer's own call.
- "Accepted the model's recommendation" is worked out from what was decided, never taken from
  the request.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from appeals import outcomes
from appeals.models import AuditEvent, Case, Decision, Queue, QueueSetting
from appeals.review import decisions, queueing
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def blind_flags(db):
    return QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)


def test_decision_on_a_blind_first_case_without_a_blind_call_is_refused(
    alice, platform, spam_policy, blind_flags
):
    case = flag(platform)
    ready_draft(case)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    with pytest.raises(ValidationError, match="blind-first: record your own call"):
        decisions.decide_case(
            reviewer=alice,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
        )
    case.refresh_from_db()
    assert not Decision.objects.filter(case=case).exists()
    assert case.status == Case.Status.OPEN and case.claimed_by_id == alice.id  # lease kept
    assert not case.events.filter(kind=AuditEvent.Kind.DECIDED).exists()


def test_after_the_blind_call_the_decision_goes_through_and_keeps_the_call(
    alice, platform, spam_policy, blind_flags
):
    case = flag(platform)
    ready_draft(case)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    decisions.record_blind_call(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, outcome="not_violating"
    )
    decision = decisions.decide_case(
        reviewer=alice,
        case_id=case.id,
        lease_token=claimed.lease_token,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
    )
    assert (decision.blind_outcome, decision.blind_agrees_with_model) == ("not_violating", False)
    assert decision.recommendation_shown is True


def test_another_reviewers_blind_call_does_not_count(
    alice, bob, platform, spam_policy, blind_flags
):
    case = flag(platform)
    ready_draft(case)
    claimed = queueing.claim_case(reviewer=bob, case_id=case.id)
    decisions.record_blind_call(
        reviewer=bob, case_id=case.id, lease_token=claimed.lease_token, outcome="violating"
    )
    queueing.release_case(reviewer=bob, case_id=case.id, lease_token=claimed.lease_token)
    with pytest.raises(ValidationError, match="blind-first"):
        decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])


def test_the_blind_first_refusal_reaches_the_page_as_a_message(
    client, alice, platform, spam_policy, blind_flags
):
    case = flag(platform)
    ready_draft(case)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {"lease_token": claimed.lease_token, "outcome": "violating", "rule_ids": ["SP2.b"]},
    )
    assert response.status_code == 400
    assert b"record your own call before deciding" in response.content
    assert not Decision.objects.filter(case=case).exists()


def test_deciding_what_the_draft_says_is_accepting_it(alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(case)  # violating, SP2.b
    decision = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    assert decision.accepted_recommendation is True
    event = case.events.get(kind=AuditEvent.Kind.DECIDED)
    assert event.data["accepted_recommendation"] is True


@pytest.mark.parametrize(
    "decided",
    [
        {"outcome": "violating", "action": "remove", "rule_ids": ["SP3.a"]},  # another rule
        {"outcome": "violating", "action": "label", "rule_ids": ["SP2.b"]},  # another action
        {"outcome": "violating", "action": "remove", "rule_ids": ["SP2.b", "SP3.a"]},  # more rules
        {"outcome": "not_violating"},  # another outcome
    ],
)
def test_deciding_otherwise_is_not_accepting(alice, platform, spam_policy, decided):
    case = flag(platform)
    ready_draft(case)
    decision = decide(alice, case, **decided)
    assert decision.accepted_recommendation is False


def test_the_service_takes_no_claim_of_acceptance(alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(case)
    with pytest.raises(TypeError):
        decide(
            alice,
            case,
            outcome="not_violating",
            accepted_recommendation=True,  # not a parameter any more
        )


def test_a_tampered_post_claiming_acceptance_while_deciding_otherwise_is_not_accepted(
    client, alice, platform, spam_policy
):
    case = flag(platform)
    ready_draft(case)  # violating, SP2.b
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": claimed.lease_token,
            "outcome": "violating",
            "action": "restrict",
            "rule_ids": ["SP3.a"],
            "accepted_recommendation": "true",  # what the old hidden field said
        },
    )
    assert response.status_code == 302
    decision = Decision.objects.get(case=case)
    assert decision.accepted_recommendation is False
    assert case.events.get(kind=AuditEvent.Kind.DECIDED).data["accepted_recommendation"] is False


def test_no_draft_nothing_to_accept(alice, platform, spam_policy):
    case = flag(platform)  # the draft is still pending
    decision = decide(alice, case, outcome="not_violating")
    assert (decision.accepted_recommendation, decision.recommendation_shown) == (False, False)


def test_a_draft_without_known_rules_cannot_be_accepted(alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(case, rule_ids=["XX9"])  # a rule the policy does not define
    accept = outcomes.acceptance(case, case.recommendations.get(), ["SP2.b", "SP3.a"])
    assert accept.problem and accept.rule_ids == []
    decision = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    assert decision.accepted_recommendation is False


def test_accepting_an_appeal_draft_upholds_with_the_original_action(
    alice, carol, platform, spam_policy
):
    original = flag(platform)
    decide(alice, original, outcome="violating", action="remove", rule_ids=["SP2.b"])
    case = appeal(platform, item_external_id=original.external_id)
    ready_draft(case)  # the model also says violating: the removal stands
    accept = outcomes.acceptance(case, case.recommendations.get(), ["SP2.b", "SP3.a"])
    assert (accept.outcome, accept.action, accept.rule_ids) == ("uphold", "remove", ["SP2.b"])
    decision = decide(carol, case, outcome="uphold", rule_ids=["SP2.b"])
    assert decision.accepted_recommendation is True


def test_every_way_a_lease_ends_empties_every_lease_field(alice, platform, spam_policy):
    ends = {
        "release": lambda c, t: queueing.release_case(reviewer=alice, case_id=c.id, lease_token=t),
        "skip": lambda c, t: queueing.skip_case(
            reviewer=alice, case_id=c.id, lease_token=t, reason="conflict of interest"
        ),
        "escalate": lambda c, t: queueing.escalate_case(
            reviewer=alice, case_id=c.id, lease_token=t, reason="needs a senior"
        ),
        "decide": lambda c, t: decisions.decide_case(
            reviewer=alice, case_id=c.id, lease_token=t, outcome="not_violating"
        ),
    }
    for name, end in ends.items():
        case = flag(platform)
        claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
        end(case, claimed.lease_token)
        case.refresh_from_db()
        lease = (case.claimed_by_id, case.lease_token, case.lease_expires_at, case.claimed_at)
        assert lease == (None, None, None, None), name


def test_the_case_timeline_says_through_what_each_event_came(client, alice, platform, spam_policy):
    case = flag(platform)
    queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "by api:acme · via api token" in page
    assert "by alice · via review console" in page
