"""The fast tier's services: scoring an item at intake, applying the per-queue priority rules
when its scores land, and deciding which cases get the deep (safeguard) check.

Intake calls `queue_triage` inside its transaction and `cases_drafted_at_intake` to know which
new cases to draft at once; the scoring runs after commit on the CPU queue
(`appeals.tasks.triage_item`), never in the request. Running it twice is a no-op: an item whose
signals are stored is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.drafts import services as drafting
from appeals.models import (
    AuditEvent,
    Case,
    ContentType,
    DeepCheck,
    DeepCheckSetting,
    Item,
    MediaAsset,
    PriorityRule,
    Recommendation,
    Signal,
    SignalKind,
)

from . import classifiers, media_scoring

log = logging.getLogger(__name__)

# Kinds whose score counts for priority rules and the deep-check threshold.
SCORED_KINDS = (SignalKind.OFFENSIVE, SignalKind.NUDITY, SignalKind.NSFW)
BATCH_SIZE = 200  # items per task


class MediaNotStoredYet(Exception):
    """The item's image is still being fetched: score it once our copy is stored."""


# --- at intake ---------------------------------------------------------------------------------


def queue_triage(cases: Sequence[Case]) -> None:
    """Send the new cases' items to the fast tier after commit, in batches (the text model
    scores a batch in about the time it scores one text)."""
    item_ids = sorted({case.item_id for case in cases})
    if item_ids:
        transaction.on_commit(lambda: enqueue_triage(item_ids))


def enqueue_triage(item_ids: list[int]) -> None:
    """Send triage tasks. A broker that is down leaves the items unscored; the page says so."""
    from .tasks import triage_items

    try:
        for start in range(0, len(item_ids), BATCH_SIZE):
            triage_items.delay(item_ids[start : start + BATCH_SIZE])
    except Exception:
        log.exception("could not enqueue the fast tier for items %s", item_ids)


def _gated_policy_ids(policy_ids: set[int]) -> set[int]:
    return set(
        DeepCheckSetting.objects.filter(
            policy_id__in=policy_ids, mode=DeepCheck.ABOVE_THRESHOLD
        ).values_list("policy_id", flat=True)
    )


def cases_drafted_at_intake(cases: Sequence[Case]) -> list[Case]:
    """The cases to draft at once: those whose policy drafts every case (the default). A policy
    that drafts only cases the fast tier scores above its threshold waits for the scores."""
    gated = _gated_policy_ids({case.policy_version.policy_id for case in cases})
    return [case for case in cases if case.policy_version.policy_id not in gated]


# --- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    kind: str
    model: classifiers.ModelId
    score: float | None
    label: str = ""
    details: dict | None = None


def _expected_kinds(item: Item) -> set[str]:
    if item.content_type == ContentType.TEXT:
        return {SignalKind.OFFENSIVE, SignalKind.LANGUAGE}
    if item.content_type in (ContentType.IMAGE, ContentType.VIDEO):
        return media_scoring.image_kinds()
    return set()


def _score_texts(items: list[Item]) -> dict[int, list[Scored]]:
    """Both text models over many items at once: the offensive-language model costs a few
    milliseconds a call however many texts it gets, so texts are scored together."""
    texts = [item.content for item in items]
    scores = classifiers.offensive_scores(texts)
    languages = classifiers.languages_of(texts)
    offensive, language = classifiers.offensive_model(), classifiers.language_model()
    return {
        item.id: [
            Scored(SignalKind.OFFENSIVE, offensive, round(score, 4)),
            Scored(SignalKind.LANGUAGE, language, None, code or ""),
        ]
        for item, score, code in zip(items, scores, languages, strict=True)
    }


def _score_image(item: Item) -> list[Scored]:
    asset = MediaAsset.objects.filter(item_id=item.id).first()
    if asset is None or asset.status == MediaAsset.Status.FAILED:
        return []  # nothing of ours to look at; the media panel says why
    if asset.status != MediaAsset.Status.STORED:
        raise MediaNotStoredYet(f"media asset {asset.id} is {asset.status}")
    # Our stored copy, through the storage API (any backend), never the platform's address;
    # a video is scored on a few sampled frames (media_scoring).
    return [
        Scored(s.kind, s.model, s.score, s.label, s.details)
        for s in media_scoring.score_stored_media(asset)
    ]


def score_items(items: list[Item]) -> tuple[dict[int, list[Scored]], list[int]]:
    """Run the fast tier's models on items (no database writes): their scores by item id, and
    the ids of images still being fetched."""
    scored = _score_texts([item for item in items if item.content_type == ContentType.TEXT])
    waiting = []
    for item in items:
        if item.content_type in (ContentType.IMAGE, ContentType.VIDEO):
            try:
                scored[item.id] = _score_image(item)
            except MediaNotStoredYet:
                waiting.append(item.id)
    return scored, waiting


