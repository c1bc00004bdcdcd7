"""Appending to the audit log, and checking that nobody rewrote it.

Every event stores the hash of the event before it and the hash of its own canonical content.
Events are written only through `record_event` / `record_events`; nothing updates or deletes one.
Each names its kind with a member of `AuditEvent.Kind` and its source (console, API, worker,
command, admin) with a member of `AuditEvent.Source`; a plain string is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEvent, Case
from .record_hashes import row_hashes, row_hashes_keys

GENESIS_HASH = "0" * 64
# Arbitrary, fixed: the advisory lock that serialises appends to the chain on PostgreSQL.
AUDIT_CHAIN_LOCK_ID = 0x41554449


@dataclass(frozen=True)
class PendingEvent:
    kind: AuditEvent.Kind
    case: Case | None
    actor: Any = None
    actor_label: str = "system"
    data: dict | None = None
    source: AuditEvent.Source | None = None
    # Rows this event created or changed: their content hashes go in `data["row_hashes"]`.
    records: tuple = ()


def canonical_content(
    *,
    prev_hash: str,
    kind: str,
    case_id,
    actor_id,
    actor_label: str,
    created_at,
    data: dict,
    source: str = "",
) -> str:
    """The exact text an event's hash covers: every stored field but `hash` itself.

    Keys are sorted and the time is written in UTC, so the text is the same whether the row came
    from memory or back from either database (PostgreSQL's jsonb reorders keys). The source is
    covered whenever it is set; events from before sources were kept have none, and their text
    is exactly what it was when they were hashed, so they still verify.
    """
    content = {
        "prev_hash": prev_hash,
        "kind": kind,
        "case_id": case_id,
        "actor_id": actor_id,
        "actor_label": actor_label,
        "created_at": created_at.astimezone(dt.UTC).isoformat(),
        "data": data,
    }
    if source:
        content["source"] = source
    return json.dumps(
        content,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def event_hash(event: AuditEvent) -> str:
    content = canonical_content(
        prev_hash=event.prev_hash,
        kind=event.kind,
        case_id=event.case_id,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        created_at=event.created_at,
        data=event.data,
        source=event.source,
    )
    return hashlib.sha256(content.encode()).hexdigest()


def _json_safe(data: dict | None) -> dict:
    # Store exactly what was hashed: round-trip through JSON so dates and UUIDs become strings.
    # NaN and infinities are refused: jsonb cannot store them, so they could never verify.
    return json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder, allow_nan=False))


def _lock_chain_and_get_head() -> str:
    # The lock is held to the end of the transaction, so ids (taken from the sequence while it is
    # held) follow chain order. The head is read after the lock is granted: under READ COMMITTED
    # that read sees the previous holder's committed rows. (A REPEATABLE READ transaction that
    # read anything before appending would see a stale head and fork the chain: don't.)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_ID])
    # On SQLite every write transaction is IMMEDIATE (see settings), which already serialises.
    head = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    return head or GENESIS_HASH


def record_events(events: Iterable[PendingEvent]) -> list[AuditEvent]:
    """Append events to the chain, in order, inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events are recorded inside the transaction that changes state")
    events = list(events)
    if not events:
        return []
    for pending in events:
        if not isinstance(pending.kind, AuditEvent.Kind):
            raise TypeError(f"audit event kind {pending.kind!r} is not a member of AuditEvent.Kind")
        if not isinstance(pending.source, AuditEvent.Source):
            raise TypeError(
                f"audit event source {pending.source!r} is not a member of AuditEvent.Source"
            )
    prev_hash = _lock_chain_and_get_head()
    now = timezone.now()
    # The rows the events wrote, read back in one query per model for the whole batch.
    hashes = row_hashes(record for pending in events for record in pending.records)
    rows = []
    for pending in events:
        data = pending.data
        if pending.records:
            own = row_hashes_keys(pending.records)
            said = (data or {}).get("row_hashes") or {}  # e.g. rows the event deleted
            data = {**(data or {}), "row_hashes": {**said, **{key: hashes[key] for key in own}}}
        actor = pending.actor
        actor_label = pending.actor_label
        if actor is not None and actor_label == "system":
            actor_label = actor.get_username()
        row = AuditEvent(
            case=pending.case,
            kind=pending.kind.value,
            actor=actor,
            actor_label=actor_label,
            source=pending.source.value,
            created_at=now,
            data=_json_safe(data),
            prev_hash=prev_hash,
        )
        row.hash = event_hash(row)
        prev_hash = row.hash
        rows.append(row)
    return AuditEvent.objects.bulk_create(rows)


def record_event(
    kind: AuditEvent.Kind,
    *,
    case: Case | None,
    source: AuditEvent.Source,
    actor=None,
    actor_label: str = "system",
    data: dict | None = None,
    records=(),
) -> AuditEvent:
    return record_events(
        [PendingEvent(kind, case, actor, actor_label, data, source, tuple(records))]
    )[0]


@dataclass(frozen=True)
class ChainReport:
    """What `verify_chain` found: how far it got, and the first broken link if there is one."""

    events_checked: int
    head_id: int | None = None
    head_hash: str = GENESIS_HASH
    first_broken_id: int | None = None
    broken_kind: str = ""
    broken_case_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None and not self.problem


def verify_chain(*, chunk_size: int = 5000, expect_head: str = "") -> ChainReport:
    """Walk the whole chain in id order; name the first event whose link or content is wrong.

    A chain only proves what lies before its head: deleting the newest events leaves a shorter
    chain that still verifies. Keep the head hash somewhere else (`verify_audit` prints it) and
    pass it back as `expect_head` to catch that too.
    """
    prev_hash = GENESIS_HASH
    checked = 0
    last_id = 0
    seen_expected = not expect_head
    fields = (
        "id",
        "kind",
        "case_id",
        "actor_id",
        "actor_label",
        "source",
        "created_at",
        "data",
        "prev_hash",
        "hash",
    )
    while True:
        chunk = list(
            AuditEvent.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list(*fields)[:chunk_size]
        )
        if not chunk:
            break
        for (
            id_,
            kind,
            case_id,
            actor_id,
            actor_label,
            source,
            created_at,
            data,
            stored_prev,
            stored,
        ) in chunk:

            def broken(problem: str) -> ChainReport:
                return ChainReport(checked, last_id or None, prev_hash, id_, kind, case_id, problem)  # noqa: B023

            if stored_prev != prev_hash:
                return broken(
                    f"its prev_hash {stored_prev[:12]}… is not the hash of the event before it "
                    f"({prev_hash[:12]}…): an event before it was removed, or this one was "
                    "inserted or moved"
                )
            content = canonical_content(
                prev_hash=stored_prev,
                kind=kind,
                case_id=case_id,
                actor_id=actor_id,
                actor_label=actor_label,
                created_at=created_at,
                data=data,
                source=source,
            )
            if hashlib.sha256(content.encode()).hexdigest() != stored:
                return broken("its content does not match its hash: the event was altered")
            prev_hash = stored
            checked += 1
            last_id = id_
            if stored == expect_head:
                seen_expected = True
    if not seen_expected:
        return ChainReport(
            checked,
            last_id or None,
            prev_hash,
            problem=f"the expected head {expect_head[:12]}… is not in the chain: events after it "
            "were removed, or the chain was rewritten",
        )
    return ChainReport(checked, last_id or None, prev_hash)
