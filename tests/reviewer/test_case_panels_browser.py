"""One case page with everything beside the content: the fast tier's signals, the model's draft, a
second opinion and the similar decided cases, under the Content Security Policy.

With SCREENSHOT_DIR set, the page is saved there at 1280×720, top and foot (docs/screenshots).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appeals.precedents import index as precedent_index
from appeals.precedents import services as precedents
from appeals.second_opinions import services as second_opinions
from appeals.triage import services as triage
from policies.models import SecondOpinionSetting
from tests.builders import decide, flag
from tests.reviewer.drafts import ready_draft
from tests.reviewer.test_browser import browser, log_in, memory_broker, site  # noqa: F401
from tests.reviewer.test_browser import page as page  # noqa: F401 - the fixture
from tests.reviewer.test_precedents_browser import DECIDED, OPEN
from tests.standin_server import StandInServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_case_with_fast_tier_signals_a_second_opinion_and_precedents(  # noqa: F811
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
    with StandInServer(mode="llama_guard") as llama:
        setting = SecondOpinionSetting(
            policy_id=spam_policy.policy_id,
            adapter="llama_guard_3",
            base_url=llama.base_url,
            model="meta-llama/Llama-Guard-3-8B",
            timeout_seconds=5,
            category_rules={"S2": ["SP2.b"]},
        )
        setting.full_clean()
        setting.save()
        case = flag(platform, content=OPEN, author_id="author-open")
        triage.triage_item(case.item_id)
        precedents.embed_items([c.item_id for c in [*decided, case]])
        second_opinions.ask_second_opinions([(case.id, setting.id)], last_try=True)
    ready_draft(
        case,
        violation=True,
        rule_ids=("SP2.b",),
        rationale="Unsolicited promotion of a shop: an irrelevant ad (SP2.b).",
    )

    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    fast_tier = page.locator("#fast-tier").inner_text()
    assert "Offensive language" in fast_tier and "Language" in fast_tier
    assert "alt-profanity-check" in fast_tier and "lingua" in fast_tier
    assert "Violating" in page.locator("#recommendation").inner_text()
    opinion = page.locator("#second-opinions").inner_text()
    # Llama Guard has no spam category: its opinion differs from the draft, and the page shows it.
    assert "Llama Guard 3" in opinion and "Not violating" in opinion
    assert page.locator("#precedents li[data-case]").count() == 5
    page.screenshot(path=str(out / "case-all-panels.png"))
    # The side column scrolls on its own: its foot, the second opinion above the precedents.
    page.locator("#precedents").evaluate("el => el.scrollIntoView({block: 'end'})")
    page.screenshot(path=str(out / "case-all-panels-precedents.png"))
    precedent_index.forget()
