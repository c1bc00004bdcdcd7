"""Appeals without loopholes (issue 11.3): links whichever arrives first, no self-review, one open
appeal per decision, the platform's account checked, and contradicting decisions chained."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from appeals.disclosure.callbacks import payload_for
from appeals.disclosure.exports import Export, ExportFilters
from appeals.intake import tokens
from appeals.intake.schemas import FieldProblem
from appeals.models import AuditEvent, Case, Decision, Queue
from appeals.review import decisions, queueing
from tests.builders import appeal, decide, flag, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def dan(roles):
    return make_user("dan", "senior_reviewer")


def _fresh(case: Case) -> Case:
    return Case.objects.select_related("appealed_decision").get(id=case.id)


def _export_rows(erin) -> dict[int, dict]:
    export = Export(fmt="jsonl", filters=ExportFilters(), actor=erin)
    rows = [json.loads(line) for line in "".join(export.chunks()).splitlines()]
    return {row["decision_id"]: row for row in rows}


# --- Linked whichever arrives first; the original's decider never decides the appeal ---------


def test_appeal_first_then_the_senior_decides_the_flag_then_tries_to_claim_the_appeal(
    platform, spam_policy, carol, dan
):
    case = flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1")  # the platform removed it by itself
    assert complaint.appealed_decision_id is None

    removal = decide(carol, case, outcome="violating", action="remove", rule_ids=["SP2.b"])

    complaint = _fresh(complaint)
    assert complaint.appealed_decision_id == removal.id
    linked = AuditEvent.objects.get(case=complaint, kind=AuditEvent.Kind.APPEAL_LINKED)
    assert linked.data["decision_id"] == removal.id
    # Not offered to carol, refused when she picks it, and the sentence says why.
    assert queueing.claim_next_case(reviewer=carol, queue=Queue.APPEALS) is None
    with pytest.raises(ValidationError) as refused:
        queueing.claim_case(reviewer=carol, case_id=complaint.id)
    assert refused.value.messages == [
        f"You decided case #{case.id}, which this appeal contests; "
        "another reviewer must decide the appeal."
    ]
    # The console says the same on the page.
    client = Client()
    client.force_login(carol)
    page = client.post(f"/cases/{complaint.id}/claim/", follow=True)
    assert f"You decided case #{case.id}, which this appeal contests" in page.content.decode()
    assert _fresh(complaint).claimed_by_id is None
    # The console offers it to her nowhere: no Claim button on the queue list or the case page.
    listed = client.get("/queues/appeals/").content.decode()
    assert f'aria-label="Claim case {complaint.id}"' not in listed
    assert "Appeals your decision" in listed
    page = client.get(f"/cases/{complaint.id}/").content.decode()
    assert 'id="claim-button"' not in page
    assert f"You decided case #{case.id}, which this appeal contests" in page
    # dan may.
    client.force_login(dan)
    assert (
        f'aria-label="Claim case {complaint.id}"' in client.get("/queues/appeals/").content.decode()
    )
    assert queueing.claim_next_case(reviewer=dan, queue=Queue.APPEALS).id == complaint.id


def test_an_appeal_the_flags_decider_held_is_released_when_the_link_is_made(
    platform, spam_policy, carol
):
    case = flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1")
    held = queueing.claim_case(reviewer=carol, case_id=complaint.id)  # before the link exists
    decide(carol, case, outcome="violating", action="remove", rule_ids=["SP2.b"])

    complaint = _fresh(complaint)
    assert complaint.claimed_by_id is None and complaint.lease_token is None
    with pytest.raises(ValidationError, match="you do not hold the lease"):
        decisions.decide_case(
            reviewer=carol, case_id=complaint.id, lease_token=held.lease_token, outcome="uphold"
        )
    assert queueing.claim_next_case(reviewer=carol, queue=Queue.APPEALS) is None


def test_the_decide_service_refuses_the_originals_decider_even_with_a_lease(
    platform, spam_policy, carol
):
    case = flag(platform, external_id="ad-1")
    decide(carol, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    complaint = appeal(platform, item_external_id="ad-1")
    token = "5b0c3a0e-7c86-4c3f-9d4e-1f0e8f7c2a11"
    from django.utils import timezone

    Case.objects.filter(id=complaint.id).update(
        claimed_by=carol,
        lease_token=token,
        claimed_at=timezone.now(),
        lease_expires_at=timezone.now() + timezone.timedelta(minutes=5),
    )
    with pytest.raises(PermissionDenied, match=f"You decided case #{case.id}"):
        decisions.decide_case(
            reviewer=carol, case_id=complaint.id, lease_token=token, outcome="overturn"
        )
    assert not Decision.objects.filter(case=complaint).exists()


# --- At most one open appeal per decision ---------------------------------------------------


def test_a_second_appeal_against_one_decision_is_refused_naming_the_first(
    platform, spam_policy, alice, dan
):
    case = flag(platform, external_id="ad-1")
    removal = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    first = appeal(platform, item_external_id="ad-1", external_id="appeal-a")

    token = tokens.create_api_token(platform=platform, name="acme")[1]
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {
        "external_id": "appeal-b",
        "item_external_id": "ad-1",
        "statement": "Me too: it was my own shop.",
        "original_decision": {
            "outcome": "remove",
            "rule_ids": ["SP2.b"],
            "decided_at": removal.decided_at.isoformat(),
        },
    }
    response = api.post("/api/v1/appeals", json.dumps(body), content_type="application/json")
    assert response.status_code == 409, response.content
    assert response.json() == {
        "errors": [
            {
                "field": "item_external_id",
                "problem": f"appeal 'appeal-a' (case {first.id}) against this decision is still "
                "open; at most one appeal per decision may be open at a time",
            }
        ]
    }
    assert Case.objects.filter(kind=Case.Kind.APPEAL).count() == 1

    # Once the first is decided, a new appeal may come in (and is linked to the same decision).
    decide(dan, first, outcome="uphold", rule_ids=["SP2.b"])
    second = appeal(platform, item_external_id="ad-1", external_id="appeal-b")
    assert second.appealed_decision_id == removal.id


def test_a_second_open_appeal_on_an_item_is_refused_before_any_decision_too(platform, spam_policy):
    flag(platform, external_id="ad-1")
    first = appeal(platform, item_external_id="ad-1", external_id="appeal-a")
    with pytest.raises(FieldProblem, match=f"appeal 'appeal-a' \\(case {first.id}\\)"):
        appeal(platform, item_external_id="ad-1", external_id="appeal-b")


def test_two_appeals_racing_past_the_check_get_the_same_409_from_the_constraint(
    platform, spam_policy, alice, monkeypatch
):
    from appeals.intake import services as intake

    case = flag(platform, external_id="ad-1")
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    first = appeal(platform, item_external_id="ad-1", external_id="appeal-a")
    real = intake.open_appeal_on
    calls = []

    def missed_once(item_id, **kwargs):  # the check ran before the other request committed
        calls.append(item_id)
        return None if len(calls) == 1 else real(item_id, **kwargs)

    monkeypatch.setattr(intake, "open_appeal_on", missed_once)
    with pytest.raises(FieldProblem) as refused:
        appeal(platform, item_external_id="ad-1", external_id="appeal-b")
    assert refused.value.status == 409
    assert f"appeal 'appeal-a' (case {first.id})" in refused.value.as_dict()["problem"]
    assert len(calls) == 2
    assert Case.objects.filter(kind=Case.Kind.APPEAL).count() == 1


def test_the_database_refuses_two_open_appeals_on_one_decision(platform, spam_policy, alice):
    case = flag(platform, external_id="ad-1")
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    first = appeal(platform, item_external_id="ad-1", external_id="appeal-a")
    copy = Case.objects.get(id=first.id)
    copy.id = None
    copy.external_id = "appeal-sneaked-in"
    with pytest.raises(IntegrityError, match="case_one_open_appeal_per_item"):
        with transaction.atomic():
            copy.save()


# --- The platform's account against the record ----------------------------------------------


def test_a_mismatch_between_the_platforms_account_and_the_record_is_shown_and_exported(
    platform, spam_policy, alice, carol, erin
):
    case = flag(platform, external_id="ad-1")
    decision = decide(alice, case, outcome="violating", action="restrict", rule_ids=["SP3.a"])
    complaint = appeal(platform, item_external_id="ad-1", outcome="remove", rule_ids=["SP2.b"])
    complaint = _fresh(complaint)
    assert complaint.original_mismatch == [
        f"The platform says the original action was remove; the decision recorded on case "
        f"#{case.id} was restrict.",
        f"The platform cites SP2.b; case #{case.id} recorded SP3.a.",
    ]
    client = Client()
    client.force_login(carol)
    page = client.get(f"/cases/{complaint.id}/").content.decode()
    assert "The platform's account differs from the recorded decision." in page
    assert "The platform cites SP2.b; case #" in page

    upheld = decide(carol, complaint, outcome="uphold", rule_ids=["SP2.b"], supersedes=decision.id)
    row = _export_rows(erin)[upheld.id]
    assert row["original_mismatch"] == " ".join(complaint.original_mismatch)
    assert _export_rows(erin)[decision.id]["original_mismatch"] is None


def test_a_matching_account_shows_no_mismatch(platform, spam_policy, alice):
    case = flag(platform, external_id="ad-1")
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    complaint = appeal(platform, item_external_id="ad-1", outcome="remove", rule_ids=["SP2.b"])
    assert _fresh(complaint).original_mismatch == []


def test_the_mismatch_is_worked_out_when_an_early_appeal_is_linked(platform, spam_policy, alice):
    case = flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1", outcome="remove", rule_ids=["SP2.b"])
    decide(alice, case, outcome="violating", action="label", rule_ids=["SP2.b"])
    assert _fresh(complaint).original_mismatch == [
        f"The platform says the original action was remove; the decision recorded on case "
        f"#{case.id} was label."
    ]


# --- A contradicting decision supersedes, and says so -----------------------------------------


def test_a_flag_decision_contradicting_an_overturned_appeal_must_supersede_it(
    platform, spam_policy, carol, dan, erin
):
    case = flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1", outcome="remove")
    restored = decide(dan, complaint, outcome="overturn")  # "content will be restored"
    assert restored.action == "none" and restored.supersedes is None

    with pytest.raises(ValidationError) as refused:
        decide(carol, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    assert refused.value.message_dict["supersedes"] == [
        f"this decision contradicts the final decision overturn the original decision (no "
        f"action) on appeal case #{complaint.id} by dan on "
        f"{restored.decided_at:%Y-%m-%d %H:%M} UTC; confirm that it supersedes that decision"
    ]
    assert not Decision.objects.filter(case=case).exists()
    # Confirming some other decision is not confirming this one.
    with pytest.raises(ValidationError, match="confirm that it supersedes"):
        decisions.decide_case(
            reviewer=carol,
            case_id=case.id,
            lease_token=Case.objects.get(id=case.id).lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
            supersedes=restored.id + 1000,
        )

    removal = decisions.decide_case(
        reviewer=carol,
        case_id=case.id,
        lease_token=Case.objects.get(id=case.id).lease_token,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
        supersedes=restored.id,
    )
    assert removal.supersedes_id == restored.id
    assert Decision.objects.get(id=restored.id).superseded_by.id == removal.id
    decided = AuditEvent.objects.get(case=case, kind=AuditEvent.Kind.DECIDED)
    assert decided.data["supersedes_decision_id"] == restored.id
    assert payload_for(removal)["supersedes_decision_id"] == restored.id
    assert payload_for(restored)["supersedes_decision_id"] is None
    rows = _export_rows(erin)
    assert rows[removal.id]["supersedes_decision_id"] == restored.id
    assert rows[restored.id]["superseded_by_decision_id"] == removal.id

    # Shown on both cases.
    client = Client()
    client.force_login(carol)
    flag_page = client.get(f"/cases/{case.id}/").content.decode()
    assert f'Supersedes the decision on case <a href="/cases/{complaint.id}/">' in flag_page
    appeal_page = client.get(f"/cases/{complaint.id}/").content.decode()
    assert f'Superseded by the decision on case <a href="/cases/{case.id}/">' in appeal_page


def test_the_console_decide_form_needs_the_confirmation(platform, spam_policy, carol, dan):
    case = flag(platform, external_id="ad-1")
    complaint = appeal(platform, item_external_id="ad-1", outcome="remove")
    restored = decide(dan, complaint, outcome="overturn")
    claimed = queueing.claim_case(reviewer=carol, case_id=case.id)
    client = Client()
    client.force_login(carol)
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert f'name="supersedes" value="{restored.id}"' in page
    form = {
        "lease_token": str(claimed.lease_token),
        "outcome": "violating",
        "action": "remove",
        "rule_ids": ["SP2.b"],
    }
    refused = client.post(f"/cases/{case.id}/decide/", form)
    assert refused.status_code == 400
    assert "confirm that it supersedes that decision" in refused.content.decode()
    accepted = client.post(f"/cases/{case.id}/decide/", {**form, "supersedes": restored.id})
    assert accepted.status_code == 302
    assert Decision.objects.get(case=case).supersedes_id == restored.id


def test_an_overturn_supersedes_the_decision_it_contests_by_itself(
    platform, spam_policy, alice, carol
):
    case = flag(platform, external_id="ad-1")
    removal = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    complaint = appeal(platform, item_external_id="ad-1")
    overturned = decide(carol, complaint, outcome="overturn")
    assert overturned.supersedes_id == removal.id


def test_an_agreeing_decision_supersedes_nothing_and_refuses_a_stray_confirmation(
    platform, spam_policy, alice, carol
):
    case = flag(platform, external_id="ad-1")
    removal = decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    complaint = appeal(platform, item_external_id="ad-1")
    with pytest.raises(ValidationError, match="there is nothing to supersede"):
        decide(carol, complaint, outcome="uphold", rule_ids=["SP2.b"], supersedes=removal.id)
    queueing.release_case(
        reviewer=carol,
        case_id=complaint.id,
        lease_token=Case.objects.get(id=complaint.id).lease_token,
    )
    upheld = decide(carol, complaint, outcome="uphold", rule_ids=["SP2.b"])
    assert upheld.supersedes_id is None
