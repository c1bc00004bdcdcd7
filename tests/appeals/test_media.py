"""Media from intake to storage: a pending asset with the case, a fetch after commit, our copy and
a blurred preview in Django storage, and failures recorded with their reason."""

from __future__ import annotations

import base64
import io
import re

import pytest
from django.core.files.storage import storages
from PIL import Image

from appeals.media import services, tasks
from appeals.models import MediaAsset
from tests.builders import flag
from tests.media_server import MP4_HEADER, PNG, media_server, redirect, serve_bytes


def image_flag(platform, url, **fields):
    return flag(
        platform, content="(image post)", content_type="image", metadata={"url": url}, **fields
    )


def test_intake_of_an_image_queues_a_fetch_after_commit(
    platform, spam_policy, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(tasks.fetch_item_media, "delay", sent.append)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        case = image_flag(platform, "https://cdn.acme.example/p/1.jpg")
    asset = MediaAsset.objects.get(item=case.item)
    assert (asset.status, asset.source_host) == ("pending", "cdn.acme.example")
    assert sent == [asset.id]
    assert len(callbacks) >= 1


def test_text_items_and_media_without_an_address_get_no_asset(platform, spam_policy):
    text = flag(platform, content="Buy gold rings here!")
    bare = flag(platform, content="(image post)", content_type="image")
    assert not MediaAsset.objects.filter(item__in=[text.item, bare.item]).exists()


def test_bulk_intake_queues_one_asset_per_media_item(platform, spam_policy):
    from appeals.intake.bulk import receive_items_bulk
    from appeals.intake.schemas import ItemIn

    payloads = [
        ItemIn(
            external_id=f"bulk-{n}", policy="spam", content="x", content_type=kind, metadata=meta
        )
        for n, (kind, meta) in enumerate(
            [
                ("image", {"url": "https://a.example/1.png"}),
                ("text", {}),
                ("video", {"video_url": "https://v.example/2.mp4"}),
            ]
        )
    ]
    receive_items_bulk(platform=platform, payloads=payloads, invalid={})
    assets = MediaAsset.objects.order_by("item__external_id")
    assert [(a.item.external_id, a.source_host) for a in assets] == [
        ("bulk-0", "a.example"),
        ("bulk-2", "v.example"),
    ]


def test_the_fetch_stores_our_copy_and_a_blurred_preview(
    platform, spam_policy, media_storage, platform_media
):
    case = image_flag(platform, platform_media.url("/p.png"))
    asset = MediaAsset.objects.get(item=case.item)
    assert tasks.fetch_item_media(asset.id) == "stored"

    asset.refresh_from_db()
    assert (asset.kind, asset.mime, asset.size, asset.width, asset.height) == (
        "image",
        "image/png",
        len(PNG),
        320,
        180,
    )
    storage = storages["media"]
    assert storage.open(asset.original).read() == PNG
    assert (media_storage / asset.original).exists()  # through the configured storage
    with Image.open(storage.open(asset.preview)) as preview:
        assert (preview.format, preview.mode) == ("JPEG", "L")  # grayscale by default
        assert preview.size == (320, 180)
        # Strongly blurred: neighbouring pixels barely differ anywhere.
        pixels = preview.load()
        steps = [abs(pixels[x, 90] - pixels[x + 1, 90]) for x in range(319)]
        assert max(steps) <= 6
    # Run twice: the stored asset is left as it is, the platform is not asked again.
    assert tasks.fetch_item_media(asset.id) == "stored"
    assert len(platform_media.requests) == 1
    assert platform_media.requests[0]["headers"]["User-Agent"].startswith("AppealsCopilot")


def test_a_colour_preview_when_grayscale_is_off(
    platform, spam_policy, media_storage, platform_media, settings
):
    settings.MEDIA_PREVIEW_GRAYSCALE = False
    case = image_flag(platform, platform_media.url("/p.png"))
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    with Image.open(storages["media"].open(asset.preview)) as preview:
        assert preview.mode == "RGB"


def test_loopback_is_refused_by_default_and_the_reason_recorded(
    platform, spam_policy, media_storage, settings
):
    settings.MEDIA_FETCH_ALLOW = []
    with media_server({"/p.png": serve_bytes(PNG)}) as server:
        case = image_flag(platform, server.url("/secret/p.png"))
        asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
        assert server.requests == []
    assert (asset.status, asset.failure_reason) == ("failed", "forbidden_destination")
    assert "loopback address 127.0.0.1" in asset.failure
    assert "/secret/" not in asset.failure  # the page shows this: the host at most
    assert asset.attempts == 1 and not asset.original
    assert list(media_storage.rglob("*.*")) == []


def test_a_redirect_to_the_metadata_address_is_refused(
    platform, spam_policy, media_storage, platform_media
):
    platform_media.routes["/go"] = redirect("http://169.254.169.254/latest/meta-data/")
    case = image_flag(platform, platform_media.url("/go"))
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.failure_reason) == ("failed", "forbidden_destination")
    assert "link-local address 169.254.169.254" in asset.failure


