"""Checking the audited records against the chain: `verify_audit --records`.

The newest event that names a row (`data["row_hashes"]`, see `appeals.record_hashes`) carries
the hash of that row as it was written. A row whose hash now differs was edited outside the
application; a row named by an event but gone was deleted, unless that event says the
application deleted it (a draft's old rules); a row no event names was added outside the
application (or before this check existed: `adopt_unrecorded_rows` brings those in once, itself
an audit event).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F

from .audit import PendingEvent, record_events
from .models import AuditEvent, Recommendation
from .record_hashes import (
    BY_LABEL,
    DELETED,
    HASHERS,
    RECOMMENDATION,
    RECORD_KINDS,
    RecordKind,
    rows,
)

ADOPT_BATCH = 500  # rows per adoption event


@dataclass(frozen=True)
class RecordProblem:
    label: str
    row_id: int
    problem: str  # "edited", "deleted", "unrecorded"
    event_id: int | None = None

    def describe(self) -> str:
        what = BY_LABEL[self.label].describe(self.row_id)
        if self.problem == "edited":
            return (
                f"{what} was changed after audit event {self.event_id}: its content no longer "
                "matches the hash that event recorded"
            )
        if self.problem == "deleted":
            return f"{what} was deleted: audit event {self.event_id} recorded it, it is gone"
        return f"{what} has no audit event: it was added or rewritten outside the application"


@dataclass
class RecordsReport:
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return ", ".join(
            f"{count} {label.replace('_', ' ')}s" for label, count in self.checked.items()
        )


def recorded_hashes(*, chunk_size: int = 5000) -> dict[str, tuple[str, int]]:
    """{"decision:12": (hash, event id)} from the newest event naming each row."""
    latest: dict[str, tuple[str, int]] = {}
    last_id = 0
    while True:
        chunk = list(
            AuditEvent.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "data")[:chunk_size]
        )
        if not chunk:
            return latest
        for event_id, data in chunk:
            hashes = data.get("row_hashes") if isinstance(data, dict) else None
            if hashes:
                for key, value in hashes.items():
                    latest[key] = (value, event_id)
        last_id = chunk[-1][0]


def _not_yet_said(kind: RecordKind, values: dict) -> bool:
    # A draft still waiting or running has said nothing yet: its first event comes when it ends.
    return kind is RECOMMENDATION and values["draft_status"] in Recommendation.IN_FLIGHT


def _rows_with_status(kind: RecordKind, chunk_size: int):
    if kind is RECOMMENDATION:
        queryset = Recommendation.objects.order_by("id").values(
            "id", *kind.fields, draft_status=F("status")
        )
    else:
        queryset = rows(kind)
    return queryset.iterator(chunk_size=chunk_size)


def _snapshot(outermost: bool) -> None:
    # One snapshot for the events and the rows, so a decision committed between the two reads
    # is not taken for one added without an event. (Only for this read-only check: a
    # transaction that appends to the chain must not hold an older snapshot, see audit.py.)
    if outermost and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def verify_records(*, chunk_size: int = 5000) -> RecordsReport:
    """Recompute every audited row's hash and compare it with the newest event's."""
    report = RecordsReport()
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        _snapshot(outermost)
        latest = recorded_hashes(chunk_size=chunk_size)
        for kind in RECORD_KINDS:
            hasher = HASHERS[kind.label]
            prefix = f"{kind.label}:"
            count = 0
            for values in _rows_with_status(kind, chunk_size):
                count += 1
                key = f"{prefix}{values['id']}"
                recorded = latest.pop(key, None)
                if recorded is None:
                    if not _not_yet_said(kind, values):
                        report.problems.append(
                            RecordProblem(kind.label, values["id"], "unrecorded")
                        )
                    continue
                if hasher(values) != recorded[0]:
                    report.problems.append(
                        RecordProblem(kind.label, values["id"], "edited", recorded[1])
                    )
            report.checked[kind.label] = count
            for key in [key for key in latest if key.startswith(prefix)]:
                recorded_hash, event_id = latest.pop(key)
                if recorded_hash == DELETED:
                    continue  # the newest event naming it says the application deleted it
                report.problems.append(
                    RecordProblem(kind.label, int(key[len(prefix) :]), "deleted", event_id)
                )
    report.problems.sort(key=lambda p: (p.label, p.row_id))
    return report


def adopt_unrecorded_rows(
    *, actor_label: str = "system", source: AuditEvent.Source = AuditEvent.Source.COMMAND
) -> int:
    """Record the hashes of rows no event names yet (rows from before records were hashed).

    Run once after upgrading: from then on `verify_audit --records` checks them too. Each batch
    is an audit event of its own (`records_adopted`), so an adoption made later to cover a row
    slipped in outside the application shows in the chain, with its time and who ran it.
    """
    adopted = 0
    with transaction.atomic():
        latest = recorded_hashes()
        pending: list = []
        for kind in RECORD_KINDS:
            for values in _rows_with_status(kind, 5000):
                if f"{kind.label}:{values['id']}" in latest or _not_yet_said(kind, values):
                    continue
                pending.append(kind.model(id=values["id"]))
        for start in range(0, len(pending), ADOPT_BATCH):
            batch = pending[start : start + ADOPT_BATCH]
            record_events(
                [
                    PendingEvent(
                        AuditEvent.Kind.RECORDS_ADOPTED,
                        None,
                        actor_label=actor_label,
                        source=source,
                        data={"rows": len(batch)},
                        records=tuple(batch),
                    )
                ]
            )
            adopted += len(batch)
    return adopted
