"""The callback outbox: a decision's callback is a row written with the decision, delivered later.

`add_pending_callback` runs inside the decision's transaction, so a decision never exists without
its pending callback. After commit the callback is handed to a worker at once (the fast path);
if the broker cannot be reached that hand-off is recorded as a failed attempt and the row waits.
The beat task `appeals.tasks.sweep_callbacks` delivers every row that is due, whatever went wrong
before: broker down, worker killed mid-delivery, platform down or answering 5xx/429.

Exactly one worker delivers a row at a time: a worker claims it with a conditional UPDATE (after
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), which also fences the outcome it records. A
claim lapses after the request timeout plus a margin, so a dead worker's row comes back. A lost
response can still make the platform see a delivery twice; the `Idempotency-Key` header
(`decision-<id>`, the same on every attempt) is how it recognises the second.

Every attempt, including a failed hand-off to the broker and a claim that lapsed, is a
`callback_attempted` audit event on the case; delivery and giving up are `callback_delivered` and
`callback_failed`; a senior's "retry now" is `callback_retry`. Retries back off exponentially with
jitter (CALLBACK_RETRY_BASE_SECONDS, doubling, at most CALLBACK_RETRY_MAX_SECONDS), and the row is
given up after CALLBACK_MAX_ATTEMPTS attempts or a 4xx other than 429.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, CallbackDelivery, Decision

from .callbacks import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, body_for, sign

log = logging.getLogger(__name__)

Kind = AuditEvent.Kind
Status = CallbackDelivery.Status
WORKER = AuditEvent.Source.WORKER
ATTEMPT_HEADER = "X-Appeals-Delivery-Attempt"
# A claim outlives the request's timeout by this much before another worker may take the row.
CLAIM_MARGIN_SECONDS = 60
SWEEP_BATCH = 50
# The web process must not hang on a dead broker: one quick retry, then the sweep's turn.
ENQUEUE_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5}
RETRY_PERMISSION = "appeals.retry_callback"


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # "delivered", "failed", "retry", or "skipped" (nothing due, or claimed elsewhere)
    attempt: int = 0
    status_code: int | None = None
    error: str = ""


def backoff_seconds(attempt: int, *, rng: random.Random | None = None) -> float:
    """How long to wait after failed attempt `attempt` (1-based): doubling, capped, jittered.

    "Equal jitter": half the exponential delay is kept, the other half is random, so retries of
    many callbacks that failed together (a platform outage) spread out instead of arriving at once.
    """
    base = settings.CALLBACK_RETRY_BASE_SECONDS
    ceiling = settings.CALLBACK_RETRY_MAX_SECONDS
    delay = min(ceiling, base * 2 ** max(0, attempt - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def _event(kind, delivery: CallbackDelivery, data: dict, *, source=WORKER, actor=None):
    decision = delivery.decision
    return PendingEvent(
        kind,
        decision.case,
        actor=actor,
        actor_label=actor.get_username() if actor else "worker" if source == WORKER else "system",
        source=source,
        data={"decision_id": decision.id, "delivery_id": delivery.id, **data},
    )


# --- writing the row ------------------------------------------------------------------------


def add_pending_callback(decision: Decision) -> CallbackDelivery | None:
    """Inside the decision's transaction: the row that says the platform is still to be told."""
    if not decision.case.platform.callback_url:
        return None
    return CallbackDelivery.objects.create(
        decision=decision,
        attempt_limit=settings.CALLBACK_MAX_ATTEMPTS,
        next_attempt_at=decision.decided_at,
        created_at=decision.decided_at,
    )


def enqueue_delivery(delivery_id: int, *, source: AuditEvent.Source = WORKER) -> bool:
    """After commit: hand the delivery to a worker now. Never raises.

    A broker that cannot be reached is logged and recorded as a failed attempt; the row stays
    pending and the next sweep delivers it.
    """
    from . import tasks

    delivery = CallbackDelivery.objects.select_related("decision").get(id=delivery_id)
    try:
        tasks.deliver_decision_callback.apply_async(
            (delivery.decision_id,), retry=True, retry_policy=ENQUEUE_RETRY_POLICY
        )
        return True
    except Exception as exc:  # kombu's OperationalError, a refused or reset connection, …
        error = f"could not queue the delivery: {type(exc).__name__}: {exc}"[:500]
        log.warning("callback of decision %s left for the sweep: %s", delivery.decision_id, error)
        _record_enqueue_failure(delivery_id, error=error, source=source)
        return False


