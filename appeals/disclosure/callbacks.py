"""Telling the platform about a decision: a signed JSON POST to its callback URL.

The body is canonical JSON (sorted keys, no spaces). The signature header is

    X-Appeals-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

and `Idempotency-Key: decision-<id>` is the same on every attempt, so a receiver that sees a
delivery twice can drop the second. Each attempt, and the delivery or the giving up, is an
audit event on the case. `verify` is what a receiver runs (see docs/callbacks.md).

Retry policy: network errors, 5xx and 429 are retried (the Celery task backs off
exponentially); any other answer outside 2xx is final, since asking again will not change it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db import transaction

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, Decision

from .notices import notice_for

SIGNATURE_HEADER = "X-Appeals-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_ATTEMPTS = 9  # the first try and 8 retries
Kind = AuditEvent.Kind
WORKER = AuditEvent.Source.WORKER
CALLBACK_EVENTS = (Kind.CALLBACK_ATTEMPTED, Kind.CALLBACK_DELIVERED, Kind.CALLBACK_FAILED)


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale, or does not match the body."""


class RetryableDeliveryError(Exception):
    """This attempt failed in a way that may pass later (network, 5xx, 429)."""


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The X-Appeals-Signature value for `body`, signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a signature header against the raw body; return its timestamp or raise.

    Several `v1=` values may be present (while a secret is being rotated); one must match.
    """
    if not header:
        raise SignatureError("no signature header")
    timestamp = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("the signature header needs t=<unix time> and v1=<hex digest>")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"the signature is {int(abs(now - timestamp))}s old; the tolerance is {tolerance}s"
        )
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("the signature does not match the body")
    return timestamp


def payload_for(decision: Decision) -> dict:
    """What the platform is told. Never the model's reasoning, nor the reviewer's note."""
    case = decision.case
    return {
        "event": "decision.recorded",
        "decision_id": decision.id,
        "case_id": case.id,
        "case_kind": case.kind,
        "case_external_id": case.external_id,
        "item_external_id": case.item.external_id,
        "outcome": decision.outcome,
        "action": decision.action,
        "rule_ids": list(decision.rule_ids or []),
        "policy": case.policy_version.policy.slug,
        "policy_version": case.policy_version.number,
        "decided_at": decision.decided_at.isoformat(),
        "appealed_decision_id": case.appealed_decision_id,
        # What the user was told, as stored when the decision was taken: a re-sent callback
        # says what the first one said, whatever the policy says now.
        "notice": decision.notice or notice_for(decision),
        "appeal_window_days": decision.appeal_window_days,
        "appeal_deadline": decision.appeal_deadline.isoformat()
        if decision.appeal_deadline
        else None,
    }


def body_for(decision: Decision) -> bytes:
    return json.dumps(
        payload_for(decision), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # "delivered", "failed", "retry", or "skipped" (no URL, or already settled)
    attempt: int = 0
    status_code: int | None = None
    error: str = ""


def _history(decision: Decision) -> tuple[int, bool]:
    """(attempts so far, whether delivery is settled: delivered or given up)."""
    attempts, settled = 0, False
    for kind, data in AuditEvent.objects.filter(
        case_id=decision.case_id, kind__in=CALLBACK_EVENTS
    ).values_list("kind", "data"):
        if data.get("decision_id") != decision.id:
            continue
        if kind == Kind.CALLBACK_ATTEMPTED:
            attempts += 1
        else:
            settled = True
    return attempts, settled


def deliver_decision(decision_id: int, *, timeout: float | None = None) -> DeliveryOutcome:
    """Make one delivery attempt. Raises RetryableDeliveryError when another try may succeed.

    Safe to call again: once delivered (or given up) it does nothing. The request is made
    outside any transaction; its outcome is recorded after.
    """
    decision = Decision.objects.select_related(
        "case__platform", "case__item", "case__policy_version__policy"
    ).get(id=decision_id)
    platform = decision.case.platform
    if not platform.callback_url:
        return DeliveryOutcome("skipped")
    attempts, settled = _history(decision)
    if settled:
        return DeliveryOutcome("skipped", attempts)
    attempt = attempts + 1
    body = body_for(decision)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "AppealsCopilot-Callback/1",
        SIGNATURE_HEADER: sign(platform.callback_secret, body),
        IDEMPOTENCY_HEADER: f"decision-{decision.id}",
        "X-Appeals-Delivery-Attempt": str(attempt),
    }
    timeout = timeout or getattr(settings, "CALLBACK_TIMEOUT_SECONDS", 10)
    status_code, error = None, ""
    started = time.monotonic()
    try:
        # Redirects are not followed: the platform registered this URL, not another.
        response = httpx.post(
            platform.callback_url,
            content=body,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
        )
        status_code = response.status_code
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    elapsed_ms = int((time.monotonic() - started) * 1000)

    delivered = status_code is not None and 200 <= status_code < 300
    retryable = status_code is None or status_code >= 500 or status_code == 429
    base = {"decision_id": decision.id, "attempt": attempt}
    events = [
        PendingEvent(
            Kind.CALLBACK_ATTEMPTED,
            decision.case,
            actor_label="worker",
            source=WORKER,
            data={
                **base,
                "url": platform.callback_url,
                "status_code": status_code,
                "error": error,
                "elapsed_ms": elapsed_ms,
            },
        )
    ]
    if delivered:
        outcome = DeliveryOutcome("delivered", attempt, status_code)
        events.append(
            PendingEvent(
                Kind.CALLBACK_DELIVERED,
                decision.case,
                actor_label="worker",
                source=WORKER,
                data={**base, "status_code": status_code},
            )
        )
    elif not retryable or attempt >= MAX_ATTEMPTS:
        reason = (
            f"gave up after {attempt} attempts"
            if retryable
            else f"the platform answered {status_code}, which is not retried"
        )
        outcome = DeliveryOutcome("failed", attempt, status_code, error)
        events.append(
            PendingEvent(
                Kind.CALLBACK_FAILED,
                decision.case,
                actor_label="worker",
                source=WORKER,
                data={**base, "status_code": status_code, "error": error, "reason": reason},
            )
        )
    else:
        outcome = DeliveryOutcome("retry", attempt, status_code, error)
    with transaction.atomic():
        record_events(events)
    if outcome.status == "retry":
        raise RetryableDeliveryError(
            f"callback for decision {decision.id}, attempt {attempt}: "
            + (error or f"HTTP {status_code}")
        )
    return outcome
