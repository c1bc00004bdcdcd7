"""Images and videos sent with the item itself: base64 in the JSON body (`media_base64`) or a
multipart upload (`/api/v1/items/upload`, the file in `media`, the item as JSON in `item`).

The platform may label anything as anything, so the limits are checked here, in the request,
before a case exists: the size against MEDIA_UPLOAD_MAX_BYTES (before decoding where it can be
told), the type from the bytes (`appeals.media.fetch.sniff`, the same check fetched media pass),
and the item's `content_type` against what the bytes turned out to be. Each refusal is a
`FieldProblem` naming the field. The item and its stored media are then written in one
transaction, so the fast tier (run after commit) finds the image stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from pydantic import Field

from appeals.media import fetch
from appeals.media import services as media_services
from appeals.models import AuditEvent, Item, Platform

from . import services as intake
from .schemas import FieldProblem, ItemIn

# Written into the item's metadata, so a resend with another image is told from a retry.
DIGEST_KEY = "uploaded_media_sha256"


class ItemWithMediaIn(ItemIn):
    """An item with its image or video inline (POST /api/v1/items)."""

    media_base64: str | None = Field(
        default=None,
        description=(
            "The image or video itself, standard base64 without a data: prefix; at most "
            f"{settings.MEDIA_UPLOAD_MAX_BYTES:,} bytes once decoded. What it is is read from "
            "the bytes (JPEG, PNG, GIF, WebP, MP4, WebM); `content_type` must say image or "
            "video accordingly."
        ),
    )


def upload_limit() -> int:
    return settings.MEDIA_UPLOAD_MAX_BYTES


def too_large(field: str, size: int) -> FieldProblem:
    return FieldProblem(
        field, f"is {size:,} bytes; at most {upload_limit():,} are accepted", status=413
    )


def decode_base64(value: str, *, field: str = "media_base64") -> bytes:
    value = value.strip()
    if value.startswith("data:"):
        raise FieldProblem(field, "must be the base64 alone, without a data: prefix")
    # Base64 grows by a third: refuse before decoding what would pass the limit.
    if len(value) * 3 // 4 > upload_limit() + 2:
        raise too_large(field, len(value) * 3 // 4)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FieldProblem(field, "is not valid base64 (standard alphabet, padded)") from None
    if not data:
        raise FieldProblem(field, "is empty")
    return data


def check_media(data: bytes, *, field: str, content_type: str) -> fetch.FetchedMedia:
    """What the bytes are, or a `FieldProblem`: 413 when too big, 415 when not an image or video
    we accept (whatever a header or the file name said), 422 when `content_type` disagrees."""
    if len(data) > upload_limit():
        raise too_large(field, len(data))
    policy = media_services.fetch_policy()
    try:
        media = fetch.sniff(data, policy)
    except fetch.UnsupportedMedia as refused:
        problem = refused.message.removeprefix("refused: ").removeprefix("refused")
        raise FieldProblem(field, problem.strip(), status=415) from None
    if media.kind != content_type:
        raise FieldProblem(
            "content_type",
            f"must be {media.kind!r} for the {media.mime} sent in {field}, not {content_type!r}",
        )
    return media


@dataclass(frozen=True)
class Upload:
    payload: ItemIn
    media: fetch.FetchedMedia | None


def split_payload(payload: ItemWithMediaIn) -> Upload:
    """The item without its inline media, and the checked media (None when none was sent)."""
    fields = payload.model_dump(exclude={"media_base64"})
    if payload.media_base64 is None:
        return Upload(ItemIn.model_validate(fields), None)
    data = decode_base64(payload.media_base64)
    return with_media(ItemIn.model_validate(fields), data, field="media_base64")


def with_media(payload: ItemIn, data: bytes, *, field: str) -> Upload:
    if DIGEST_KEY in payload.metadata:
        raise FieldProblem(f"metadata.{DIGEST_KEY}", "is set by this console; leave it out")
    if _has_address(payload):
        raise FieldProblem(
            field, "came with an address to fetch too (metadata or content); send one or the other"
        )
    media = check_media(data, field=field, content_type=payload.content_type)
    digest = hashlib.sha256(data).hexdigest()
    payload = payload.model_copy(update={"metadata": {**payload.metadata, DIGEST_KEY: digest}})
    return Upload(payload, media)


def _has_address(payload: ItemIn) -> bool:
    item = Item(
        content=payload.content, content_type=payload.content_type, metadata=payload.metadata
    )
    return bool(media_services.media_source(item))


def receive_item_with_media(
    *,
    platform: Platform,
    upload: Upload,
    source: AuditEvent.Source = AuditEvent.Source.API,
    how: str = "upload",
) -> intake.IntakeResult:
    """`receive_item`, and the media stored with it in the same transaction. A retry with the
    same item and the same bytes returns the existing case; other bytes under the same external
    id are a conflict (the digest is part of what is compared)."""
    with transaction.atomic():
        result = intake.receive_item(platform=platform, payload=upload.payload, source=source)
        if result.created and upload.media is not None:
            media_services.store_uploaded_media(result.case.item, upload.media, source=how)
    return result
