"""Poison pills: whatever ids and cursors a platform or an address carries, the pages render.

And a case page that cannot render for some other reason is set aside for a senior reviewer (the
lease released, the reason audited), so "Next" never hands the same broken case out again.
"""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse

from appeals.models import AuditEvent, Case, Decision, Queue
from tests.builders import appeal, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

ODD_RULE_IDS = ("a/b", "../..", "SP2.b/../x", "%2F", "?x=1#y", "<b>x</b>", "规则", " sp ", "a" * 40)


def login(client, user):
    client.force_login(user)
    return client


def _claim_next(client, queue) -> int:
    response = client.post(reverse("start_reviewing", args=[queue]))
    assert response.status_code == 302, response.content[:300]
    return int(response["Location"].rstrip("/").rsplit("/", 1)[1])


def test_an_appeal_citing_rule_a_slash_b_renders_and_is_decided(
    client, carol, platform, spam_policy
):
    original = flag(platform)
    case = appeal(platform, item_external_id=original.external_id, rule_ids=("a/b", "SP2.b"))
    login(client, carol)
    assert _claim_next(client, Queue.APPEALS) == case.id
    page = client.get(reverse("case_detail", args=[case.id]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "a/b" in text and "not a rule of" in text.lower()
    case.refresh_from_db()
    response = client.post(
        reverse("case_decide", args=[case.id]),
        {"lease_token": str(case.lease_token), "outcome": "overturn", "note": "a/b is no rule"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Decision.objects.get(case=case).outcome == "overturn"


@pytest.mark.parametrize("rule_id", ODD_RULE_IDS)
def test_odd_rule_ids_from_the_platform_and_the_model_render(
    client, carol, platform, spam_policy, rule_id
):
    original = flag(platform, external_id=f"item/{rule_id}")
    case = appeal(
        platform,
        item_external_id=original.external_id,
        external_id=f"appeal/{rule_id}",
        rule_ids=(rule_id,),
    )
    ready_draft(case, rule_ids=[rule_id, "SP2.b"])
    login(client, carol)
    page = client.get(reverse("case_detail", args=[case.id]))
    assert page.status_code == 200
    queue = client.get(reverse("queue_list", args=[Queue.APPEALS]))
    assert queue.status_code == 200


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "after",
    [
        _cursor("[" * 100_000 + "]" * 100_000),
        _cursor("[" * 5000),
        _cursor('[1e999, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 1]'),
        _cursor('[NaN, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 1]'),
        _cursor(f'[{10**40}, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", {10**40}]'),
        _cursor('[1, "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00\\u0000", 1]'),
        _cursor('[1, "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", 1]'),
        "%00",
        "\x00",
        "=" * 10,
    ],
)
def test_a_cursor_that_is_not_ours_shows_the_first_page(
    client, alice, platform, spam_policy, after
):
    flag(platform)
    response = login(client, alice).get(reverse("queue_list", args=[Queue.FLAGS]), {"after": after})
    assert response.status_code == 200
    assert len(response.context["cases"]) == 1


@pytest.mark.parametrize("rule_id", ["a\x00b", "\x00", "a/b", "%00"])
def test_a_rule_address_with_odd_characters_is_not_found(client, alice, spam_policy, rule_id):
    response = login(client, alice).get(
        f"/policies/versions/{spam_policy.id}/rules/{rule_id.replace(chr(0), '%00')}/"
    )
    assert response.status_code == 404


def test_a_case_page_that_cannot_render_is_set_aside_for_a_senior(
    client, alice, platform, spam_policy, monkeypatch
):
    from reviewer import views

    broken = flag(platform, content="the broken one")
    healthy = flag(platform, content="the next one")
    login(client, alice)
    assert _claim_next(client, Queue.FLAGS) == broken.id

    real = views._draft_view

    def fails_for_the_broken_case(case, *args, **kwargs):
        if case.id == broken.id:
            raise ValueError("a value no template expected")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(views, "_draft_view", fails_for_the_broken_case)
    response = client.get(reverse("case_detail", args=[broken.id]))
    assert response.status_code == 500
    text = response.content.decode()
    assert "could not be shown" in text and "the broken one" not in text
    broken.refresh_from_db()
    assert broken.queue == Queue.ESCALATIONS
    assert broken.claimed_by_id is None and broken.lease_token is None
    event = AuditEvent.objects.filter(case_id=broken.id, kind="escalated").get()
    assert "could not be shown" in event.data["reason"]
    assert "ValueError" in event.data["reason"]
    assert _claim_next(client, Queue.FLAGS) == healthy.id  # never the broken case again
    assert Case.objects.get(id=broken.id).status == Case.Status.OPEN


def test_an_escalated_case_that_cannot_render_is_skipped_by_the_senior_not_handed_out_again(
    client, bob, carol, platform, spam_policy, monkeypatch
):
    from appeals.review import queueing
    from reviewer import views

    broken = flag(platform, content="the broken one")
    lease = queueing.claim_case(reviewer=bob, case_id=broken.id).lease_token
    queueing.escalate_case(reviewer=bob, case_id=broken.id, lease_token=lease, reason="odd")
    login(client, carol)
    assert _claim_next(client, Queue.ESCALATIONS) == broken.id

    def fails(case, *args, **kwargs):
        raise RecursionError("deeper than any template")

    monkeypatch.setattr(views, "_draft_view", fails)
    response = client.get(reverse("case_detail", args=[broken.id]))
    assert response.status_code == 500
    assert "will not be offered to you again" in response.content.decode()
    broken.refresh_from_db()
    assert (broken.queue, broken.claimed_by_id) == (Queue.ESCALATIONS, None)
    event = AuditEvent.objects.filter(case_id=broken.id, kind="skipped").get()
    assert "RecursionError" in event.data["reason"]
    response = client.post(reverse("start_reviewing", args=[Queue.ESCALATIONS]))
    assert response["Location"] == reverse("dashboard")  # nothing else waiting: not the same case
