"""The case page's media: only our own copies, the blurred preview until "Reveal", the original
served by an authenticated view to those who may read the case, and never a platform URL."""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse

from appeals.media import services
from appeals.models import MediaAsset
from tests.builders import flag
from tests.media_server import PNG, serve_bytes


def stored_case(platform, server, path="/secret/p.png", **fields):
    server.routes[path] = serve_bytes(PNG)
    case = flag(
        platform,
        content="(image post)",
        content_type="image",
        metadata={"url": server.url(path)},
        **fields,
    )
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert asset.status == "stored"
    return case


def page_of(client, case, **params):
    response = client.get(reverse("case_detail", args=[case.id]), params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_case_page_shows_the_server_made_preview_until_reveal(
    client, alice, platform, spam_policy, media_storage, platform_media
):
    case = stored_case(platform, platform_media)
    client.force_login(alice)
    preview = reverse("case_media_preview", args=[case.id])
    original = reverse("case_media_original", args=[case.id])

    page = page_of(client, case)
    assert f'src="{preview}?v=bg"' in page and original not in page  # the variant in the URL
    assert platform_media.origin not in page and "/secret/" not in page
    assert "From 127.0.0.1" in page  # the host, as text, at most

    revealed = page_of(client, case, reveal="1")
    assert f'src="{original}"' in revealed and preview not in revealed
    assert platform_media.origin not in revealed and "/secret/" not in revealed

    partial = client.get(
        reverse("case_detail", args=[case.id]),
        {"reveal": "1"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="case-media",
    ).content.decode()
    assert partial.lstrip().startswith('<div id="case-media" class="media is-revealed"')
    assert f'src="{original}"' in partial


def test_a_pending_fetch_polls_and_shows_no_address(client, alice, platform, spam_policy):
    case = flag(
        platform,
        content="https://cdn.acme.example/u/42/holiday.jpg",
        content_type="image",
    )
    client.force_login(alice)
    page = page_of(client, case)
    assert "cdn.acme.example/u/42" not in page and "holiday.jpg" not in page
    assert "(image from cdn.acme.example)" in page  # the content, as the host only
    assert 'hx-trigger="every 2s"' in page
    for url in (reverse("queue_list", args=["flags"]), reverse("dashboard")):
        listing = client.get(url).content.decode()
        assert "holiday.jpg" not in listing, url


def test_a_refused_fetch_says_why_on_the_page(
    client, alice, platform, spam_policy, media_storage, settings
):
    settings.MEDIA_FETCH_ALLOW = []
    case = flag(
        platform,
        content="(image)",
        content_type="image",
        metadata={"url": "http://169.254.169.254/latest/meta-data/iam/credentials"},
    )
    services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    client.force_login(alice)
    page = page_of(client, case)
    assert "could not be stored" in page and "link-local address 169.254.169.254" in page
    assert "meta-data" not in page and "Reveal" not in page


def test_the_media_views_serve_our_copies_with_strict_headers(
    client, alice, platform, spam_policy, media_storage, platform_media
):
    case = stored_case(platform, platform_media)
    client.force_login(alice)
    original = client.get(reverse("case_media_original", args=[case.id]))
    assert original.status_code == 200
    assert b"".join(original.streaming_content) == PNG
    assert original["Content-Type"] == "image/png"
    assert original["Content-Disposition"].startswith("inline")
    assert original["X-Content-Type-Options"] == "nosniff"
    assert original["Cache-Control"].startswith("private")
    csp = original["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    preview = client.get(reverse("case_media_preview", args=[case.id]))
    assert preview["Content-Type"] == "image/jpeg"
    assert b"".join(preview.streaming_content)[:3] == b"\xff\xd8\xff"
    assert preview["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("variant", ["case_media_preview", "case_media_original"])
def test_the_media_views_refuse_who_may_not_read_the_case(
    client, mallory, platform, spam_policy, media_storage, platform_media, variant
):
    case = stored_case(platform, platform_media)
    url = reverse(variant, args=[case.id])
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    client.force_login(mallory)
    assert client.get(url).status_code == 403


def test_media_not_stored_yet_is_not_found(client, alice, platform, spam_policy):
    case = flag(
        platform,
        content="(image)",
        content_type="image",
        metadata={"url": "https://a.example/x.png"},
    )
    client.force_login(alice)
    assert client.get(reverse("case_media_original", args=[case.id])).status_code == 404
    text = flag(platform)
    assert client.get(reverse("case_media_preview", args=[text.id])).status_code == 404


def test_media_sent_inline_is_never_echoed_into_the_page(
    client, alice, platform, spam_policy, media_storage
):
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    case = flag(platform, content=data_url, content_type="image")
    services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    client.force_login(alice)
    page = page_of(client, case)
    assert "data:image" not in page
    assert reverse("case_media_preview", args=[case.id]) in page
