"""Precedents' services: embedding items (after intake, on the CPU queue) and finding the decided
cases most similar to a case.

Intake calls `queue_embedding` inside its transaction; the embedding runs after commit in
batches (`appeals.tasks.embed_cases`), never in the request. Running it twice is a no-op: an
item with an embedding of the current model is left alone.

`similar_decided_cases` asks the index for candidates and re-checks every one in the database:
the case is decided and still there, its item's embedding of the current model still exists
(the similarity shown is recomputed from the stored vectors, not taken from the index), it is
not the case's own item, and the viewer may read it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from appeals.models import Case, ContentType, Embedding, Item
from appeals.outcomes import is_removing

from . import embedder
from . import index as precedent_index

log = logging.getLogger(__name__)

BATCH_SIZE = 256  # items per task
TOP = 5
# Candidates asked of the index: enough to survive the re-check; more only if it was not.
FIRST_ASK, SECOND_ASK = 25, 200


# --- at intake ---------------------------------------------------------------------------------


def queue_embedding(cases: Sequence[Case]) -> None:
    """Send the new cases' items to be embedded after commit, in batches."""
    item_ids = sorted({case.item_id for case in cases})
    if item_ids:
        transaction.on_commit(lambda: enqueue_embedding(item_ids))


def enqueue_embedding(item_ids: list[int]) -> None:
    """Send embed tasks. A broker that is down leaves the items without precedents (the page
    says so); `manage.py rebuild_precedents --embed-missing` catches up."""
    from .tasks import embed_cases

    try:
        for start in range(0, len(item_ids), BATCH_SIZE):
            embed_cases.delay(item_ids[start : start + BATCH_SIZE])
    except Exception:
        log.exception("could not enqueue embeddings for items %s", item_ids)


# --- embedding ---------------------------------------------------------------------------------


# What a platform may send with an image or a video, as text (appeals/drafts/inputs.py reads the
# same keys for the model).
MEDIA_TEXT_KEYS = ("caption", "alt_text", "transcript")


def embeddable_text(item: Item) -> str:
    """What is embedded: the item's text; for an image or a video, its text unless that is only
    an address (a URL or a data: URL), with the caption, alt text and transcript it came with."""
    text = (item.content or "").strip()
    if item.content_type == ContentType.TEXT:
        return text
    if " " not in text and text.startswith(("http://", "https://", "data:")):
        text = ""
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    extra = [
        metadata[key].strip()
        for key in MEDIA_TEXT_KEYS
        if isinstance(metadata.get(key), str) and metadata[key].strip()
    ]
    return "\n".join([text, *extra]).strip()


