"""Drafting a stream of cases under one policy: each draft handed back as soon as it is done.

`Engine.draft` is list in, list out: a caller waits for the slowest case. A worker that drains a
queue wants the opposite: read the next case only when there is room for it, and store each
answer the moment it exists. `draft_stream` is that form of the same engine:

    for draft in draft_stream(engine, policy, pending_cases(), conversation_date=today):
        store(draft)  # a slot (or a request) is already working on the next case

The iterable of cases is read lazily, only when a slot or a request is free, so it can be a
generator that takes more work from a database as it goes. Drafts come back in the order they
finish, each with its `case_key`. Same prompts, same parser and same provenance as `Engine.draft`.

- transformers backend: one `SlotBatcher` run per stream (the batch stays full, a finished case's
  slot takes the next case read from the iterable), token-identical to drafting each case alone.
- any other backend (the OpenAI-compatible server): `width` (SAFEGUARD_MAX_CONCURRENCY) requests
  in flight, one per case, from a pool of request threads; the iterable is read to keep one round
  of prepared cases waiting for them (at most 2 × width cases read ahead of the answers taken).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from .backend import Generation, PromptRequest
from .config import unavailable_reason
from .engine import Engine
from .types import CaseSpec, Draft, FailureReason, PolicySpec

logger = logging.getLogger(__name__)
Prepared = tuple[CaseSpec, PromptRequest, tuple[str, ...]]


def stream_width(engine: Engine) -> int:
    """How many cases the engine works on at once: slots in process, requests for a server."""
    config = engine.config
    if engine.backend_name == "transformers":
        return max(1, config.batch_size)
    return max(1, config.max_concurrency)


def draft_stream(
    engine: Engine,
    policy: PolicySpec,
    cases: Iterable[CaseSpec],
    *,
    conversation_date: dt.date,
) -> Iterator[Draft]:
    """One Draft per case, yielded as each finishes. Never raises for model or server problems."""
    cases = iter(cases)
    if engine._backend is None and unavailable_reason(engine.config) is not None:
        for case in cases:  # nothing to run: each draft says which setting fixes it
            yield from engine.draft(policy, [case], conversation_date=conversation_date)
        return
    backend = engine.backend()
    if backend.name == "transformers" and getattr(backend, "use_prefix_cache", False):
        yield from _slot_stream(engine, backend, policy, cases, conversation_date)
    else:
        yield from _pool_stream(engine, backend, policy, cases, conversation_date)


def _prepare(engine: Engine, policy: PolicySpec, case: CaseSpec, date: dt.date) -> Prepared:
    ((request, signals),) = engine.prepare(policy, [case], conversation_date=date)
    return case, request, signals


def _failed(engine: Engine, detail: str, started: float) -> Generation:
    return Generation(
        error=FailureReason.BACKEND_ERROR,
        error_detail=detail[:1000],
        model_id=engine.config.model,
        latency_ms=int((time.perf_counter() - started) * 1000),
    )


def _pool_stream(engine, backend, policy, cases, date) -> Iterator[Draft]:
    """`width` request threads take prepared cases from a queue that the caller's thread keeps
    topped up (one round ahead), so a request that comes back is followed by the next at once,
    even while the caller is still storing earlier answers."""
    width = stream_width(engine)
    max_new_tokens = engine.config.max_new_tokens
    todo: queue.Queue[Prepared | None] = queue.Queue()
    done: queue.Queue[tuple[Prepared, Generation]] = queue.Queue()

    def request_loop() -> None:
        while (prepared := todo.get()) is not None:
            started = time.perf_counter()
            try:
                (generation,) = backend.generate([prepared[1]], max_new_tokens=max_new_tokens)
            except Exception as exc:  # backends shouldn't raise; if one does, say so
                generation = _failed(engine, f"{type(exc).__name__}: {exc}", started)
            done.put((prepared, generation))

    outstanding = 0  # cases read from the iterable whose drafts are not yet handed back
    exhausted = False
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="safeguard-request") as pool:
        for _ in range(width):
            pool.submit(request_loop)
        try:
            while True:
                while not exhausted and todo.qsize() < width:
                    case = next(cases, None)
                    if case is None:
                        exhausted = True
                        break
                    todo.put(_prepare(engine, policy, case, date))
                    outstanding += 1
                if not outstanding:
                    return
                try:
                    (case, request, signals), generation = done.get(timeout=0.05)
                except queue.Empty:
                    continue
                outstanding -= 1
                yield engine._to_draft(policy, case, request, signals, generation)
        finally:  # also when the caller stops early: queued cases are dropped, requests end
            while True:
                try:
                    todo.get_nowait()
                except queue.Empty:
                    break
            for _ in range(width):
                todo.put(None)


def _slot_stream(engine, backend, policy, cases, date) -> Iterator[Draft]:
    from .batching import SlotBatcher, SlotCase
    from .transformers_backend import _PREFIX_CACHES_KEPT

    started = time.perf_counter()
    first = next(cases, None)
    if first is None:
        return
    first_prepared = _prepare(engine, policy, first, date)
    try:
        loaded = backend.loaded()
    except Exception as exc:  # a missing or broken checkpoint fails the drafts, not the worker
        detail = f"could not load {backend.model_ref!r}: {type(exc).__name__}: {exc}"
        for case, request, signals in _chain_prepared(engine, policy, first_prepared, cases, date):
            yield engine._to_draft(policy, case, request, signals, _failed(engine, detail, started))
        return
    max_new_tokens = engine.config.max_new_tokens
    prefix_text = first_prepared[1].prefix_text
    alone: list[tuple[Prepared, list[int]]] = []  # prompts that do not start with the prefix
    fed: dict[int, Prepared] = {}
    with loaded.lock:  # one run at a time per model, as in TransformersBackend.generate
        prefix_ids = backend._encode(loaded, prefix_text)

        def slot_cases() -> Iterator[SlotCase]:
            for n, prepared in enumerate(
                _chain_prepared(engine, policy, first_prepared, cases, date)
            ):
                ids = backend._encode(loaded, prepared[1].prompt_text)
                shares = (
                    prepared[1].prefix_text == prefix_text
                    and ids[: len(prefix_ids)] == prefix_ids
                    and len(ids) > len(prefix_ids)
                )
                if not shares:
                    alone.append((prepared, ids))
                    continue
                fed[n] = prepared
                yield SlotCase(key=n, ids=ids[len(prefix_ids) :], max_new_tokens=max_new_tokens)

        batcher = SlotBatcher(
            loaded.model,
            slots=backend.batch_size,
            prefix_store=loaded.prefix_caches,
            cuda_graphs=loaded.device == "cuda",
        )
        try:
            for done in batcher.run(prefix_ids, slot_cases()):
                case, request, signals = fed.pop(done.key)
                generation = backend._generation(
                    loaded,
                    tokens=done.tokens,
                    finish=done.finish_reason,
                    tokens_in=len(prefix_ids) + done.prompt_tokens,
                    latency_ms=done.latency_ms,
                    computed=done.prompt_tokens,
                )
                yield engine._to_draft(policy, case, request, signals, generation)
        except Exception as exc:
            # The cases read so far and not finished fail; cases not yet read stay with the caller.
            detail = f"{type(exc).__name__}: {exc}"
            for case, request, signals in list(fed.values()):
                yield engine._to_draft(
                    policy, case, request, signals, _failed(engine, detail, started)
                )
            fed.clear()
        if batcher.graph_error:
            logger.warning("CUDA graph capture failed, decoding eagerly: %s", batcher.graph_error)
        backend.last_stats = batcher.stats
        while len(loaded.prefix_caches) > _PREFIX_CACHES_KEPT:
            loaded.prefix_caches.popitem(last=False)
        for (case, request, signals), ids in alone:
            generation = backend._generate_alone(loaded, ids, max_new_tokens)
            yield engine._to_draft(policy, case, request, signals, generation)


def _chain_prepared(engine, policy, first: Prepared, cases, date) -> Iterator[Prepared]:
    yield first
    for case in cases:
        yield _prepare(engine, policy, case, date)
