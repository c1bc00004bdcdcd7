"""Decision-audit exports: one row per decided case, the model's draft beside the person's call.

Formats: `csv`, `jsonl` (one object per line) and `dsa` (statements of reasons for the EU DSA
Transparency Database, see `appeals.disclosure.dsa`). Rows are read as `values_list` tuples, never model
instances, through one server-side cursor a chunk at a time, so memory stays flat however many
decisions there are; the console streams the same generator through a StreamingHttpResponse and
`manage.py export_decisions` writes it to a file. Every export appends an "exported" audit event
saying who exported what, with which filters, and how many rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import itertools
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    BooleanField,
    CharField,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.functions import JSONObject

from appeals.audit import record_event
from appeals.models import AuditEvent, Decision, Platform
from policies.models import Policy, PolicyVersion

from . import dsa
from .notices import NoticeFacts, RuleLines, compose_notice

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

# Rows per round trip to the database. With the next chunk fetched ahead, up to four are held
# at once; 2,000 rows keep that near 20 MB and export as fast as larger chunks do.
CHUNK_SIZE = 2000

# The output columns, in order: the CSV header and the JSON keys.
COLUMNS = (
    "decision_id",
    "case_id",
    "case_kind",
    "source",
    "platform",
    "case_external_id",
    "item_external_id",
    "content_type",
    "policy",
    "policy_version",
    "author_id",
    "reporter_id",
    "appellant_id",
    "received_at",
    "flagged_at",
    "due_at",
    "claimed_at",
    "decided_at",
    "received_to_decided_seconds",
    "claimed_to_decided_seconds",
    "decided_late",
    "outcome",
    "action",
    "rule_ids",
    "reviewer",
    "recommendation_id",
    "model_verdict",
    "model_outcome",
    "model_rule_ids",
    "model_confidence",
    "model_backend",
    "model_id",
    "model_revision",
    "model_policy_version",
    "model_policy_sha256",
    "prompt_sha256",
    "reasoning_effort",
    "agrees_with_model",
    "accepted_recommendation",
    "recommendation_shown",
    "original_action",
    "appealed_decision_id",
    "appeal_outcome",
    "appeal_decided_at",
    "notice",
)

# What is read per decision, in this order (see `_row`). Only the decision, its case, item and
# recommendation are joined; platforms, policy versions and reviewers are few, and are looked up
# once each (`_Lookups`), which keeps the query small and cheap to plan. The names ending in
# `_iso` or `_seconds`, `decided_late` and `appeal` are computed in the query (`rows_queryset`).
_FIELDS = (
    "id",
    "case_id",
    "case__kind",
    "case__item__source",
    "case__platform_id",
    "case__external_id",
    "case__item__external_id",
    "case__item__content_type",
    "case__policy_version_id",
    "case__item__author_id",
    "case__item__reporter_id",
    "case__appellant_id",
    "received_at_iso",
    "flagged_at_iso",
    "due_at_iso",
    "claimed_at_iso",
    "decided_at_iso",
    "received_to_decided_seconds",
    "claimed_to_decided_seconds",
    "decided_late",
    "outcome",
    "action",
    "rule_ids",
    "decided_by_id",
    "recommendation_id",
    "recommendation__violation",
    "model_outcome",
    "recommendation__rule_ids",
    "recommendation__confidence",
    "recommendation__backend",
    "recommendation__model_id",
    "recommendation__model_revision",
    "recommendation__policy_version_id",
    "recommendation__policy_sha256",
    "recommendation__prompt_sha256",
    "recommendation__reasoning_effort",
    "agrees_with_model",
    "accepted_recommendation",
    "recommendation_shown",
    "case__original_action",
    "original_decided_at_iso",
    "case__appealed_decision_id",
    "appeal",
)

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_CHARS = frozenset("=+-@\t\r")


def _remember(cache: dict, key, value, *, limit: int):
    """`cache[key] = value`, emptying the cache first once it holds `limit` entries: the export's
    caches (decoded rule ids, notices, pseudonyms) stay bounded however varied the rows."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


