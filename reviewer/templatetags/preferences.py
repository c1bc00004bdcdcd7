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
