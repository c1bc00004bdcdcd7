"""A senior finds an undelivered callback on the dashboard and retries it, in a real browser
(Debian's Chromium through Playwright, the fixtures of tests/reviewer/test_browser.py, which also
fail the test on any Content Security Policy violation)."""

from __future__ import annotations

import pytest

from appeals.disclosure import outbox
from appeals.models import AuditEvent, CallbackDelivery, Platform
from tests.builders import decide, flag
from tests.callback_receiver import Receiver
from tests.reviewer.test_browser import (  # noqa: F401 - fixtures
    browser,
    log_in,
    memory_broker,
    page,
    site,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_senior_retries_a_given_up_callback_from_the_dashboard(
    page,  # noqa: F811 - the fixture imported above
    alice,
    carol,
    platform,
    spam_policy,
):
    with Receiver(statuses=[404]) as receiver:
        Platform.objects.filter(id=platform.id).update(callback_url=receiver.url)
        decision = decide(alice, flag(platform), "not_violating")
        # The on-commit hand-off went to the in-memory broker; deliver as a worker would.
        assert outbox.deliver(decision_id=decision.id).status == "failed"

        log_in(page, "carol")
        panel = page.locator("#undelivered-callbacks")
        assert "HTTP 404" in panel.inner_text()
        assert panel.locator(".badge").inner_text() == "1"
        panel.get_by_role("button", name="Retry now").click()
        page.wait_for_url("**/")
        assert "will be sent again now" in page.content()

        assert CallbackDelivery.objects.get(decision=decision).status == "pending"
        assert outbox.sweep_callbacks() == {"delivered": 1}
        page.reload()
        assert "Every decision's callback has been delivered." in panel.inner_text()
    assert len(receiver.requests) == 2
    assert AuditEvent.objects.filter(
        kind=AuditEvent.Kind.CALLBACK_RETRY_REQUESTED, actor=carol
    ).exists()
