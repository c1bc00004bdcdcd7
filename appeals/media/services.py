"""Getting an item's image or video into our storage, and its blurred preview beside it.

Intake calls `queue_media_fetch` inside its transaction; the fetch runs in a worker after commit
(`appeals.tasks.fetch_item_media`), never in the request. Media that came with the intake as a
`data:` URL is decoded by the same task, so both paths end in the same checks and the same
storage. A failure is recorded on the asset with its reason; the page says what went wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from appeals.models import Case, Item, MediaAsset

from . import fetch, previews, video

log = logging.getLogger(__name__)

MEDIA_CONTENT_TYPES = ("image", "video")
# Where platforms put the address of an item's media, in the order we look.
URL_KEYS = ("url", "media_url", "image_url", "video_url", "src")
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/webm": "webm",
}


def media_source(item: Item) -> str:
    """The address of an item's image or video (metadata first, then the content); '' if none."""
    if item.content_type not in MEDIA_CONTENT_TYPES:
        return ""
    candidates = [item.metadata.get(key) for key in URL_KEYS] if item.metadata else []
    candidates.append(item.content.strip())
    for value in candidates:
        if (
            isinstance(value, str)
            and " " not in value
            and (value.startswith(("https://", "http://")) or value.startswith("data:"))
        ):
            return value
    return ""


def source_host(url: str) -> str:
    """What a page may say about where the media came from: the host name, nothing more."""
    if url.startswith("data:"):
        return ""
    try:
        return (urlsplit(url).hostname or "")[:255]
    except ValueError:
        return ""


def media_storage():
    """Where our copies live: settings.STORAGES["media"]. Looked up on use, so tests and
    deployments can point it anywhere without touching the model."""
    return storages["media"]


def open_stored(name: str):
    return media_storage().open(name, "rb")


def fetch_policy() -> fetch.FetchPolicy:
    return fetch.FetchPolicy(
        max_bytes=settings.MEDIA_FETCH_MAX_BYTES,
        timeout_seconds=settings.MEDIA_FETCH_TIMEOUT_SECONDS,
        max_redirects=settings.MEDIA_FETCH_MAX_REDIRECTS,
        allowed_ports=frozenset(settings.MEDIA_FETCH_ALLOWED_PORTS),
        allowed_types=frozenset(settings.MEDIA_FETCH_ALLOWED_TYPES),
        max_pixels=settings.MEDIA_MAX_PIXELS,
        allow=fetch.FetchPolicy.parse_allow(settings.MEDIA_FETCH_ALLOW),
    )


def queue_media_fetch(cases: Sequence[Case]) -> list[MediaAsset]:
    """For new cases whose item is an image or video with an address: a pending asset, and a
    fetch task sent after commit. Items that already have an asset are left alone."""
    items = {
        case.item_id: case.item for case in cases if case.item.content_type in MEDIA_CONTENT_TYPES
    }
    if not items:
        return []
    have = set(MediaAsset.objects.filter(item_id__in=items).values_list("item_id", flat=True))
    assets = []
    for item_id, item in items.items():
        url = media_source(item)
        if url and item_id not in have:
            assets.append(MediaAsset(item=item, source_url=url, source_host=source_host(url)))
    assets = MediaAsset.objects.bulk_create(assets)
    ids = [asset.id for asset in assets]
    if ids:
        transaction.on_commit(lambda: enqueue_media_fetch(ids))
    return assets


def enqueue_media_fetch(asset_ids: list[int]) -> None:
    """Send fetch tasks. A broker that is down leaves the assets pending, and the page says so."""
    from .tasks import fetch_item_media

    try:
        for asset_id in asset_ids:
            fetch_item_media.delay(asset_id)
    except Exception:
        log.exception("could not enqueue media fetches for assets %s", asset_ids)


def _decode_data_url(url: str, policy: fetch.FetchPolicy) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep:
        raise fetch.UnsafeAddress("refused: a data: URL without a comma")
    # Base64 grows by a third: refuse before decoding what would pass the limit.
    if len(payload) * 3 // 4 > policy.max_bytes:
        raise fetch.TooLarge(
            f"refused: the media sent with the item is over the limit of {policy.max_bytes:,} bytes"
        )
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise fetch.UnsupportedMedia("refused: the data: URL is not valid base64") from None


def _get_media(asset: MediaAsset) -> fetch.FetchedMedia:
    policy = fetch_policy()
    if asset.source_url.startswith("data:"):
        data = _decode_data_url(asset.source_url, policy)
        return fetch.sniff(data, policy)
    return fetch.fetch_media(asset.source_url, policy)


