"""Asking the safeguard model for a draft, running it, and recovering drafts that stalled.

A `Recommendation` moves pending → running → ready | failed, each step a conditional UPDATE so
that a task delivered twice, or a worker that died half way, never yields two answers for one
request. While it runs, the worker keeps its heartbeat fresh (`heartbeat.py`); the recovery sweep
takes back only drafts whose heartbeat went quiet. The engine itself (policies.safeguard) knows
nothing of any of this.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from appeals.audit import PendingEvent, record_event, record_events
from appeals.models import AuditEvent, Case, Recommendation
from policies.engine import engine_from_settings, policy_spec
from policies.safeguard.types import CaseSpec, Draft

from . import inputs
from .heartbeat import Heartbeat

log = logging.getLogger(__name__)

# The draft task, sent by name so that this module and `tasks.py` (which calls it) do not import
# each other. The name is wire format: routes, the beat schedule and queued messages use it.
DRAFT_TASK = "appeals.tasks.draft_recommendations"
Kind = AuditEvent.Kind
WORKER = AuditEvent.Source.WORKER


def queue_drafts(cases: Sequence[Case], *, actor=None) -> list[Recommendation]:
    """Create pending recommendations for new cases and send them to the GPU queue on commit."""
    recommendations = Recommendation.objects.bulk_create(
        [
            Recommendation(case=case, policy_version_id=case.policy_version_id, requested_by=actor)
            for case in cases
        ]
    )
    _enqueue_on_commit([r.id for r in recommendations])
    return recommendations


def request_draft(
    *, case: Case, actor, source: AuditEvent.Source = AuditEvent.Source.CONSOLE
) -> Recommendation:
    """Ask again for a draft (after a failure, or a new model). One request in flight per case."""
    with transaction.atomic():
        case = Case.objects.select_for_update().get(id=case.id)
        in_flight = case.recommendations.filter(status__in=Recommendation.IN_FLIGHT).first()
        if in_flight is not None:
            return in_flight
        recommendation = Recommendation.objects.create(
            case=case, policy_version_id=case.policy_version_id, requested_by=actor
        )
        record_event(
            Kind.DRAFT_REQUESTED,
            case=case,
            actor=actor,
            source=source,
            data={"recommendation_id": recommendation.id},
        )
        _enqueue_on_commit([recommendation.id])
    return recommendation


def _enqueue_on_commit(recommendation_ids: list[int]) -> None:
    batch = settings.SAFEGUARD_BATCH_SIZE
    chunks = [recommendation_ids[i : i + batch] for i in range(0, len(recommendation_ids), batch)]
    transaction.on_commit(lambda: enqueue_drafts(chunks))


def enqueue_drafts(chunks: list[list[int]]) -> None:
    """Send draft tasks to the broker. If the broker is down the rows stay pending, and
    `recover_stalled_drafts` sends them again: the request is in the database, not the broker."""
    draft_recommendations = current_app.signature(DRAFT_TASK)
    sent: list[int] = []
    try:
        # One producer (one broker connection) for all the chunks of this commit.
        with current_app.producer_or_acquire() as producer:
            for chunk in chunks:
                draft_recommendations.apply_async((chunk,), producer=producer)
                sent.extend(chunk)
    except Exception:
        log.exception(
            "could not enqueue all drafts (%d sent); the recovery sweep will resend the rest",
            len(sent),
        )
    if sent:
        Recommendation.objects.filter(id__in=sent, status=Recommendation.Status.PENDING).update(
            enqueued_at=timezone.now()
        )


def _case_spec(case: Case) -> CaseSpec:
    return inputs.case_spec(case)


def start_drafts(
    recommendation_ids: Sequence[int], *, now: dt.datetime | None = None
) -> dict[int, uuid.UUID]:
    """Take pending recommendations for this run. Returns {id: run token} for those taken."""
    now = now or timezone.now()
    taken: dict[int, uuid.UUID] = {}
    for rec_id in recommendation_ids:
        token = uuid.uuid4()
        with transaction.atomic():
            updated = Recommendation.objects.filter(
                id=rec_id, status=Recommendation.Status.PENDING
            ).update(
                status=Recommendation.Status.RUNNING,
                started_at=now,
                heartbeat_at=now,
                run_token=token,
                attempts=F("attempts") + 1,
            )
            if updated:
                rec = Recommendation.objects.only("case_id").get(id=rec_id)
                record_event(
                    Kind.DRAFT_STARTED,
                    case=Case(id=rec.case_id),
                    actor_label="worker",
                    source=WORKER,
                    data={"recommendation_id": rec_id},
                )
                taken[rec_id] = token
    return taken


def finish_draft(rec_id: int, token: uuid.UUID, draft: Draft) -> bool:
    """Store the engine's answer if this run still owns the recommendation."""
    provenance = draft.provenance
    fields = dict(
        status=Recommendation.Status.READY if draft.is_ready else Recommendation.Status.FAILED,
        finished_at=timezone.now(),
        failure_reason=draft.failure_reason.value if draft.failure_reason else "",
        failure_detail=draft.failure_detail,
        violation=draft.violation,
        policy_category=draft.policy_category or "",
        rule_ids=list(draft.rule_ids),
        unknown_rule_ids=list(draft.unknown_rule_ids),
        confidence=draft.confidence or "",
        rationale=draft.rationale,
        reasoning=draft.reasoning,
        raw_output=draft.raw_output,
        injection_signals=list(draft.injection_signals),
        policy_sha256=provenance.policy_sha256,
        backend=provenance.backend,
        model_id=provenance.model_id,
        model_revision=provenance.model_revision,
        prompt_sha256=provenance.prompt_sha256,
        reasoning_effort=provenance.reasoning_effort,
        conversation_date=provenance.conversation_date,
        tokens_in=provenance.tokens_in,
        tokens_out=provenance.tokens_out,
        latency_ms=provenance.latency_ms,
        engine_attempts=provenance.attempts,
    )
    with transaction.atomic():
        updated = Recommendation.objects.filter(
            id=rec_id, status=Recommendation.Status.RUNNING, run_token=token
        ).update(**fields)
        if not updated:
            _discard_late_draft(rec_id, draft)
            return False
        rec = Recommendation.objects.only("case_id").get(id=rec_id)
        if draft.is_ready:
            record_event(
                Kind.DRAFTED,
                case=Case(id=rec.case_id),
                actor_label=f"model:{provenance.model_id}",
                source=WORKER,
                data={
                    "recommendation_id": rec_id,
                    "violation": draft.violation,
                    "rule_ids": list(draft.rule_ids),
                    "confidence": draft.confidence,
                    "model_id": provenance.model_id,
                    "prompt_sha256": provenance.prompt_sha256,
                },
                records=(rec,),
            )
        else:
            record_event(
                Kind.DRAFT_FAILED,
                case=Case(id=rec.case_id),
                actor_label="worker",
                source=WORKER,
                data={
                    "recommendation_id": rec_id,
                    "reason": fields["failure_reason"],
                    "detail": draft.failure_detail[:500],
                },
                records=(rec,),
            )
    return True


