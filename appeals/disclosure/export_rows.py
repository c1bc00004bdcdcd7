"""The row query of the decision-audit export: which decisions, read how.

One query for every matching decision (`rows_queryset`), read as `values_list` tuples in the
order of `_FIELDS`, never model instances, through one server-side cursor a chunk at a time with
the next chunk fetched ahead (`raw_chunks`), so memory stays flat however many decisions there
are. Times and durations are computed by the database (`IsoTime`, `WholeSeconds`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

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

from appeals.models import Decision, Signal

# Rows per round trip to the database. With the next chunk fetched ahead, up to four are held
# at once; 2,000 rows keep that near 20 MB and export as fast as larger chunks do.
CHUNK_SIZE = 2000

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
    "recommendation__model_saw",
    "agrees_with_model",
    "accepted_recommendation",
    "recommendation_shown",
    "case__original_action",
    "original_decided_at_iso",
    "case__appealed_decision_id",
    "appeal",
    "model_action",
    "action_agrees",
    "rules_agree",
    "rules_overlap",
    "blind_outcome",
    "blind_agrees_with_model",
    "blind_action_agrees",
    "blind_rules_agree",
    "blind_rules_overlap",
    "supersedes_id",
    "superseded_by_decision_id",
    "case__original_mismatch",
    # What the decision told, as stored when it was taken (`appeals.disclosure.told`).
    "notice",
    "policy_name",
    "dsa_mapping",
    "case__item__language",
    "fast_offensive",
    "fast_nudity",
    "near_duplicate_group_id",
)


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


def _fast_tier_signal(kind: str):
    """The item's fast-tier signal of this kind as a JSON object (or None): a probe per row."""
    return Subquery(
        Signal.objects.filter(item_id=OuterRef("case__item_id"), kind=kind).values(
            json=JSONObject(
                score="score", label="label", model_name="model_name", model_version="model_version"
            )
        )[:1]
    )


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
            superseded_by_decision_id=F("superseded_by__id"),
            fast_offensive=_fast_tier_signal("offensive"),
            fast_nudity=_fast_tier_signal("nudity"),
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
