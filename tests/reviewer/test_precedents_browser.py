"""Precedents in a real browser, under the Content Security Policy: the case page lists the most
similar decided cases with their similarity, outcome, rules and date, links to each, and reads
the model's draft against them.

With SCREENSHOT_DIR set, the page is saved there at 1280×720 (docs/screenshots).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appeals.precedents import index as precedent_index
from appeals.precedents import services as precedents
from tests.builders import decide, flag
from tests.reviewer.drafts import ready_draft
from tests.reviewer.test_browser import browser, log_in, memory_broker, site  # noqa: F401
from tests.reviewer.test_browser import page as page  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DECIDED = [
    ("Buy gold rings here! Cheap gold rings and necklaces, free shipping today", "SP2.b"),
    ("Gold rings 70% off, visit our shop now for necklaces and bracelets", "SP2.b"),
    ("Check out my jewellery course and shop: rings, chains, earrings", "SP2.a"),
    ("You won an iPhone! Click here to claim your prize before midnight", "SP3.a"),
    ("How do I upload a photo of the ring I bought to my profile?", ""),
    ("Hi Sam, here is the report on last month's jewellery sales.", ""),
]
OPEN = "Cheap gold rings and silver necklaces for sale, buy here with free shipping"


def test_the_case_page_shows_similar_decided_cases_against_the_draft(  # noqa: F811
    page, alice, bob, platform, spam_policy, settings, tmp_path
):
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    settings.PRECEDENTS_INDEX_DIR = str(tmp_path / "precedents")
    precedent_index.forget()
    decided = []
    for n, (text, rule) in enumerate(DECIDED):
        case = flag(platform, content=text, author_id=f"author-{n}")
        if rule:
            decide(bob, case, "violating", "remove", [rule])
        else:
            decide(bob, case, "not_violating")
        decided.append(case)
    case = flag(platform, content=OPEN, author_id="author-open")
    precedents.embed_items([c.item_id for c in [*decided, case]])
    ready_draft(case, violation=True, rule_ids=("SP2.b",))

    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    panel = page.locator("#precedents")
    panel.scroll_into_view_if_needed()
    rows = panel.locator("li[data-case]")
    assert rows.count() == 5
    assert rows.first.get_attribute("data-case") in {str(decided[0].id), str(decided[1].id)}
    text = panel.inner_text()
    assert "% similar" in text and "SP2.b" in text
    assert "the model says violating" in page.locator("#precedents-vs-draft").inner_text()
    page.screenshot(path=str(out / "case-precedents.png"))
    first = rows.first.get_attribute("data-case")
    rows.first.locator("a").click()
    page.wait_for_url(f"**/cases/{first}/")
    assert "Decided" in page.locator("h1").inner_text() or page.get_by_text("Decided").count()
    precedent_index.forget()
