"""Finding near-duplicate open cases at intake and putting them in one group.

Intake calls `queue_grouping` inside its transaction; after commit the task
`appeals.tasks.group_near_duplicates` (CPU queue "default") fingerprints each new case's item
(appeals/groups/fingerprints.py: the text, or our stored copy of the image) and stores the band
keys in the database. Candidates are the open cases of the same queue, kind and policy version
whose items share a key (an indexed lookup); the exact similarity decides, against the
thresholds in settings (GROUP_*). The case joins its near-duplicates' group, or they start one.
Running it twice is a no-op. A case once removed from a group by a reviewer is never grouped
again automatically. Confirming, claiming and deciding a group: appeals/review/groups.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from appeals.audit import PendingEvent, record_events
from appeals.media.services import open_stored
from appeals.models import (
    AuditEvent,
    Case,
    CaseGroup,
    ContentType,
    FingerprintBand,
    GroupMember,
    Item,
    ItemFingerprint,
    MediaAsset,
)

from . import fingerprints

log = logging.getLogger(__name__)
Basis = CaseGroup.Basis
BATCH_SIZE = 200  # cases per task
CANDIDATE_LIMIT = 2000  # items compared exactly per case; more share a key only when a flood does


class MediaNotStoredYet(Exception):
    """The item's image is still being fetched: fingerprint it once our copy is stored."""


@dataclass
class GroupingResult:
    grouped: dict[int, int] = field(default_factory=dict)  # case id → group id
    waiting: list[int] = field(default_factory=list)  # case ids whose image is not stored yet


# --- at intake ---------------------------------------------------------------------------------


def queue_grouping(cases: Sequence[Case]) -> None:
    """Look for the new cases' near-duplicates after commit."""
    case_ids = sorted(case.id for case in cases)
    if case_ids:
        transaction.on_commit(lambda: enqueue_grouping(case_ids))


def enqueue_grouping(case_ids: list[int]) -> None:
    """Send grouping tasks. A broker that is down leaves the cases ungrouped (each is still
    reviewed on its own)."""
    from .tasks import group_near_duplicates

    try:
        for start in range(0, len(case_ids), BATCH_SIZE):
            group_near_duplicates.delay(case_ids[start : start + BATCH_SIZE])
    except Exception:
        log.exception("could not enqueue near-duplicate grouping for cases %s", case_ids)


# --- fingerprints --------------------------------------------------------------------------------


def _text_threshold() -> float:
    return settings.GROUP_TEXT_SIMILARITY


def _text_print(item: Item):
    return fingerprints.text_print(
        item.content, threshold=_text_threshold(), min_chars=settings.GROUP_TEXT_MIN_CHARS
    )


def _compute(item: Item) -> tuple[str, str, str, list[str]]:
    """(basis, scheme, image hash, band keys) of an item; basis '' when it cannot be grouped."""
    if item.content_type == ContentType.TEXT:
        printed = _text_print(item)
        scheme = fingerprints.text_scheme(_text_threshold())
        return (Basis.TEXT, scheme, "", list(printed.keys)) if printed else ("", scheme, "", [])
    if item.content_type == ContentType.IMAGE:
        max_bits = settings.GROUP_IMAGE_MAX_BITS
        scheme = fingerprints.image_scheme(max_bits)
        asset = MediaAsset.objects.filter(item_id=item.id).first()
        if asset is None or asset.status == MediaAsset.Status.FAILED:
            return "", scheme, "", []
        if asset.status != MediaAsset.Status.STORED:
            raise MediaNotStoredYet(f"media asset {asset.id} is {asset.status}")
        # Our stored copy, through the storage API, never the platform's address.
        with open_stored(asset.original) as stored:
            try:
                hex_hash = fingerprints.image_hash(stored.read())
            except ValueError:
                return "", scheme, "", []
        return Basis.IMAGE, scheme, hex_hash, fingerprints.image_band_keys(hex_hash, max_bits)
    return "", "", "", []  # video, audio, other: not grouped (see README)