def _record_enqueue_failure(delivery_id: int, *, error: str, source) -> None:
    with transaction.atomic():
        delivery = (
            CallbackDelivery.objects.select_for_update()
            .select_related("decision__case")
            .get(id=delivery_id)
        )
        if delivery.status != Status.PENDING:
            return  # a sweep got there first
        delivery.attempts += 1
        delivery.last_error = error
        delivery.last_status_code = None
        delivery.next_attempt_at = timezone.now()  # due at the next sweep
        delivery.save(
            update_fields=["attempts", "last_error", "last_status_code", "next_attempt_at"]
        )
        record_events(
            [
                _event(
                    Kind.CALLBACK_ATTEMPTED,
                    delivery,
                    {
                        "attempt": delivery.attempts,
                        "stage": "enqueue",
                        "status_code": None,
                        "error": error,
                    },
                    source=source,
                )
            ]
        )


# --- claiming and delivering ------------------------------------------------------------------


def _due(now: dt.datetime) -> Q:
    return Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Status.DELIVERING, claimed_until__lt=now
    )


def _claim(decision_id: int, now: dt.datetime) -> CallbackDelivery | None:
    """Take the decision's row if it is due and nobody holds it; None otherwise."""
    lease = dt.timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS)
    with transaction.atomic():
        row = (
            CallbackDelivery.objects.select_for_update(skip_locked=True)
            .filter(_due(now), decision_id=decision_id)
            .select_related("decision__case__platform")
            .first()
        )
        if row is None:
            return None
        # The conditional UPDATE is the claim: on SQLite (no row locks) and on PostgreSQL alike,
        # only one worker moves the row from what it read to "delivering".
        claimed = CallbackDelivery.objects.filter(
            id=row.id, status=row.status, attempts=row.attempts
        ).update(status=Status.DELIVERING, claimed_until=now + lease, attempts=F("attempts") + 1)
        if not claimed:
            return None
        events = []
        if row.status == Status.DELIVERING:  # the last claimant died without an answer
            events.append(
                _event(
                    Kind.CALLBACK_ATTEMPTED,
                    row,
                    {
                        "attempt": row.attempts,
                        "stage": "lapsed",
                        "status_code": None,
                        "error": "the worker stopped before recording the outcome",
                    },
                )
            )
        row.status, row.attempts = Status.DELIVERING, row.attempts + 1
        record_events(events)
    return row


def deliver(*, decision_id: int, now: dt.datetime | None = None) -> DeliveryOutcome:
    """Make one delivery attempt for the decision's callback, if it is due and unclaimed.

    The request is made outside any transaction; its outcome is recorded after, fenced by the
    claim (a worker whose claim lapsed and was taken over records its attempt, not the state).
    """
    now = now or timezone.now()
    delivery = _claim(decision_id, now)
    if delivery is None:
        return DeliveryOutcome("skipped")
    attempt = delivery.attempts
    decision = Decision.objects.select_related(
        "case__platform", "case__item", "case__policy_version__policy"
    ).get(id=decision_id)
    delivery.decision = decision
    platform = decision.case.platform
    status_code, error, elapsed_ms = None, "", 0
    if not platform.callback_url:
        error = "the platform has no callback URL any more"
    else:
        body = body_for(decision)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "AppealsCopilot-Callback/1",
            SIGNATURE_HEADER: sign(platform.callback_secret, body),
            IDEMPOTENCY_HEADER: f"decision-{decision.id}",
            ATTEMPT_HEADER: str(attempt),
        }
        started = time.monotonic()
        try:
            # Redirects are not followed: the platform registered this URL, not another.
            response = httpx.post(
                platform.callback_url,
                content=body,
                headers=headers,
                timeout=settings.CALLBACK_TIMEOUT_SECONDS,
                follow_redirects=False,
            )
            status_code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        elapsed_ms = int((time.monotonic() - started) * 1000)
    return _record_attempt(delivery, attempt, status_code, error, elapsed_ms)