@dataclass(frozen=True)
class ExportFilters:
    since: dt.datetime | None = None  # decided at or after
    until: dt.datetime | None = None  # decided before
    policy: str = ""  # policy slug
    pseudonymise: bool = False

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "policy": self.policy or None,
            "pseudonymise": self.pseudonymise,
        }


class Pseudonymiser:
    """Stable pseudonyms: HMAC-SHA256 under a key derived from EXPORT_PSEUDONYM_KEY (or
    SECRET_KEY), truncated. The same id gets the same pseudonym in every export made with the
    same key, so rows can be linked across exports without revealing who anyone is."""

    LENGTH = 16  # hex characters: 64 bits, ample against collisions among a platform's users

    def __init__(self, key: str | None = None) -> None:
        secret = key or getattr(settings, "EXPORT_PSEUDONYM_KEY", "") or settings.SECRET_KEY
        # Derive a key of our own, so the raw SECRET_KEY is never used for anything else.
        self._key = hmac.new(
            secret.encode(), b"appeals-export-pseudonym-v1", hashlib.sha256
        ).digest()
        self._cache: dict[str, str] = {}

    def _pseudonym(self, namespace: str, value: str, prefix: str) -> str:
        if not value:
            return ""
        token = f"{namespace}\x1f{value}"
        cached = self._cache.get(token)
        if cached is None:
            digest = hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
            cached = _remember(
                self._cache, token, f"{prefix}{digest[: self.LENGTH]}", limit=100_000
            )
        return cached

    def platform_user(self, platform: str, user_id: str) -> str:
        # Authors, reporters and appellants share one namespace per platform, so the author of
        # an item and the appellant against its removal get the same pseudonym.
        return self._pseudonym(f"platform:{platform}", user_id, "u_")

    def reviewer(self, username: str) -> str:
        return self._pseudonym("reviewer", username, "r_")


def neutralise(cell: str) -> str:
    """Make a text cell inert in spreadsheets: a leading quote stops formula evaluation."""
    if cell and cell[0] in _FORMULA_CHARS:
        return "'" + cell
    return cell