def _discard_late_draft(rec_id: int, draft: Draft) -> None:
    """Audit an answer that came back from a run which no longer owns its request (the sweep took
    it back, or another run finished first): it is not stored, and the trail says so."""
    rec = Recommendation.objects.filter(id=rec_id).values("case_id", "status").first()
    if rec is None:
        return
    log.warning(
        "recommendation %s was taken back or finished by another run; this answer is discarded",
        rec_id,
    )
    provenance = draft.provenance
    record_event(
        Kind.DRAFT_DISCARDED,
        case=Case(id=rec["case_id"]),
        actor_label="worker",
        source=WORKER,
        data={
            "recommendation_id": rec_id,
            "status_now": rec["status"],
            "answer": "ready" if draft.is_ready else "failed",
            "violation": draft.violation,
            "rule_ids": list(draft.rule_ids),
            "model_id": provenance.model_id,
            "latency_ms": provenance.latency_ms,
        },
    )


def run_drafts(recommendation_ids: Sequence[int]) -> int:
    """Draft the given recommendations through the engine, batching cases under one policy."""
    taken = start_drafts(recommendation_ids)
    if not taken:
        return 0
    recs = Recommendation.objects.filter(id__in=taken).select_related(
        "case__item", "policy_version__policy"
    )
    by_version: dict[int, list[Recommendation]] = defaultdict(list)
    for rec in recs:
        by_version[rec.policy_version_id].append(rec)
    today = timezone.now().date()
    stored = 0
    # The heartbeat covers the model's load as well as the drafting: both can take minutes.
    with Heartbeat(taken):
        engine = engine_from_settings()
        for group in by_version.values():
            inputs.record_model_saw(group)  # said on the case page and in exports
            spec = policy_spec(group[0].policy_version)
            drafts = engine.draft(
                spec, [_case_spec(rec.case) for rec in group], conversation_date=today
            )
            for rec, draft in zip(group, drafts, strict=True):
                if draft.failure_reason and draft.failure_reason.value == "not_configured":
                    log.warning("Draft for case %s not run: %s", rec.case_id, draft.failure_detail)
                stored += finish_draft(rec.id, taken[rec.id], draft)
    return stored


