"""The quality page in a real browser: the issue's override (SP2.b → SP3.a, remove → label) shows
as agreement on the verdict and disagreement on the rules and the action, under the CSP."""

from __future__ import annotations

import pytest

from tests.builders import decide, flag
from tests.reviewer import test_browser
from tests.reviewer.drafts import ready_draft
from tests.reviewer.test_browser import log_in

# The browser fixtures of the main browser tests, used here as they are.
browser = test_browser.browser
memory_broker = test_browser.memory_broker
site = test_browser.site
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_override_of_rule_and_action_shows_on_the_quality_page(
    page, alice, erin, platform, spam_policy
):
    case = flag(platform)
    ready_draft(case)  # violating, SP2.b: accepting it removes
    decide(alice, case, "violating", "label", ["SP3.a"], note="A fake giveaway: label it.")

    log_in(page, "erin")
    page.goto("/quality/")
    assert page.locator("#level-verdict .kpi-num").inner_text() == "100.0%"
    assert page.locator("#level-rules .kpi-num").inner_text() == "0.0%"
    assert page.locator("#level-action .kpi-num").inner_text() == "0.0%"
    row = page.locator('#by-rule tr[data-group="SP2.b"]')
    assert row.locator('[data-level="verdict"]').inner_text() == "100.0%"
    assert row.locator('[data-level="rules-exact"]').inner_text() == "0.0%"
    assert row.locator('[data-level="action"]').inner_text() == "0.0%"
    # The page fixture's teardown fails the test on any Content Security Policy violation.