def test_a_page_labelled_as_an_image_is_refused(
    platform, spam_policy, media_storage, platform_media
):
    platform_media.routes["/fake.png"] = serve_bytes(b"<html>hello</html>", "image/png")
    case = image_flag(platform, platform_media.url("/fake.png"))
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.failure_reason) == ("failed", "unsupported_type")


def test_a_failed_fetch_is_tried_again_when_run_again(
    platform, spam_policy, media_storage, platform_media
):
    case = image_flag(platform, platform_media.url("/later.png"))
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.failure_reason) == ("failed", "fetch_failed")
    platform_media.routes["/later.png"] = serve_bytes(PNG)
    asset = services.fetch_item_media(asset.id)
    assert (asset.status, asset.attempts, asset.failure) == ("stored", 2, "")


def test_media_sent_with_the_intake_is_stored_without_any_fetch(
    platform, spam_policy, media_storage
):
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    case = flag(platform, content=data_url, content_type="image")
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.mime, asset.source_host) == ("stored", "image/png", "")
    assert storages["media"].open(asset.original).read() == PNG


@pytest.mark.parametrize(
    "data_url, reason",
    [
        (
            "data:image/svg+xml;base64,"
            + base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(),
            "unsupported_type",
        ),
        ("data:image/png;base64,@@@not-base64@@@", "unsupported_type"),
        ("data:image/png;base64," + "A" * 50_000, "too_large"),
    ],
)
def test_bad_media_sent_with_the_intake_is_refused(
    platform, spam_policy, media_storage, settings, data_url, reason
):
    settings.MEDIA_FETCH_MAX_BYTES = 10_000
    case = flag(platform, content=data_url, content_type="image")
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.failure_reason) == ("failed", reason)


def test_a_video_is_stored_with_a_poster_not_a_frame(
    platform, spam_policy, media_storage, platform_media
):
    platform_media.routes["/v.mp4"] = serve_bytes(MP4_HEADER, "video/mp4")
    case = flag(
        platform,
        content="(video)",
        content_type="video",
        metadata={"video_url": platform_media.url("/v.mp4")},
    )
    asset = services.fetch_item_media(MediaAsset.objects.get(item=case.item).id)
    assert (asset.status, asset.kind, asset.mime) == ("stored", "video", "video/mp4")
    with Image.open(io.BytesIO(storages["media"].open(asset.preview).read())) as poster:
        assert poster.format == "PNG"


def test_settings_refuse_bad_media_configuration(monkeypatch):
    import importlib

    from django.core.exceptions import ImproperlyConfigured

    import reviewer.settings as site_settings

    for name, value, says in [
        ("MEDIA_FETCH_ALLOW", "media.internal:80", "is not an IP address"),
        ("MEDIA_FETCH_ALLOWED_TYPES", "image/png,image/svg+xml", "not image/svg+xml"),
        ("MEDIA_FETCH_ALLOWED_PORTS", "80,https", "port numbers"),
        ("MEDIA_STORAGE_OPTIONS", "[1]", "JSON object"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ImproperlyConfigured, match=re.escape(says)):
            importlib.reload(site_settings)
        monkeypatch.delenv(name)
    importlib.reload(site_settings)
