"""The poison-pill appeal in a real browser: an appeal citing rule "a/b" (not a rule of the policy,
and a character no rule address can hold) is shown, claimed with "Start reviewing" and decided."""

from __future__ import annotations

import re

import pytest

from appeals.models import Decision
from tests.builders import appeal, decide, flag
from tests.reviewer import test_browser
from tests.reviewer.drafts import ready_draft
from tests.reviewer.test_browser import case_url, log_in

# The browser fixtures of the main browser tests, used here as they are.
browser = test_browser.browser
memory_broker = test_browser.memory_broker
site = test_browser.site
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_appeal_citing_rule_a_slash_b_is_decided_in_the_browser(
    page, bob, carol, platform, spam_policy
):
    original = flag(platform, external_id="post/with/slashes")
    decide(bob, original, outcome="violating", action="remove", rule_ids=["SP2.b"])
    case = appeal(
        platform,
        item_external_id="post/with/slashes",
        external_id="appeal/a/b",
        rule_ids=("a/b",),
    )
    ready_draft(case, violation=False, rule_ids=["a/b"], rationale="Not spam: a/b is no rule.")

    log_in(page, "carol")
    page.locator("#queue-appeals").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(case)))
    appealed = page.locator("section[aria-labelledby=appeal-title]")
    assert "a/b" in appealed.inner_text()
    assert "Not a rule of spam v1" in appealed.inner_text()
    assert "Not spam: a/b is no rule." in page.locator("#recommendation").inner_text()

    form = page.locator("#override-form")
    form.get_by_label("Overturn the original decision").check()
    page.locator("#decide-button").click()
    page.wait_for_url(re.compile(r".*/$"))
    assert (
        page.locator(".flash").count() and f"Case {case.id}" in page.locator(".flash").inner_text()
    )
    decision = Decision.objects.get(case=case)
    assert (decision.outcome, decision.decided_by) == ("overturn", carol)
