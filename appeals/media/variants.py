"""The preview a reviewer asked for: blurred or not, grey or in colour (reviewer/preferences.py).

The preview stored at intake is the site default (blurred; grey unless MEDIA_PREVIEW_GRAYSCALE
is off). Any other variant is made here on first use, from our stored original (an image, or
for a video the same sampled frame as its poster), and kept beside it in the media storage. A
variant is always a small re-encoded JPEG: even "no blur" never sends the original, which the
browser gets only on reveal.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile

from appeals.models import MediaAsset

from . import previews, video
from .services import media_storage, open_stored, video_limits


def is_default(*, blur: bool, grayscale: bool) -> bool:
    return blur and grayscale == settings.MEDIA_PREVIEW_GRAYSCALE


def variant_name(asset: MediaAsset, *, blur: bool, grayscale: bool) -> str:
    folder = asset.original.rsplit("/", 1)[0]
    return f"{folder}/preview-{'blur' if blur else 'sharp'}-{'grey' if grayscale else 'colour'}.jpg"


def preview_for(asset: MediaAsset, *, blur: bool, grayscale: bool) -> str:
    """The storage name of the asset's preview in this variant, made now if it is the first
    time anyone asked for it."""
    if is_default(blur=blur, grayscale=grayscale):
        return asset.preview
    name = variant_name(asset, blur=blur, grayscale=grayscale)
    storage = media_storage()
    if storage.exists(name):
        return name
    with open_stored(asset.original) as stored:
        data = stored.read()
    if asset.kind == MediaAsset.Kind.VIDEO:
        try:
            image = video.sample_frames(data, video_limits())[0].image
        except video.VideoUnreadable:
            return asset.preview  # the plain poster: there is no frame to show either way
        content = previews.preview_image(
            image, blur=blur, grayscale=grayscale, label=previews.VIDEO_LABEL
        )
    else:
        content = previews.preview_image(previews.open_image(data), blur=blur, grayscale=grayscale)
    saved = storage.save(name, ContentFile(content))
    if saved != name:  # another request made it at the same moment: keep one
        storage.delete(saved)
    return name