def video_limits() -> video.VideoLimits:
    return video.VideoLimits(
        max_frames=settings.MEDIA_VIDEO_FRAMES,
        max_seconds=settings.MEDIA_VIDEO_MAX_SECONDS,
        max_pixels=settings.MEDIA_MAX_PIXELS,
    )


def make_preview(media: fetch.FetchedMedia, *, host: str = "") -> tuple[bytes, str]:
    """The preview stored beside the original, and its file name: the blurred image, or for a
    video a blurred frame labelled as a video (a plain poster if no frame decodes)."""
    grayscale = settings.MEDIA_PREVIEW_GRAYSCALE
    if media.kind == "image":
        return previews.blurred_preview(media.content, grayscale=grayscale), "preview.jpg"
    try:
        frame = video.sample_frames(media.content, video_limits())[0]
    except video.VideoUnreadable as error:
        log.warning("no frame of a stored video decodes (%s): plain poster", error)
        return previews.video_poster(host=host), "poster.png"
    poster = previews.preview_image(frame.image, grayscale=grayscale, label=previews.VIDEO_LABEL)
    return poster, "poster.jpg"


def _save_files(item_id: int, media: fetch.FetchedMedia, preview: bytes, preview_name: str):
    """Write the original and its preview to the media storage; returns (sha256, names)."""
    digest = hashlib.sha256(media.content).hexdigest()
    folder = f"items/{item_id}/{digest[:16]}"
    storage = media_storage()
    original_name = storage.save(
        f"{folder}/original.{EXTENSIONS[media.mime]}", ContentFile(media.content)
    )
    preview_name = storage.save(f"{folder}/{preview_name}", ContentFile(preview))
    return digest, original_name, preview_name


def _stored_fields(media: fetch.FetchedMedia, digest: str, original: str, preview: str) -> dict:
    return {
        "status": MediaAsset.Status.STORED,
        "kind": media.kind,
        "mime": media.mime,
        "size": len(media.content),
        "sha256": digest,
        "width": media.width,
        "height": media.height,
        "original": original,
        "preview": preview,
        "failure_reason": "",
        "failure": "",
        "stored_at": timezone.now(),
    }


def store_uploaded_media(item: Item, media: fetch.FetchedMedia, *, source: str) -> MediaAsset:
    """Store media the platform sent with the item itself (base64 in JSON, a multipart upload,
    or the demo's own pictures): the bytes were checked by `fetch.sniff` already. Same storage,
    same preview as fetched media; the asset is stored at once, in the caller's transaction, so
    the fast tier finds it when it runs after commit. `source` says how it came ("upload")."""
    preview, preview_name = make_preview(media)
    digest, original_name, preview_name = _save_files(item.id, media, preview, preview_name)
    asset = MediaAsset(
        item=item,
        source_url=source,
        source_host="",
        **_stored_fields(media, digest, original_name, preview_name),
    )
    asset.save()
    return asset


def fetch_item_media(asset_id: int) -> MediaAsset:
    """Fetch (or decode) the asset's media, check it, store it and its preview. Safe to run
    twice: a stored asset is returned as it is; a failed one is tried again."""
    asset = MediaAsset.objects.select_related("item").get(id=asset_id)
    if asset.status == MediaAsset.Status.STORED:
        return asset
    MediaAsset.objects.filter(id=asset.id).update(attempts=asset.attempts + 1)
    try:
        media = _get_media(asset)
        preview, preview_name = make_preview(media, host=asset.source_host)
    except fetch.MediaRefused as refused:
        return _record_failure(asset, refused.reason, refused.message)
    except Exception as error:  # e.g. an image that passed verify() but fails to decode
        log.exception("media of item %s could not be stored", asset.item_id)
        return _record_failure(asset, "error", f"could not be processed ({type(error).__name__})")

    digest, original_name, preview_name = _save_files(asset.item_id, media, preview, preview_name)
    with transaction.atomic():
        updated = (
            MediaAsset.objects.filter(id=asset.id)
            .exclude(status=MediaAsset.Status.STORED)
            .update(**_stored_fields(media, digest, original_name, preview_name))
        )
    if not updated:  # another run stored it first: drop our copies
        storage = media_storage()
        storage.delete(original_name)
        storage.delete(preview_name)
    asset.refresh_from_db()
    return asset


def _record_failure(asset: MediaAsset, reason: str, message: str) -> MediaAsset:
    log.warning("media of item %s refused: %s", asset.item_id, message)
    MediaAsset.objects.filter(id=asset.id).exclude(status=MediaAsset.Status.STORED).update(
        status=MediaAsset.Status.FAILED, failure_reason=reason[:32], failure=message
    )
    asset.refresh_from_db()
    return asset
