"""API tokens: issuing, checking and revoking the bearer tokens platforms use for intake.

Only a token's SHA-256 and its first characters are stored; the token itself is shown once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from appeals.audit import record_event
from appeals.models import ApiToken, AuditEvent, Platform

TOKEN_PREFIX = "acp_"
PREFIX_CHARS = 12  # what we keep in the clear, to tell tokens apart in lists and logs
# last_used_at is a hint for people reviewing tokens, not an access log: write it at most this
# often so that a busy client does not turn every request into an UPDATE.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class TokenRefused(Exception):
    """The request's token is missing, malformed, unknown or revoked; the message says which."""


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def get_or_create_platform(*, slug: str, name: str = "") -> tuple[Platform, bool]:
    return Platform.objects.get_or_create(slug=slug, defaults={"name": name or slug.title()})


@transaction.atomic
def create_api_token(*, platform: Platform, name: str) -> tuple[ApiToken, str]:
    """Issue a token for `platform`. Returns the row and the token, which is not kept anywhere."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        platform=platform, name=name, token_sha256=hash_token(raw), prefix=raw[:PREFIX_CHARS]
    )
    return token, raw


@transaction.atomic
def revoke_api_token(
    *,
    token: ApiToken,
    source: AuditEvent.Source,
    actor=None,
    actor_label: str = "system",
    now: dt.datetime | None = None,
) -> ApiToken:
    """Refuse the token from now on, for good, and say so in the audit log.

    Revoking twice keeps the first time and writes one event. Nothing un-revokes: the model's
    save() and a database trigger (migration 0006) refuse clearing or moving `revoked_at`.
    """
    now = now or timezone.now()
    revoked = ApiToken.objects.filter(id=token.id, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    if revoked:
        record_event(
            AuditEvent.Kind.TOKEN_REVOKED,
            case=None,
            source=source,
            actor=actor,
            actor_label=actor_label,
            data={
                "token_id": token.id,
                "prefix": token.prefix,
                "name": token.name,
                "platform": token.platform.slug,
                "revoked_at": token.revoked_at,
            },
        )
    return token


def authenticate_token(raw: str, *, now: dt.datetime | None = None) -> ApiToken:
    """The live token `raw` stands for, with its platform; `TokenRefused` otherwise."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200 or not raw.isascii():
        raise TokenRefused("is not an Appeals Copilot API token")
    token = ApiToken.objects.select_related("platform").filter(token_sha256=hash_token(raw)).first()
    if token is None:
        raise TokenRefused("is not a known API token")
    if token.revoked_at is not None:
        raise TokenRefused(f"was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC")
    now = now or timezone.now()
    stale_before = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at < stale_before:
        # Conditional, so concurrent requests write it once between them.
        ApiToken.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before), id=token.id
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