def recover_stalled_drafts(*, now: dt.datetime | None = None) -> int:
    """Put running drafts whose heartbeat went quiet back to pending (or fail them for good).

    A worker that dies mid-draft leaves its recommendation running with a heartbeat that no longer
    moves; this is what brings it back. A slow draft keeps beating and is left alone. Rows with no
    heartbeat (started before heartbeats existed) are judged by when they started.
    """
    now = now or timezone.now()
    limit = now - dt.timedelta(seconds=settings.DRAFT_STALL_SECONDS)
    quiet = Q(status=Recommendation.Status.RUNNING) & (
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, started_at__lt=limit)
    )
    stalled = list(Recommendation.objects.filter(quiet).values_list("id", "case_id", "attempts"))
    retry_ids = []
    for rec_id, case_id, attempts in stalled:
        with transaction.atomic():
            # Judged again in the UPDATE itself: a beat that landed since the read keeps the run.
            base = Recommendation.objects.filter(quiet, id=rec_id)
            if attempts >= settings.DRAFT_MAX_ATTEMPTS:
                updated = base.update(
                    status=Recommendation.Status.FAILED,
                    failure_reason="timeout",
                    failure_detail=f"the draft's worker went quiet {attempts} times (no "
                    f"heartbeat for {settings.DRAFT_STALL_SECONDS} s); request it again",
                    finished_at=now,
                    run_token=None,
                )
                kind = Kind.DRAFT_FAILED
            else:
                updated = base.update(status=Recommendation.Status.PENDING, run_token=None)
                kind = Kind.DRAFT_RECOVERED
            if updated:
                record_events(
                    [
                        PendingEvent(
                            kind,
                            Case(id=case_id),
                            actor_label="system",
                            source=WORKER,
                            data={
                                "recommendation_id": rec_id,
                                "attempts": attempts,
                                "reason": "timeout" if kind == Kind.DRAFT_FAILED else "stalled",
                            },
                            records=(Recommendation(id=rec_id),),
                        )
                    ]
                )
                if kind == Kind.DRAFT_RECOVERED:
                    retry_ids.append(rec_id)
    # Requests never picked up (the broker was down when they were made, or lost a message). One
    # whose message is in the broker waits DRAFT_RESEND_SECONDS, not the stall limit: behind a
    # long backlog it is queued, not lost, and resending it every sweep would only grow the queue.
    resend_limit = now - dt.timedelta(seconds=settings.DRAFT_RESEND_SECONDS)
    forgotten = list(
        Recommendation.objects.filter(status=Recommendation.Status.PENDING, requested_at__lt=limit)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=resend_limit))
        .exclude(id__in=retry_ids)
        .values_list("id", flat=True)[:10_000]
    )
    retry_ids.extend(forgotten)
    if retry_ids:
        batch = settings.SAFEGUARD_BATCH_SIZE
        enqueue_drafts([retry_ids[i : i + batch] for i in range(0, len(retry_ids), batch)])
    return len(stalled) + len(forgotten)


def latest_recommendation(case: Case) -> Recommendation | None:
    return case.recommendations.order_by("-requested_at", "-id").first()


def latest_ready_recommendation(case: Case) -> Recommendation | None:
    return (
        case.recommendations.filter(status=Recommendation.Status.READY)
        .order_by("-finished_at", "-id")
        .first()
    )
