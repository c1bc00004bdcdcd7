"""What belongs to a reviewer rather than to a case: their own display preferences."""

from django.conf import settings
from django.db import models


class ReviewerPreference(models.Model):
    """A reviewer's own defaults for how media and harmful text are shown before they look
    (reviewer/preferences.py). No row means the site defaults."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_preference"
    )
    blur_media = models.BooleanField(
        default=True, help_text="Blur images and video posters until I reveal them."
    )
    grayscale_media = models.BooleanField(
        default=True, help_text="Show previews in grey rather than colour."
    )
    blur_text = models.BooleanField(
        default=True,
        help_text="Blur the text of cases from moderation data sets, or that the fast tier "
        "scores as offensive, until I reveal it.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"
