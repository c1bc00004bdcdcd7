"""Appeal rules, as casework: the window, the time to decide, a fresh pair of eyes, the notice."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from appeals.disclosure.notices import notice_for, rule_line
from appeals.intake.schemas import FieldProblem
from appeals.models import Case, Queue
from appeals.review import decisions, queueing
from appeals.review.roles import assign_role
from policies.models import Policy
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

REASONING = "SECRET-REASONING: the giveaway smells, I think SP3.a fits better than SP2.b"
RATIONALE = "SECRET-RATIONALE: an ad for rings"


# --- The appeal window ---------------------------------------------------------------------


def test_an_appeal_inside_the_window_is_queued_with_its_own_due_date(platform, spam_policy):
    Policy.objects.filter(slug="spam").update(appeal_window_days=30, appeal_decide_within_hours=48)
    flag(platform, external_id="ad-1")
    before = timezone.now()
    case = appeal(
        platform,
        item_external_id="ad-1",
        decided_at=timezone.now() - dt.timedelta(days=29, hours=23),
    )
    assert case.queue == Queue.APPEALS
    assert before + dt.timedelta(hours=48) <= case.due_at <= timezone.now() + dt.timedelta(hours=48)


def test_an_appeal_after_the_window_is_refused_with_a_clear_reason(platform, spam_policy):
    Policy.objects.filter(slug="spam").update(appeal_window_days=30)
    flag(platform, external_id="ad-1")
    decided_at = timezone.now() - dt.timedelta(days=31)
    with pytest.raises(FieldProblem) as excinfo:
        appeal(platform, item_external_id="ad-1", decided_at=decided_at)
    problem = excinfo.value.as_dict()
    assert problem["field"] == "original_decision.decided_at"
    closed = (decided_at + dt.timedelta(days=30)).strftime("%Y-%m-%d")
    assert problem["problem"] == (
        f"the appeal window under policy 'spam' is 30 days and closed on {closed}; "
        "this appeal is too late"
    )
    assert not Case.objects.filter(kind=Case.Kind.APPEAL).exists()


def test_an_appeal_against_a_decision_in_the_future_is_refused(platform, spam_policy):
    flag(platform, external_id="ad-1")
    with pytest.raises(FieldProblem, match="is in the future"):
        appeal(platform, item_external_id="ad-1", decided_at=timezone.now() + dt.timedelta(hours=1))


# --- The time to decide --------------------------------------------------------------------


def test_flags_and_appeals_fall_due_per_policy(platform, spam_policy):
    Policy.objects.filter(slug="spam").update(decide_within_hours=24, appeal_decide_within_hours=72)
    fresh = flag(platform)
    assert fresh.due_at - fresh.created_at == dt.timedelta(hours=24)
    flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1")
    assert complaint.due_at - complaint.created_at == dt.timedelta(hours=72)

    now = timezone.now()
    later = now + dt.timedelta(hours=25)
    assert not fresh.is_past_due(now=now) and fresh.is_past_due(now=later)
    assert not complaint.is_past_due(now=later)
    assert complaint.is_past_due(now=now + dt.timedelta(hours=73))


# --- Someone else decides the appeal --------------------------------------------------------


def test_the_original_decider_can_neither_claim_nor_decide_the_appeal(
    alice, carol, platform, spam_policy
):
    # alice removes an ad; the platform sends the author's appeal.
    case = flag(platform, external_id="ad-1")
    removal = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    complaint = appeal(platform, item_external_id="ad-1", appellant_id="author-1")
    assert complaint.appealed_decision_id == removal.id

    # alice, a flags reviewer, may not work the appeals queue at all ...
    with pytest.raises(PermissionDenied):
        queueing.claim_next_case(reviewer=alice, queue=Queue.APPEALS)
    # ... and once promoted to senior, still not this appeal: it is against her own decision.
    assign_role(alice, "senior_reviewer")
    alice = type(alice).objects.get(id=alice.id)  # fresh permission cache
    assert queueing.claim_next_case(reviewer=alice, queue=Queue.APPEALS) is None
    with pytest.raises(ValidationError, match="another reviewer must decide the appeal"):
        queueing.claim_case(reviewer=alice, case_id=complaint.id)
    # Even holding a lease (say, from before the rule) she cannot decide it.
    token = uuid.uuid4()
    Case.objects.filter(id=complaint.id).update(
        claimed_by=alice,
        lease_token=token,
        claimed_at=timezone.now(),
        lease_expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    with pytest.raises(PermissionDenied, match="another reviewer must decide the appeal"):
        decisions.decide_case(
            reviewer=alice, case_id=complaint.id, lease_token=token, outcome="overturn"
        )
    queueing.release_case(reviewer=alice, case_id=complaint.id, lease_token=token)

    # carol can.
    claimed = queueing.claim_next_case(reviewer=carol, queue=Queue.APPEALS)
    assert claimed.id == complaint.id
    outcome = decisions.decide_case(
        reviewer=carol, case_id=complaint.id, lease_token=claimed.lease_token, outcome="overturn"
    )
    assert (outcome.decided_by, outcome.action) == (carol, "none")
    kinds = list(complaint.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["received", "released", "claimed", "decided"]


# --- The notice ------------------------------------------------------------------------------


def test_the_notice_cites_the_rules_and_never_the_models_reasoning(alice, platform, spam_policy):
    case = flag(platform, external_id="ad-1")
    ready_draft(
        case, violation=True, rule_ids=["SP2.b", "SP3.a"], reasoning=REASONING, rationale=RATIONALE
    )
    decision = decide(
        alice,
        case,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
        note="SECRET-NOTE: seen this seller before",
    )
    notice = notice_for(decision)
    assert "SECRET" not in notice
    assert "smells" not in notice and "rings" not in notice.replace('"Buy gold rings here!"', "")
    assert "SP2.b: Irrelevant ads" in notice
    assert "SP3.a" not in notice  # the model cited it; the reviewer did not
    assert "our Spam policy" in notice
    assert "the content has been removed" in notice
    assert "automated system" in notice  # the draft is disclosed, not its content
    closes = (decision.decided_at + dt.timedelta(days=183)).strftime("%Y-%m-%d")
    assert f"You can appeal this decision within 183 days, until {closes}." in notice


def test_notices_for_each_kind_of_decision(alice, bob, carol, platform, spam_policy):
    cleared = decide(bob, flag(platform, external_id="hi-1"), outcome="not_violating")
    text = notice_for(cleared)
    assert "does not break its rules. No action has been taken." in text
    assert "appeal" not in text
    assert "automated" not in text  # no draft existed

    labelled = decide(
        alice,
        flag(platform, external_id="ad-2"),
        outcome="violating",
        action="label",
        rule_ids=["SP2.a", "SP2.b"],
    )
    text = notice_for(labelled)
    assert "- SP2.a: Cold promotion" in text and "- SP2.b: Irrelevant ads" in text
    assert "a label has been added to the content" in text

    upheld = decide(
        carol,
        appeal(platform, item_external_id="ad-2", outcome="label", rule_ids=["SP2.a"]),
        outcome="uphold",
        rule_ids=["SP2.a"],
    )
    text = notice_for(upheld)
    assert "We upheld that decision" in text
    assert "The label stays on the content." in text
    assert "not made by the person who took the original decision" in text
    assert "out-of-court dispute settlement" in text

    overturned = decide(
        carol,
        appeal(platform, item_external_id="hi-1", outcome="remove", rule_ids=["SP2.b"]),
        outcome="overturn",
    )
    text = notice_for(overturned)
    assert "We reversed that decision" in text
    assert "The content will be restored." in text


@pytest.mark.parametrize(
    ("rule_id", "text", "expected"),
    [
        (
            "SP2.b",
            'SP2.b Irrelevant ads - "Buy gold rings here!"',
            'SP2.b: Irrelevant ads - "Buy gold rings here!"',
        ),
        (
            "GV1",
            "## Graphic Violence Depiction (GV1 - Graphic depiction)\n\nbody",
            "GV1: Graphic Violence Depiction (GV1 - Graphic depiction)",
        ),
        ("H2.f", "* **H2.f** Slurs used as insults", "H2.f: Slurs used as insults"),
        (
            "DC0",
            "- `DC0`: Allowed or safety-oriented discussion.",
            "DC0: Allowed or safety-oriented discussion.",
        ),
        ("X1", "", "X1"),
    ],
)
def test_rule_lines_are_the_id_and_the_first_line(rule_id, text, expected):
    assert rule_line(rule_id, text) == expected
