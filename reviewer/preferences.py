"""A reviewer's own defaults for media (issue 14): blur and grayscale of the preview that the
case page shows before they choose to look, and whether harmful text is blurred until revealed. The page `/preferences/` sets them; the preview view
serves the variant they chose (appeals/media/variants.py). Whatever they choose, the original is
sent only when they press Reveal: "no blur" is a sharp but small re-encoded preview, never it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from appeals.media import services as media
from appeals.media import variants
from appeals.models import MediaAsset

from .models import ReviewerPreference


@dataclass(frozen=True)
class MediaPrefs:
    blur: bool
    grayscale: bool
    blur_text: bool = True  # harmful text (`text_is_sensitive`) blurred until revealed

    @property
    def key(self) -> str:
        """Part of the preview's URL, so a browser never shows a cached other variant."""
        return f"{'b' if self.blur else 's'}{'g' if self.grayscale else 'c'}"


def site_default() -> MediaPrefs:
    return MediaPrefs(blur=True, grayscale=settings.MEDIA_PREVIEW_GRAYSCALE)


def media_prefs(user) -> MediaPrefs:
    """The user's choice, or the site default where they have made none."""
    if not getattr(user, "is_authenticated", False):
        return site_default()
    row = ReviewerPreference.objects.filter(user_id=user.id).first()
    if row is None:
        return site_default()
    return MediaPrefs(blur=row.blur_media, grayscale=row.grayscale_media, blur_text=row.blur_text)


@transaction.atomic
def set_media_prefs(
    user, *, blur: bool, grayscale: bool, blur_text: bool = True
) -> ReviewerPreference:
    row, _ = ReviewerPreference.objects.update_or_create(
        user=user,
        defaults={"blur_media": blur, "grayscale_media": grayscale, "blur_text": blur_text},
    )
    return row


# Data sets whose texts are moderation material (../shared/datasets/README.md: "never render them
# unblurred by default in demos"); the demo records the set in the item's metadata.
MODERATION_DATASETS = frozenset({"openai-moderation", "hatecheck"})
OFFENSIVE_BLUR_SCORE = 0.5


def text_is_sensitive(item, offensive_score: float | None = None) -> bool:
    """Whether an item's text is blurred for a reviewer who asked for that: it comes from a
    moderation data set, or the fast tier scores it as offensive."""
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    if metadata.get("dataset") in MODERATION_DATASETS:
        return True
    return offensive_score is not None and offensive_score >= OFFENSIVE_BLUR_SCORE


class PreferencesForm(forms.Form):
    blur_media = forms.BooleanField(
        required=False,
        label="Blur images and video posters until I reveal them",
        help_text="Off: a sharp preview, still small and made on our server.",
    )
    grayscale_media = forms.BooleanField(
        required=False, label="Show previews in grey", help_text="Off: in colour."
    )
    blur_text = forms.BooleanField(
        required=False,
        label="Blur harmful text until I reveal it",
        help_text="Texts from moderation data sets, and texts the fast tier scores as offensive.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def preferences_page(request):
    current = media_prefs(request.user)
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            set_media_prefs(
                request.user,
                blur=form.cleaned_data["blur_media"],
                grayscale=form.cleaned_data["grayscale_media"],
                blur_text=form.cleaned_data["blur_text"],
            )
            messages.success(request, "Your preferences are saved.")
            return redirect("preferences")
    else:
        form = PreferencesForm(
            initial={
                "blur_media": current.blur,
                "grayscale_media": current.grayscale,
                "blur_text": current.blur_text,
            }
        )
    return render(request, "reviewer/preferences.html", {"form": form, "prefs": current})


@require_GET
def case_media_preview(request, case_id):
    """The case's preview in the reviewer's chosen variant. Same access rule and headers as
    the original (views.case_media); it is never the original."""
    from .views import MEDIA_RESPONSE_HEADERS, _viewable_case

    case = _viewable_case(request, case_id)
    asset = get_object_or_404(MediaAsset, item_id=case.item_id, status=MediaAsset.Status.STORED)
    prefs = media_prefs(request.user)
    name = variants.preview_for(asset, blur=prefs.blur, grayscale=prefs.grayscale)
    extension = name.rsplit(".", 1)[-1]
    response = FileResponse(
        media.open_stored(name),
        content_type={"jpg": "image/jpeg", "png": "image/png"}.get(
            extension, "application/octet-stream"
        ),
        as_attachment=False,
        filename=f"case-{case.id}-preview.{extension}",
    )
    for header, value in MEDIA_RESPONSE_HEADERS.items():
        response[header] = value
    return response
