"""Blind-first, leak-free (issue 11.2): every page, fragment and download a reviewer reaches
withholds the model's draft until their own call is recorded, then shows it."""

from __future__ import annotations

import pytest
from django.test import Client

from appeals.models import AuditEvent, Queue, QueueSetting
from appeals.review import decisions, queueing
from tests.builders import appeal, decide, flag, make_user
from tests.reviewer.blind_drafts import SECRET_MODEL, SECRET_RATIONALE, SECRET_REASONING, land_draft

pytestmark = pytest.mark.django_db

CONTENT = "You won an iPhone, click prize.example to claim it"
# What a page would carry if the draft leaked: its words, its model, its verdict as the queue
# list and the timeline print it, its confidence.
TRACES = (
    SECRET_RATIONALE,
    SECRET_REASONING,
    SECRET_MODEL,
    "Confidence",
    "confidence</span> high",
    "violation</span> True",
    "pill pill-danger",
    "Model verdict",
    "model:",
    "agrees with the model",
    "differs from the model",
    "accepted the draft",
    "agrees with model</span>",
    "accepted recommendation</span>",
)


def assert_no_trace(html: str) -> None:
    for trace in TRACES:
        assert trace not in html, trace


@pytest.fixture
def blind_case(platform, spam_policy):
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    case = flag(platform, external_id="prize-1", content=CONTENT, source="trusted_flagger")
    land_draft(case)
    assert AuditEvent.objects.filter(case=case, kind=AuditEvent.Kind.DRAFTED).exists()
    return case


def test_the_queue_list_with_every_filter_carries_no_trace_and_filters_nothing_by_it(
    blind_case, alice, spam_policy
):
    client = Client()
    client.force_login(alice)
    policy_id = spam_policy.policy_id
    queries = [
        "",
        "status=open",
        f"policy={policy_id}",
        "source=trusted_flagger",
        "verdict=violating",
        "verdict=not_violating",
        "verdict=none",
        f"policy={policy_id}&source=trusted_flagger&status=open&verdict=not_violating",
    ]
    for query in queries:
        for headers in ({}, {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-results"}):
            response = client.get(f"/queues/flags/?{query}", **headers)
            html = response.content.decode()
            assert response.status_code == 200, query
            assert_no_trace(html)
            # Whatever verdict is asked for, the case is listed: its absence would tell too.
            assert f"#{blind_case.id}</a>" in html, (query, headers)
    # The agreement filter only ever matches decided cases: the same (empty) answer either way.
    for agreement in ("agree", "disagree"):
        html = client.get(f"/queues/flags/?agreement={agreement}").content.decode()
        assert f"#{blind_case.id}</a>" not in html
        assert_no_trace(html)


def test_the_case_page_its_fragments_and_timeline_withhold_the_draft_until_the_blind_call(
    blind_case, alice
):
    claimed = queueing.claim_case(reviewer=alice, case_id=blind_case.id)
    client = Client()
    client.force_login(alice)
    url = f"/cases/{blind_case.id}/"
    page = client.get(url).content.decode()
    assert "Hidden until you record your own call" in page
    assert_no_trace(page)
    assert "Cites" not in page
    for target in ("recommendation", "case-media"):
        fragment = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)
        assert_no_trace(fragment.content.decode())
    # The timeline still says a draft was made, by "the model", with none of its facts.
    assert "Drafted" in page and "by the model" in page

    # Deciding without the blind call is refused by the service.
    with pytest.raises(Exception, match="blind-first: record your own call"):
        decisions.decide_case(
            reviewer=alice,
            case_id=blind_case.id,
            lease_token=claimed.lease_token,
            outcome="violating",
            action="remove",
            rule_ids=["SP3.a"],
        )

    response = client.post(
        f"/cases/{blind_case.id}/blind-call/",
        {"lease_token": str(claimed.lease_token), "outcome": "violating", "rule_ids": ["SP3.a"]},
    )
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert SECRET_RATIONALE in page and SECRET_REASONING in page
    assert "violation</span> True" in page and "confidence</span> high" in page


def test_another_case_of_the_same_item_withholds_its_draft_too(platform, spam_policy, alice):
    """A blind-first appeals queue: the flag's draft judged the same content, so a senior who owes
    a blind call on the appeal does not see it on the flag's page either."""
    QueueSetting.objects.create(queue=Queue.APPEALS, blind_first=True)
    case = flag(platform, external_id="prize-1", content=CONTENT)
    land_draft(case)
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP3.a"])
    complaint = appeal(platform, item_external_id="prize-1", rule_ids=["SP3.a"])
    land_draft(complaint, violation=True)
    senior = make_user("sam", "senior_reviewer")
    client = Client()
    client.force_login(senior)
    assert_no_trace(client.get(f"/cases/{case.id}/").content.decode())
    assert_no_trace(client.get(f"/cases/{complaint.id}/").content.decode())

    claimed = queueing.claim_case(reviewer=senior, case_id=complaint.id)
    decisions.record_blind_call(
        reviewer=senior, case_id=complaint.id, lease_token=claimed.lease_token, outcome="uphold"
    )
    flag_page = client.get(f"/cases/{case.id}/").content.decode()
    assert SECRET_RATIONALE in flag_page and "against the model: verdict agrees" in flag_page
    assert SECRET_RATIONALE in client.get(f"/cases/{complaint.id}/").content.decode()


def test_exports_are_not_downloaded_by_someone_who_reviews_a_blind_first_queue(
    blind_case, alice, erin
):
    from appeals.review.roles import assign_role

    assign_role(alice, "auditor")  # a reviewer who is also an auditor
    client = Client()
    client.force_login(alice)
    for path in (
        "/exports/decisions.csv",
        "/exports/decisions.jsonl",
        "/exports/statements-of-reasons.jsonl",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "You review cases in a blind-first queue" in response.content.decode()
        assert_no_trace(response.content.decode())
    # An auditor who does not review downloads them as before.
    client.force_login(erin)
    assert client.get("/exports/decisions.csv").status_code == 200
