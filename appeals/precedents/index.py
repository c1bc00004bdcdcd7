"""The nearest-neighbour index of decided items (usearch, HNSW, cosine, float16), a cache.

Keys are item ids; an item is in the index once it has an embedding of the current model and a
decided case. The database is the truth: the index is rebuilt from it on demand
(`manage.py rebuild_precedents`), and a loaded index catches up incrementally before it answers,
from the embedding and decision rows above its watermarks (with an overlap, so that a row whose
transaction committed after a later id was seen is still picked up; keys already present are
skipped). Every hit is re-checked in the database by the caller (services.py).

On disk: `<PRECEDENTS_INDEX_DIR>/precedents.usearch` and a JSON sidecar with the model, the
watermarks, the key count and the index file's size. A file that is missing, unreadable, of
another model, or disagrees with its sidecar is rebuilt from the database (where that is small
enough to do at once) or reported by a clear message naming the command; never trusted.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import Max

from appeals.models import Case, Decision, Embedding

from . import embedder

log = logging.getLogger(__name__)

INDEX_FILE = "precedents.usearch"
META_FILE = "precedents.json"
FORMAT = 1
# Catch-up re-reads this many ids below each watermark (rows that committed late).
OVERLAP = 1000
OVERLAP_SECONDS = 10.0
# Candidates the graph search keeps (HNSW "ef"): at 1,000,000 cases 256 found 83% of the exact
# top 5 (64: 72%) for 2 ms a query instead of 1 (bench/precedent_bench.py, docs/benchmarks.md).
EXPANSION_SEARCH = 256
CHUNK = 5000


class IndexUnavailable(Exception):
    """No usable index, and the database is too large to rebuild one inside a request."""


@dataclass
class Marks:
    embedding: int = 0
    decision: int = 0


def index_dir() -> Path:
    return Path(settings.PRECEDENTS_INDEX_DIR)


def _new_index():
    from usearch.index import Index

    return Index(
        ndim=embedder.DIMS,
        metric="cos",
        dtype=settings.PRECEDENTS_INDEX_DTYPE,
        connectivity=16,
        expansion_add=128,
        expansion_search=EXPANSION_SEARCH,
    )


def _current_embeddings():
    model = embedder.model_id()
    return Embedding.objects.filter(
        model_name=model.name, model_version=model.version, dims=embedder.DIMS
    )


def _decided_among(item_ids: list[int]) -> list[int]:
    """Those of `item_ids` with a decided case (through the index on the case's item)."""
    found: set[int] = set()
    for start in range(0, len(item_ids), 500):
        found.update(
            Case.objects.filter(
                item_id__in=item_ids[start : start + 500], status=Case.Status.DECIDED
            ).values_list("item_id", flat=True)
        )
    return sorted(found)


def _vectors(rows) -> tuple[np.ndarray, np.ndarray]:
    keys, vectors = [], []
    for item_id, raw, dtype in rows:
        try:
            vectors.append(embedder.from_bytes(raw, dtype))
        except ValueError:
            log.warning("embedding of item %s is malformed; left out of the index", item_id)
            continue
        keys.append(item_id)
    if not keys:
        return np.zeros(0, dtype=np.uint64), np.zeros((0, embedder.DIMS), dtype=np.float32)
    return np.asarray(keys, dtype=np.uint64), np.vstack(vectors)


class PrecedentIndex:
    """One process's copy of the index, with the watermarks it has caught up to."""

    def __init__(self, index=None, marks: Marks | None = None):
        self.index = index if index is not None else _new_index()
        self.marks = marks or Marks()
        self.file_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file it read
        self.overlap_checked = float("-inf")  # when catch-up last re-read below its watermarks

    def __len__(self) -> int:
        return len(self.index)

    def _add(self, rows) -> int:
        keys, vectors = _vectors(rows)
        if not len(keys):
            return 0
        present = np.asarray(self.index.contains(keys), dtype=bool).reshape(-1)
        keys, vectors = keys[~present], vectors[~present]
        # Duplicates inside one batch (an item decided twice) are added once.
        keys, first = np.unique(keys, return_index=True)
        vectors = vectors[first]
        if len(keys):
            self.index.add(keys, vectors, threads=1)
        return len(keys)

    def _missing(self, item_ids) -> list[int]:
        keys = np.asarray(sorted(set(item_ids)), dtype=np.uint64)
        if not len(keys):
            return []
        present = np.asarray(self.index.contains(keys), dtype=bool).reshape(-1)
        return [int(k) for k in keys[~present]]

    def catch_up(self) -> int:
        """Add what became eligible since the watermarks: new embeddings of decided items and
        items newly decided. Ids and item ids are read first; vectors only for items the index
        lacks. Every OVERLAP_SECONDS the scan starts OVERLAP ids below each watermark, for rows
        whose transaction committed after a later id had been seen. Returns how many keys were
        added."""
        now = time.monotonic()
        overlap = OVERLAP if now - self.overlap_checked >= OVERLAP_SECONDS else 0
        if overlap:
            self.overlap_checked = now
        added = 0
        top_embedding, top_decision = self.marks.embedding, self.marks.decision
        start = max(0, self.marks.embedding - overlap)
        while True:
            rows = list(
                _current_embeddings()
                .filter(id__gt=start)
                .order_by("id")
                .values_list("id", "item_id")[:CHUNK]
            )
            if not rows:
                break
            missing = self._missing(item for _, item in rows)
            decided = _decided_among(missing) if missing else []
            added += self._add_items(decided)
            start = top_embedding = max(top_embedding, rows[-1][0])
        # Embeddings of undecided items are not in the index; they become eligible by decision.
        top_embedding = max(top_embedding, _current_embeddings().aggregate(m=Max("id"))["m"] or 0)
        start = max(0, self.marks.decision - overlap)
        while True:
            decisions = list(
                Decision.objects.filter(id__gt=start)
                .order_by("id")
                .values_list("id", "case__item_id")[:CHUNK]
            )
            if not decisions:
                break
            added += self._add_items(self._missing(item for _, item in decisions))
            start = top_decision = max(top_decision, decisions[-1][0])
        self.marks = Marks(top_embedding, top_decision)
        return added

    def _add_items(self, item_ids: list[int]) -> int:
        if not item_ids:
            return 0
        return self._add(
            list(
                _current_embeddings()
                .filter(item_id__in=item_ids)
                .values_list("item_id", "vector", "dtype")
            )
        )

    def search(self, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
        """(item id, cosine similarity by the index) of the nearest keys; a hint, not a fact."""
        if len(self.index) == 0 or count <= 0:
            return []
        matches = self.index.search(
            np.asarray(vector, dtype=np.float32), min(count, len(self.index)), threads=1
        )
        return [
            (int(key), 1.0 - float(distance))
            for key, distance in zip(matches.keys, matches.distances, strict=True)
        ]

    # --- files -----------------------------------------------------------------------------

    def save(self, directory: Path | None = None) -> Path:
        """Write the index and its sidecar atomically (temporary files, then rename)."""
        directory = directory or index_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path, meta_path = directory / INDEX_FILE, directory / META_FILE
        tmp = directory / f".{INDEX_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp_meta = directory / f".{META_FILE}.{os.getpid()}.{threading.get_ident()}"
        self.index.save(str(tmp))
        model = embedder.model_id()
        meta = {
            "format": FORMAT,
            "model_name": model.name,
            "model_version": model.version,
            "dims": embedder.DIMS,
            "dtype": settings.PRECEDENTS_INDEX_DTYPE,
            "count": len(self.index),
            "bytes": tmp.stat().st_size,
            "embedding_mark": self.marks.embedding,
            "decision_mark": self.marks.decision,
        }
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp, path)
        os.replace(tmp_meta, meta_path)
        stat = path.stat()
        self.file_stamp = (stat.st_mtime_ns, stat.st_size)
        return path


def file_stamp(directory: Path | None = None) -> tuple[int, int] | None:
    try:
        stat = ((directory or index_dir()) / INDEX_FILE).stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def load(directory: Path | None = None) -> PrecedentIndex:
    """The index on disk. Raises ValueError naming what is wrong with it (missing, unreadable,
    another model, or not the file its sidecar describes)."""

    directory = directory or index_dir()
    path, meta_path = directory / INDEX_FILE, directory / META_FILE
    if not path.exists() or not meta_path.exists():
        raise ValueError(f"no precedent index in {directory}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"the index's sidecar {meta_path} is unreadable: {error}") from error
    model = embedder.model_id()
    expected = {
        "format": FORMAT,
        "model_name": model.name,
        "model_version": model.version,
        "dims": embedder.DIMS,
        "dtype": settings.PRECEDENTS_INDEX_DTYPE,
    }
    for key, value in expected.items():
        if meta.get(key) != value:
            raise ValueError(f"the index on disk has {key}={meta.get(key)!r}, not {value!r}")
    stamp = file_stamp(directory)
    if stamp is None or stamp[1] != meta.get("bytes"):
        raise ValueError(f"{path} is not the file its sidecar describes (size differs)")
    index = _new_index()
    try:
        index.load(str(path))
    except Exception as error:  # noqa: BLE001 - usearch raises RuntimeError or ValueError
        raise ValueError(f"{path} is unreadable: {error}") from error
    index.expansion_search = EXPANSION_SEARCH  # a query setting, whatever the file says
    if len(index) != meta.get("count") or index.ndim != embedder.DIMS:
        raise ValueError(f"{path} holds {len(index)} keys, its sidecar says {meta.get('count')}")
    loaded = PrecedentIndex(index, Marks(meta["embedding_mark"], meta["decision_mark"]))
    loaded.file_stamp = stamp
    return loaded


def build() -> PrecedentIndex:
    """A new index from the database: every current embedding of a decided item."""
    fresh = PrecedentIndex()
    fresh.catch_up()
    return fresh


def rebuild(directory: Path | None = None) -> PrecedentIndex:
    fresh = build()
    fresh.save(directory)
    return fresh


def database_is_behind(loaded: PrecedentIndex) -> bool:
    """A watermark above every row in the database: the file was built from another database
    (or one since emptied), so its keys mean nothing here."""
    top_embedding = _current_embeddings().aggregate(m=Max("id"))["m"] or 0
    top_decision = Decision.objects.aggregate(m=Max("id"))["m"] or 0
    return loaded.marks.embedding > top_embedding or loaded.marks.decision > top_decision


# --- this process's copy -------------------------------------------------------------------------

_lock = threading.RLock()
_current: PrecedentIndex | None = None


def current() -> PrecedentIndex:
    """This process's index, caught up with the database. Reads the file when another process
    saved a newer one; rebuilds from the database when there is none usable and the database is
    small enough (PRECEDENTS_INLINE_REBUILD_MAX embeddings), else raises IndexUnavailable."""
    global _current
    with _lock:
        if _current is not None and database_is_behind(_current):
            _current = None  # built from another database (or one since emptied)
        stamp = file_stamp()
        if _current is None or (stamp is not None and stamp != _current.file_stamp):
            try:
                candidate = load()
                if database_is_behind(candidate):
                    raise ValueError("its watermarks are above every row in this database")
                if _current is None or candidate.marks.embedding >= _current.marks.embedding:
                    _current = candidate
            except ValueError as problem:
                if _current is None:
                    _current = _rebuild_inline(str(problem))
        _current.catch_up()
        return _current


def search(vector: np.ndarray, count: int) -> list[tuple[int, float]]:
    """This process's index, caught up, searched (under the lock: no add while it searches)."""
    with _lock:
        return current().search(vector, count)


def save_if_stale(max_age_seconds: float) -> bool:
    """Write the index file if there is none or it is older than `max_age_seconds`, then drop
    this process's copy (a worker keeps no index in memory between saves). Returns whether it
    wrote. Saving after every batch would rewrite hundreds of megabytes a minute at a million
    cases; readers catch up from the database anyway."""
    stamp = file_stamp()
    if stamp is not None and time.time() - stamp[0] / 1e9 < max_age_seconds:
        return False
    with _lock:
        try:
            current().save()
        finally:
            forget()
    return True


def _rebuild_inline(problem: str) -> PrecedentIndex:
    total = _current_embeddings().count()
    if total > settings.PRECEDENTS_INLINE_REBUILD_MAX:
        raise IndexUnavailable(
            f"The precedent index is not usable ({problem}) and {total} embeddings are too many "
            "to rebuild during a page view: run `manage.py rebuild_precedents`."
        )
    log.warning("precedent index not usable (%s); rebuilding from %s embeddings", problem, total)
    fresh = build()
    try:
        fresh.save()
    except OSError as error:
        log.warning("could not save the rebuilt precedent index: %s", error)
    return fresh


def forget() -> None:
    """Drop this process's copy (tests; after a rebuild in the same process)."""
    global _current
    with _lock:
        _current = None
