"""The fast tier's models, framework-free: plain strings and paths in, small frozen dataclasses
out. Each model is loaded once per process on first use (they ship inside their wheels: nothing
is downloaded) and names itself with the version of the package that ships it.

- offensive language: `alt-profanity-check` (a linear SVM over a bag of words, scikit-learn),
- language: lingua through `policies.language.detect_language`,
- nudity: NudeNet's detector (its ONNX model run by onnxruntime, `nudity.py`), labels, scores
  and boxes;
- optionally, an image-classification model through transformers' pipeline (below).
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


def onnx_threads() -> int:
    """TRIAGE_ONNX_THREADS: onnxruntime threads per worker process for NudeNet (default 1;
    0 means onnxruntime's own default, every core). Read from the environment at first use."""
    import os

    raw = os.environ.get("TRIAGE_ONNX_THREADS", "1").strip() or "1"
    if not raw.isdigit():
        raise ValueError(f"TRIAGE_ONNX_THREADS must be a whole number, not {raw!r}")
    return int(raw)


def _detector():
    """NudeNet's model and thresholds, run by our own session (nudity.py says why)."""
    global _nude_detector
    with _lock:
        if _nude_detector is None:
            from .nudity import NudityRunner

            _nude_detector = NudityRunner(threads=onnx_threads())
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


# --- a production image classifier through transformers (optional) -----------------------------


class ImageModelUnavailable(Exception):
    """The configured image-classification model could not be loaded: named, never a stack of
    transformers internals on the case page."""


@dataclass(frozen=True)
class ImageClass:
    score: float  # the summed probability of the unsafe labels
    label: str  # the model's top label
    scores: dict[str, float]  # every label's probability


@dataclass(frozen=True)
class _LoadedPipeline:
    pipeline: object
    model: ModelId


_pipelines: dict[tuple[str, str], _LoadedPipeline] = {}


def _local_version(path: str) -> str:
    """A local checkpoint has no hub commit: name it by a hash of its config and weights."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for name in sorted(p.name for p in Path(path).iterdir() if p.is_file()):
        if name.endswith((".json", ".safetensors", ".bin")):
            digest.update(name.encode())
            with open(Path(path) / name, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return "local-" + digest.hexdigest()[:12]


def image_pipeline(model: str, revision: str = "main") -> _LoadedPipeline:
    """transformers' image-classification pipeline for `model` (a hub id or a local folder) at
    `revision`, loaded once per process on the CPU. transformers is imported here, lazily."""
    import os

    key = (model, revision)
    with _lock:
        if key in _pipelines:
            return _pipelines[key]
        try:
            from transformers import pipeline
        except ImportError as error:
            raise ImageModelUnavailable(
                f"the image model {model!r} needs transformers and torch, which are not "
                f"installed ({error}); install the 'model' extra or use TRIAGE_IMAGE_CLASSIFIERS="
                "nudenet"
            ) from None
        local = os.path.isdir(model)
        try:
            loaded = pipeline(
                "image-classification",
                model=model,
                revision=None if local else (revision or None),
                device="cpu",
            )
        except Exception as error:  # OSError (not found, offline), ValueError (not a classifier)
            raise ImageModelUnavailable(
                f"the image model {model!r} (revision {revision or 'main'}) could not be loaded: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            ) from None
        commit = getattr(loaded.model.config, "_commit_hash", None)
        version = _local_version(model) if local else (commit or revision or "main")
        name = os.path.basename(os.path.normpath(model)) if local else model
        _pipelines[key] = _LoadedPipeline(loaded, ModelId(name, version))
        return _pipelines[key]


def classify_images(
    images: Sequence, *, model: str, revision: str, unsafe_labels: Sequence[str]
) -> tuple[ModelId, list[ImageClass]]:
    """The model's label probabilities for each image (PIL images), and which model said so.
    An image's score is the summed probability of `unsafe_labels`."""
    loaded = image_pipeline(model, revision)
    if not images:
        return loaded.model, []
    unsafe = {label.lower() for label in unsafe_labels}
    raw = loaded.pipeline(list(images), top_k=None)
    if images and isinstance(raw[0], dict):  # one image: a flat list of labels
        raw = [raw]
    results = []
    for answers in raw:
        scores = {str(a["label"]): round(float(a["score"]), 4) for a in answers}
        top = max(scores, key=scores.get)
        score = sum(v for k, v in scores.items() if k.lower() in unsafe)
        results.append(ImageClass(round(min(1.0, score), 4), top, scores))
    return loaded.model, results
