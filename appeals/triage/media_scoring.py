"""The fast tier on an item's stored image or video: which image classifiers run
(TRIAGE_IMAGE_CLASSIFIERS: NudeNet offline by default, and/or a transformers
image-classification model) and what each stores.

A video is scored on a few sampled frames (appeals/media/video.py, limits in its docstring): the
signal's score is the highest any frame got, and its details list each frame's score with where
in the video it is. Only our stored copy is read, through the storage API; never a platform URL.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from django.conf import settings

from appeals.media import services as media_services
from appeals.media import video
from appeals.models import MediaAsset, SignalKind

from . import classifiers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaScore:
    kind: str
    model: classifiers.ModelId
    score: float
    label: str
    details: dict


def image_kinds() -> set[str]:
    """The signal kinds an image or video gets under this configuration."""
    kinds = set()
    if "nudenet" in settings.TRIAGE_IMAGE_CLASSIFIERS:
        kinds.add(SignalKind.NUDITY)
    if "transformers" in settings.TRIAGE_IMAGE_CLASSIFIERS:
        kinds.add(SignalKind.NSFW)
    return kinds


@dataclass(frozen=True)
class _Picture:
    data: bytes  # encoded, as NudeNet reads it
    seconds: float | None  # where in the video; None for an image

    def pil(self):
        from PIL import Image

        return Image.open(io.BytesIO(self.data)).convert("RGB")


def _pictures(asset: MediaAsset) -> list[_Picture]:
    with media_services.open_stored(asset.original) as stored:
        data = stored.read()
    if asset.kind == MediaAsset.Kind.IMAGE:
        return [_Picture(data, None)]
    try:
        frames = video.sample_frames(data, media_services.video_limits())
    except video.VideoUnreadable as error:
        log.warning("video of item %s: no frames to score (%s)", asset.item_id, error)
        return []
    pictures = []
    for frame in frames:
        out = io.BytesIO()
        frame.image.save(out, format="JPEG", quality=90)
        pictures.append(_Picture(out.getvalue(), round(frame.seconds, 2)))
    return pictures


def _nudity(pictures: list[_Picture]) -> MediaScore:
    results = classifiers.detect_nudity_batch([p.data for p in pictures])
    best = max(range(len(results)), key=lambda i: results[i].score)
    top = results[best]
    details: dict = {
        "detections": [
            {"label": d.label, "score": d.score, "box": list(d.box)} for d in top.detections
        ]
    }
    if pictures[best].seconds is not None:
        details["frames"] = [
            {"seconds": p.seconds, "score": r.score, "label": r.label}
            for p, r in zip(pictures, results, strict=True)
        ]
        details["at_seconds"] = pictures[best].seconds
    return MediaScore(SignalKind.NUDITY, classifiers.nudity_model(), top.score, top.label, details)


def _nsfw(pictures: list[_Picture]) -> MediaScore:
    model, results = classifiers.classify_images(
        [p.pil() for p in pictures],
        model=settings.TRIAGE_IMAGE_MODEL,
        revision=settings.TRIAGE_IMAGE_MODEL_REVISION,
        unsafe_labels=settings.TRIAGE_IMAGE_UNSAFE_LABELS,
    )
    best = max(range(len(results)), key=lambda i: results[i].score)
    details: dict = {"scores": results[best].scores}
    if pictures[best].seconds is not None:
        details["frames"] = [
            {"seconds": p.seconds, "score": r.score, "label": r.label}
            for p, r in zip(pictures, results, strict=True)
        ]
        details["at_seconds"] = pictures[best].seconds
    return MediaScore(SignalKind.NSFW, model, results[best].score, results[best].label, details)


def score_stored_media(asset: MediaAsset) -> list[MediaScore]:
    """Each configured image classifier's signal for a stored image or video ([] when nothing
    decodes). A model that cannot load raises `classifiers.ImageModelUnavailable`."""
    pictures = _pictures(asset)
    if not pictures:
        return []
    kinds = image_kinds()
    scores = []
    if SignalKind.NUDITY in kinds:
        scores.append(_nudity(pictures))
    if SignalKind.NSFW in kinds:
        scores.append(_nsfw(pictures))
    return scores
