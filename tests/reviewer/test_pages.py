"""The console's pages through Django's test client: who sees what, and casework through the views."""

from __future__ import annotations

import pytest
from django.urls import reverse

from appeals.models import Case, Decision, Queue, QueueSetting, Recommendation
from appeals.review import queueing
from tests.builders import appeal, flag
from tests.reviewer.drafts import failed_draft, ready_draft

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user)
    return client


# --- login and the dashboard ---------------------------------------------------------------


def test_login_page_renders_for_anonymous_visitors(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Sign in to review" in response.content


def test_every_page_sends_anonymous_visitors_to_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_logging_in_with_the_form_lands_on_the_dashboard(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_dashboard_shows_each_workable_queue_with_counts(client, alice, platform, spam_policy):
    flag(platform)
    flag(platform)
    response = login(client, alice).get(reverse("dashboard"))
    assert response.status_code == 200
    cards = {card.queue: card for card in response.context["cards"]}
    assert set(cards) == {Queue.FLAGS}
    assert cards[Queue.FLAGS].open_count == 2
    assert cards[Queue.FLAGS].past_due == 0
    assert b"Start reviewing" in response.content


def test_dashboard_for_someone_without_a_queue_says_so(client, mallory):
    response = login(client, mallory).get(reverse("dashboard"))
    assert response.status_code == 200
    assert b"You have no review queues and no other role" in response.content


def test_dashboard_says_when_a_queue_is_empty(client, alice, spam_policy):
    response = login(client, alice).get(reverse("dashboard"))
    assert b"Nothing waiting here" in response.content


def test_start_reviewing_claims_the_next_case_and_opens_it(client, alice, platform, spam_policy):
    case = flag(platform)
    response = login(client, alice).post(reverse("start_reviewing", args=["flags"]))
    assert response.status_code == 302
    assert response["Location"] == reverse("case_detail", args=[case.id])
    case.refresh_from_db()
    assert case.claimed_by_id == alice.id


def test_start_reviewing_an_empty_queue_returns_to_the_dashboard(client, alice, spam_policy):
    response = login(client, alice).post(reverse("start_reviewing", args=["flags"]), follow=True)
    assert b"No cases are waiting" in response.content


def test_start_reviewing_a_queue_you_may_not_work_is_forbidden(client, alice, spam_policy):
    response = login(client, alice).post(reverse("start_reviewing", args=["appeals"]))
    assert response.status_code == 403


def test_nav_shows_agreement_only_to_those_allowed(client, alice, carol):
    assert b">Agreement<" not in login(client, alice).get(reverse("dashboard")).content
    assert b">Agreement<" in login(client, carol).get(reverse("dashboard")).content


# --- the queue list ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "persona,queue,status",
    [
        ("alice", "flags", 200),
        ("alice", "appeals", 403),
        ("carol", "appeals", 200),
        ("erin", "flags", 200),  # auditors read every case
        ("mallory", "flags", 403),
        ("dave", "escalations", 403),
    ],
)
def test_queue_page_is_for_those_who_work_or_audit_it(client, request, persona, queue, status):
    user = request.getfixturevalue(persona)
    assert login(client, user).get(reverse("queue_list", args=[queue])).status_code == status


def test_unknown_queue_is_not_found(client, alice):
    assert login(client, alice).get("/queues/nope/").status_code == 404


def test_queue_filters_by_source_and_model_verdict(client, alice, platform, spam_policy):
    trusted = flag(platform, source="trusted_flagger")
    ordinary = flag(platform)
    ready_draft(ordinary, violation=False, rule_ids=())
    login(client, alice)
    page = client.get(reverse("queue_list", args=["flags"]), {"source": "trusted_flagger"})
    assert [c.id for c in page.context["cases"]] == [trusted.id]
    page = client.get(reverse("queue_list", args=["flags"]), {"verdict": "not_violating"})
    assert [c.id for c in page.context["cases"]] == [ordinary.id]
    page = client.get(reverse("queue_list", args=["flags"]), {"verdict": "none"})
    assert [c.id for c in page.context["cases"]] == [trusted.id]


def test_queue_lists_decided_cases_with_agreement(client, alice, platform, spam_policy):
    agreed, differed = flag(platform), flag(platform)
    for case, outcome, action in (
        (agreed, "violating", "remove"),
        (differed, "not_violating", "none"),
    ):
        ready_draft(case)
        claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
        from appeals.review.decisions import decide_case

        decide_case(
            reviewer=alice,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome=outcome,
            action=action,
            rule_ids=["SP2.b"] if action == "remove" else [],
        )
    login(client, alice)
    page = client.get(
        reverse("queue_list", args=["flags"]), {"status": "decided", "agreement": "disagree"}
    )
    assert [c.id for c in page.context["cases"]] == [differed.id]
    assert b"model" in page.content


def test_queue_pages_through_every_case_once_by_keyset(
    client, alice, platform, spam_policy, django_assert_max_num_queries, monkeypatch
):
    from reviewer import views

    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 7)
    cases = [
        flag(platform, source="trusted_flagger" if i % 5 == 0 else "user_report") for i in range(23)
    ]
    login(client, alice)
    seen, query = [], ""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(10):
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(
                reverse("queue_list", args=["flags"]) + (f"?{query}" if query else "")
            )
        sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
        assert " OFFSET " not in sql
        assert "COUNT(" not in sql
        seen += [c.id for c in page.context["cases"]]
        query = page.context["next_query"]
        if not query:
            break
    expected = list(
        Case.objects.filter(id__in=[c.id for c in cases]).queue_order().values_list("id", flat=True)
    )
    assert seen == expected