def embed_items(item_ids: Sequence[int]) -> int:
    """Embed the items that have no embedding of the current model; returns how many were
    stored. One model call for the whole batch."""
    model = embedder.model_id()
    done = set(
        Embedding.objects.filter(
            item_id__in=item_ids, model_name=model.name, model_version=model.version
        ).values_list("item_id", flat=True)
    )
    items = [
        (item, embeddable_text(item))
        for item in Item.objects.filter(id__in=item_ids).exclude(id__in=done).order_by("id")
    ]
    items = [(item, text) for item, text in items if text]
    if not items:
        return 0
    vectors = embedder.embed([text for _, text in items])
    rows = [
        Embedding(
            item=item,
            model_name=model.name,
            model_version=model.version,
            dtype=embedder.STORED_DTYPE_NAME,
            dims=embedder.DIMS,
            vector=embedder.to_bytes(vector),
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
        for (item, text), vector in zip(items, vectors, strict=True)
    ]
    try:
        with transaction.atomic():
            Embedding.objects.bulk_create(rows)
        stored = len(rows)
    except IntegrityError:
        # Another worker embedded some of them first: keep theirs, store the rest one by one.
        stored = 0
        for row in rows:
            try:
                with transaction.atomic():
                    row.save()
                stored += 1
            except IntegrityError:
                continue
    return stored


def refresh_index_file() -> None:
    """Write the index file for other processes to start from, when there is none or it is
    older than PRECEDENTS_INDEX_SAVE_SECONDS (a worker does this after each batch). Failures
    are logged: the index is only a cache."""
    try:
        precedent_index.save_if_stale(settings.PRECEDENTS_INDEX_SAVE_SECONDS)
    except (precedent_index.IndexUnavailable, OSError) as error:
        log.warning("precedent index not saved: %s", error)


def missing_item_ids() -> list[int]:
    model = embedder.model_id()
    done = Embedding.objects.filter(model_name=model.name, model_version=model.version)
    return list(
        Item.objects.exclude(id__in=done.values("item_id"))
        .order_by("id")
        .values_list("id", flat=True)
    )


# --- precedents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precedent:
    case: Case
    similarity: float  # cosine similarity of the stored vectors, -1..1

    @property
    def decision(self):
        return self.case.decision

    @property
    def removed(self) -> bool:
        """Did the decision leave the content removed, restricted or labelled?"""
        return is_removing(self.case.decision.action)


@dataclass(frozen=True)
class Precedents:
    status: str  # "ok", "not_embedded" (no vector for this case yet), "unavailable", "no_text"
    cases: tuple[Precedent, ...] = ()
    message: str = ""


def _query_vector(case: Case) -> np.ndarray | None:
    model = embedder.model_id()
    row = (
        Embedding.objects.filter(
            item_id=case.item_id, model_name=model.name, model_version=model.version
        )
        .values_list("vector", "dtype")
        .first()
    )
    if row is None:
        return None
    return embedder.from_bytes(*row)


def recheck(
    hits: Sequence[tuple[int, float]],
    query: np.ndarray,
    *,
    exclude_item_id: int,
    visible: Callable[[Case], bool],
    top: int = TOP,
) -> list[Precedent]:
    """The index's hits as they stand in the database: per item its latest decided case that
    `visible` accepts, only items whose current embedding still exists (similarity recomputed
    from it), never the excluded item; best first, at most `top`."""
    item_ids = [item for item, _ in hits if item != exclude_item_id]
    if not item_ids:
        return []
    model = embedder.model_id()
    stored = {
        item: embedder.from_bytes(raw, dtype)
        for item, raw, dtype in Embedding.objects.filter(
            item_id__in=item_ids, model_name=model.name, model_version=model.version
        ).values_list("item_id", "vector", "dtype")
    }
    by_item: dict[int, list[Case]] = {}
    decided = (
        Case.objects.filter(item_id__in=stored.keys(), status=Case.Status.DECIDED)
        .select_related("decision", "policy_version__policy")
        .order_by("item_id", "-decision__decided_at", "-id")
    )
    for found in decided:
        if hasattr(found, "decision"):  # "decided" without a decision row is no precedent
            by_item.setdefault(found.item_id, []).append(found)
    ranked = sorted(
        ((round(float(np.dot(query, stored[item])), 4), item) for item in by_item),
        key=lambda pair: (-pair[0], pair[1]),
    )
    result = []
    for similarity, item in ranked:
        shown = next((case for case in by_item[item] if visible(case)), None)
        if shown is not None:
            result.append(Precedent(shown, similarity))
            if len(result) == top:
                break
    return result


def similar_decided_cases(
    case: Case, *, visible: Callable[[Case], bool], top: int = TOP
) -> Precedents:
    """The `top` decided cases most similar to `case` that `visible` lets the viewer read."""
    if not embeddable_text(case.item):
        return Precedents("no_text", message="This case has no text to compare.")
    query = _query_vector(case)
    if query is None:
        return Precedents(
            "not_embedded",
            message="Not compared yet: the worker embeds each case's text shortly after intake.",
        )
    found: list[Precedent] = []
    for ask in (FIRST_ASK, SECOND_ASK):
        try:
            hits = precedent_index.search(query, ask)
        except precedent_index.IndexUnavailable as error:
            return Precedents("unavailable", message=str(error))
        found = recheck(hits, query, exclude_item_id=case.item_id, visible=visible, top=top)
        if len(found) >= top or len(hits) < ask:
            break
    return Precedents("ok", tuple(found))
