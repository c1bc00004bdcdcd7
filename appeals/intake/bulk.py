"""Bulk intake: many flagged items in one transaction, one outcome per item.

What belongs here: `receive_items_bulk` (deduplicating within the request and against what is
stored, resolving each policy once, refusing items an appeal brought in with one query), its
per-item `BulkOutcome`, and writing the new flags together (`_create_flags_together`), with the
one-at-a-time fallback through `services.receive_item` when a concurrent request took an id.
The pieces shared with single intake (building a flag, the "received" event) stay in `services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from appeals.audit import record_events
from appeals.drafts import services as drafting
from appeals.groups.services import queue_grouping
from appeals.media.services import queue_media_fetch
from appeals.models import AuditEvent, Case, Item, Platform
from appeals.precedents.services import queue_embedding
from appeals.second_opinions.services import queue_second_opinions
from appeals.triage.services import cases_drafted_at_intake, queue_triage
from policies.models import PolicyVersion

from .schemas import FieldProblem, ItemIn, request_fingerprint
from .services import (
    API,
    _build_flag,
    _items_taken_by_appeals,
    _published_version,
    _received_event,
    _taken_by_appeal_problem,
    receive_item,
)


@dataclass(frozen=True)
class BulkOutcome:
    index: int
    external_id: str | None
    status: int  # HTTP-like: 201 created, 200 existing, 4xx problem
    case: Case | None = None
    problems: tuple[dict, ...] = ()


def receive_items_bulk(
    *,
    platform: Platform,
    payloads: list[ItemIn | None],
    invalid: dict[int, list[dict]],
    source: AuditEvent.Source = API,
) -> list[BulkOutcome]:
    """Queue many items in one transaction. Items already rejected by validation come in as None
    with their problems in `invalid`. Each valid item is written whole or not at all."""
    outcomes: dict[int, BulkOutcome] = {
        i: BulkOutcome(i, None, 422, problems=tuple(p)) for i, p in invalid.items()
    }
    candidates: list[tuple[int, ItemIn, str]] = []
    seen_in_request: dict[str, tuple[int, str]] = {}
    for index, payload in enumerate(payloads):
        if payload is None:
            continue
        fingerprint = request_fingerprint(payload)
        previous = seen_in_request.get(payload.external_id)
        if previous is not None:
            if previous[1] != fingerprint:
                outcomes[index] = BulkOutcome(
                    index,
                    payload.external_id,
                    409,
                    problems=(
                        {
                            "field": "external_id",
                            "problem": f"{payload.external_id!r} appears earlier in this request (item {previous[0]}) with a different body",
                        },
                    ),
                )
            else:
                outcomes[index] = BulkOutcome(index, payload.external_id, -previous[0] - 1)
            continue
        seen_in_request[payload.external_id] = (index, fingerprint)
        candidates.append((index, payload, fingerprint))

    existing = {
        case.external_id: case
        for case in Case.objects.filter(
            platform=platform,
            kind=Case.Kind.FLAG,
            external_id__in=[p.external_id for _, p, _ in candidates],
        )
    }
    versions: dict[str, PolicyVersion | FieldProblem] = {}
    to_create: list[tuple[int, ItemIn, str, PolicyVersion]] = []
    for index, payload, fingerprint in candidates:
        case = existing.get(payload.external_id)
        if case is not None:
            if case.request_sha256 == fingerprint:
                outcomes[index] = BulkOutcome(index, payload.external_id, 200, case)
            else:
                outcomes[index] = BulkOutcome(
                    index,
                    payload.external_id,
                    409,
                    problems=(
                        {
                            "field": "external_id",
                            "problem": f"{payload.external_id!r} was already received with a different body",
                        },
                    ),
                )
            continue
        if payload.policy not in versions:
            try:
                versions[payload.policy] = _published_version(payload.policy)
            except FieldProblem as problem:
                versions[payload.policy] = problem
        version = versions[payload.policy]
        if isinstance(version, FieldProblem):
            outcomes[index] = BulkOutcome(
                index, payload.external_id, 422, problems=(version.as_dict(),)
            )
            continue
        to_create.append((index, payload, fingerprint, version))

    # One query for the lot, not one per item.
    taken = _items_taken_by_appeals(
        platform, [payload.external_id for _, payload, _, _ in to_create]
    )
    if taken:
        for index, payload, _, _ in to_create:
            if payload.external_id in taken:
                problem = _taken_by_appeal_problem(payload.external_id)
                outcomes[index] = BulkOutcome(
                    index, payload.external_id, 409, problems=(problem.as_dict(),)
                )
        to_create = [row for row in to_create if row[1].external_id not in taken]

    if to_create:
        try:
            created = _create_flags_together(platform, to_create, source=source)
        except IntegrityError:
            # A concurrent request took some of these ids: fall back to one at a time.
            created = {}
            for index, payload, _, _ in to_create:
                try:
                    result = receive_item(platform=platform, payload=payload)
                except IntegrityError:
                    problem = FieldProblem(
                        "external_id",
                        "was being written by another request at the same time; send it again",
                        status=409,
                    )
                    outcomes[index] = BulkOutcome(
                        index, payload.external_id, problem.status, problems=(problem.as_dict(),)
                    )
                    continue
                except FieldProblem as problem:
                    outcomes[index] = BulkOutcome(
                        index, payload.external_id, problem.status, problems=(problem.as_dict(),)
                    )
                    continue
                outcomes[index] = BulkOutcome(
                    index, payload.external_id, 201 if result.created else 200, result.case
                )
        for index, case in created.items():
            outcomes[index] = BulkOutcome(index, case.external_id, 201, case)

    # Repeats inside the request point at their first occurrence.
    for index, outcome in list(outcomes.items()):
        if outcome.status < 0:
            first = outcomes[-outcome.status - 1]
            outcomes[index] = BulkOutcome(
                index,
                outcome.external_id,
                200 if first.case else first.status,
                first.case,
                first.problems,
            )
    return [outcomes[i] for i in sorted(outcomes)]


def _create_flags_together(
    platform: Platform, rows, *, source: AuditEvent.Source = API
) -> dict[int, Case]:
    now = timezone.now()
    # Insert in external id order: two requests sharing ids then lock them in the same order and
    # the later one waits and falls back, instead of the two deadlocking.
    rows = sorted(rows, key=lambda row: row[1].external_id)
    with transaction.atomic():
        built = [
            (index, *_build_flag(platform, payload, version, fingerprint, now))
            for index, payload, fingerprint, version in rows
        ]
        Item.objects.bulk_create([item for _, item, _ in built])
        for _, item, case in built:
            case.item = item
        Case.objects.bulk_create([case for _, _, case in built])
        drafting.queue_drafts(cases_drafted_at_intake([case for _, _, case in built]))
        queue_media_fetch([case for _, _, case in built])
        queue_triage([case for _, _, case in built])
        queue_second_opinions([case for _, _, case in built])
        queue_grouping([case for _, _, case in built])
        queue_embedding([case for _, _, case in built])
        record_events([_received_event(case, platform, source) for _, _, case in built])
    return {index: case for index, _, case in built}