def test_queue_list_partial_for_htmx_filters(client, alice, platform, spam_policy):
    flag(platform)
    response = login(client, alice).get(
        reverse("queue_list", args=["flags"]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="queue-results",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="queue-results"')
    assert "<html" not in body


def test_claiming_a_case_from_the_list(client, alice, bob, platform, spam_policy):
    case = flag(platform)
    response = login(client, alice).post(reverse("case_claim", args=[case.id]))
    assert response["Location"] == reverse("case_detail", args=[case.id])
    response = login(client, bob).post(reverse("case_claim", args=[case.id]), follow=True)
    assert b"being reviewed by alice" in response.content


# --- the case page -------------------------------------------------------------------------


def test_case_page_shows_text_first_and_the_recommendation(client, alice, platform, spam_policy):
    case = flag(platform, content="Buy gold rings here!", author_id="u-42", reporter_id="r-7")
    ready_draft(case)
    page = login(client, alice).get(reverse("case_detail", args=[case.id])).content.decode()
    assert "Buy gold rings here!" in page
    assert "Violating" in page
    assert f"/policies/versions/{case.policy_version_id}/rules/SP2.b/" in page
    assert "The model's reasoning (not shown to appellants)" in page
    assert "Claim this case" in page  # not the lease holder yet
    assert 'id="accept-form"' not in page


def test_case_page_shows_the_authors_and_reporters_earlier_cases(
    client, alice, platform, spam_policy
):
    first = flag(platform, author_id="u-42", reporter_id="r-7")
    flag(platform, author_id="u-42")
    latest = flag(platform, author_id="u-42", reporter_id="r-7")
    response = login(client, alice).get(reverse("case_detail", args=[latest.id]))
    assert response.context["author_history"]["count"] == 2
    assert response.context["reporter_history"]["count"] == 1
    assert f'href="/cases/{first.id}/"'.encode() in response.content


def test_case_page_is_forbidden_to_those_without_access(
    client, alice, mallory, platform, spam_policy
):
    case = flag(platform)
    assert login(client, mallory).get(reverse("case_detail", args=[case.id])).status_code == 403
    original = flag(platform)
    appeal_case = appeal(platform, item_external_id=original.external_id)
    assert (
        login(client, alice).get(reverse("case_detail", args=[appeal_case.id])).status_code == 403
    )


def test_appeal_page_shows_original_decision_and_statement(client, carol, platform, spam_policy):
    original = flag(platform)
    appeal_case = appeal(
        platform,
        item_external_id=original.external_id,
        statement="It was my own shop, not spam.",
        rule_ids=("SP2.b",),
    )
    page = login(client, carol).get(reverse("case_detail", args=[appeal_case.id])).content.decode()
    assert "The decision appealed" in page
    assert "It was my own shop, not spam." in page
    assert "SP2.b" in page
    assert 'class="appeal-grid"' in page


def test_drafting_status_polls_until_the_draft_is_done(client, alice, platform, spam_policy):
    case = flag(platform)
    login(client, alice)
    url = reverse("case_detail", args=[case.id])
    poll = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "recommendation"}
    pending = client.get(url, **poll).content.decode()
    assert 'hx-trigger="every 2s"' in pending
    assert "Drafting" in pending
    ready_draft(case)
    done = client.get(url, **poll).content.decode()
    assert "hx-trigger" not in done
    assert done.lstrip().startswith('<section id="recommendation"')


def test_not_configured_draft_is_a_plain_notice_with_retry(client, alice, platform, spam_policy):
    case = flag(platform)
    failed_draft(case)
    login(client, alice)
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "No model is configured." in page
    assert "asked for again when the worker restarts" in page
    assert "Retry draft" not in page  # only the lease holder (or a senior) may ask again
    client.post(reverse("case_claim", args=[case.id]))
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "Retry draft" in page
    client.post(reverse("case_retry_draft", args=[case.id]))
    assert case.recommendations.filter(status=Recommendation.Status.PENDING).count() == 1


def test_failed_draft_names_its_reason(client, alice, platform, spam_policy):
    case = flag(platform)
    failed_draft(case, reason="truncated", detail="hit 2048 tokens inside the final answer")
    page = login(client, alice).get(reverse("case_detail", args=[case.id])).content.decode()
    assert "cut off at the token limit" in page
    assert "hit 2048 tokens" in page


def test_injection_and_unknown_rules_are_flagged(client, alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(
        case,
        rule_ids=("SP2.b", "XX9"),
        unknown_rule_ids=("XX9",),
        injection_signals=("instruction-like text: ignore previous instructions",),
    )
    page = login(client, alice).get(reverse("case_detail", args=[case.id])).content.decode()
    assert "Possible prompt injection" in page
    assert "not in spam v1: XX9" in page


def test_timeline_lists_the_audit_events_oldest_first(client, alice, platform, spam_policy):
    case = flag(platform)
    queueing.claim_case(reviewer=alice, case_id=case.id)
    response = login(client, alice).get(reverse("case_detail", args=[case.id]))
    kinds = [event["kind"] for event in response.context["timeline"]]
    assert kinds == ["received", "claimed"]


# --- deciding through the views ------------------------------------------------------------


def _claim(client, case):
    client.post(reverse("case_claim", args=[case.id]))
    case.refresh_from_db()
    return case


def test_accepting_the_recommendation_decides_and_moves_to_the_next_case(
    client, alice, platform, spam_policy
):
    first, second = flag(platform), flag(platform)
    ready_draft(first)
    login(client, alice)
    _claim(client, first)
    page = client.get(reverse("case_detail", args=[first.id])).content.decode()
    assert 'id="accept-form"' in page
    response = client.post(
        reverse("case_decide", args=[first.id]),
        {
            "lease_token": first.lease_token,
            "outcome": "violating",
            "action": "remove",
            "rule_ids": ["SP2.b"],
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("case_detail", args=[second.id])
    decision = Decision.objects.get(case=first)
    assert decision.accepted_recommendation is True
    assert decision.agrees_with_model is True
    assert decision.recommendation_shown is True


def test_overriding_with_another_rule(client, alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(case)
    login(client, alice)
    _claim(client, case)
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": case.lease_token,
            "outcome": "violating",
            "action": "restrict",
            "rule_ids": ["SP3.a"],
            "note": "A fake giveaway, not an ad.",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    decision = Decision.objects.get(case=case)
    assert (decision.rule_ids, decision.action, decision.accepted_recommendation) == (
        ["SP3.a"],
        "restrict",
        False,
    )


def test_deciding_without_the_lease_is_a_message_not_an_error(
    client, alice, bob, platform, spam_policy
):
    case = flag(platform)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    response = login(client, bob).post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": claimed.lease_token,
            "outcome": "violating",
            "action": "remove",
            "rule_ids": ["SP2.b"],
        },
    )
    assert response.status_code == 400
    assert b"you do not hold the lease" in response.content
    assert not Decision.objects.exists()


def test_bad_form_input_is_shown_as_a_message(client, alice, platform, spam_policy):
    case = flag(platform)
    login(client, alice)
    _claim(client, case)
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": case.lease_token,
            "outcome": "violating",
            "action": "remove",
        },
    )
    assert response.status_code == 400
    assert b"cite at least one rule" in response.content
    response = client.post(reverse("case_decide", args=[case.id]), {"lease_token": "not-a-uuid"})
    assert response.status_code == 400
    assert b"That did not go through" in response.content


def test_escalating_needs_a_reason_then_moves_the_case(client, alice, platform, spam_policy):
    case = flag(platform)
    login(client, alice)
    _claim(client, case)
    response = client.post(
        reverse("case_escalate", args=[case.id]), {"lease_token": case.lease_token, "reason": ""}
    )
    assert response.status_code == 400
    assert b"say why you are escalating" in response.content
    response = client.post(
        reverse("case_escalate", args=[case.id]),
        {"lease_token": case.lease_token, "reason": "Possible coordinated campaign"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.queue == Queue.ESCALATIONS


def test_skip_and_release(client, alice, platform, spam_policy):
    one, two = flag(platform), flag(platform)
    login(client, alice)
    _claim(client, one)
    response = client.post(
        reverse("case_skip", args=[one.id]),
        {"lease_token": one.lease_token, "reason": "Language I do not read"},
    )
    assert response["Location"] == reverse("case_detail", args=[two.id])
    two.refresh_from_db()
    response = client.post(
        reverse("case_release", args=[two.id]), {"lease_token": two.lease_token, "reason": ""}
    )
    assert response["Location"] == reverse("dashboard")
    two.refresh_from_db()
    assert two.claimed_by_id is None


def test_deciding_a_case_in_a_queue_you_may_not_work_is_forbidden(
    client, alice, platform, spam_policy
):
    original = flag(platform)
    appeal_case = appeal(platform, item_external_id=original.external_id)
    response = login(client, alice).post(
        reverse("case_decide", args=[appeal_case.id]), {"outcome": "uphold"}
    )
    assert response.status_code == 403


# --- blind-first ---------------------------------------------------------------------------


def test_blind_first_hides_the_draft_until_the_reviewer_calls_it(
    client, alice, platform, spam_policy
):
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    case = flag(platform)
    ready_draft(case, rationale="SECRET RATIONALE")
    login(client, alice)
    _claim(client, case)
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "SECRET RATIONALE" not in page
    assert "Hidden until you record your own call" in page
    assert 'id="blind-form"' in page and 'id="accept-form"' not in page
    # The polled partial must not leak it either.
    partial = client.get(
        reverse("case_detail", args=[case.id]),
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="recommendation",
    ).content.decode()
    assert "SECRET RATIONALE" not in partial
    # Deciding before the blind call is refused.
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": case.lease_token,
            "outcome": "violating",
            "action": "remove",
            "rule_ids": ["SP2.b"],
        },
    )
    assert response.status_code == 400 and b"blind-first" in response.content

    response = client.post(
        reverse("case_blind_call", args=[case.id]),
        {"lease_token": case.lease_token, "outcome": "not_violating"},
    )
    assert response.status_code == 302
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "SECRET RATIONALE" in page
    assert "the model disagrees" in page
    client.post(
        reverse("case_decide", args=[case.id]),
        {
            "lease_token": case.lease_token,
            "outcome": "violating",
            "action": "remove",
            "rule_ids": ["SP2.b"],
        },
    )
    decision = Decision.objects.get(case=case)
    assert decision.blind_outcome == "not_violating"
    assert decision.blind_agrees_with_model is False
    assert decision.agrees_with_model is True
    assert decision.recommendation_shown is True


# --- policies ------------------------------------------------------------------------------


def test_rule_opens_as_a_page_and_as_an_htmx_partial(client, alice, spam_policy):
    url = reverse("policy_rule", args=[spam_policy.id, "SP2.b"])
    login(client, alice)
    full = client.get(url).content.decode()
    assert "<html" in full and "Irrelevant ads" in full
    partial = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="rule-panel").content.decode()
    assert partial.lstrip().startswith('<aside id="rule-panel"')
    assert "Irrelevant ads" in partial
    assert client.get(reverse("policy_rule", args=[spam_policy.id, "NOPE"])).status_code == 404


