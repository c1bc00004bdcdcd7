"""The console in a real browser: Debian's Chromium driven by Playwright against live_server.

Drafted recommendations are TEST DATA written in the setup (tests/reviewer/drafts.py): the model
cannot run here. Intake enqueues draft tasks on commit, so these tests point Celery at the
in-memory broker; nothing needs a real one.

`bench/screenshots.py` runs `test_screenshots` with SCREENSHOT_DIR set to write the PNGs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.utils import timezone

from appeals.media import tasks
from appeals.models import Case, Decision, MediaAsset, Queue, QueueSetting, Recommendation
from tests.builders import flag
from tests.media_server import PNG, serve_bytes
from tests.reviewer import demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an event loop on this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code, so let Django allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _point_celery_at(app, url: str) -> None:
    app.conf.broker_url = url
    # Forget the connection and producer pools built for the previous URL (as Celery does after
    # a fork); kombu keeps the pools themselves, keyed by URL, so nothing is closed here.
    app._pool = None
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)


@pytest.fixture
def memory_broker(settings):
    """Draft tasks enqueued on commit go to kombu's in-memory transport, not a real broker."""
    from reviewer.celery import app

    settings.CELERY_BROKER_URL = "memory://"
    previous = app.conf.broker_url
    _point_celery_at(app, "memory://")
    yield
    _point_celery_at(app, previous)


@pytest.fixture
def site(live_server, memory_broker, settings):
    # Plain http on localhost: cookies cannot be Secure-only here.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return live_server.url


def csp_violations(page) -> list[str]:
    """Collects what Chromium reports refusing under the Content Security Policy."""
    found: list[str] = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and found.append(message.text),
    )
    return found


def missing_assets(page) -> list[str]:
    """Collects static assets the page asked for and did not get (the favicon included)."""
    found: list[str] = []
    page.on(
        "response",
        lambda response: (
            ("/static/" in response.url or response.url.endswith("/favicon.ico"))
            and response.status >= 400
            and found.append(f"{response.status} {response.url}")
        ),
    )
    return found


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 720}, base_url=site)
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations = csp_violations(page)
    missing = missing_assets(page)
    yield page
    context.close()
    # Every page any browser test opens runs under the CSP without it refusing anything,
    # and every asset it asks for (stylesheet, script, icon) is there.
    assert violations == [], violations
    assert missing == [], missing


def log_in(page, username):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def case_url(case) -> str:
    return rf".*/cases/{case.id}/$"


def test_a_reviewer_works_through_the_flags_queue_with_the_keyboard(
    page, alice, platform, spam_policy
):
    cases = demo.open_flags(platform)
    # Four drafted cases matter here; park the rest out of the way.
    in_play = ("rings", "giveaway", "report", "injection")  # in queue order
    Case.objects.exclude(id__in=[cases[k].id for k in in_play]).update(status=Case.Status.DECIDED)
    first, second, third, fourth = (cases[k] for k in in_play)

    log_in(page, "alice")
    card = page.locator("#queue-flags")
    assert card.locator(".stat-num").inner_text() == "4"
    card.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(first)))

    # Read the case and its draft, then open a cited rule in the inline panel.
    assert "gold rings 90% off" in page.locator(".content-text").inner_text()
    assert "Violating" in page.locator("#recommendation .verdict").inner_text()
    page.locator("#recommendation a.rule-chip", has_text="SP2.b").click()
    panel = page.locator("aside#rule-panel")
    panel.wait_for()
    assert "Irrelevant ads" in panel.inner_text()
    assert "in spam v1" in panel.inner_text()

    # `a` only selects accepting the draft, and says so; Shift+Enter submits and moves on.
    page.keyboard.press("Escape")
    page.locator("body").press("a")
    status = page.locator("#selected-action")
    assert "Selected: Accept the model's recommendation" in status.inner_text()
    assert page.locator("#accept-form.is-selected").count() == 1
    assert not Decision.objects.filter(case=first).exists()  # a letter records nothing
    page.locator("body").press("Shift+Enter")
    page.wait_for_url(re.compile(case_url(second)))
    accepted = Decision.objects.get(case=first)
    assert (accepted.accepted_recommendation, accepted.rule_ids) == (True, ["SP2.b"])

    # `o` goes to the override form: decide with a different rule and action.
    page.locator("body").press("o")
    focused = page.evaluate("document.activeElement.name")
    assert focused == "outcome"
    page.get_by_label("Violating", exact=True).check()
    page.locator("#override-form select[name=action]").select_option("restrict")
    page.locator("#override-form").get_by_label("SP2.a").check()
    page.locator("#decide-button").click()
    page.wait_for_url(re.compile(case_url(third)))
    overridden = Decision.objects.get(case=second)
    assert (overridden.rule_ids, overridden.action, overridden.accepted_recommendation) == (
        ["SP2.a"],
        "restrict",
        False,
    )
    assert overridden.agrees_with_model is True  # same outcome, different rule

    # `e` focuses the escalation reason; typing there does not trigger shortcuts.
    page.locator("body").press("e")
    page.keyboard.type("a second opinion, please")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(case_url(fourth)))
    assert f"Case {third.id} escalated" in page.locator(".flash").inner_text()
    assert "Possible prompt injection" in page.locator("#recommendation").inner_text()
    third.refresh_from_db()
    assert third.queue == Queue.ESCALATIONS
    assert third.escalation_reason == "a second opinion, please"


