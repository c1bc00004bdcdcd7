"""The queue list's fast-tier column and filters (appeals/triage/): kept apart from the other
filters so each can change without the other."""

from __future__ import annotations

from django import forms
from django.db.models import OuterRef, Subquery

from appeals.models import Signal, SignalKind
from policies.language import configured_languages

HIGH_SCORE = 0.5


class FastTierFilterForm(forms.Form):
    """Invalid values are ignored, like the queue's other filters."""

    SCORE_CHOICES = [
        ("", "Any score"),
        ("offensive", f"Offensive ≥ {HIGH_SCORE}"),
        ("nudity", f"Nudity ≥ {HIGH_SCORE}"),
        ("unscored", "Not scored yet"),
    ]

    fast_tier = forms.ChoiceField(required=False, choices=SCORE_CHOICES, label="Fast tier")
    language = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [
            ("", "Any language"),
            *((code, code) for code in configured_languages()),
            ("unknown", "Unknown"),
        ]

    def value(self, name: str) -> str:
        return self.cleaned_data.get(name, "") if self.is_valid() else ""


def _score(kind: str):
    return Subquery(
        Signal.objects.filter(item_id=OuterRef("item_id"), kind=kind).values("score")[:1]
    )


def annotate_and_filter(cases, form: FastTierFilterForm):
    cases = cases.annotate(
        offensive_score=_score(SignalKind.OFFENSIVE), nudity_score=_score(SignalKind.NUDITY)
    )
    chosen = form.value("fast_tier")
    if chosen == "offensive":
        cases = cases.filter(offensive_score__gte=HIGH_SCORE)
    elif chosen == "nudity":
        cases = cases.filter(nudity_score__gte=HIGH_SCORE)
    elif chosen == "unscored":
        cases = cases.exclude(item__signals__isnull=False)
    language = form.value("language")
    if language == "unknown":
        cases = cases.filter(item__language="")
    elif language:
        cases = cases.filter(item__language=language)
    return cases
