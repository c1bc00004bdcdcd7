"""The policy workbench in a real browser, with a real Celery worker drafting against a stand-in
OpenAI-compatible server: a policy admin imports the gating golden set, measures the published
version, drafts version 2, reads its diff and token count, runs it, compares it with version 1,
is refused at publish by the gate, and a senior publishes it with an override and a reason.

With SCREENSHOT_DIR set, each page is saved there at 1280×720 (docs/screenshots in the README).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from appeals.models import AuditEvent
from policies.models import PolicyVersion
from tests.reviewer.test_browser import PASSWORD, browser  # noqa: F401 - the Chromium fixture
from tests.standin_server import StandInServer
from tests.workers import celery_worker

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SET = (
    "content,expected,rule_ids,must_pass,language\n"
    "Buy gold rings here! 90% off today,violating,SP2.b,true,en\n"
    "Click here to claim your free iPhone,violating,SP3.a,,en\n"
    "Check out my course at shopcoach.biz,violating,SP2.a,,en\n"
    "Kaufen Sie Gold – buy gold jetzt,violating,SP2.b,,de\n"
    "How do I upload a photo?,not_violating,,,en\n"
    '"Hi Sam, here is the report.",not_violating,,,en\n'
    "Wie lade ich ein Foto hoch?,not_violating,,,de\n"
)


@pytest.fixture
def worker_env(tmp_path):
    url = django_settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    with StandInServer(latency=0.3) as server:
        env = {
            "SAFEGUARD_BACKEND": "openai",
            "SAFEGUARD_BASE_URL": server.base_url,
            "SAFEGUARD_MODEL": "stand-in",
            "WORKBENCH_CHUNK_SIZE": "2",
        }
        with celery_worker(broker_url=url, env=env, log_path=tmp_path / "worker.log"):
            yield
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def page(browser, live_server, settings):  # noqa: F811
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    context = browser.new_context(viewport={"width": 1280, "height": 720}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def test_draft_measure_compare_and_publish_over_the_gate(
    page, worker_env, dave, carol, spam_policy, tmp_path
):
    shots = os.environ.get("SCREENSHOT_DIR")

    def shot(name):
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(150)
            page.screenshot(path=str(Path(shots) / f"workbench-{name}.png"))

    def wait_for_run_done():
        # The progress bar polls every second; the page reloads itself when the run is done.
        page.locator("#confusion-title").wait_for(timeout=60_000)

    log_in(page, "dave")
    page.get_by_role("link", name="Workbench").click()
    page.wait_for_url(re.compile(r"/workbench/$"))
    golden_file = tmp_path / "core.csv"
    golden_file.write_text(SET)
    page.get_by_label("Policy").select_option(label="Spam")
    page.get_by_label("Name").fill("core")
    page.get_by_label("File").set_input_files(str(golden_file))
    page.get_by_label("Gates publishing").check()
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(re.compile(r"/workbench/golden-sets/\d+/$"))
    assert "Imported 7 items." in page.locator(".flash").inner_text()
    assert page.locator("table tbody tr").count() == 7
    shot("golden-set")

    # Measure the published version 1.
    page.goto(f"/workbench/versions/{spam_policy.id}/")
    page.get_by_label("Golden set").select_option(label="spam: core")
    page.get_by_role("button", name="Run on the gpu queue").click()
    page.wait_for_url(re.compile(r"/workbench/runs/\d+/$"))
    page.locator("#run-progress").wait_for()
    shot("run-progress")
    wait_for_run_done()
    assert page.locator(".kpi-num").first.inner_text() == "1.000"

    # Draft version 2 from version 1 and make it worse.
    page.goto(f"/workbench/versions/{spam_policy.id}/")
    page.get_by_role("button", name="New draft from this version").click()
    page.wait_for_url(re.compile(r"/workbench/versions/\d+/$"))
    draft = PolicyVersion.objects.get(policy=spam_policy.policy, number=2)
    text = page.locator("#policy-text")
    text.fill(text.input_value() + "\nSP3.b LENIENT phishing - only when a login page is faked.\n")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url(re.compile(rf"/workbench/versions/{draft.id}/$"))
    diff = page.locator("#diff-title + form + h3 + ul").inner_text()
    assert "added SP3.b" in diff and "changed SP3" in diff
    assert "tokens; the guidance is 400–600" in page.locator("#checks-title + ul").inner_text()
    assert "+SP3.b LENIENT phishing" in page.locator("pre.policy-text").inner_text()
    shot("version-editor")

    page.get_by_label("Golden set").select_option(label="spam: core")
    page.get_by_role("button", name="Run on the gpu queue").click()
    page.wait_for_url(re.compile(r"/workbench/runs/\d+/$"))
    wait_for_run_done()
    assert "Buy gold rings here!" in page.locator("#dis-title + table").inner_text()
    shot("run")

    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"/workbench/compare/"))
    deltas = page.locator("#delta-title + table").inner_text()
    assert "f1" in deltas and "[" in deltas
    assert page.locator("#broken-title + ul li").count() == 4
    shot("compare")

    # The gate refuses; a policy admin cannot override.
    page.goto(f"/workbench/versions/{draft.id}/")
    assert "The gate refuses this version" in page.locator("#publish").inner_text()
    page.get_by_role("button", name=f"Publish {draft.label}").click()
    page.wait_for_url(re.compile(rf"/workbench/versions/{draft.id}/$"))
    assert "publishing refused" in page.locator(".flash").inner_text()
    page.locator("#publish").scroll_into_view_if_needed()
    shot("publish-refused")
    draft.refresh_from_db()
    assert draft.status == "draft"

    # A senior (who also administers policies) publishes with a reason.
    carol.groups.add(*dave.groups.all())
    page.get_by_role("button", name="Log out").click()
    log_in(page, "carol")
    page.goto(f"/workbench/versions/{draft.id}/")
    page.get_by_label("Override reason").fill("Legal asked for the phishing rule today.")
    page.locator("#publish").scroll_into_view_if_needed()
    shot("publish-override")
    page.get_by_role("button", name=f"Publish {draft.label}").click()
    page.wait_for_url(re.compile(rf"/workbench/versions/{draft.id}/$"))
    assert "published over the gate" in page.locator(".flash").inner_text()
    shot("published")
    draft.refresh_from_db()
    assert draft.status == "published" and draft.published_by == carol
    override = AuditEvent.objects.get(kind="publish_gate_overridden")
    assert override.data["reason"] == "Legal asked for the phishing rule today."
    assert AuditEvent.objects.filter(kind="evaluation_requested").count() == 2
