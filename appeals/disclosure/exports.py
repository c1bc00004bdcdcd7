"""Decision-audit exports: one row per decided case, the model's draft beside the person's call.

Formats: `csv`, `jsonl` (one object per line) and `dsa` (statements of reasons for the EU DSA
Transparency Database, see `appeals.disclosure.dsa`). The rows come from one streamed query
(`export_rows`), each built into the columns of `export_columns` by `export_cells`; this module
writes them. The console streams the same generator through a StreamingHttpResponse and
`manage.py export_decisions` writes it to a file. Every export appends an "exported" audit event
saying who exported what, with which filters, and how many rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from django.db import transaction

from appeals.audit import record_event
from appeals.models import AuditEvent
from policies.models import Policy

from . import dsa
from .export_cells import _Context, _row
from .export_columns import _NOTICE, COLUMNS, Pseudonymiser, _csv_cells, _csv_tail, _remember
from .export_rows import _FIELDS, CHUNK_SIZE, ExportFilters, raw_chunks

__all__ = ["COLUMNS", "CHUNK_SIZE", "Export", "ExportFilters", "FORMATS", "policy_slugs"]

FORMATS = ("csv", "jsonl", "dsa")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "dsa": "application/x-ndjson; charset=utf-8",
}
FILE_NAMES = {
    "csv": "decisions.csv",
    "jsonl": "decisions.jsonl",
    "dsa": "statements-of-reasons.jsonl",
}


class Export:
    """One export run. Iterate `chunks()` for the text; the audit event is written at the end."""

    def __init__(
        self,
        *,
        fmt: str,
        filters: ExportFilters,
        actor=None,
        actor_label: str = "system",
        source: AuditEvent.Source = AuditEvent.Source.COMMAND,
        chunk_size: int = CHUNK_SIZE,
        rows_per_chunk: int = 500,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        self.filters = filters
        self.actor = actor
        self.actor_label = actor_label
        self.source = source
        self.chunk_size = chunk_size
        self.rows_per_chunk = rows_per_chunk
        self.rows = 0  # decisions read
        self.records = 0  # lines written: rows, or statements for `dsa`
        self.completed = False
        self._ctx = _Context(filters, Pseudonymiser() if filters.pseudonymise else None)
        self._mappings = dsa.MappingResolver()
        if fmt == "dsa":
            # Refuse before the first byte, not half way through a download.
            self._mappings.check_policies(filters.policy)

    def _chunks_read(self) -> Iterator[list[tuple]]:
        for chunk in raw_chunks(self.filters, chunk_size=self.chunk_size):
            self.rows += len(chunk)
            yield chunk

    # The writers loop a chunk at a time, not through a generator per row: a million rows
    # pass through them.

    def _csv(self) -> Iterator[str]:
        ctx = self._ctx
        buffer = io.StringIO()
        csv.writer(buffer).writerow(COLUMNS)
        # Each line is its cells but the notice, then the notice's quoted text and the line
        # end (`_csv_tail`, once per distinct notice).
        writerow = csv.writer(buffer, lineterminator="").writerow
        write = buffer.write
        tails: dict[str, str] = {}
        pending = 0
        for chunk in self._chunks_read():
            for raw in chunk:
                row = _row(raw, ctx)
                notice = row[_NOTICE]
                writerow(_csv_cells(row))
                tail = tails.get(notice)
                if tail is None:
                    tail = _remember(tails, notice, _csv_tail(notice), limit=10_000)
                write(tail)
                pending += 1
                if pending == self.rows_per_chunk:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                    self.records += pending
                    pending = 0
        yield buffer.getvalue()
        self.records += pending

    def _jsonl(self) -> Iterator[str]:
        ctx = self._ctx
        # One encoder for the whole export: `json.dumps` with options builds one per call.
        encode = json.JSONEncoder(ensure_ascii=False).encode
        lines: list[str] = []
        for chunk in self._chunks_read():
            for raw in chunk:
                record = dict(zip(COLUMNS, _row(raw, ctx), strict=True))
                lines.append(encode(record))
                if len(lines) == self.rows_per_chunk:
                    yield "\n".join(lines) + "\n"
                    self.records += len(lines)
                    lines = []
        if lines:
            yield "\n".join(lines) + "\n"
            self.records += len(lines)

    def _dsa(self) -> Iterator[str]:
        ctx = self._ctx
        version_at = _FIELDS.index("case__policy_version_id")
        told_name_at = _FIELDS.index("policy_name")
        told_mapping_at = _FIELDS.index("dsa_mapping")
        batch: list[dict] = []
        for chunk in self._chunks_read():
            for raw in chunk:
                record = dict(zip(COLUMNS, _row(raw, ctx), strict=True))
                version_id = raw[version_at]
                version = ctx.lookups.version(version_id)
                # The mapping and the policy's name as they stood at the decision (stored with
                # it); the policy's current ones only for a decision stored without them.
                mapping = raw[told_mapping_at]
                if mapping.__class__ is str:  # PostgreSQL's fast reader leaves JSON as text
                    mapping = json.loads(mapping)
                statement = dsa.statement_for(
                    record,
                    mapping or self._mappings.for_policy(version.policy_id, version.slug),
                    rule_lines=ctx.rule_lines.lines(version_id, record["rule_ids"]),
                    policy_name=raw[told_name_at] or version.name,
                )
                if statement is None:
                    continue
                batch.append(statement)
                if len(batch) == dsa.BATCH_SIZE:
                    yield dsa.batch_line(batch)
                    self.records += len(batch)
                    batch = []
        if batch:
            yield dsa.batch_line(batch)
            self.records += len(batch)

    def chunks(self) -> Iterator[str]:
        """The export's text, piece by piece. Records the audit event when done (or abandoned)."""
        generator = {"csv": self._csv, "jsonl": self._jsonl, "dsa": self._dsa}[self.fmt]()
        try:
            yield from generator
            self.completed = True
        finally:
            self._record()

    def _record(self) -> None:
        with transaction.atomic():
            record_event(
                AuditEvent.Kind.EXPORTED,
                case=None,
                actor=self.actor,
                actor_label=self.actor_label,
                source=self.source,
                data={
                    "format": self.fmt,
                    "filters": self.filters.as_dict(),
                    "rows": self.rows,
                    "records": self.records,
                    "completed": self.completed,
                },
            )


def policy_slugs() -> list[str]:
    return list(Policy.objects.order_by("slug").values_list("slug", flat=True))
