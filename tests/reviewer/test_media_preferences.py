"""A reviewer's own default for blur and grayscale (reviewer/preferences.py): the page that sets
it, and the preview the server makes for it. Whatever the choice, the preview is a small JPEG
made on our server and never the original."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from PIL import Image

from appeals.intake import uploads
from appeals.intake.schemas import ItemIn
from appeals.models import MediaAsset
from reviewer.models import ReviewerPreference
from reviewer.preferences import media_prefs, set_media_prefs

pytestmark = pytest.mark.django_db


def picture() -> bytes:
    """Half red, half blue, with a sharp edge: blur smears it, grayscale greys it."""
    image = Image.new("RGB", (200, 100), (220, 20, 20))
    image.paste((20, 20, 220), (100, 0, 200, 100))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def image_case(platform, external_id="pic-1"):
    payload = ItemIn(
        external_id=external_id, policy="spam", content="(image post)", content_type="image"
    )
    upload = uploads.with_media(payload, picture(), field="media")
    return uploads.receive_item_with_media(platform=platform, upload=upload).case


def preview_of(client, case) -> Image.Image:
    response = client.get(reverse("case_media_preview", args=[case.id]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    data = b"".join(response.streaming_content)
    assert data != picture()
    return Image.open(io.BytesIO(data))


def test_without_a_choice_a_reviewer_gets_the_site_default(alice, settings):
    settings.MEDIA_PREVIEW_GRAYSCALE = True
    assert (media_prefs(alice).blur, media_prefs(alice).grayscale) == (True, True)


def test_the_preferences_page_saves_the_reviewers_own_choice(client, alice, bob):
    client.force_login(alice)
    page = client.get(reverse("preferences")).content.decode()
    assert "Blur images and video posters until I reveal them" in page
    response = client.post(reverse("preferences"), {"grayscale_media": "on"})
    assert response.status_code == 302
    row = ReviewerPreference.objects.get(user=alice)
    assert (row.blur_media, row.grayscale_media) == (False, True)
    assert media_prefs(bob).blur is True  # bob's default is untouched
    page = client.get(reverse("preferences")).content.decode()
    assert "Your preferences are saved." in page


def test_the_preferences_page_needs_a_login(client):
    response = client.get(reverse("preferences"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_each_preference_gets_its_own_server_made_preview(
    client, alice, platform, spam_policy, media_storage
):
    case = image_case(platform)
    client.force_login(alice)
    seen = {}
    for blur, grayscale in [(True, True), (True, False), (False, True), (False, False)]:
        set_media_prefs(alice, blur=blur, grayscale=grayscale)
        image = preview_of(client, case).convert("RGB")
        left, right = image.getpixel((5, 50)), image.getpixel((image.width - 5, 50))
        before = image.getpixel((image.width // 2 - 4, 50))
        after = image.getpixel((image.width // 2 + 4, 50))
        is_grey = all(abs(c[0] - c[2]) < 12 for c in (left, right, before))
        assert is_grey == grayscale, (blur, grayscale, left, right)
        # Sharp, the edge between the halves is a step; blurred, the two sides nearly meet.
        step = sum(abs(a - b) for a, b in zip(before, after, strict=True))
        contrast = sum(abs(a - b) for a, b in zip(left, right, strict=True))
        assert (step / contrast < 0.6) == blur, (blur, grayscale, before, after, left, right)
        seen[(blur, grayscale)] = image.tobytes()
        page = client.get(reverse("case_detail", args=[case.id])).content.decode()
        assert reverse("case_media_original", args=[case.id]) not in page
    assert len(set(seen.values())) == 4
    asset = MediaAsset.objects.get(item=case.item)
    assert asset.preview.endswith("preview.jpg")  # the stored default is left as it was


def test_a_video_poster_follows_the_preference_too(
    client, alice, platform, spam_policy, media_storage
):
    from tests.videos import mp4_bytes

    payload = ItemIn(external_id="v", policy="spam", content="(video)", content_type="video")
    upload = uploads.with_media(payload, mp4_bytes(), field="media")
    case = uploads.receive_item_with_media(platform=platform, upload=upload).case
    client.force_login(alice)
    set_media_prefs(alice, blur=False, grayscale=False)
    colour = preview_of(client, case).convert("RGB").getpixel((5, 5))
    assert abs(colour[0] - colour[2]) > 60  # the first colour bar, in colour and sharp


# --- harmful text, blurred until revealed -------------------------------------------------------


def test_moderation_dataset_text_is_blurred_until_revealed_by_default(
    client, alice, platform, spam_policy
):
    from tests.builders import flag

    harmful = flag(
        platform,
        content="a text from the moderation eval set",
        metadata={"dataset": "openai-moderation", "labels": {"V": 1}},
    )
    plain = flag(platform, content="Lovely weather in the park today")
    client.force_login(alice)
    page = client.get(reverse("case_detail", args=[harmful.id])).content.decode()
    assert 'class="sensitive-text" id="content-text"' in page
    assert "a text from the moderation eval set" in page  # blurred by the stylesheet, still there
    revealed = client.get(reverse("case_detail", args=[harmful.id]), {"reveal": "1"})
    assert 'class="sensitive-text is-revealed"' in revealed.content.decode()
    assert (
        "data-sensitive-text"
        not in client.get(reverse("case_detail", args=[plain.id])).content.decode()
    )

    set_media_prefs(alice, blur=True, grayscale=True, blur_text=False)
    page = client.get(reverse("case_detail", args=[harmful.id])).content.decode()
    assert "data-sensitive-text" not in page


def test_text_the_fast_tier_scores_offensive_is_blurred(client, alice, platform, spam_policy):
    from appeals.triage import services as triage
    from tests.builders import flag

    case = flag(platform, content="You are a fucking idiot and everyone hates your stupid face")
    triage.triage_item(case.item_id)
    client.force_login(alice)
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "data-sensitive-text" in page


def test_lists_blur_the_excerpts_of_harmful_text_unless_the_reviewer_turned_it_off(
    client, alice, platform, spam_policy
):
    from tests.builders import flag

    flag(
        platform,
        content="a text from the moderation data set",
        external_id="mod-1",
        metadata={"dataset": "openai-moderation", "labels": {"S": 1}},
    )
    flag(platform, content="How do I upload a photo?", external_id="plain-1")
    client.force_login(alice)

    for url in ("/queues/flags/", "/search/?q=text"):
        html = client.get(url).content.decode()
        assert _blurred(html, "a text from the moderation data set"), url
        if "How do I upload" in html:
            assert not _blurred(html, "How do I upload a photo?"), url

    set_media_prefs(alice, blur=True, grayscale=True, blur_text=False)
    for url in ("/queues/flags/", "/search/?q=text"):
        html = client.get(url).content.decode()
        assert not _blurred(html, "a text from the moderation data set"), url


def _blurred(html: str, text: str) -> bool:
    """Whether the table cell holding `text` is marked blurred."""
    before = html[: html.index(text)]
    cell = before[before.rindex("<td") :]
    return "excerpt-blurred" in cell
