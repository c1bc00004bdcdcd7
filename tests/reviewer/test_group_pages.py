"""The near-duplicate group page: the case page's panel and the queue's marker lead to it; the
decide POST over HTTP; and the whole round in a real browser (claim, remove a member, confirm,
decide once). With SCREENSHOT_DIR set, the decision page is written at 1280×720."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.urls import reverse

from appeals.groups import services as grouping
from appeals.models import AuditEvent, CallbackDelivery, Case, CaseGroup, Decision
from appeals.review import groups
from tests.builders import decide, flag
from tests.reviewer import test_browser as console

SHOTS = os.environ.get("SCREENSHOT_DIR", "")
SPAM = (
    "Congratulations! You have been selected to receive a free gift card worth $500. "
    "Claim it now at https://prizes.example/claim?ref={ref} before the offer expires tonight."
)
OTHER = (
    "Our bakery on Mill Street opens at seven tomorrow; the first twenty customers get a free "
    "croissant with any coffee."
)


def make_group(platform, count=3):
    platform.callback_url, platform.callback_secret = "https://platform.example/hook", "k" * 32
    platform.save()
    variants = [
        SPAM.format(ref=8800),
        SPAM.format(ref=8801).lower(),
        SPAM.format(ref=8802).replace("tonight.", "TONIGHT!!!"),
        SPAM.format(ref=8803).replace("$500", "$750"),
    ]
    cases = [
        flag(platform, content=content, external_id=f"post-{i}")
        for i, content in enumerate(variants[:count])
    ]
    result = grouping.group_near_duplicates([c.id for c in cases])
    return CaseGroup.objects.get(id=result.grouped[cases[0].id]), cases


@pytest.mark.django_db
def test_the_case_page_and_the_queue_lead_to_the_group(client, alice, platform, spam_policy):
    group, cases = make_group(platform)
    alone = flag(platform, content=OTHER)
    client.force_login(alice)
    page = client.get(reverse("case_detail", args=[cases[1].id])).content.decode()
    assert f'href="/groups/{group.id}/"' in page and "Near-duplicates" in page
    assert (
        "Near-duplicates"
        not in client.get(reverse("case_detail", args=[alone.id])).content.decode()
    )
    queue = client.get(reverse("queue_list", args=["flags"])).content.decode()
    assert queue.count(f">Group {group.id}</a>") == 3
    body = client.get(reverse("group_detail", args=[group.id])).content.decode()
    for case in cases:
        assert f"Case #{case.id}" in body
    assert "Claim the group (3 cases)" in body


@pytest.mark.django_db
def test_the_decide_post_over_http_decides_every_member_once(client, alice, platform, spam_policy):
    group, cases = make_group(platform)
    client.force_login(alice)
    assert client.post(reverse("group_claim", args=[group.id])).status_code == 302
    token = str(Case.objects.get(id=cases[0].id).lease_token)
    client.post(reverse("group_confirm", args=[group.id]), {"lease_token": token})
    response = client.post(
        reverse("group_decide", args=[group.id]),
        {
            "lease_token": token,
            "member_ids": ",".join(str(c.id) for c in cases),
            "outcome": "violating",
            "rule_ids": ["SP3.a"],
            "note": "same giveaway scam",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get(response["Location"]).content.decode()
    assert "3 cases decided" in page and "Decided by alice" in page
    decisions = Decision.objects.filter(near_duplicate_group=group)
    assert decisions.count() == 3
    assert {d.action for d in decisions} == {"remove"}  # the form's default for violating
    assert CallbackDelivery.objects.filter(decision__near_duplicate_group=group).count() == 3
    assert AuditEvent.objects.filter(kind="decided", data__group_id=group.id).count() == 3
    # A second post (a double click) decides nothing more.
    again = client.post(
        reverse("group_decide", args=[group.id]),
        {
            "lease_token": token,
            "member_ids": ",".join(str(c.id) for c in cases),
            "outcome": "violating",
        },
    )
    assert again.status_code == 400 and "already decided" in again.content.decode()
    assert Decision.objects.count() == 3


@pytest.mark.django_db
def test_a_refused_group_decision_names_the_member_and_decides_nothing(
    client, alice, bob, platform, spam_policy
):
    group, cases = make_group(platform)
    token = groups.claim_group(reviewer=alice, group_id=group.id)
    groups.confirm_group(reviewer=alice, group_id=group.id, lease_token=token)
    Case.objects.filter(id=cases[2].id).update(lease_expires_at="2000-01-01T00:00:00Z")
    decide(bob, cases[2], "not_violating")
    client.force_login(alice)
    response = client.post(
        reverse("group_decide", args=[group.id]),
        {
            "lease_token": str(token),
            "member_ids": ",".join(str(c.id) for c in cases),
            "outcome": "violating",
            "rule_ids": ["SP3.a"],
        },
    )
    body = response.content.decode()
    assert response.status_code == 400
    assert f"case {cases[2].id} (post-2) cannot be decided with group {group.id}" in body
    assert not Decision.objects.filter(near_duplicate_group=group).exists()


@pytest.mark.django_db
def test_model_drafts_on_the_group_page_keep_blind_first_rules(
    client, carol, platform, spam_policy
):
    from appeals.models import QueueSetting
    from tests.builders import appeal
    from tests.reviewer.drafts import ready_draft

    group, cases = make_group(platform)
    for case in cases:
        ready_draft(case, rationale=f"RATIONALE-{case.id}")
    client.force_login(carol)
    page = client.get(reverse("group_detail", args=[group.id])).content.decode()
    assert page.count("Model: <strong>violating</strong>") == 3
    # Carol reviews a blind-first appeals queue with an open appeal on the first member's item:
    # that member's draft is withheld here too (the same content, the same verdict).
    QueueSetting.objects.create(queue="appeals", blind_first=True)
    appeal(platform, item_external_id="post-0", statement="It was a real giveaway, honestly.")
    page = client.get(reverse("group_detail", args=[group.id])).content.decode()
    assert page.count("Model: <strong>violating</strong>") == 2
    # A blind-first group's own queue shows no draft at all.
    QueueSetting.objects.create(queue="flags", blind_first=True)
    page = client.get(reverse("group_detail", args=[group.id])).content.decode()
    assert "Model:" not in page and "Blind-first queue" in page


@pytest.mark.django_db
def test_image_members_show_only_our_blurred_previews(
    client, alice, platform, spam_policy, media_storage
):
    from appeals.media import services as media
    from appeals.models import MediaAsset
    from tests.appeals.test_groups import image_case, patterned_png

    first, first_asset = image_case(platform, patterned_png(5))
    copy, copy_asset = image_case(platform, patterned_png(5, jitter=5))
    for asset in (first_asset, copy_asset):
        media.fetch_item_media(asset.id)
    group_id = grouping.group_near_duplicates([first.id, copy.id]).grouped[first.id]
    client.force_login(alice)
    page = client.get(reverse("group_detail", args=[group_id])).content.decode()
    for case in (first, copy):
        assert reverse("case_media_preview", args=[case.id]) in page
        assert reverse("case_media_original", args=[case.id]) not in page
    assert "data:image" not in page  # never the platform's address either
    assert MediaAsset.objects.filter(status="stored").count() == 2


# --- in the browser ----------------------------------------------------------------------------

browser = console.browser
memory_broker = console.memory_broker
site = console.site
page = console.page
log_in = console.log_in


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_reviewer_confirms_trims_and_decides_a_group_in_the_browser(
    page, alice, platform, spam_policy
):
    group, cases = make_group(platform, count=4)
    log_in(page, "alice")
    page.goto("/queues/flags/")
    page.get_by_role("link", name=f"Group {group.id}").first.click()
    page.wait_for_url(re.compile(rf".*/groups/{group.id}/$"))
    page.get_by_role("button", name="Claim the group (4 cases)").click()
    page.wait_for_url(re.compile(rf".*/groups/{group.id}/$"))
    assert "You hold every case of this group" in page.locator("#group-lease").inner_text()

    # One member is not the same: out, with a reason.
    member = page.locator(f"#member-{cases[3].id}")
    member.get_by_placeholder("Why it is not the same").fill("different sender, check alone")
    member.get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(rf".*/groups/{group.id}/$"))
    assert page.locator(f"#member-{cases[3].id}").count() == 0
    assert "different sender" in page.locator("#removed-title + ul").inner_text()

    page.get_by_role("button", name="Confirm: these are the same content").click()
    page.wait_for_url(re.compile(rf".*/groups/{group.id}/$"))
    assert "Confirmed by alice" in page.locator("#group-confirmed-by").inner_text()
    form = page.locator("#group-decide-form")
    form.locator("input[name=outcome][value=violating]").check()
    form.get_by_label("SP3.a").check()
    form.get_by_label("Note").fill("One giveaway scam sent from many accounts")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        # Back to the top of the page and of the side panel: the members and the form in view.
        page.mouse.wheel(0, -5000)
        page.locator("aside.case-side").evaluate("panel => { panel.scrollTop = 0; }")
        page.wait_for_timeout(150)
        page.screenshot(path=str(Path(SHOTS) / "group-decision.png"))
    page.get_by_role("button", name="Decide all 3 cases").click()
    page.wait_for_url(re.compile(rf".*/groups/{group.id}/$"))
    assert "3 cases decided" in page.locator("body").inner_text()

    decided = Decision.objects.filter(near_duplicate_group=group).order_by("case_id")
    assert [d.case_id for d in decided] == [c.id for c in cases[:3]]
    assert {(d.outcome, d.action, tuple(d.rule_ids)) for d in decided} == {
        ("violating", "remove", ("SP3.a",))
    }
    assert Case.objects.get(id=cases[3].id).status == "open"  # decided on its own later
    removed = AuditEvent.objects.get(kind="group_member_removed")
    assert removed.case_id == cases[3].id and removed.actor == alice