@dataclass(frozen=True)
class TriageResult:
    signals: dict[int, list[Signal]]  # by item id
    waiting: list[int]  # images still being fetched: score them later


def _scored(item: Item) -> bool:
    expected = _expected_kinds(item)
    return bool(expected) and expected <= {signal.kind for signal in item.signals.all()}


def triage_items(item_ids: Sequence[int], *, now: dt.datetime | None = None) -> TriageResult:
    """Score items and store their signals; then for each item's open cases not triaged yet
    (a new appeal on an item scored before included) apply the queue's priority rules and,
    where the policy drafts only high scores, request the deep check. The models run outside any
    transaction; each item is then stored in a short one of its own. Items are scored once and
    cases triaged once, so a repeated message is a no-op."""
    now = now or timezone.now()
    items = list(Item.objects.filter(id__in=item_ids).prefetch_related("signals").order_by("id"))
    scored, waiting = score_items([item for item in items if not _scored(item)])
    stored = {
        item.id: _store(item.id, scored.get(item.id, []), now)
        for item in items
        if item.id not in waiting
    }
    return TriageResult(stored, waiting)


def triage_item(item_id: int, *, now: dt.datetime | None = None) -> list[Signal]:
    """`triage_items` for one item; raises MediaNotStoredYet while its image is being fetched."""
    result = triage_items([item_id], now=now)
    if result.waiting:
        raise MediaNotStoredYet(f"the image of item {item_id} is not stored yet")
    if item_id in result.signals:
        return result.signals[item_id]
    return list(Signal.objects.filter(item_id=item_id))


@transaction.atomic
def _store(item_id: int, scored: list[Scored], now: dt.datetime) -> list[Signal]:
    item = Item.objects.select_for_update().get(id=item_id)
    if scored and not _scored(item):  # else another worker stored them first
        for s in scored:
            Signal.objects.update_or_create(
                item=item,
                kind=s.kind,
                defaults={
                    "model_name": s.model.name,
                    "model_version": s.model.version,
                    "score": s.score,
                    "label": s.label,
                    "details": s.details or {},
                    "created_at": now,
                },
            )
        language = next((s.label for s in scored if s.kind == SignalKind.LANGUAGE), "")
        if language != item.language:
            Item.objects.filter(id=item.id).update(language=language)
    signals = list(Signal.objects.filter(item_id=item.id).order_by("kind"))
    scores = {s.kind: s.score for s in signals if s.kind in SCORED_KINDS and s.score is not None}

    cases = list(
        Case.objects.select_for_update(of=("self",))
        .select_related("policy_version")
        .filter(item_id=item.id, status=Case.Status.OPEN)
        .exclude(
            Exists(AuditEvent.objects.filter(case_id=OuterRef("id"), kind=AuditEvent.Kind.TRIAGED))
        )
        .order_by("id")
    )
    gated = _gated_policy_ids({case.policy_version.policy_id for case in cases})
    events = []
    for case in cases:
        data = {
            "signals": {
                s.kind: {
                    "score": s.score,
                    "label": s.label,
                    "model": f"{s.model_name} {s.model_version}",
                }
                for s in signals
            }
        }
        data.update(_apply_priority_rules(case, item, scores, now))
        if case.policy_version.policy_id in gated:
            data["deep_check"] = _gate_deep_check(case, scores)
        events.append(PendingEvent(AuditEvent.Kind.TRIAGED, case, None, "fast tier", data, WORKER))
    if events:
        record_events(events)
    return signals


WORKER = AuditEvent.Source.WORKER


def matching_rules(case: Case, item: Item, scores: dict[str, float]) -> list[PriorityRule]:
    rules = PriorityRule.objects.filter(queue=case.queue, enabled=True).order_by("id")
    return [
        rule
        for rule in rules
        if rule.kind in scores
        and scores[rule.kind] >= rule.min_score
        and (not rule.source or rule.source == item.source)
    ]


def _apply_priority_rules(
    case: Case, item: Item, scores: dict[str, float], now: dt.datetime
) -> dict:
    """Raise the case's priority and bring its due date forward as the matching rules say.
    Rules never lower a priority or push a due date back."""
    rules = matching_rules(case, item, scores)
    if not rules:
        return {}
    priority, due_at = case.priority, case.due_at
    for rule in rules:
        if rule.priority is not None:
            priority = max(priority, rule.priority)
        if rule.due_within is not None:
            due_at = min(due_at, now + rule.due_within)
    change = {"rules": [rule.id for rule in rules]}
    if priority != case.priority:
        change["priority"] = [case.priority, priority]
    if due_at != case.due_at:
        change["due_at"] = [case.due_at.isoformat(), due_at.isoformat()]
    if priority != case.priority or due_at != case.due_at:
        Case.objects.filter(id=case.id).update(priority=priority, due_at=due_at)
        case.priority, case.due_at = priority, due_at
    return change