def _record_attempt(delivery, attempt, status_code, error, elapsed_ms) -> DeliveryOutcome:
    platform = delivery.decision.case.platform
    delivered = status_code is not None and 200 <= status_code < 300
    retryable = bool(platform.callback_url) and (
        status_code is None or status_code >= 500 or status_code == 429
    )
    finished = timezone.now()
    attempted = {
        "attempt": attempt,
        "url": platform.callback_url,
        "status_code": status_code,
        "error": error,
        "elapsed_ms": elapsed_ms,
    }
    last_error = error or ("" if delivered else f"HTTP {status_code}")
    fields = {"claimed_until": None, "last_status_code": status_code, "last_error": last_error}
    events = []
    if delivered:
        outcome = DeliveryOutcome("delivered", attempt, status_code)
        fields.update(status=Status.DELIVERED, delivered_at=finished)
        events.append(
            _event(
                Kind.CALLBACK_DELIVERED, delivery, {"attempt": attempt, "status_code": status_code}
            )
        )
    elif not retryable or attempt >= delivery.attempt_limit:
        if not platform.callback_url:
            reason = error
        elif retryable:
            reason = f"gave up after {attempt} attempts"
        else:
            reason = f"the platform answered {status_code}, which is not retried"
        outcome = DeliveryOutcome("failed", attempt, status_code, error)
        fields.update(status=Status.FAILED)
        events.append(
            _event(
                Kind.CALLBACK_FAILED,
                delivery,
                {"attempt": attempt, "status_code": status_code, "error": error, "reason": reason},
            )
        )
    else:
        outcome = DeliveryOutcome("retry", attempt, status_code, error)
        next_at = finished + dt.timedelta(seconds=backoff_seconds(attempt))
        fields.update(status=Status.PENDING, next_attempt_at=next_at)
        attempted["next_attempt_at"] = next_at.isoformat()
    with transaction.atomic():
        still_mine = CallbackDelivery.objects.filter(
            id=delivery.id, status=Status.DELIVERING, attempts=attempt
        ).update(**fields)
        if not still_mine:
            attempted["superseded"] = True  # our claim lapsed and another worker took the row
            events = events if delivered else []
        record_events([_event(Kind.CALLBACK_ATTEMPTED, delivery, attempted), *events])
    if outcome.status == "retry":
        log.info(
            "callback of decision %s, attempt %s: %s", delivery.decision_id, attempt, last_error
        )
    return outcome


def sweep_callbacks(*, now: dt.datetime | None = None, limit: int = SWEEP_BATCH) -> dict[str, int]:
    """Deliver every callback that is due (beat, every CALLBACK_SWEEP_SECONDS). Safe to run twice
    at once: each row is claimed before it is sent."""
    now = now or timezone.now()
    due = list(
        CallbackDelivery.objects.filter(_due(now))
        .order_by("next_attempt_at")
        .values_list("decision_id", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for decision_id in due:
        status = deliver(decision_id=decision_id, now=now).status
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- what seniors see and do --------------------------------------------------------------------


def can_retry_callbacks(user) -> bool:
    return user.is_active and user.has_perm(RETRY_PERMISSION)


def retry_now(*, actor, delivery_id: int) -> CallbackDelivery:
    """A senior asks for another round now: the row is due at once, with a fresh attempt budget."""
    if not can_retry_callbacks(actor):
        raise PermissionDenied("you may not retry callbacks")
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            CallbackDelivery.objects.select_for_update()
            .select_related("decision__case")
            .filter(id=delivery_id)
            .first()
        )
        if delivery is None:
            raise ValidationError(f"there is no callback delivery {delivery_id}")
        if delivery.status == Status.DELIVERED:
            raise ValidationError("this callback has already been delivered")
        if delivery.status == Status.DELIVERING and delivery.claimed_until > now:
            raise ValidationError("this callback is being delivered right now")
        delivery.status = Status.PENDING
        delivery.next_attempt_at = now
        delivery.claimed_until = None
        delivery.attempt_limit = max(
            delivery.attempt_limit, delivery.attempts + settings.CALLBACK_MAX_ATTEMPTS
        )
        delivery.save(update_fields=["status", "next_attempt_at", "claimed_until", "attempt_limit"])
        record_events(
            [
                _event(
                    Kind.CALLBACK_RETRY_REQUESTED,
                    delivery,
                    {"attempts_so_far": delivery.attempts},
                    source=AuditEvent.Source.CONSOLE,
                    actor=actor,
                )
            ]
        )
        transaction.on_commit(
            lambda: enqueue_delivery(delivery.id, source=AuditEvent.Source.CONSOLE)
        )
    return delivery
