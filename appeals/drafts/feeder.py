"""The GPU worker's drain loop: draft every pending request under one policy version, as a stream.

A draft task's message names a few recommendation ids, but the worker does not stop at them: it
drains their policy version. It claims pending drafts from the database a handful at a time, only
when the engine has room for more (a free slot of the in-process batch, a free request of the
server pool), and stores each answer the moment it is done. So the batch stays full across Celery
messages, and a message whose drafts another drain already took costs one query.

    claim_drafts(version_id, limit=32)   -> {recommendation id: run token}, safe with many workers
    drain_policy_version(version_id)     -> how many answers were stored
    drain_for_requests([ids])            -> drains the versions of those ids (the task's body)

Claiming is one conditional UPDATE per batch with a fresh run token (`SELECT … FOR UPDATE SKIP
LOCKED` first on PostgreSQL, so two workers take disjoint rows without waiting on each other; on
SQLite, a single writer, the conditional UPDATE alone keeps it exact). Answers go through
`services.finish_draft`, which stores one only while the run still owns the row, on a writer
thread of their own so that the engine never waits on the database. A drain stops
claiming when nothing is pending or its time budget (`DRAFT_DRAIN_SECONDS`) is spent, finishes
what it has started, and sends a new task if drafts are still pending. A worker that dies leaves
its claimed drafts running: the recovery sweep (`services.recover_stalled_drafts`) puts them back.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.models import AuditEvent, Case, Recommendation
from policies.engine import engine_from_settings, policy_spec
from policies.models import PolicyVersion
from policies.safeguard.stream import draft_stream, stream_width
from policies.safeguard.types import CaseSpec

from . import inputs, services
from .heartbeat import Heartbeat

log = logging.getLogger(__name__)
PENDING = Recommendation.Status.PENDING
RUNNING = Recommendation.Status.RUNNING
# Claims are small so that a claimed draft starts soon after it is claimed (its stall clock runs
# from the claim) and so that several workers share a burst of work.
MAX_CLAIM = 32


def claim_drafts(
    policy_version_id: int, *, limit: int, now: dt.datetime | None = None
) -> dict[int, uuid.UUID]:
    """Take up to `limit` pending drafts of this policy version, oldest first, for one run.

    Returns {recommendation id: run token}. Two workers calling this at once never get the same
    draft: rows locked by another claim are skipped (PostgreSQL), and the UPDATE only moves rows
    that are still pending, under a token of this claim alone.
    """
    now = now or timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        candidates = Recommendation.objects.filter(
            status=PENDING, policy_version_id=policy_version_id
        ).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("id", flat=True)[:limit])
        if not ids:
            return {}
        Recommendation.objects.filter(id__in=ids, status=PENDING).update(
            status=RUNNING,
            started_at=now,
            heartbeat_at=now,
            run_token=token,
            attempts=F("attempts") + 1,
        )
        taken = list(
            Recommendation.objects.filter(id__in=ids, status=RUNNING, run_token=token)
            .order_by("id")
            .values_list("id", "case_id")
        )
        record_events(
            PendingEvent(
                AuditEvent.Kind.DRAFT_STARTED,
                Case(id=case_id),
                actor_label="worker",
                source=services.WORKER,
                data={"recommendation_id": rec_id},
            )
            for rec_id, case_id in taken
        )
    return {rec_id: token for rec_id, _ in taken}


def drain_policy_version(
    policy_version_id: int, *, budget_s: float | None = None, claim_size: int | None = None
) -> int:
    """Draft pending requests of one policy version until none is left or the budget is spent.

    Returns how many answers were stored. Sends a new draft task if some are still pending when
    the budget ends (the rest of the queue is not left waiting for the recovery sweep).
    """
    budget_s = settings.DRAFT_DRAIN_SECONDS if budget_s is None else budget_s
    version = PolicyVersion.objects.select_related("policy").get(id=policy_version_id)
    spec = policy_spec(version)
    engine = engine_from_settings()
    width = stream_width(engine)
    claim_size = claim_size or max(1, min(MAX_CLAIM, width))
    deadline = time.monotonic() + budget_s
    today = timezone.now().date()
    tokens: dict[int, uuid.UUID] = {}
    case_of: dict[str, int] = {}  # CaseSpec.key (the case id) -> recommendation id

    def pending_cases() -> Iterator[CaseSpec]:
        while time.monotonic() < deadline:
            taken = claim_drafts(policy_version_id, limit=claim_size)
            if not taken:
                return
            tokens.update(taken)
            recs = list(
                Recommendation.objects.filter(id__in=taken)
                .select_related("case__item")
                .order_by("id")
            )
            inputs.record_model_saw(recs)  # said on the case page and in exports
            for rec in recs:
                case = services._case_spec(rec.case)
                case_of[case.key] = rec.id  # one draft in flight per case: the key is unique
                yield case

    writer = _Writer()
    # The heartbeat follows `tokens` as drafts are claimed and finished: slow is never dead.
    try:
        with Heartbeat(tokens, live=True):
            for draft in draft_stream(engine, spec, pending_cases(), conversation_date=today):
                rec_id = case_of.pop(draft.case_key)
                if draft.failure_reason and draft.failure_reason.value == "not_configured":
                    log.warning("Draft %s not run: %s", rec_id, draft.failure_detail)
                writer.put(rec_id, tokens.pop(rec_id), draft)
    finally:
        stored = writer.close()
    left = list(
        Recommendation.objects.filter(status=PENDING, policy_version_id=policy_version_id)
        .order_by("id")
        .values_list("id", flat=True)[: settings.SAFEGUARD_BATCH_SIZE]
    )
    if left:
        log.info("drain of policy version %s paused after %g s", policy_version_id, budget_s)
        services.enqueue_drafts([left])
    return stored


class _Writer:
    """Stores answers on threads (and database connections) of their own, as they come.

    The drain's thread goes straight back to the engine (the next decode step, the next request)
    instead of waiting on the database for every answer; on a busy host that wait is what would
    otherwise bound the drafts per second. If storing fails, the drain stops with that error;
    drafts not stored stay running and the recovery sweep takes them back.
    """

    def __init__(self) -> None:
        self.stored = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Two writers on PostgreSQL: each answer is a few round trips, and on a busy host one
        # connection's waits alone fall behind a server answering 30+ drafts a second. SQLite
        # has one writer anyway.
        count = 2 if connection.vendor == "postgresql" else 1
        self._threads = [
            threading.Thread(target=self._run, name=f"draft-writer-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, rec_id: int, token: uuid.UUID, draft) -> None:
        if self.error is not None:
            raise RuntimeError("storing drafts failed") from self.error
        self._queue.put((rec_id, token, draft))

    def close(self) -> int:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        if self.error is not None:
            raise RuntimeError("storing drafts failed") from self.error
        return self.stored

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                stored = services.finish_draft(*item)
                with self._lock:
                    self.stored += stored
        except BaseException as exc:  # noqa: BLE001 - handed to the drain's thread
            self.error = exc
        finally:
            connection.close()


def drain_for_requests(recommendation_ids: Sequence[int]) -> int:
    """The draft task's body: drain the policy version of each of these requests still pending."""
    versions = (
        Recommendation.objects.filter(id__in=recommendation_ids, status=PENDING)
        .order_by("policy_version_id")
        .values_list("policy_version_id", flat=True)
        .distinct()
    )
    return sum(drain_policy_version(version_id) for version_id in list(versions))
