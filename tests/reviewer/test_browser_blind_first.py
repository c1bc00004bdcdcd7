"""Blind-first and appeal links in a real browser (Debian's Chromium through Playwright).

A blind-first queue: the reviewer's page, the queue list (with every filter), the case timeline
and the downloads carry no trace of the draft until the reviewer's blind call; then it appears.
With SCREENSHOT_DIR set, the case page before and after the call and an appeal whose platform
account differs from the record are written there at 1280×720.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from appeals.models import Decision, Queue, QueueSetting
from tests.builders import appeal, decide, flag
from tests.reviewer import test_browser as console
from tests.reviewer.blind_drafts import SECRET_MODEL, SECRET_RATIONALE, SECRET_REASONING, land_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The console's browser fixtures (Chromium, live server, CSP watch) and log-in step.
browser = console.browser
memory_broker = console.memory_broker
site = console.site
page = console.page
log_in = console.log_in

SHOTS = os.environ.get("SCREENSHOT_DIR", "")
CONTENT = "You won an iPhone, click prize.example to claim it"
TRACES = (SECRET_RATIONALE, SECRET_REASONING, SECRET_MODEL, "Confidence", "confidence high")


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(150)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def no_trace(text: str) -> None:
    for trace in TRACES:
        assert trace not in text, trace
    assert not re.search(r"violation\s+True", text), "the timeline printed the verdict"


def test_blind_first_leaves_no_trace_until_the_blind_call(page, alice, platform, spam_policy):
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    case = flag(platform, external_id="prize-1", content=CONTENT, source="trusted_flagger")
    land_draft(case)
    log_in(page, "alice")

    # The queue list, with each filter the form offers and the verdict asked for by URL.
    page.goto("/queues/flags/")
    assert page.locator("select[name=verdict]").count() == 0
    no_trace(page.locator("body").inner_text())
    assert "Model" not in page.locator("#queue-results thead").text_content()
    page.locator("select[name=source]").select_option("trusted_flagger")
    page.wait_for_url(re.compile(r".*source=trusted_flagger.*"))
    page.locator("select[name=policy]").select_option(str(spam_policy.policy_id))
    page.wait_for_url(re.compile(r".*policy=\d+.*"))
    assert page.get_by_role("link", name=f"#{case.id}").count() == 1
    no_trace(page.locator("body").inner_text())
    for verdict in ("violating", "not_violating", "none"):
        page.goto(f"/queues/flags/?verdict={verdict}")
        assert page.get_by_role("link", name=f"#{case.id}").count() == 1, verdict
        no_trace(page.content())

    # The case page: panel, timeline, title; the downloads are refused.
    page.goto("/queues/flags/")
    page.get_by_role("button", name=f"Claim case {case.id}").click()
    page.wait_for_url(re.compile(rf".*/cases/{case.id}/$"))
    assert "Hidden until you record your own call" in page.locator("#recommendation").inner_text()
    no_trace(page.content())
    no_trace(page.title())
    timeline = page.locator("ol.timeline").inner_text()
    assert "Drafted" in timeline and "SP3.a" not in timeline
    shot(page, "case-blind-first-before")
    response = page.request.get("/exports/decisions.csv")
    assert response.status in (403,)

    # The blind call; then the draft appears, in the panel and in the timeline.
    blind = page.locator("#blind-form")
    blind.get_by_label("Violating", exact=True).check()
    blind.get_by_label("SP3.a").check()
    blind.get_by_role("button", name=re.compile("Record my call")).click()
    page.wait_for_url(re.compile(rf".*/cases/{case.id}/#recommendation$"))
    panel = page.locator("#recommendation").inner_text()
    assert SECRET_RATIONALE in panel and "Confidence: high" in panel
    assert "the model agrees" in panel
    timeline = page.locator("ol.timeline").inner_text()
    assert re.search(r"violation\s+True", timeline) and "SP3.a" in timeline
    shot(page, "case-blind-first-after")

    # The queue list's model column stays off for open cases; decided ones show it.
    page.locator("#accept-form button").click()
    page.wait_for_url(re.compile(r".*/$"))
    assert Decision.objects.get(case=case).blind_outcome == "violating"
    page.goto("/queues/flags/?status=decided")
    assert "Model" in page.locator("#queue-results thead").text_content()


def test_an_appeal_shows_where_the_platforms_account_differs(
    page, alice, carol, platform, spam_policy
):
    case = flag(platform, external_id="prize-1", content=CONTENT)
    land_draft(case)
    decide(alice, case, outcome="violating", action="restrict", rule_ids=["SP3.a"])
    complaint = appeal(
        platform,
        item_external_id="prize-1",
        outcome="remove",
        rule_ids=["SP2.b"],
        statement="It was a real giveaway from my own shop; nothing was removed, only hidden.",
    )
    log_in(page, "carol")
    page.goto(f"/cases/{complaint.id}/")
    mismatch = page.locator("#appeal-mismatch").inner_text()
    assert "The platform's account differs from the recorded decision." in mismatch
    assert "the original action was remove" in mismatch and "was restrict" in mismatch
    shot(page, "case-appeal-mismatch")
