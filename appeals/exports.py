"""Decision-audit exports: one row per decided case, the model's draft beside the person's call.

Formats: `csv`, `jsonl` (one object per line) and `dsa` (statements of reasons for the EU DSA
Transparency Database, see `appeals.dsa`). Rows are read as `values_list` tuples, never model
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
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from policies.models import Policy, PolicyVersion

from . import dsa
from .audit import record_event
from .models import Decision, Platform
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
# once each (`_Lookups`), which keeps the page query small and cheap to plan.
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
    "case__created_at",
    "case__item__flagged_at",
    "case__due_at",
    "claimed_at",
    "decided_at",
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
    "case__original_decided_at",
    "case__appealed_decision_id",
)  # then the latest appeal's outcome and decision time (see `rows_queryset`)

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARS = frozenset(_FORMULA_STARTS)


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
            cached = f"{prefix}{digest[: self.LENGTH]}"
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[token] = cached
        return cached

    def platform_user(self, platform: str, user_id: str) -> str:
        # Authors, reporters and appellants share one namespace per platform, so the author of
        # an item and the appellant against its removal get the same pseudonym.
        return self._pseudonym(f"platform:{platform}", user_id, "u_")

    def reviewer(self, username: str) -> str:
        return self._pseudonym("reviewer", username, "r_")


def neutralise(cell: str) -> str:
    """Make a text cell inert in spreadsheets: a leading quote stops formula evaluation."""
    if cell and cell.startswith(_FORMULA_STARTS):
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


def _c_timestamptz_loader():
    """psycopg's C loader for timestamptz, if the C extension is installed (else None)."""
    try:
        import psycopg
        from psycopg.pq import Format
    except ImportError:
        return None
    loader = psycopg.adapters.get_loader(psycopg.adapters.types["timestamptz"].oid, Format.TEXT)
    return None if loader is None or loader.__module__.startswith("psycopg.") else loader


def rows_queryset(filters: ExportFilters):
    """Every matching decision as a `_FIELDS` tuple plus its latest decided appeal, by id."""
    appeal = Decision.objects.filter(case__appealed_decision=OuterRef("id")).order_by(
        "-decided_at", "-id"
    )
    return (
        decisions_queryset(filters)
        .annotate(
            appeal_outcome=Subquery(appeal.values("outcome")[:1]),
            appeal_decided_at=Subquery(appeal.values("decided_at")[:1]),
        )
        .order_by("id")
        .values_list(*_FIELDS, "appeal_outcome", "appeal_decided_at")
    )


def _stream_postgres(queryset, chunk_size: int, loader) -> Iterator[tuple]:
    """One query through a server-side cursor, `chunk_size` rows per round trip.

    Inside a transaction, so PostgreSQL streams the cursor rather than materialising it whole
    (as it must for a WITH HOLD cursor in autocommit). Django's own timestamptz loader is pure
    Python (about 20 µs a value, six a row: most of an export's time), so the cursor loads
    timestamps with psycopg's C loader instead (aware, in the session's time zone: UTC under
    Django). The two JSON columns (rule ids) come as text, as Django's own PostgreSQL
    connection loads jsonb; `_row` decodes them, which is all Django's converters would do.
    """
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", loader)
        if hasattr(cursor.cursor, "itersize"):  # not with DISABLE_SERVER_SIDE_CURSORS
            cursor.cursor.itersize = chunk_size
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


def raw_rows(filters: ExportFilters, *, chunk_size: int = 5000) -> Iterator[tuple]:
    """The rows of every matching decision, in id order, `chunk_size` at a time.

    One query, read through a server-side cursor on PostgreSQL (and `fetchmany` on SQLite):
    only one chunk is ever in memory, whatever the number of decisions.
    """
    queryset = rows_queryset(filters)
    loader = _c_timestamptz_loader() if connection.vendor == "postgresql" else None
    if loader is not None:
        yield from _stream_postgres(queryset, chunk_size, loader)
    else:
        yield from queryset.iterator(chunk_size=chunk_size)


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
            if len(self.rule_id_lists) > 10_000:
                self.rule_id_lists.clear()
            decoded = self.rule_id_lists[value] = json.loads(value)
        return decoded


def _row(raw: tuple, ctx: _Context) -> tuple:
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
        appeal_outcome,
        appeal_decided_at,
    ) = raw
    lookups = ctx.lookups
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
        original_decided_at and original_decided_at.date(),
        decided_at.date(),
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
                decided_at=decided_at,
                model_assisted=recommendation_id is not None,
                original_action=original_action,
                original_decided_at=original_decided_at,
            )
        )
        if len(ctx.notices) > 50_000:
            ctx.notices.clear()
        ctx.notices[notice_key] = notice

    if ctx.pseudonyms is not None:
        author_id = ctx.pseudonyms.platform_user(platform, author_id)
        reporter_id = ctx.pseudonyms.platform_user(platform, reporter_id)
        appellant_id = ctx.pseudonyms.platform_user(platform, appellant_id)
        reviewer = ctx.pseudonyms.reviewer(reviewer)

    return (
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
        int((decided_at - received_at).total_seconds()),
        None if claimed_at is None else int((decided_at - claimed_at).total_seconds()),
        decided_at > due_at,
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
    )


