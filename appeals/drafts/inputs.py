"""What the model is given for a case, and what of the item that is.

The safeguard model reads text. For an image or a video it reads the caption, the alt text or the
transcript the platform sent (as labelled context), never the pixels; `model_saw` says which, so
the case page and the exports can say so.
"""

from __future__ import annotations

from appeals.models import Case, Item, Recommendation
from policies.safeguard.types import CaseSpec, ContextNote, OriginalDecision

MEDIA_TYPES = ("image", "video")
# Metadata keys a platform may send, with the label the model and the reviewer see.
CONTEXT_KEYS: tuple[tuple[str, str], ...] = (
    ("caption", "Caption"),
    ("alt_text", "Alt text"),
    ("transcript", "Transcript"),
)
MAX_CONTEXT_CHARS = 4000


def item_context(item: Item) -> tuple[ContextNote, ...]:
    """The item's caption, alt text and transcript, as the platform sent them (text only)."""
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    notes = []
    for key, label in CONTEXT_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            notes.append(ContextNote(label=label, text=value.strip()[:MAX_CONTEXT_CHARS]))
    return tuple(notes)


def _looks_like_address(text: str) -> bool:
    text = text.strip()
    return not text or (" " not in text and text.startswith(("http://", "https://", "data:")))


def model_saw(item: Item) -> str:
    """What of the item a text-only model reads (a `Recommendation.Input` value)."""
    if item.content_type not in MEDIA_TYPES:
        return Recommendation.Input.TEXT
    labels = {note.label for note in item_context(item)}
    if "Transcript" in labels:
        return Recommendation.Input.TRANSCRIPT
    if labels or not _looks_like_address(item.content):
        return Recommendation.Input.CAPTION
    return Recommendation.Input.ADDRESS


def case_spec(case: Case) -> CaseSpec:
    original = None
    if case.is_appeal:
        original = OriginalDecision(
            outcome=case.original_action,
            rule_ids=tuple(case.original_rule_ids),
            decided_at=case.original_decided_at.date().isoformat()
            if case.original_decided_at
            else None,
        )
    return CaseSpec(
        key=str(case.id),
        content=case.item.content,
        content_type=case.item.content_type,
        original_decision=original,
        appeal_statement=case.statement if case.is_appeal else None,
        context=item_context(case.item),
    )


def record_model_saw(recommendations) -> None:
    """Store what the model reads for each recommendation: one UPDATE per distinct value."""
    by_value: dict[str, list[int]] = {}
    for rec in recommendations:
        by_value.setdefault(model_saw(rec.case.item), []).append(rec.id)
    for value, ids in by_value.items():
        Recommendation.objects.filter(id__in=ids).update(model_saw=value)