def fingerprint_items(items: Sequence[Item]) -> tuple[dict[int, ItemFingerprint], list[int]]:
    """The items' fingerprints, computed once and stored with their band keys in one short
    transaction (a repeat, or another worker's copy, is ignored: the same item hashes the same).
    Returns the fingerprints by item id, and the ids of items whose image is not stored yet."""
    items = list(items)
    found = {
        printed.item_id: printed
        for printed in ItemFingerprint.objects.filter(item_id__in=[i.id for i in items])
    }
    rows, bands, waiting = [], [], []
    for item in items:
        if item.id in found:
            continue
        try:
            basis, scheme, hex_hash, keys = _compute(item)
        except MediaNotStoredYet:
            waiting.append(item.id)
            continue
        rows.append(ItemFingerprint(item=item, basis=basis, scheme=scheme, image_hash=hex_hash))
        bands += [FingerprintBand(item=item, key=key) for key in sorted(set(keys))]
    if rows:
        with transaction.atomic():
            ItemFingerprint.objects.bulk_create(rows, ignore_conflicts=True)
            FingerprintBand.objects.bulk_create(bands, ignore_conflicts=True)
        found.update(
            (printed.item_id, printed)
            for printed in ItemFingerprint.objects.filter(item_id__in=[r.item_id for r in rows])
        )
    return found, waiting


def fingerprint_item(item: Item) -> ItemFingerprint:
    """One item's fingerprint (`fingerprint_items`); raises MediaNotStoredYet while its image is
    being fetched."""
    found, waiting = fingerprint_items([item])
    if waiting:
        raise MediaNotStoredYet(f"the image of item {item.id} is not stored yet")
    return found[item.id]


# --- grouping ----------------------------------------------------------------------------------


def _candidates(case: Case, printed: ItemFingerprint) -> list[Case]:
    """Open cases whose items share a band key with this one, one per group: a group's members
    are near-duplicates of each other, so one stands for the rest (a flood of copies costs one
    comparison, not one per copy)."""
    keys = FingerprintBand.objects.filter(item_id=case.item_id).values("key")
    item_ids = (
        FingerprintBand.objects.filter(key__in=keys)
        .exclude(item_id=case.item_id)
        .values_list("item_id", flat=True)
        .distinct()[:CANDIDATE_LIMIT]
    )
    found = (
        Case.objects.open()
        .filter(
            item_id__in=item_ids,  # the band lookup is this query's subquery
            queue=case.queue,
            kind=case.kind,
            policy_version_id=case.policy_version_id,
            item__fingerprint__basis=printed.basis,
        )
        .exclude(group_memberships__removed_at__isnull=False)
        .annotate(
            group_id=Subquery(
                GroupMember.objects.active().filter(case_id=OuterRef("id")).values("group_id")[:1]
            )
        )
        .order_by("id")
        .values_list("id", "group_id")
    )
    chosen, groups_seen = [], set()
    for case_id, group_id in found:
        if group_id is None or group_id not in groups_seen:
            chosen.append(case_id)
            groups_seen.add(group_id)
    return list(
        Case.objects.filter(id__in=chosen).select_related("item__fingerprint").order_by("id")
    )


def _similar(case: Case, printed: ItemFingerprint, candidates: list[Case]) -> dict[int, float]:
    """The candidates that are near-identical, with their similarity (1.0 is identical)."""
    found: dict[int, float] = {}
    if printed.basis == Basis.TEXT:
        # The exact Jaccard of the shingles (no MinHash needed to compare two texts in hand).
        mine = fingerprints.shingles(fingerprints.normalise(case.item.content))
        for other in candidates:
            theirs = fingerprints.shingles(fingerprints.normalise(other.item.content))
            score = fingerprints.jaccard(mine, theirs)
            if score >= _text_threshold():
                found[other.id] = round(score, 4)
    else:
        for other in candidates:
            bits = fingerprints.hamming(printed.image_hash, other.item.fingerprint.image_hash)
            if bits <= settings.GROUP_IMAGE_MAX_BITS:
                found[other.id] = round(1 - bits / fingerprints.IMAGE_BITS, 4)
    return found