def test_a_letter_selects_enter_submits_and_stays_escape_cancels(
    page, alice, platform, spam_policy
):
    cases = demo.open_flags(platform)
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    case = cases["rings"]
    page.wait_for_url(re.compile(case_url(case)))
    body = page.locator("body")
    body.press("a")
    body.press("Escape")  # cancels the selection: Enter then does nothing
    assert page.locator("#selected-action").is_hidden()
    body.press("Enter")
    page.wait_for_timeout(300)
    assert not Decision.objects.filter(case=case).exists()

    # Shortcuts are off inside a field: typing "a" in the note selects nothing.
    page.locator("#override-form textarea").click()
    page.keyboard.type("a")
    assert page.locator(".is-selected").count() == 0
    page.keyboard.press("Escape")

    body.press("s")
    assert "Selected: Skip" in page.locator("#selected-action").inner_text()
    assert page.locator("#pass-reason").evaluate("el => el === document.activeElement")
    page.keyboard.press("Escape")
    body.press("a")
    body.press("Enter")  # submit and stay on this case
    page.wait_for_url(re.compile(case_url(case)))
    assert Decision.objects.get(case=case).accepted_recommendation is True
    assert "Decision" in page.locator("#decision-panel").inner_text()
    page.locator("body").press("?")
    help_text = page.locator("#shortcut-help").inner_text()
    assert "Select: accept the model's recommendation" in help_text
    assert "Submit the selected action and move on to the next case" in help_text


def test_a_media_draft_the_model_did_not_see_cannot_be_accepted_in_one_key(
    page, alice, platform, spam_policy
):
    case = demo.open_flags(platform)["picture"]
    Case.objects.exclude(id=case.id).update(status=Case.Status.DECIDED)
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(case)))
    assert "The model did not see this image" in page.locator("#recommendation").inner_text()
    assert "WIN A FREE iPHONE" in page.locator("#item-context").inner_text()
    body = page.locator("body")
    body.press("a")  # selects, and puts focus on "I looked at the image myself"
    assert page.evaluate("document.activeElement.name") == "media_checked"
    page.keyboard.press("Escape")
    body.press("Shift+Enter")  # the browser refuses: the box is not ticked
    page.wait_for_timeout(300)
    assert not Decision.objects.filter(case=case).exists()
    page.get_by_label("I looked at the image myself").check()
    page.keyboard.press("Escape")
    body.press("Enter")
    page.wait_for_url(re.compile(case_url(case)))
    assert Decision.objects.get(case=case).accepted_recommendation is True


def test_decision_controls_fit_at_1280_by_720(page, alice, platform, spam_policy):
    cases = demo.open_flags(platform)
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(cases["rings"])))
    for selector in (
        "#accept-form button",
        "#decide-button",
        "#escalate-form button",
        "#decision-panel details.more-actions > summary",
    ):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] + box["height"] <= 720, (selector, box)


def test_the_help_overlay_opens_with_question_mark(page, alice, platform, spam_policy):
    case = demo.open_flags(platform)["report"]
    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    page.locator("body").press("?")
    assert page.locator("#shortcut-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#shortcut-help").is_visible()


def test_blind_first_hides_the_draft_until_the_reviewer_calls_it(
    page, alice, platform, spam_policy
):
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    case = demo.open_flags(platform)["rings"]
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(case)))
    rec = page.locator("#recommendation")
    assert "Hidden until you record your own call" in rec.inner_text()
    assert "shopcoach" not in rec.inner_text()
    assert page.locator("#accept-form").count() == 0

    blind = page.locator("#blind-form")
    blind.get_by_label("Violating", exact=True).check()
    blind.get_by_label("SP2.b").check()
    blind.get_by_role("button", name=re.compile("Record my call")).click()
    page.wait_for_url(re.compile(rf".*/cases/{case.id}/#recommendation$"))
    assert "irrelevant ad under SP2.b" in page.locator("#recommendation").inner_text()
    assert "the model agrees" in page.locator("#recommendation").inner_text()
    page.locator("body").press("a")
    page.locator("body").press("Shift+Enter")
    page.wait_for_url(re.compile(r".*/cases/\d+/$"))
    decision = Decision.objects.get(case=case)
    assert (
        decision.blind_outcome,
        decision.blind_agrees_with_model,
        decision.recommendation_shown,
    ) == ("violating", True, True)


