"""Media in a real browser, for each blur preference: every request the page makes is recorded,
and none asks for the original before Reveal; the preview is the variant the reviewer chose
(set through the preferences page itself); nothing goes anywhere but this site.

With SCREENSHOT_DIR set, the demo's drawn house is saved blurred and revealed at 1280×720
(docs/screenshots/media-blurred.png, media-revealed.png).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appeals.demo_media import house
from appeals.intake import uploads
from appeals.intake.schemas import ItemIn
from appeals.triage import services as triage
from reviewer.models import ReviewerPreference
from tests.reviewer.test_browser import _image_loaded, browser, log_in, memory_broker, site  # noqa: F401
from tests.reviewer.test_browser import page as page  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def image_case(platform):
    payload = ItemIn(
        external_id="demo-image-house",
        policy="spam",
        content="Our new place!",
        content_type="image",
        author_id="user-media",
    )
    upload = uploads.with_media(payload, house(), field="media")
    case = uploads.receive_item_with_media(platform=platform, upload=upload).case
    triage.triage_item(case.item_id)  # what the worker does after intake
    return case


def set_preferences_in_the_page(page, *, blur: bool, grayscale: bool) -> None:
    page.goto("/preferences/")
    page.get_by_label("Blur images and video posters until I reveal them").set_checked(blur)
    page.get_by_label("Show previews in grey").set_checked(grayscale)
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()


@pytest.mark.parametrize("blur", [True, False], ids=["blurred", "unblurred"])
def test_no_original_is_loaded_before_reveal_whatever_the_preference(
    page,  # noqa: F811 - the fixtures
    site,  # noqa: F811
    alice,
    platform,
    spam_policy,
    media_storage,
    blur,
    tmp_path,
):
    case = image_case(platform)
    log_in(page, "alice")
    set_preferences_in_the_page(page, blur=blur, grayscale=False)
    row = ReviewerPreference.objects.get(user=alice)
    assert (row.blur_media, row.grayscale_media) == (blur, False)

    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    original_path = f"/cases/{case.id}/media/original/"
    preview_path = f"/cases/{case.id}/media/preview/?v={'b' if blur else 's'}c"
    page.goto(f"/cases/{case.id}/")
    _image_loaded(page)
    page.wait_for_load_state("networkidle")
    before = list(requests)
    assert any(url.endswith(preview_path) for url in before), before
    assert not any(original_path in url for url in before), before
    assert all(url.startswith(site) for url in before), before  # nothing leaves this site
    label = page.locator("#case-media img").get_attribute("alt")
    assert ("blurred until you reveal it" in label) == blur
    # The preview is small and re-encoded on our server, sharp or not: not the original.
    size = page.locator("#case-media img").evaluate("el => [el.naturalWidth, el.naturalHeight]")
    assert size == [480, 315]
    out = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    if blur:
        page.locator("#case-media").scroll_into_view_if_needed()
        page.screenshot(path=str(out / "media-blurred.png"))

    page.get_by_role("link", name="Reveal image").click()
    page.locator("#case-media.is-revealed").wait_for()
    _image_loaded(page)
    after = requests[len(before) :]
    assert any(url.endswith(original_path) for url in after), after
    assert all(url.startswith(site) for url in requests), requests
    size = page.locator("#case-media img").evaluate("el => [el.naturalWidth, el.naturalHeight]")
    assert size == [640, 420]  # now the original, from our copy
    if blur:
        page.screenshot(path=str(out / "media-revealed.png"))


def test_harmful_text_is_blurred_until_the_reviewer_reveals_it(page, alice, platform, spam_policy):  # noqa: F811
    from tests.builders import flag

    case = flag(
        platform,
        content="a text from the moderation eval set",
        metadata={"dataset": "openai-moderation"},
    )
    log_in(page, "alice")
    page.goto(f"/cases/{case.id}/")
    text = page.locator("#content-text .content-text")
    assert "blur" in text.evaluate("el => getComputedStyle(el).filter")
    page.get_by_role("link", name="Reveal text").click()
    page.locator("#content-text.is-revealed").wait_for()
    assert text.evaluate("el => getComputedStyle(el).filter") == "none"
    assert page.url.endswith(f"/cases/{case.id}/")  # revealed in place, no reload
