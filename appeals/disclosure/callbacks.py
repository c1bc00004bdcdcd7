"""Telling the platform about a decision: a signed JSON POST to its callback URL.

The body is canonical JSON (sorted keys, no spaces). The signature header is

    X-Appeals-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

and `Idempotency-Key: decision-<id>` is the same on every attempt, so a receiver that sees a
delivery twice can drop the second. `verify` is what a receiver runs (see docs/callbacks.md).

Delivery, retries and their audit events are the outbox's (`outbox.py`): network errors, 5xx and
429 are retried with backoff; any other answer outside 2xx is final, since asking again will not
change it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from appeals.models import Decision

from .notices import notice_for

SIGNATURE_HEADER = "X-Appeals-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale, or does not match the body."""


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
        # The earlier final decision on the item that this one contradicts and replaces.
        "supersedes_decision_id": decision.supersedes_id,
        # Decided together with the near-duplicates of a group (each member has its own callback).
        "group_id": decision.near_duplicate_group_id,
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


def deliver_decision(decision_id: int):
    """One delivery attempt for the decision's callback, if it is due (see `outbox.deliver`)."""
    from .outbox import deliver

    return deliver(decision_id=decision_id)
