"""The fast tier's models, framework-free: plain strings and paths in, small frozen dataclasses
out. Each model is loaded once per process on first use (they ship inside their wheels: nothing
is downloaded) and names itself with the version of the package that ships it.

- offensive language: `alt-profanity-check` (a linear SVM over a bag of words, scikit-learn),
- language: lingua through `policies.language.detect_language`,
- nudity: NudeNet's detector (an ONNX model run by onnxruntime), labels, scores and boxes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from policies.language import detect_language, detect_languages

# NudeNet labels that count as nudity for the score; the others (faces, covered parts, feet,
# armpits) are kept in the detections but do not raise it.
EXPOSED_LABELS = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)

_lock = threading.Lock()
_nude_detector = None


@dataclass(frozen=True)
class ModelId:
    name: str
    version: str


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[int, int, int, int]  # x, y, width, height in pixels


@dataclass(frozen=True)
class NudityResult:
    score: float  # the highest score among exposed labels, 0 if none
    label: str  # that label, or "" if none
    detections: tuple[Detection, ...]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def offensive_model() -> ModelId:
    return ModelId("alt-profanity-check", _version("alt-profanity-check"))


def language_model() -> ModelId:
    return ModelId("lingua-language-detector", _version("lingua-language-detector"))


def nudity_model() -> ModelId:
    return ModelId("nudenet", _version("nudenet"))


def offensive_scores(texts: Sequence[str]) -> list[float]:
    """The probability that each text is offensive (0–1), in one vectorised call."""
    if not texts:
        return []
    from profanity_check import predict_prob

    return [min(1.0, max(0.0, float(p))) for p in predict_prob(list(texts))]


def language_of(text: str) -> str | None:
    return detect_language(text)


def languages_of(texts: Sequence[str]) -> list[str | None]:
    return detect_languages(list(texts)) if texts else []


def _detector():
    global _nude_detector
    with _lock:
        if _nude_detector is None:
            from nudenet import NudeDetector

            _nude_detector = NudeDetector()
        return _nude_detector


def _result(raw: list[dict]) -> NudityResult:
    detections = tuple(
        sorted(
            (
                Detection(
                    label=str(d["class"]),
                    score=round(float(d["score"]), 4),
                    box=tuple(int(v) for v in d["box"]),
                )
                for d in raw
            ),
            key=lambda d: -d.score,
        )
    )
    exposed = [d for d in detections if d.label in EXPOSED_LABELS]
    top = exposed[0] if exposed else None
    return NudityResult(
        score=top.score if top else 0.0, label=top.label if top else "", detections=detections
    )


def detect_nudity(image: bytes | str) -> NudityResult:
    """NudeNet's detections on an image: its encoded bytes (our stored copy, never a platform
    URL) or a file path."""
    return _result(_detector().detect(image))


def detect_nudity_batch(images: Sequence[bytes | str]) -> list[NudityResult]:
    if not images:
        return []
    return [_result(raw) for raw in _detector().detect_batch(list(images))]
