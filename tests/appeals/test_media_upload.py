"""Images and videos sent with the item itself: base64 in JSON (`media_base64`) and multipart
(`/api/v1/items/upload`). The platform is the adversary here: it may send too much, label HTML as
a PNG, or claim an image is text. Every refusal names the field and writes nothing."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from django.test import Client
from PIL import Image

from appeals.intake import tokens
from appeals.media import services as media_services
from appeals.models import Case, Item, MediaAsset
from tests.videos import mp4_bytes

pytestmark = pytest.mark.django_db


def png(size=(64, 48), colour=(40, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


ITEM = {
    "external_id": "pic-1",
    "policy": "spam",
    "content": "(image post)",
    "content_type": "image",
}


@pytest.fixture
def token(platform):
    return tokens.create_api_token(platform=platform, name="acme")[1]


@pytest.fixture
def api(token, spam_policy, media_storage):
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post_json(client, body):
    return client.post("/api/v1/items", json.dumps(body), content_type="application/json")


def post_upload(client, item, data: bytes, *, name="pic.png", part_type="image/png"):
    upload = io.BytesIO(data)
    upload.name = name
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        "/api/v1/items/upload",
        {"item": json.dumps(item), "media": SimpleUploadedFile(name, data, part_type)},
    )


def problems(response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"errors"}, body
    return {error["field"]: error["problem"] for error in body["errors"]}


def nothing_written():
    assert not Case.objects.exists()
    assert not Item.objects.exists()
    assert not MediaAsset.objects.exists()


def test_an_image_in_json_is_stored_with_its_blurred_preview_at_once(api, media_storage):
    data = png()
    response = post_json(api, {**ITEM, "media_base64": base64.b64encode(data).decode()})
    assert response.status_code == 201, response.json()
    case = Case.objects.get(id=response.json()["id"])
    asset = MediaAsset.objects.get(item=case.item)
    assert (asset.status, asset.kind, asset.mime, asset.size) == (
        "stored",
        "image",
        "image/png",
        len(data),
    )
    assert (asset.width, asset.height) == (64, 48)
    assert asset.source_url == "upload" and asset.source_host == ""
    with media_services.open_stored(asset.original) as stored:
        assert stored.read() == data
    with media_services.open_stored(asset.preview) as stored:
        assert Image.open(stored).format == "JPEG"
    # The bytes are not kept in the item: only their digest, which tells a retry from a resend.
    assert "media_base64" not in json.dumps(case.item.metadata)
    assert len(case.item.metadata["uploaded_media_sha256"]) == 64


def test_a_retry_with_the_same_bytes_is_the_same_case_and_other_bytes_conflict(api):
    body = {**ITEM, "media_base64": base64.b64encode(png()).decode()}
    first = post_json(api, body)
    again = post_json(api, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = post_json(
        api, {**body, "media_base64": base64.b64encode(png(colour=(1, 2, 3))).decode()}
    )
    assert other.status_code == 409, other.json()
    assert MediaAsset.objects.count() == 1


def test_json_media_that_is_not_an_image_is_refused_by_its_bytes(api):
    html = b"<html><body>hello</body></html>"
    response = post_json(api, {**ITEM, "media_base64": base64.b64encode(html).decode()})
    assert response.status_code == 415
    assert "not an image or video" in problems(response)["media_base64"]
    nothing_written()


def test_json_media_over_the_limit_is_refused_before_decoding(api, settings):
    settings.MEDIA_UPLOAD_MAX_BYTES = 2048
    big = png(size=(300, 300), colour=(5, 6, 7)) + b"\0" * 4096
    response = post_json(api, {**ITEM, "media_base64": base64.b64encode(big).decode()})
    assert response.status_code == 413
    assert "at most 2,048" in problems(response)["media_base64"]
    nothing_written()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("data:image/png;base64,AAAA", "without a data: prefix"),
        ("not base64 at all!", "not valid base64"),
    ],
)
def test_json_media_that_is_not_plain_base64_is_named(api, value, problem):
    response = post_json(api, {**ITEM, "media_base64": value})
    assert response.status_code == 422
    assert problem in problems(response)["media_base64"]
    nothing_written()


def test_an_image_sent_as_text_is_refused_naming_the_content_type(api):
    body = {**ITEM, "content_type": "text", "media_base64": base64.b64encode(png()).decode()}
    response = post_json(api, body)
    assert response.status_code == 422
    assert "must be 'image'" in problems(response)["content_type"]
    nothing_written()


def test_media_inline_and_an_address_together_are_refused(api):
    body = {
        **ITEM,
        "metadata": {"url": "https://cdn.example.com/p.png"},
        "media_base64": base64.b64encode(png()).decode(),
    }
    response = post_json(api, body)
    assert response.status_code == 422
    assert "one or the other" in problems(response)["media_base64"]
    nothing_written()


def test_a_multipart_upload_is_typed_by_its_bytes_not_its_name_or_header(api):
    # A PNG that says it is an MP4: stored as what it is.
    response = post_upload(api, ITEM, png(), name="clip.mp4", part_type="video/mp4")
    assert response.status_code == 201, response.json()
    asset = MediaAsset.objects.get()
    assert (asset.kind, asset.mime) == ("image", "image/png")


def test_a_multipart_upload_of_html_labelled_png_is_refused(api):
    response = post_upload(api, ITEM, b"<!doctype html><script>x</script>", name="p.png")
    assert response.status_code == 415
    assert "not an image or video" in problems(response)["media"]
    nothing_written()


def test_a_multipart_upload_over_the_limit_is_refused(api, settings):
    settings.MEDIA_UPLOAD_MAX_BYTES = 2048
    response = post_upload(api, ITEM, png(size=(400, 400)) + b"\0" * 8192)
    assert response.status_code == 413
    assert "at most 2,048" in problems(response)["media"]
    nothing_written()


def test_a_multipart_upload_with_parts_missing_or_bad_names_them(api):
    response = api.post("/api/v1/items/upload", {"item": json.dumps(ITEM)})
    assert response.status_code == 422
    assert "media" in problems(response)
    bad = post_upload(api, {**ITEM, "policy": ""}, png())
    assert bad.status_code == 422
    assert "policy" in problems(bad)
    garbled = api.post(
        "/api/v1/items/upload",
        {"item": "{not json", "media": io.BytesIO(png())},
    )
    assert garbled.status_code == 422
    assert "not valid JSON" in problems(garbled)["item"]
    nothing_written()


def test_the_upload_endpoint_wants_multipart(api):
    response = api.post("/api/v1/items/upload", json.dumps(ITEM), content_type="application/json")
    assert response.status_code == 415
    assert "multipart/form-data" in problems(response)["Content-Type"]
    assert api.get("/api/v1/items/upload").status_code == 405


def test_a_video_upload_gets_a_poster_from_a_blurred_frame(api):
    response = post_upload(api, {**ITEM, "content_type": "video"}, mp4_bytes(), name="v.mp4")
    assert response.status_code == 201, response.json()
    asset = MediaAsset.objects.get()
    assert (asset.kind, asset.mime) == ("video", "video/mp4")
    assert asset.preview.endswith("poster.jpg")
    with media_services.open_stored(asset.preview) as stored:
        poster = Image.open(stored).convert("RGB")
    # A frame of the video (greyed, blurred), not the old plain dark card.
    assert poster.size[0] > 0 and poster.getpixel((poster.width // 2, 10)) != (45, 52, 64)


@pytest.mark.django_db(transaction=True)
def test_an_upload_over_real_http(live_server, token, spam_policy, media_storage):
    """Through a real socket: the multipart body as a platform's HTTP client builds it."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live_server.url, headers=headers, trust_env=False) as http:
        created = http.post(
            "/api/v1/items/upload",
            data={"item": json.dumps(ITEM)},
            files={"media": ("p.png", png(), "image/png")},
        )
        assert created.status_code == 201, created.text
        refused = http.post(
            "/api/v1/items/upload",
            data={"item": json.dumps({**ITEM, "external_id": "pic-2"})},
            files={"media": ("p.png", b"GIF89a but not really", "image/gif")},
        )
        assert refused.status_code == 415, refused.text
        assert refused.json()["errors"][0]["field"] == "media"
        inline = http.post(
            "/api/v1/items",
            json={**ITEM, "external_id": "pic-3", "media_base64": base64.b64encode(png()).decode()},
        )
        assert inline.status_code == 201, inline.text
    assert MediaAsset.objects.filter(status="stored").count() == 2


def test_an_upload_without_a_token_is_refused_before_anything_is_read(spam_policy):
    response = Client().post("/api/v1/items/upload", json.dumps(ITEM), content_type="text/plain")
    assert response.status_code == 401
    assert "Authorization" in problems(response)
