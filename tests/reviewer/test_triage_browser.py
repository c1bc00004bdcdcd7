"""The fast tier in a real browser: the case page shows each signal with its model and version,
says why a case got no deep check, and the queue shows the score and filters by it, all under
the Content Security Policy.

With SCREENSHOT_DIR set, the pages are saved there at 1280×720 (docs/screenshots).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.db import connection

from appeals.media import tasks as media_tasks
from appeals.models import DeepCheck, DeepCheckSetting, MediaAsset, PriorityRule
from appeals.triage import services as triage
from tests.builders import flag, make_policy
from tests.images import png_data_url
from tests.reviewer.test_browser import browser, log_in, memory_broker, site  # noqa: F401
from tests.reviewer.test_browser import page as page  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OFFENSIVE = "You are a fucking idiot and everyone on this forum hates your stupid posts"
BENIGN = "Lovely weather in the park today, the children played football all afternoon"
GERMAN = "Das Wetter im Park war heute wunderbar und die Kinder haben Fußball gespielt"


def test_the_fast_tier_on_the_case_page_and_the_queue(  # noqa: F811 - `page` is the fixture
    page, alice, platform, spam_policy, media_storage, tmp_path
):
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    gated = make_policy(slug="harassment", name="Harassment")
    DeepCheckSetting.objects.create(
        policy=gated.policy, mode=DeepCheck.ABOVE_THRESHOLD, threshold=0.7
    )
    PriorityRule.objects.create(
        queue="flags",
        kind="offensive",
        min_score=0.8,
        source="trusted_flagger",
        priority=20,
        due_within=dt.timedelta(hours=1),
    )
    offensive = flag(platform, content=OFFENSIVE, source="trusted_flagger")
    benign = flag(platform, content=BENIGN, policy="harassment")
    german = flag(platform, content=GERMAN)
    picture = flag(platform, content=png_data_url(), content_type="image")
    media_tasks.fetch_item_media(MediaAsset.objects.get(item=picture.item).id)
    for case in (offensive, benign, german, picture):
        triage.triage_item(case.item_id)

    log_in(page, "alice")
    page.goto(f"/cases/{offensive.id}/")
    panel = page.locator("#fast-tier")
    assert "alt-profanity-check" in panel.inner_text()
    assert "lingua-language-detector" in panel.inner_text()
    page.screenshot(path=str(out / "case-fast-tier.png"))

    page.goto(f"/cases/{benign.id}/")
    reason = page.locator("#no-deep-check").inner_text()
    assert "only on cases the fast tier scores at 0.70 or above" in reason
    page.screenshot(path=str(out / "case-no-deep-check.png"))

    page.goto(f"/cases/{picture.id}/")
    assert "nudenet" in page.locator("#fast-tier").inner_text()

    page.goto("/queues/flags/")
    first = page.locator("#queue-results tbody tr").first
    assert f"#{offensive.id}" in first.inner_text()  # the priority rule put it first
    page.screenshot(path=str(out / "queue-fast-tier.png"))
    page.select_option("#id_language", "de")
    page.wait_for_url("**language=de**")
    page.locator("#queue-results").get_by_text(f"#{german.id}").wait_for()
    assert page.locator("#queue-results tbody tr").count() == 1


def test_search_results_in_the_browser(page, alice, platform, spam_policy, tmp_path):  # noqa: F811
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    found = [
        flag(platform, content=text, author_id=f"author-{i}", reporter_id="reporter-3")
        for i, text in enumerate(
            [
                "Buy gold rings here, cheapest jewellery in town",
                "Gold rings giveaway: click the link to claim yours",
                "My grandmother's gold ring was stolen, please share",
            ]
        )
    ]
    flag(platform, content="Lovely weather in the park today")
    log_in(page, "alice")
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Search").fill("gold rings")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#search-results tbody tr")
    rows.first.wait_for()
    assert rows.count() == (3 if connection.vendor == "postgresql" else 2)
    assert f"#{found[0].id}" in page.locator("#search-results").inner_text()
    page.screenshot(path=str(out / "search-results.png"))


def test_the_fast_tier_panel_updates_itself_when_the_scores_land(  # noqa: F811
    page, alice, platform, spam_policy
):
    case = flag(platform, content=OFFENSIVE)
    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    assert "Scoring" in page.locator("#fast-tier").inner_text()
    triage.triage_item(case.item_id)
    page.locator("#fast-tier", has_text="alt-profanity-check").wait_for()
    assert page.locator("#fast-tier [data-signal=offensive]").inner_text() == "1.00"