def _image_loaded(page, selector="#case-media img") -> None:
    """Wait until the image has decoded. Polled from here through evaluate(): a string predicate
    in wait_for_function is eval'd in the page, which the Content Security Policy refuses."""
    image = page.locator(selector)
    for _ in range(100):
        if image.evaluate("el => el.complete && el.naturalWidth > 0"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector} never finished loading")


def test_the_browser_never_asks_the_platform_for_media(
    page, alice, platform, spam_policy, media_storage, platform_media
):
    """Every request the page makes, before and after "Reveal": none goes to the platform; the
    preview comes from us at once, the original from us and only after Reveal."""
    platform_media.routes["/u/7/beach.png"] = serve_bytes(PNG)
    case = flag(
        platform,
        content="(image post)",
        content_type="image",
        metadata={"url": platform_media.url("/u/7/beach.png")},
    )
    # What the worker does after intake: the platform is asked once, by the server.
    assert tasks.fetch_item_media(MediaAsset.objects.get(item=case.item).id) == "stored"
    assert len(platform_media.requests) == 1
    preview_path = f"/cases/{case.id}/media/preview/"
    original_path = f"/cases/{case.id}/media/original/"

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    _image_loaded(page)
    before = list(requests)
    assert any(url.endswith(f"{preview_path}?v=bg") for url in before)  # the variant asked for
    assert not any(url.endswith(original_path) for url in before)
    assert platform_media.origin not in page.content()
    assert "/u/7/" not in page.content()

    page.get_by_role("link", name="Reveal image").click()
    page.locator("#case-media.is-revealed").wait_for()
    _image_loaded(page)
    after = requests[len(before) :]
    assert any(url.endswith(original_path) for url in after)
    assert platform_media.origin not in page.content()
    size = page.locator("#case-media img").evaluate("el => [el.naturalWidth, el.naturalHeight]")
    assert size == [320, 180]  # the original, from our copy

    page.get_by_role("link", name="Blur again").click()
    page.locator("#case-media:not(.is-revealed)").wait_for()
    assert not any(url.startswith(platform_media.origin) for url in requests), requests
    assert len(platform_media.requests) == 1  # still only the server's own fetch


