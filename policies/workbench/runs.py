"""Evaluation runs: a policy version × a golden set, drafted through the engine, item by item.

A run is the request; the broker message only points at it. `execute_run` takes the run with a
conditional UPDATE (a random token), drafts the items that have no result yet in chunks, and
writes each chunk's results with ON CONFLICT DO NOTHING on the (run, item) unique constraint:
a message delivered twice, two workers on one run, or a worker killed half way can neither lose
nor duplicate an item's result. Between chunks the run's heartbeat is renewed and a cancel is
noticed. `recover_stalled_runs` (beat, every minute) hands a run whose worker went silent back
to the queue; the next worker carries on from the first item without a result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from policies.engine import engine_config, policy_spec
from policies.models import PolicyVersion
from policies.safeguard.types import CaseSpec, Draft

from . import metrics
from .models import EvaluationResult, EvaluationRun, GoldenItem, GoldenSet

log = logging.getLogger(__name__)


def evaluation_engine():
    """The configured engine, with the workbench's own (larger) number of requests in flight:
    a run is a batch, and an OpenAI-compatible server batches best with many requests at once."""
    from policies.safeguard import get_engine

    config = dataclasses.replace(
        engine_config(), max_concurrency=settings.WORKBENCH_MAX_CONCURRENCY
    )
    return get_engine(config)


def run_items(run: EvaluationRun):
    items = GoldenItem.objects.filter(golden_set_id=run.golden_set_id).order_by("position")
    if run.item_limit:
        items = items[: run.item_limit]
    return items


@transaction.atomic
def create_run(
    *,
    version: PolicyVersion,
    golden_set: GoldenSet,
    actor=None,
    limit: int | None = None,
) -> EvaluationRun:
    """A queued run (the caller enqueues `execute_run` on commit)."""
    if golden_set.policy_id != version.policy_id:
        raise ValidationError(
            f"the golden set {golden_set.name!r} belongs to another policy than {version.label}"
        )
    if limit is not None and limit < 1:
        raise ValidationError("the limit must be at least 1")
    count = golden_set.items.count()
    if count == 0:
        raise ValidationError(f"the golden set {golden_set.name!r} has no items")
    return EvaluationRun.objects.create(
        policy_version=version,
        golden_set=golden_set,
        item_limit=limit,
        item_count=min(count, limit) if limit else count,
        requested_by=actor,
    )


def claim_run(run_id: int, *, now: dt.datetime | None = None) -> uuid.UUID | None:
    """Take a queued run for this worker; None when it is running elsewhere, done or cancelled."""
    now = now or timezone.now()
    token = uuid.uuid4()
    updated = EvaluationRun.objects.filter(id=run_id, status=EvaluationRun.Status.QUEUED).update(
        status=EvaluationRun.Status.RUNNING,
        run_token=token,
        heartbeat_at=now,
        started_at=Coalesce(F("started_at"), Value(now)),
        attempts=F("attempts") + 1,
    )
    return token if updated else None


def _heartbeat(run_id: int, token: uuid.UUID) -> bool:
    """Renew the heartbeat if this worker still holds the run and nobody asked to cancel it."""
    return bool(
        EvaluationRun.objects.filter(
            id=run_id,
            status=EvaluationRun.Status.RUNNING,
            run_token=token,
            cancel_requested=False,
        ).update(heartbeat_at=timezone.now())
    )


def _result_row(run_id: int, item_id: int, draft: Draft) -> EvaluationResult:
    p = draft.provenance
    return EvaluationResult(
        run_id=run_id,
        item_id=item_id,
        ready=draft.is_ready,
        failure_reason=draft.failure_reason.value if draft.failure_reason else "",
        failure_detail=draft.failure_detail[:2000],
        violation=draft.violation if draft.is_ready else None,
        rule_ids=list(draft.rule_ids),
        unknown_rule_ids=list(draft.unknown_rule_ids),
        confidence=draft.confidence or "",
        rationale=draft.rationale,
        reasoning=draft.reasoning,
        tokens_in=p.tokens_in,
        tokens_out=p.tokens_out,
        latency_ms=p.latency_ms,
    )


def execute_run(
    run_id: int,
    *,
    chunk_size: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> EvaluationRun:
    """Draft every item of the run that has no result yet; finish the run when none is left.

    Safe to call twice, concurrently or after a crash: results are written once per item."""
    token = claim_run(run_id)
    run = EvaluationRun.objects.select_related("policy_version__policy").get(id=run_id)
    if token is None:
        log.info("evaluation run %s is %s elsewhere; nothing to do", run_id, run.status)
        return run
    chunk_size = chunk_size or settings.WORKBENCH_CHUNK_SIZE
    engine = evaluation_engine()
    spec = policy_spec(run.policy_version)
    today = timezone.now().date()
    EvaluationRun.objects.filter(id=run_id).update(
        backend=engine.backend_name[:40], model_id=engine.config.model[:300]
    )
    item_ids = list(run_items(run).values_list("id", flat=True))
    while True:
        if not _heartbeat(run_id, token):
            break  # cancelled, or handed to another worker by the recovery sweep
        done = set(
            EvaluationResult.objects.filter(run_id=run_id, item_id__in=item_ids).values_list(
                "item_id", flat=True
            )
        )
        todo = [i for i in item_ids if i not in done][:chunk_size]
        if not todo:
            finish_run(run_id, token)
            break
        items = {i.id: i for i in GoldenItem.objects.filter(id__in=todo)}
        cases = [
            CaseSpec(key=str(i), content=items[i].content, content_type=items[i].content_type)
            for i in todo
        ]
        drafts = engine.draft(spec, cases, conversation_date=today)
        rows = [_result_row(run_id, i, d) for i, d in zip(todo, drafts, strict=True)]
        # The unique (run, item) constraint is the guarantee; ignore_conflicts is ON CONFLICT
        # DO NOTHING, so a result another worker wrote first is kept and this one dropped.
        EvaluationResult.objects.bulk_create(rows, ignore_conflicts=True)
        if on_chunk is not None:
            on_chunk(len(rows))
    run.refresh_from_db()
    return run


def observations(run: EvaluationRun) -> list[metrics.Observation]:
    results = run.results.select_related("item").order_by("item__position")
    return [
        metrics.Observation(
            key=str(r.item_id),
            expected=r.item.expected_violation,
            predicted=r.violation if r.ready else None,
            expected_rules=tuple(r.item.expected_rule_ids),
            cited_rules=tuple(r.rule_ids),
            language=r.item.language,
            failure_reason=r.failure_reason,
            must_pass=r.item.must_pass,
            group=r.item.group,
            tokens=r.tokens_in + r.tokens_out,
            latency_ms=r.latency_ms,
        )
        for r in results
    ]


def finish_run(run_id: int, token: uuid.UUID) -> bool:
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(id=run_id)
        if run.status != EvaluationRun.Status.RUNNING or run.run_token != token:
            return False
        summary = metrics.summarise(observations(run))
        started = run.started_at or timezone.now()
        summary["seconds"] = round((timezone.now() - started).total_seconds(), 3)
        run.metrics = summary
        run.status = EvaluationRun.Status.DONE
        run.finished_at = timezone.now()
        run.run_token = None
        run.save(update_fields=["metrics", "status", "finished_at", "run_token"])
    return True


def cancel_run(run: EvaluationRun) -> bool:
    """Stop a queued or running run: the worker notices at its next chunk. Results kept so far
    stay, for reading; a cancelled run never gates publishing."""
    return bool(
        EvaluationRun.objects.filter(id=run.id, status__in=EvaluationRun.ACTIVE).update(
            cancel_requested=True,
            status=EvaluationRun.Status.CANCELLED,
            finished_at=timezone.now(),
            run_token=None,
        )
    )


def recover_stalled_runs(*, now: dt.datetime | None = None) -> list[int]:
    """Runs whose worker has been silent past WORKBENCH_STALL_SECONDS go back to queued (and
    runs queued that long without a worker are returned too): the caller resends them all."""
    now = now or timezone.now()
    limit = now - dt.timedelta(seconds=settings.WORKBENCH_STALL_SECONDS)
    EvaluationRun.objects.filter(
        status=EvaluationRun.Status.RUNNING, heartbeat_at__lt=limit
    ).update(status=EvaluationRun.Status.QUEUED, run_token=None)
    stale = EvaluationRun.objects.filter(status=EvaluationRun.Status.QUEUED).filter(
        Q(heartbeat_at__isnull=True, created_at__lt=limit) | Q(heartbeat_at__lt=limit)
    )
    ids = list(stale.values_list("id", flat=True))
    # Stamp them, so a run waiting behind a long queue is resent once per stall period, not
    # once a minute.
    EvaluationRun.objects.filter(id__in=ids, status=EvaluationRun.Status.QUEUED).update(
        heartbeat_at=now
    )
    return ids


def progress(run: EvaluationRun) -> tuple[int, int]:
    return run.results.count(), run.item_count
