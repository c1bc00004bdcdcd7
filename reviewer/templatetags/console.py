"""Small template helpers for the review console's pages."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone

from appeals.media.services import media_source, source_host
from appeals.models import Outcome, Queue
from appeals.review.permissions import workable_queues

register = template.Library()

EVENT_KEYS = (
    "queue",
    "from_queue",
    "outcome",
    "action",
    "rule_ids",
    "violation",
    "confidence",
    "reason",
    "detail",
    "model_id",
    "agrees_with_model",
    "accepted_recommendation",
)


@register.simple_tag(takes_context=True)
def nav_queues(context):
    """The queues the signed-in user may work, for the navigation bar."""
    user = context["request"].user
    if not user.is_authenticated:
        return []
    return [(queue, Queue(queue).label) for queue in workable_queues(user)]


@register.filter
def shown_content(item) -> str:
    """An item's content as pages show it: an image or video whose content is its address shows
    the host name only, so no page carries a platform media URL (see appeals/media/)."""
    source = media_source(item)
    if source and source == item.content.strip():
        host = source_host(source)
        return f"({item.get_content_type_display().lower()}{f' from {host}' if host else ''})"
    return item.content


@register.filter
def outcome_label(value: str) -> str:
    return Outcome(value).label if value in Outcome.values else (value or "—")


@register.filter
def event_summary(data) -> list[tuple[str, str]]:
    """The key facts of an audit event's data, in a fixed order."""
    if not isinstance(data, dict):
        return []
    facts = []
    for key in EVENT_KEYS:
        if key in data and data[key] not in (None, "", []):
            value = data[key]
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            facts.append((key.replace("_", " "), str(value)))
    return facts


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return f"{100 * value:.1f}%"


@register.filter
def kappa(value) -> str:
    return "—" if value is None else f"{value:.2f}"


@register.filter
def duration(value) -> str:
    """A timedelta as '3 h 12 min' or '2 d 4 h'."""
    if value is None:
        return "—"
    if not isinstance(value, dt.timedelta):
        value = dt.timedelta(seconds=float(value))
    minutes = int(value.total_seconds() // 60)
    days, rem = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rem, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


FAILURE_LABELS = {
    "not_configured": "no model is configured",
    "no_final_answer": "the model gave no final answer",
    "unparseable": "the model's answer could not be read",
    "truncated": "the answer was cut off at the token limit",
    "reasoning_exhausted": "the reasoning used up the whole token budget",
    "empty": "the model returned nothing",
    "timeout": "the draft timed out",
    "backend_error": "the model server returned an error",
}


@register.filter
def failure_label(reason: str) -> str:
    return FAILURE_LABELS.get(reason, (reason or "unknown").replace("_", " "))


@register.filter
def at(sequence, index):
    try:
        return sequence[index]
    except (IndexError, KeyError, TypeError):
        return None


@register.filter
def get(mapping, key):
    """mapping[key], or '' when it has none (a rule id the version does not define)."""
    try:
        return mapping.get(key, "")
    except AttributeError:
        return ""


@register.filter
def rule_gloss(text: str, rule_id: str) -> str:
    """A rule's text in one line for a chip: no heading marks, no leading repeat of its id."""
    line = " ".join(without_heading_marks(text or "").split())
    if rule_id and line.startswith(rule_id):
        line = line[len(rule_id) :].lstrip(" :-–")
    return line


@register.filter
def relative(value, now):
    """'in 3 h 12 min' or '2 d 4 h ago', compact for dense tables."""
    if value is None:
        return "—"
    now = now or timezone.now()
    delta = value - now
    if abs(delta) < dt.timedelta(minutes=1):
        return "just now"
    return f"in {duration(delta)}" if delta > dt.timedelta(0) else f"{duration(-delta)} ago"


@register.filter
def age(value, now):
    """How long ago, without the word: '1 d 6 h'."""
    if value is None:
        return "—"
    return duration((now or timezone.now()) - value)


@register.filter
def without_heading_marks(text: str) -> str:
    """Rule texts keep the policy's markdown; drop the leading '#'s of headings for reading."""
    return "\n".join(
        line.lstrip("#").lstrip() if line.lstrip().startswith("#") else line
        for line in (text or "").splitlines()
    )


@register.filter
def capped_count(value: int) -> str:
    """A dashboard count: exact up to the cap, then "10,000+"."""
    from reviewer.views import COUNT_CAP

    if value > COUNT_CAP:
        return f"{COUNT_CAP:,}+"
    return f"{value:,}"