def decisions_queryset(filters: ExportFilters):
    queryset = Decision.objects.all()
    if filters.since:
        queryset = queryset.filter(decided_at__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(decided_at__lt=filters.until)
    if filters.policy:
        queryset = queryset.filter(case__policy_version__policy__slug=filters.policy)
    return queryset


class IsoTime(Func):
    """A timestamp as ISO 8601 text in UTC, to the microsecond, formatted by the database:
    `2026-11-23T12:05:50.000000+00:00`, the text of Python's `isoformat(timespec="microseconds")`
    on PostgreSQL and SQLite alike (Django stores SQLite's as `YYYY-MM-DD HH:MM:SS[.ffffff]` in
    UTC). An export writes six of these a row: the database formats them while Python writes."""

    arity = 1
    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        template = (
            "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
        )
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        template = "substr(replace(%(expressions)s, ' ', 'T') || '.000000', 1, 26) || '+00:00'"
        return self.as_sql(compiler, connection, template=template, **extra)


class WholeSeconds(Func):
    """Whole seconds from the second timestamp to the first, truncated toward zero (as Python's
    `int(timedelta.total_seconds())`), computed by the database."""

    arity = 2
    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "trunc(extract(epoch from %(expressions)s))::bigint"
        return self.as_sql(compiler, connection, template=template, arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django's own SQLite function, the one behind `F("end") - F("start")`: microseconds.
        template = "django_timestamp_diff(%(expressions)s) / 1000000"
        return self.as_sql(compiler, connection, template=template, **extra)


def rows_queryset(filters: ExportFilters):
    """Every matching decision as a `_FIELDS` tuple, by id, with its latest decided appeal's
    outcome and time as a JSON object (or None)."""
    appeals = Decision.objects.filter(case__appealed_decision=OuterRef("id")).order_by(
        "-decided_at", "-id"
    )
    # One subquery for both facts: each is a probe per decision, and most find none.
    latest_appeal = appeals.values(
        json=JSONObject(outcome="outcome", decided_at=IsoTime("decided_at"))
    )[:1]
    return (
        decisions_queryset(filters)
        .annotate(
            received_at_iso=IsoTime("case__created_at"),
            flagged_at_iso=IsoTime("case__item__flagged_at"),
            due_at_iso=IsoTime("case__due_at"),
            claimed_at_iso=IsoTime("claimed_at"),
            decided_at_iso=IsoTime("decided_at"),
            received_to_decided_seconds=WholeSeconds("decided_at", "case__created_at"),
            claimed_to_decided_seconds=WholeSeconds("decided_at", "claimed_at"),
            decided_late=ExpressionWrapper(
                Q(decided_at__gt=F("case__due_at")), output_field=BooleanField()
            ),
            original_decided_at_iso=IsoTime("case__original_decided_at"),
            appeal=Subquery(latest_appeal),
        )
        .order_by("id")
        .values_list(*_FIELDS)
    )


def _stream_postgres(queryset, chunk_size: int) -> Iterator[list[tuple]]:
    """One query through a server-side cursor, `chunk_size` rows per round trip, fetched ahead.

    Inside a transaction, so PostgreSQL streams the cursor rather than materialising it whole
    (as it must for a WITH HOLD cursor in autocommit). The next chunk is fetched on a second
    thread while this one formats the current chunk (`_prefetched`): PostgreSQL produces rows
    while Python writes them, instead of each waiting for the other. The rows come as psycopg
    loads them, without Django's per-value converters: the JSON columns (the two rule-id lists,
    the appeal) stay text, as Django's PostgreSQL connection loads jsonb, and `_row` decodes
    them (each distinct rule-id text once); no other column has a converter.
    """
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        if hasattr(cursor.cursor, "itersize"):  # not with DISABLE_SERVER_SIDE_CURSORS
            cursor.cursor.itersize = chunk_size
        cursor.execute(sql, params)
        # Only the background thread touches this cursor until `_prefetched` has joined it;
        # psycopg's connection lock keeps the lookups this thread makes meanwhile in turn.
        fetch = cursor.cursor.fetchmany
        yield from _prefetched(iter(lambda: fetch(chunk_size), []))


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _prefetched(chunks: Iterator[list], depth: int = 2) -> Iterator[list]:
    """`chunks`, produced on a background thread at most `depth` ahead of the consumer.

    psycopg releases the GIL while it waits for the server, so the fetch of the next chunk
    overlaps with the work on this one. An error in the producer is raised here; when the
    consumer stops early (a download abandoned half way), the producer is told to stop and
    joined before this generator returns, so the cursor is never closed under it.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failed(error))
        else:
            put(_END)

    producer = threading.Thread(target=produce, name="export-prefetch", daemon=True)
    producer.start()
    try:
        while (item := handoff.get()) is not _END:
            if item.__class__ is _Failed:
                raise item.error
            yield item
    finally:
        stop.set()
        producer.join()


def raw_chunks(filters: ExportFilters, *, chunk_size: int = CHUNK_SIZE) -> Iterator[list[tuple]]:
    """The rows of every matching decision, in id order, in lists of up to `chunk_size`.

    One query, read through a server-side cursor on PostgreSQL (and `fetchmany` on SQLite):
    only a few chunks are ever in memory, whatever the number of decisions.
    """
    queryset = rows_queryset(filters)
    if connection.vendor == "postgresql":
        yield from _stream_postgres(queryset, chunk_size)
        return
    rows = queryset.iterator(chunk_size=chunk_size)
    while chunk := list(itertools.islice(rows, chunk_size)):
        yield chunk


@dataclass(frozen=True)
class _Version:
    number: int
    policy_id: int
    slug: str
    name: str
    appeal_window_days: int


class _Lookups:
    """Platform slugs, policy versions and reviewer names by id: one query each, then cached."""

    def __init__(self) -> None:
        self._platforms: dict[int, str] = {}
        self._versions: dict[int, _Version] = {}
        self._users: dict[int, str] = {}

    def platform(self, platform_id: int) -> str:
        slug = self._platforms.get(platform_id)
        if slug is None:
            slug = Platform.objects.values_list("slug", flat=True).get(id=platform_id)
            self._platforms[platform_id] = slug
        return slug

    def version(self, version_id: int) -> _Version:
        version = self._versions.get(version_id)
        if version is None:
            version = _Version(
                *PolicyVersion.objects.values_list(
                    "number",
                    "policy_id",
                    "policy__slug",
                    "policy__name",
                    "policy__appeal_window_days",
                ).get(id=version_id)
            )
            self._versions[version_id] = version
        return version

    def username(self, user_id: int) -> str:
        name = self._users.get(user_id)
        if name is None:
            name = get_user_model().objects.values_list("username", flat=True).get(id=user_id)
            self._users[user_id] = name
        return name


@dataclass
class _Context:
    filters: ExportFilters
    pseudonyms: Pseudonymiser | None
    rule_lines: RuleLines = field(default_factory=RuleLines)
    lookups: _Lookups = field(default_factory=_Lookups)
    notices: dict = field(default_factory=dict)
    rule_id_lists: dict = field(default_factory=dict)

    def rule_ids(self, value) -> list:
        """A rule-id list, from the row as read: a list, None, or JSON text (PostgreSQL's fast
        reader). The texts repeat endlessly ('[]', '["SP2.b"]'), so each is decoded once; the
        lists are shared between rows, and nothing downstream changes them."""
        if value is None:
            return []
        if value.__class__ is not str:
            return value
        decoded = self.rule_id_lists.get(value)
        if decoded is None:
            decoded = _remember(self.rule_id_lists, value, json.loads(value), limit=10_000)
        return decoded


def _row(raw: tuple, ctx: _Context) -> list:
    """One output row (in COLUMNS order) from one `_FIELDS` tuple and its appeal."""
    (
        decision_id,
        case_id,
        kind,
        source,
        platform_id,
        case_external_id,
        item_external_id,
        content_type,
        version_id,
        author_id,
        reporter_id,
        appellant_id,
        received_at,
        flagged_at,
        due_at,
        claimed_at,
        decided_at,
        received_to_decided,
        claimed_to_decided,
        decided_late,
        outcome,
        action,
        rule_ids,
        reviewer_id,
        recommendation_id,
        violation,
        model_outcome,
        model_rule_ids,
        confidence,
        backend,
        model_id,
        model_revision,
        model_version_id,
        model_policy_sha256,
        prompt_sha256,
        effort,
        agrees,
        accepted,
        shown,
        original_action,
        original_decided_at,
        appealed_decision_id,
        appeal,
    ) = raw  # the times are ISO text in UTC (`IsoTime`)
    lookups = ctx.lookups
    appeal_outcome = appeal_decided_at = None
    if appeal is not None:  # few decisions are appealed
        if appeal.__class__ is str:  # PostgreSQL's fast reader leaves JSON as text
            appeal = json.loads(appeal)
        appeal_outcome, appeal_decided_at = appeal["outcome"], appeal["decided_at"]
    rule_ids = ctx.rule_ids(rule_ids)
    model_rule_ids = ctx.rule_ids(model_rule_ids)
    version = lookups.version(version_id)
    platform = lookups.platform(platform_id)
    reviewer = lookups.username(reviewer_id)

    # Notices repeat a lot (same policy, outcome, action and rules): build each text once.
    notice_key = (
        version_id,
        kind,
        outcome,
        action,
        tuple(rule_ids),
        recommendation_id is not None,
        original_action,
        original_decided_at and original_decided_at[:10],  # the day: the notice names it
        decided_at[:10],
    )
    notice = ctx.notices.get(notice_key)
    if notice is None:
        notice = compose_notice(
            NoticeFacts(
                case_kind=kind,
                outcome=outcome,
                action=action,
                rule_lines=ctx.rule_lines.lines(version_id, rule_ids),
                policy_name=version.name,
                appeal_window_days=version.appeal_window_days,
                decided_at=dt.datetime.fromisoformat(decided_at),
                model_assisted=recommendation_id is not None,
                original_action=original_action,
                original_decided_at=original_decided_at
                and dt.datetime.fromisoformat(original_decided_at),
            )
        )
        _remember(ctx.notices, notice_key, notice, limit=50_000)

    if ctx.pseudonyms is not None:
        author_id = ctx.pseudonyms.platform_user(platform, author_id)
        reporter_id = ctx.pseudonyms.platform_user(platform, reporter_id)
        appellant_id = ctx.pseudonyms.platform_user(platform, appellant_id)
        reviewer = ctx.pseudonyms.reviewer(reviewer)

    return [
        decision_id,
        case_id,
        kind,
        source,
        platform,
        case_external_id,
        item_external_id,
        content_type,
        version.slug,
        version.number,
        author_id,
        reporter_id,
        appellant_id,
        received_at,
        flagged_at,
        due_at,
        claimed_at,
        decided_at,
        received_to_decided,
        claimed_to_decided,
        decided_late,
        outcome,
        action,
        rule_ids,
        reviewer,
        recommendation_id,
        None if violation is None else ("violating" if violation else "not_violating"),
        model_outcome,
        model_rule_ids,
        confidence,
        backend,
        model_id,
        model_revision,
        None if model_version_id is None else lookups.version(model_version_id).number,
        model_policy_sha256,
        prompt_sha256,
        effort,
        agrees,
        accepted,
        shown,
        original_action,
        appealed_decision_id,
        appeal_outcome,
        appeal_decided_at,
        notice,
    ]


def _columns(*names: str) -> tuple[int, ...]:
    return tuple(COLUMNS.index(name) for name in names)


# How columns are written as CSV text (`_csv_cells`); the rest are written as they are: numbers,
# times (ISO text from the database), enum values and hashes, none of which can start a formula.
_FLAG_COLUMNS = _columns(
    "decided_late", "agrees_with_model", "accepted_recommendation", "recommendation_shown"
)
_RULE_COLUMNS = _columns("rule_ids", "model_rule_ids")
# Text that comes from outside: ids and names from the platform, rule ids, the model's fields.
_TEXT_COLUMNS = _columns(
    "platform",
    "case_external_id",
    "item_external_id",
    "policy",
    "author_id",
    "reporter_id",
    "appellant_id",
    "reviewer",
    "rule_ids",
    "model_rule_ids",
    "model_confidence",
    "model_backend",
    "model_id",
    "model_revision",
)
_NOTICE = COLUMNS.index("notice")
assert _NOTICE == len(COLUMNS) - 1  # `_csv_tail` writes it at the end of the line


def _csv_cells(row: list) -> list:
    """A row (from `_row`, changed in place) as CSV cells, but for the notice, the last column:
    true/false, space-separated rule ids, and text a spreadsheet would run as a formula made
    inert. `csv.writer` writes None as an empty cell."""
    for i in _FLAG_COLUMNS:
        if (flag := row[i]) is not None:
            row[i] = "true" if flag else "false"
    for i in _RULE_COLUMNS:
        row[i] = " ".join(row[i])
    for i in _TEXT_COLUMNS:
        if (text := row[i]) and text[0] in _FORMULA_CHARS:  # `neutralise`, inlined: hot loop
            row[i] = "'" + text
    del row[_NOTICE]
    return row


def _csv_tail(notice: str) -> str:
    """The end of a CSV line: a comma, the notice as a CSV cell, the line terminator.

    Notices are long (most of an export's bytes), multi-line, and repeat row after row, so
    `csv.writer` quotes each distinct one once, here, and `Export._csv` reuses the text.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerow(("", neutralise(notice)))
    return buffer.getvalue()


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
        batch: list[dict] = []
        for chunk in self._chunks_read():
            for raw in chunk:
                record = dict(zip(COLUMNS, _row(raw, ctx), strict=True))
                version_id = raw[version_at]
                version = ctx.lookups.version(version_id)
                statement = dsa.statement_for(
                    record,
                    self._mappings.for_policy(version.policy_id, version.slug),
                    rule_lines=ctx.rule_lines.lines(version_id, record["rule_ids"]),
                    policy_name=version.name,
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