def _inert(text: str | None) -> str | None:
    """Text a spreadsheet would run as a formula gets a leading quote (see `neutralise`)."""
    if text and text[0] in _FORMULA_CHARS:
        return "'" + text
    return text


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _csv_row(row: tuple) -> list:
    """A row as CSV cells: ISO times, true/false, space-separated rule ids, inert text.

    Written out column by column (not as a loop over cells) because it runs a million times
    an export. Text that comes from outside (ids, names, model fields) is made inert; enum
    values, hashes and numbers cannot start with a formula character. `csv.writer` writes None
    as an empty cell.
    """
    (
        decision_id,
        case_id,
        kind,
        source,
        platform,
        case_external_id,
        item_external_id,
        content_type,
        policy,
        policy_version,
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
        model_verdict,
        model_outcome,
        model_rule_ids,
        confidence,
        backend,
        model_id,
        model_revision,
        model_policy_version,
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
    ) = row
    return [
        decision_id,
        case_id,
        kind,
        source,
        _inert(platform),
        _inert(case_external_id),
        _inert(item_external_id),
        content_type,
        _inert(policy),
        policy_version,
        _inert(author_id),
        _inert(reporter_id),
        _inert(appellant_id),
        received_at.isoformat(),
        _iso(flagged_at),
        due_at.isoformat(),
        _iso(claimed_at),
        decided_at.isoformat(),
        received_to_decided,
        claimed_to_decided,
        "true" if decided_late else "false",
        outcome,
        action,
        " ".join(rule_ids),
        _inert(reviewer),
        recommendation_id,
        model_verdict,
        model_outcome,
        _inert(" ".join(model_rule_ids)),
        _inert(confidence),
        _inert(backend),
        _inert(model_id),
        _inert(model_revision),
        model_policy_version,
        model_policy_sha256,
        prompt_sha256,
        effort,
        _flag(agrees),
        _flag(accepted),
        _flag(shown),
        original_action,
        appealed_decision_id,
        appeal_outcome,
        _iso(appeal_decided_at),
        _inert(notice),
    ]


def _json_value(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class Export:
    """One export run. Iterate `chunks()` for the text; the audit event is written at the end."""

    def __init__(
        self,
        *,
        fmt: str,
        filters: ExportFilters,
        actor=None,
        actor_label: str = "system",
        chunk_size: int = 5000,
        rows_per_chunk: int = 500,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        self.filters = filters
        self.actor = actor
        self.actor_label = actor_label
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

    def _rows(self) -> Iterator[tuple]:
        ctx = self._ctx
        for raw in raw_rows(self.filters, chunk_size=self.chunk_size):
            self.rows += 1
            yield raw, _row(raw, ctx)

    def _csv(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        pending = 0
        for _, row in self._rows():
            writer.writerow(_csv_row(row))
            self.records += 1
            pending += 1
            if pending >= self.rows_per_chunk:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                pending = 0
        yield buffer.getvalue()

    def _jsonl(self) -> Iterator[str]:
        lines: list[str] = []
        for _, row in self._rows():
            lines.append(
                json.dumps(
                    {c: _json_value(v) for c, v in zip(COLUMNS, row, strict=True)},
                    ensure_ascii=False,
                )
            )
            self.records += 1
            if len(lines) >= self.rows_per_chunk:
                yield "\n".join(lines) + "\n"
                lines = []
        if lines:
            yield "\n".join(lines) + "\n"

    def _dsa(self) -> Iterator[str]:
        batch: list[dict] = []
        for raw, row in self._rows():
            record = dict(zip(COLUMNS, row, strict=True))
            version = self._ctx.lookups.version(raw[8])
            statement = dsa.statement_for(
                record,
                self._mappings.for_policy(version.policy_id, version.slug),
                rule_lines=self._ctx.rule_lines.lines(raw[8], record["rule_ids"]),
                policy_name=version.name,
            )
            if statement is None:
                continue
            batch.append(statement)
            self.records += 1
            if len(batch) >= dsa.BATCH_SIZE:
                yield dsa.batch_line(batch)
                batch = []
        if batch:
            yield dsa.batch_line(batch)

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
                "exported",
                case=None,
                actor=self.actor,
                actor_label=self.actor_label,
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