def test_the_drafting_panel_updates_itself_when_the_draft_lands(page, alice, platform, spam_policy):
    case = demo.open_flags(platform)["drafting"]
    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    assert "Drafting" in page.locator("#recommendation").inner_text()
    rec = case.recommendations.get()
    Recommendation.objects.filter(id=rec.id).update(
        status="ready",
        violation=False,
        rule_ids=["SP0.b"],
        confidence="high",
        rationale="A private sale between neighbours (test data).",
        finished_at=timezone.now(),
    )
    page.locator("#recommendation .verdict").wait_for(timeout=8_000)
    assert "Not violating" in page.locator("#recommendation").inner_text()
    assert page.locator("#recommendation[hx-trigger]").count() == 0  # polling stopped


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(el => {
        if (el.closest('[hidden], dialog:not([open])')) return false;
        const name = (el.labels && el.labels.length) || el.getAttribute('aria-label')
            || (el.tagName === 'BUTTON' && el.textContent.trim());
        return !name;
    }).map(el => el.outerHTML.slice(0, 120))"""


def test_every_control_on_the_working_pages_has_a_name(page, alice, platform, spam_policy):
    cases = demo.open_flags(platform)
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(cases["rings"])))
    for url in (
        "/",
        "/queues/flags/",
        f"/cases/{cases['rings'].id}/",
        f"/cases/{cases['picture'].id}/",
        f"/policies/versions/{spam_policy.id}/",
    ):
        page.goto(url)
        assert page.evaluate(UNLABELLED_CONTROLS) == [], url


SHOTS = os.environ.get("SCREENSHOT_DIR")


@pytest.mark.skipif(
    not SHOTS, reason="set SCREENSHOT_DIR (bench/screenshots.py does) to write screenshots"
)
def test_screenshots(page, alice, bob, carol, erin, platform, spam_policy, media_storage):
    out = Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    demo.history(platform, alice=alice, bob=bob, carol=carol)
    cases = demo.open_flags(platform)
    appeal = demo.appeal_case(platform, alice=alice, carol=carol)

    demo.escalated_case(platform, reviewer=bob)

    def shot(name):
        page.wait_for_timeout(150)
        page.screenshot(path=str(out / f"{name}.png"))

    from appeals.review import queueing

    page.goto("/accounts/login/")
    shot("login")
    log_in(page, "alice")
    page.locator("#queue-flags").get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(re.compile(case_url(cases["rings"])))
    shot("case-flag-recommendation")
    page.locator("#recommendation a.rule-chip", has_text="SP2.b").click()
    page.locator("aside#rule-panel").wait_for()
    shot("rule-popover")
    page.locator("body").press("?")
    shot("shortcut-help")
    page.keyboard.press("Escape")
    page.goto("/queues/flags/")
    shot("queue")
    page.goto(f"/cases/{cases['injection'].id}/")
    shot("case-injection-warning")
    page.goto(f"/cases/{cases['drafting'].id}/")
    shot("case-drafting")
    page.goto(f"/cases/{cases['not_configured'].id}/")
    shot("case-not-configured")
    tasks.fetch_item_media(MediaAsset.objects.get(item=cases["picture"].item).id)
    page.goto(f"/cases/{cases['picture'].id}/")
    _image_loaded(page)
    shot("case-media-blurred")
    page.get_by_role("link", name="Reveal image").click()
    page.locator("#case-media.is-revealed").wait_for()
    _image_loaded(page)
    shot("case-media-revealed")
    page.goto(f"/policies/versions/{spam_policy.id}/")
    shot("policy-version")
    page.goto(f"/cases/{cases['rings'].id}/")
    page.locator("body").press("a")
    shot("case-selected-accept")

    log_in(page, "carol")
    queueing.claim_case(reviewer=carol, case_id=appeal.id)
    page.goto("/")
    shot("dashboard")
    page.goto(f"/cases/{appeal.id}/")
    shot("case-appeal")
    page.goto("/quality/")
    shot("quality")
    page.set_viewport_size({"width": 1280, "height": 1700})
    shot("quality-full")
    page.set_viewport_size({"width": 1280, "height": 720})

    log_in(page, "erin")
    page.goto("/")
    shot("dashboard-auditor")
    page.goto("/audit/")
    shot("audit-log")

    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    log_in(page, "bob")
    queueing.claim_case(reviewer=bob, case_id=cases["giveaway"].id)
    page.goto(f"/cases/{cases['giveaway'].id}/")
    shot("case-blind-first")


# --- sign-in and the Content Security Policy -------------------------------------------------


def test_the_pages_run_under_the_content_security_policy_and_it_would_say_so(page, alice):
    response = page.goto("/accounts/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    log_in(page, "alice")
    # The check that finds violations does find them: an inline script is refused and reported.
    probe = page.context.new_page()
    found = csp_violations(probe)
    probe.goto("/")
    with pytest.raises(Exception, match="Content Security Policy|Refused"):
        probe.add_script_tag(content="window.injected = true")
    assert probe.evaluate("window.injected === undefined")
    assert any("inline script" in message for message in found), found


def test_ten_wrong_passwords_in_the_browser_lock_the_account(page, alice):
    def sign_in(password):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(password)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()

    page.goto("/accounts/login/")
    for attempt in range(9):
        sign_in(f"wrong {attempt}")
        page.get_by_role("alert").filter(has_text="didn't match").wait_for()
    sign_in("wrong 10")
    page.get_by_role("heading", name="Sign-in locked").wait_for()
    # The right password is refused too, until the cool-off ends.
    page.get_by_role("link", name="Back to sign in").click()
    page.get_by_role("heading", name="Sign in to review").wait_for()
    sign_in(PASSWORD)
    page.get_by_role("heading", name="Sign-in locked").wait_for()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "locked for 15 minutes after the last attempt" in " ".join(alert.inner_text().split())
    assert page.url.endswith("/accounts/login/")


def test_the_admin_runs_under_the_content_security_policy(page, platform):
    from django.contrib.auth import get_user_model

    from appeals.intake import tokens

    get_user_model().objects.create_superuser("root", "", PASSWORD)
    tokens.create_api_token(platform=platform, name="acme production")
    log_in(page, "root")
    for url in (
        "/admin/",
        "/admin/appeals/apitoken/",
        f"/admin/appeals/platform/{platform.id}/change/",
        "/admin/auth/user/",
    ):
        page.goto(url)
        page.locator("#content").wait_for()
    # The fixture's teardown asserts that none of these pages had anything refused.
