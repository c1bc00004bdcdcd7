"""Template helpers for the reviewer's own display preferences (reviewer/preferences.py)."""

from django import template

from reviewer.preferences import text_is_sensitive

register = template.Library()


@register.simple_tag
def blurs_text(prefs, item, fast_tier=None) -> bool:
    """Whether this page blurs the item's text for this reviewer until they reveal it."""
    if prefs is None or not prefs.blur_text:
        return False
    offensive = getattr(getattr(fast_tier, "offensive", None), "score", None)
    return text_is_sensitive(item, offensive)


@register.simple_tag
def blurs_excerpt(prefs, item, offensive_score=None) -> bool:
    """Whether a list's excerpt of the item's text (queue, search, dashboard) is blurred for this
    reviewer: the same rule as the case page, read there."""
    score = offensive_score if isinstance(offensive_score, int | float) else None
    return bool(prefs is not None and prefs.blur_text) and text_is_sensitive(item, score)