def test_policy_version_page_lists_rules_with_anchors(client, alice, mallory, spam_policy):
    page = (
        login(client, alice).get(reverse("policy_version", args=[spam_policy.id])).content.decode()
    )
    assert 'id="rule-SP2.b"' in page and 'id="rule-SP3.a"' in page
    assert (
        login(client, mallory).get(reverse("policy_version", args=[spam_policy.id])).status_code
        == 403
    )


def test_forbidden_pages_explain_themselves(client, alice):
    response = login(client, alice).get(reverse("quality"))
    assert response.status_code == 403
    assert b"the agreement page is for senior reviewers and auditors" in response.content.lower()


def test_override_action_follows_the_outcome_unless_chosen(client, alice, platform, spam_policy):
    violating, fine = flag(platform), flag(platform)
    login(client, alice)
    _claim(client, violating)
    client.post(
        reverse("case_decide", args=[violating.id]),
        {
            "lease_token": violating.lease_token,
            "outcome": "violating",
            "action": "",
            "rule_ids": ["SP2.b"],
        },
    )
    assert Decision.objects.get(case=violating).action == "remove"
    _claim(client, fine)
    client.post(
        reverse("case_decide", args=[fine.id]),
        {"lease_token": fine.lease_token, "outcome": "not_violating", "action": "remove"},
    )
    assert Decision.objects.get(case=fine).action == "none"


def test_rule_page_is_forbidden_to_someone_without_a_role(client, mallory, spam_policy):
    url = reverse("policy_rule", args=[spam_policy.id, "SP2.b"])
    assert login(client, mallory).get(url).status_code == 403


def test_the_page_keeps_the_lease_alive(client, alice, platform, spam_policy):
    case = flag(platform)
    login(client, alice)
    _claim(client, case)
    before = case.lease_expires_at
    response = client.post(
        reverse("case_renew_lease", args=[case.id]), {"lease_token": case.lease_token}
    )
    assert response.status_code == 204
    case.refresh_from_db()
    assert case.lease_expires_at >= before
    stale = client.post(reverse("case_renew_lease", args=[case.id]), {"lease_token": "0" * 32})
    assert stale.status_code == 409