def _open_group_of(case_ids: list[int]) -> CaseGroup | None:
    """The group (awaiting confirmation or confirmed) most of these cases are in, with room."""
    return (
        CaseGroup.objects.filter(
            status__in=(CaseGroup.Status.OPEN, CaseGroup.Status.CONFIRMED),
            members__case_id__in=case_ids,
            members__removed_at__isnull=True,
        )
        .annotate(size=Count("members", filter=Q(members__removed_at__isnull=True), distinct=True))
        .filter(size__lt=settings.GROUP_MAX_SIZE)
        .order_by("id")
        .first()
    )


def _join(case: Case, similar: dict[int, float], printed: ItemFingerprint) -> dict[int, int]:
    """Under row locks on the case and its matches: put them in one group. Returns the cases
    now in it by this call (or the case's group, if it already had one): case id → group id."""
    now = timezone.now()
    with transaction.atomic():
        ids = sorted({case.id, *similar})
        locked = {
            c.id: c for c in Case.objects.select_for_update().filter(id__in=ids).order_by("id")
        }
        case = locked.get(case.id)
        if case is None or case.status != Case.Status.OPEN:
            return {}
        active = dict(
            GroupMember.objects.active().filter(case_id__in=ids).values_list("case_id", "group_id")
        )
        if case.id in active:
            return {case.id: active[case.id]}
        matches = [i for i in similar if i in locked and locked[i].status == Case.Status.OPEN]
        group = _open_group_of(matches)
        joining = [case.id] + [i for i in matches if i not in active]
        if group is None:
            if len(joining) < 2:
                return {}  # its near-duplicates are all in full groups
            group = CaseGroup.objects.create(
                queue=case.queue,
                kind=case.kind,
                policy_version_id=case.policy_version_id,
                basis=printed.basis,
                created_at=now,
            )
        size = GroupMember.objects.active().filter(group=group).count()
        joining = joining[: max(0, settings.GROUP_MAX_SIZE - size)]
        if not joining:
            return {}
        reopened = group.status == CaseGroup.Status.CONFIRMED
        if reopened:
            # The reviewer confirmed other members: the newcomers need a look too.
            group.status = CaseGroup.Status.OPEN
            group.confirmed_by, group.confirmed_at = None, None
            group.save(update_fields=["status", "confirmed_by", "confirmed_at"])
        best = max(similar.values())
        GroupMember.objects.bulk_create(
            [
                GroupMember(
                    group=group,
                    case_id=member,
                    joined_at=now,
                    similarity=best if member == case.id else similar[member],
                )
                for member in joining
            ]
        )
        record_events(
            PendingEvent(
                AuditEvent.Kind.GROUPED,
                locked[member],
                actor_label="worker",
                source=AuditEvent.Source.WORKER,
                data={
                    "group_id": group.id,
                    "basis": printed.basis,
                    "similarity": best if member == case.id else similar[member],
                    "matched_case_id": case.id if member != case.id else min(similar),
                    "needs_confirmation_again": reopened,
                },
            )
            for member in joining
        )
        return dict.fromkeys(joining, group.id)


def group_near_duplicates(case_ids: Sequence[int]) -> GroupingResult:
    """Fingerprint the cases' items and group each open case with its near-duplicates."""
    result = GroupingResult()
    cases = list(Case.objects.open().filter(id__in=case_ids).select_related("item").order_by("id"))
    prints, waiting = fingerprint_items({case.item_id: case.item for case in cases}.values())
    removed = set(
        GroupMember.objects.filter(
            case_id__in=[c.id for c in cases], removed_at__isnull=False
        ).values_list("case_id", flat=True)
    )
    for case in cases:
        if case.item_id in waiting:
            result.waiting.append(case.id)
            continue
        printed = prints.get(case.item_id)
        if printed is None or not printed.basis or case.id in removed:
            continue
        similar = _similar(case, printed, _candidates(case, printed))
        if similar:
            result.grouped.update(_join(case, similar, printed))
    return result