def _gate_deep_check(case: Case, scores: dict[str, float]) -> str:
    setting = DeepCheckSetting.objects.get(policy_id=case.policy_version.policy_id)
    if case.recommendations.exists():
        return "already_requested"
    top = max(scores.values(), default=None)
    if top is None:
        # Nothing the fast tier can score (a video, media that could not be stored): the deep
        # check is the only check there is.
        drafting.queue_drafts([case])
        return "requested_unscored"
    if top >= setting.threshold:
        drafting.queue_drafts([case])
        return "requested"
    return "below_threshold"


# --- what the pages show -----------------------------------------------------------------------


@dataclass(frozen=True)
class FastTierPanel:
    signals: list[Signal]
    offensive: Signal | None
    language: Signal | None
    nudity: Signal | None
    nsfw: Signal | None  # the transformers image classifier, where configured
    pending: bool  # the item should have signals and has none yet
    no_deep_check_reason: str  # why this case has no safeguard draft; "" if it has or will
    unscored_reason: str = ""  # the fast tier ran and had nothing to score: why, in words


def _highest(signals: list[Signal]) -> Signal | None:
    scored = [s for s in signals if s.kind in SCORED_KINDS and s.score is not None]
    return max(scored, key=lambda s: s.score, default=None)


def no_deep_check_reason(
    case: Case, signals: list[Signal], *, has_draft: bool | None = None
) -> str:
    """Why a case has no safeguard draft, in words for the case page ("" when it has one or its
    policy drafts every case). `has_draft`, if the caller knows, saves a query."""
    if has_draft is None:
        has_draft = Recommendation.objects.filter(case_id=case.id).exists()
    if has_draft:
        return ""
    setting = DeepCheckSetting.objects.filter(
        policy_id=case.policy_version.policy_id, mode=DeepCheck.ABOVE_THRESHOLD
    ).first()
    if setting is None:
        return ""
    rule = (
        f"The policy “{case.policy_version.policy.name}” asks for the deep check only on cases "
        f"the fast tier scores at {setting.threshold:.2f} or above"
    )
    top = _highest(signals)
    if not signals:
        return f"{rule}; the fast tier has not scored this case yet."
    if top is None:
        return f"{rule}; the fast tier has no score for this kind of content."
    return (
        f"{rule}; this case's highest score is {top.score:.2f} "
        f"({top.get_kind_display().lower()}, {top.model_name} {top.model_version})."
    )


def _unscored_reason(item: Item) -> str:
    """Why the fast tier, having run, stored no signal for this image or video."""
    what = item.get_content_type_display().lower()
    asset = MediaAsset.objects.filter(item_id=item.id).first()
    if asset is None:
        return f"No {what} of this item was stored, so no fast-tier model looked at it."
    if asset.status == MediaAsset.Status.FAILED:
        reason = asset.failure or asset.failure_reason or "the fetch failed"
        return f"The {what} could not be stored ({reason}), so no fast-tier model looked at it."
    if item.content_type == ContentType.VIDEO:
        return "No frame of this video could be decoded, so no fast-tier model scored it."
    return f"The fast tier could not score this {what}."


def fast_tier_panel(
    case: Case, *, has_draft: bool | None = None, triaged: bool | None = None
) -> FastTierPanel:
    """The case page's panel. `has_draft` and `triaged` (whether the fast tier has run on the
    case), if the caller knows, save a query each."""
    signals = list(Signal.objects.filter(item_id=case.item_id).order_by("kind"))
    by_kind = {s.kind: s for s in signals}
    waiting = bool(_expected_kinds(case.item)) and not signals
    unscored = ""
    if waiting and triaged is None:
        triaged = AuditEvent.objects.filter(case_id=case.id, kind=AuditEvent.Kind.TRIAGED).exists()
    if waiting and triaged:
        # Triaged with nothing to score (media that could not be stored, a video with no
        # decodable frame): say so rather than wait for signals that will never come.
        waiting, unscored = False, _unscored_reason(case.item)
    return FastTierPanel(
        signals=signals,
        offensive=by_kind.get(SignalKind.OFFENSIVE),
        language=by_kind.get(SignalKind.LANGUAGE),
        nudity=by_kind.get(SignalKind.NUDITY),
        nsfw=by_kind.get(SignalKind.NSFW),
        pending=waiting,
        no_deep_check_reason=no_deep_check_reason(case, signals, has_draft=has_draft),
        unscored_reason=unscored,
    )
