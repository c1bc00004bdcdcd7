"""Taking flagged items and appeals in, one at a time: validate, deduplicate, queue, and ask for
a draft.

What belongs here: `receive_item` and `receive_appeal`, and the pieces every intake path shares
(the published policy version, the idempotency check on external ids, building a flag's Item and
Case, the "received" audit event, refusing items an appeal brought in). Many items in one
transaction (`receive_items_bulk`) is `appeals.intake.bulk`, over these same pieces.

The API and `manage.py import_cases` are thin callers of these functions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from appeals.appeal_rules import (
    appealed_decision_for,
    open_appeal_message,
    open_appeal_on,
    original_mismatch,
)
from appeals.audit import PendingEvent, record_events
from appeals.drafts import services as drafting
from appeals.groups.services import queue_grouping
from appeals.media.services import queue_media_fetch
from appeals.models import AuditEvent, Case, Item, Platform, Queue, Source
from appeals.precedents.services import queue_embedding
from appeals.second_opinions.services import queue_second_opinions
from appeals.triage.services import cases_drafted_at_intake, queue_triage
from policies.models import Policy, PolicyVersion

from .schemas import AppealIn, FieldProblem, ItemIn, request_fingerprint

TRUSTED_FLAGGER_PRIORITY = 10  # DSA Art. 22: trusted flaggers' notices go first.


@dataclass(frozen=True)
class IntakeResult:
    case: Case
    created: bool


def _published_version(slug: str, *, field: str = "policy") -> PolicyVersion:
    version = (
        PolicyVersion.objects.published()
        .select_related("policy")
        .filter(policy__slug=slug)
        .order_by("-number")
        .first()
    )
    if version is None:
        if Policy.objects.filter(slug=slug).exists():
            raise FieldProblem(field, f"policy {slug!r} has no published version")
        raise FieldProblem(field, f"no policy with slug {slug!r}")
    return version


def _existing(platform: Platform, kind: str, external_id: str, fingerprint: str) -> Case | None:
    case = Case.objects.filter(platform=platform, kind=kind, external_id=external_id).first()
    if case is not None and case.request_sha256 != fingerprint:
        raise FieldProblem(
            "external_id",
            f"{external_id!r} was already received with a different body; "
            "send a new external_id for a new item",
            status=409,
        )
    return case


def _actor_label(platform: Platform) -> str:
    return f"api:{platform.slug}"


def _build_flag(
    platform: Platform, payload: ItemIn, version: PolicyVersion, fingerprint: str, now: dt.datetime
) -> tuple[Item, Case]:
    item = Item(
        platform=platform,
        external_id=payload.external_id,
        policy_version=version,
        content=payload.content,
        content_type=payload.content_type,
        author_id=payload.author_id,
        reporter_id=payload.reporter_id,
        source=payload.source,
        flagged_at=payload.flagged_at,
        metadata=payload.metadata,
        received_at=now,
    )
    case = Case(
        kind=Case.Kind.FLAG,
        platform=platform,
        external_id=payload.external_id,
        item=item,
        policy_version=version,
        queue=Queue.FLAGS,
        priority=TRUSTED_FLAGGER_PRIORITY if payload.source == Source.TRUSTED_FLAGGER else 0,
        due_at=now + dt.timedelta(hours=version.policy.decide_within_hours),
        created_at=now,
        request_sha256=fingerprint,
    )
    return item, case


API = AuditEvent.Source.API


def _received_event(case: Case, platform: Platform, source: AuditEvent.Source) -> PendingEvent:
    return PendingEvent(
        AuditEvent.Kind.RECEIVED,
        case,
        actor_label=_actor_label(platform),
        source=source,
        data={
            "kind": case.kind,
            "external_id": case.external_id,
            "queue": case.queue,
            "policy_version_id": case.policy_version_id,
        },
        records=(case, case.item),
    )


def _items_taken_by_appeals(platform: Platform, external_ids: list[str]) -> set[str]:
    """Those of `external_ids` that name items an appeal brought in (so no flag can create them)."""
    return set(
        Item.objects.filter(platform=platform, external_id__in=external_ids)
        .exclude(cases__kind=Case.Kind.FLAG)
        .values_list("external_id", flat=True)
    )


def _taken_by_appeal_problem(external_id: str) -> FieldProblem:
    return FieldProblem(
        "external_id",
        f"item {external_id!r} is already here from an appeal; it cannot be flagged again as new",
        status=409,
    )


def _refuse_item_taken_by_appeal(platform: Platform, external_ids: list[str]) -> None:
    taken = _items_taken_by_appeals(platform, external_ids)
    if taken:
        raise _taken_by_appeal_problem(sorted(taken)[0])


def receive_item(
    *, platform: Platform, payload: ItemIn, source: AuditEvent.Source = API
) -> IntakeResult:
    """Queue a flagged item. The same external id with the same body returns the existing case."""
    fingerprint = request_fingerprint(payload)
    existing = _existing(platform, Case.Kind.FLAG, payload.external_id, fingerprint)
    if existing is not None:
        return IntakeResult(existing, created=False)
    version = _published_version(payload.policy)
    _refuse_item_taken_by_appeal(platform, [payload.external_id])
    try:
        with transaction.atomic():
            item, case = _build_flag(platform, payload, version, fingerprint, timezone.now())
            item.save()
            case.item = item
            case.save()
            drafting.queue_drafts(cases_drafted_at_intake([case]))
            queue_media_fetch([case])
            queue_triage([case])
            queue_second_opinions([case])
            queue_grouping([case])
            queue_embedding([case])
            record_events([_received_event(case, platform, source)])
    except IntegrityError:
        # Another request with this external id committed first: answer as it would have.
        existing = _existing(platform, Case.Kind.FLAG, payload.external_id, fingerprint)
        if existing is None:
            _refuse_item_taken_by_appeal(platform, [payload.external_id])  # an appeal won the race
            raise
        return IntakeResult(existing, created=False)
    return IntakeResult(case, created=True)


def _refuse_second_open_appeal(item: Item) -> None:
    """At most one open appeal per decision: a second is refused, naming the open one."""
    existing = open_appeal_on(item.id)
    if existing is not None:
        raise FieldProblem("item_external_id", open_appeal_message(existing), status=409)


def receive_appeal(
    *, platform: Platform, payload: AppealIn, source: AuditEvent.Source = API
) -> IntakeResult:
    """Queue an appeal. If the item is not here yet, the appeal brings its content and policy."""
    fingerprint = request_fingerprint(payload)
    existing = _existing(platform, Case.Kind.APPEAL, payload.external_id, fingerprint)
    if existing is not None:
        return IntakeResult(existing, created=False)

    now = timezone.now()
    item = (
        Item.objects.select_related("policy_version__policy")
        .filter(platform=platform, external_id=payload.item_external_id)
        .first()
    )
    if item is None:
        if payload.content is None:
            raise FieldProblem("content", "is required when the item is not in the system yet")
        if payload.policy is None:
            raise FieldProblem("policy", "is required when the item is not in the system yet")
        version = _published_version(payload.policy)
    else:
        version = item.policy_version
        if payload.policy is not None and payload.policy != version.policy.slug:
            raise FieldProblem(
                "policy",
                f"item {payload.item_external_id!r} is under policy {version.policy.slug!r}, not {payload.policy!r}",
            )
    policy = version.policy

    decided_at = payload.original_decision.decided_at
    if decided_at > now + dt.timedelta(minutes=5):
        raise FieldProblem("original_decision.decided_at", "is in the future")
    window_closes = decided_at + dt.timedelta(days=policy.appeal_window_days)
    if now > window_closes:
        raise FieldProblem(
            "original_decision.decided_at",
            f"the appeal window under policy {policy.slug!r} is {policy.appeal_window_days} days "
            f"and closed on {window_closes:%Y-%m-%d}; this appeal is too late",
        )

    appealed_decision = None
    if item is not None:
        _refuse_second_open_appeal(item)
        appealed_decision = appealed_decision_for(item.id)

    item_is_new = item is None
    try:
        with transaction.atomic():
            if item is None:
                item = Item.objects.create(
                    platform=platform,
                    external_id=payload.item_external_id,
                    policy_version=version,
                    content=payload.content,
                    content_type=payload.content_type,
                    author_id=payload.author_id,
                    source=Source.USER_REPORT,
                    received_at=now,
                )
            case = Case.objects.create(
                kind=Case.Kind.APPEAL,
                platform=platform,
                external_id=payload.external_id,
                item=item,
                policy_version=version,
                queue=Queue.APPEALS,
                due_at=now + dt.timedelta(hours=policy.appeal_decide_within_hours),
                created_at=now,
                request_sha256=fingerprint,
                appellant_id=payload.appellant_id,
                statement=payload.statement,
                original_action=payload.original_decision.outcome,
                original_rule_ids=payload.original_decision.rule_ids,
                original_decided_at=decided_at,
                appealed_decision=appealed_decision,
            )
            if appealed_decision is not None:
                case.original_mismatch = original_mismatch(case, appealed_decision)
                case.save(update_fields=["original_mismatch"])
            drafting.queue_drafts(cases_drafted_at_intake([case]))
            queue_media_fetch([case])
            queue_triage([case])
            queue_second_opinions([case])
            queue_grouping([case])
            queue_embedding([case])
            events = [_received_event(case, platform, source)]
            if appealed_decision is not None:
                events.append(
                    PendingEvent(
                        AuditEvent.Kind.APPEALED,
                        appealed_decision.case,
                        actor_label=_actor_label(platform),
                        source=source,
                        data={"appeal_case_id": case.id},
                    )
                )
            record_events(events)
    except IntegrityError:
        existing = _existing(platform, Case.Kind.APPEAL, payload.external_id, fingerprint)
        if existing is None:
            if item_is_new:  # the item arrived from another request meanwhile
                raise FieldProblem(
                    "item_external_id",
                    f"item {payload.item_external_id!r} was being received by another request at "
                    "the same time; send the appeal again",
                    status=409,
                ) from None
            _refuse_second_open_appeal(item)  # another appeal on the item won the race
            raise
        return IntakeResult(existing, created=False)
    return IntakeResult(case, created=True)
