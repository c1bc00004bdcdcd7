"""Drafting in-process with transformers: load gpt-oss-safeguard once per process, batch under one policy.

torch and transformers are imported inside functions only, so importing the package stays cheap
for the web process. A model is loaded on the first draft (never at import) and kept per
(model, device) for the life of the worker.

Every prompt under one policy version starts with the same tokens (system block + policy), often
over a thousand of them. Their keys/values are computed once per prefix and copied into each slot
of `batching.SlotBatcher`, which drafts cases of any length in one batch and gives a finished
case's slot to the next waiting one (in-flight batching). Batched output is token-identical to
drafting each case alone with stock `generate` (tests hold it to that); `use_prefix_cache=False`
keeps that one-at-a-time reference path.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import Generation, PromptRequest
from .batching import PAD_TOKEN_ID, STOP_TOKEN_IDS, SlotBatcher, SlotCase, prepare_model
from .types import FailureReason

logger = logging.getLogger(__name__)
__all__ = ["PAD_TOKEN_ID", "STOP_TOKEN_IDS", "TransformersBackend", "load_model", "model_revision"]
_PREFIX_CACHES_KEPT = 4
_FULL_HASH_LIMIT = 256 * 1024 * 1024  # hash whole weight files up to this size; headers beyond


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    revision: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    prefix_caches: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    load_note: str = ""  # how the weights were loaded (native MXFP4 / dequantised) and the memory


_LOADED: dict[tuple[str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    return "cuda"  # unavailable_reason() has already refused auto/cuda without a GPU


def load_model(model_ref: str, device: str = "auto") -> LoadedModel:
    """Load (once per process and (model, device)) the tokenizer and model. Thread-safe."""
    target = resolve_device(device)
    key = (model_ref, target)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _load(model_ref, target)
            _LOADED[key] = loaded
        return loaded


def _load(model_ref: str, target: str) -> LoadedModel:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model_ref)
    quant = getattr(config, "quantization_config", None)
    quant_method = (
        quant.get("quant_method")
        if isinstance(quant, dict)
        else getattr(quant, "quant_method", None)
    )
    mxfp4 = str(quant_method) == "mxfp4"
    # Loaded with eager attention, then switched to the slot attention (`prepare_model`), which
    # falls back to eager for any caller that is not the batcher.
    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    if target == "cpu":
        # GptOss on CPU: eager attention (and our slot attention built on it) handles the
        # attention sinks. fp32 is faster than bf16 on CPUs.
        kwargs["dtype"] = torch.float32
        if mxfp4:
            from transformers import Mxfp4Config

            # MXFP4 kernels need CUDA; dequantise the expert weights while loading.
            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    else:
        # MXFP4 experts run (or are dequantised) in bf16: every other weight must be bf16 too,
        # or a checkpoint with fp32 non-expert weights fails in its first matmul. A dense
        # checkpoint keeps the dtype its config names (one dtype for all its weights).
        kwargs["dtype"] = torch.bfloat16 if mxfp4 else "auto"
        kwargs["device_map"] = "cuda"
        if mxfp4 and not native_mxfp4_available():
            from transformers import Mxfp4Config

            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    if target != "cpu":
        torch.cuda.reset_peak_memory_stats()
    model = AutoModelForCausalLM.from_pretrained(model_ref, **kwargs)
    if target == "cpu" and next(model.parameters()).dtype != torch.float32:
        model = model.float()
    model.eval()
    prepare_model(model)
    note = load_note(model, target, mxfp4)
    logger.info("safeguard model %s: %s", model_ref, note)
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=target,
        revision=model_revision(model_ref, model),
        load_note=note,
    )


def native_mxfp4_available() -> bool:
    """Whether transformers can run MXFP4 experts natively here (its triton kernels are installed)."""
    import importlib.util

    return importlib.util.find_spec("triton") is not None and (
        importlib.util.find_spec("triton_kernels") is not None
        or importlib.util.find_spec("kernels") is not None
    )


def load_note(model: Any, target: str, mxfp4: bool) -> str:
    """One line: how the expert weights are held and how much memory the model takes."""
    experts = model.model.layers[0].mlp.experts
    native = any("blocks" in name for name, _ in experts.named_parameters()) or any(
        "blocks" in name for name, _ in experts.named_buffers()
    )
    if mxfp4:
        how = (
            "MXFP4 checkpoint, native MXFP4 experts"
            if native
            else "MXFP4 checkpoint, experts dequantised"
        )
    else:
        how = "dense checkpoint"
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    weights_gib = model.get_memory_footprint() / 2**30
    line = f"{how}; {dtype} compute on {target}; weights {weights_gib:.2f} GiB"
    if target != "cpu":
        import torch

        line += f"; GPU memory allocated {torch.cuda.memory_allocated() / 2**30:.2f} GiB"
    return line


def model_revision(model_ref: str, model: Any = None) -> str:
    """An id for the exact weights: the hub commit, or a hash of a local checkpoint's files."""
    path = Path(model_ref)
    if path.is_dir():
        resolved = path.resolve()
        if re.fullmatch(r"[0-9a-f]{40}", resolved.name) and resolved.parent.name == "snapshots":
            return f"commit:{resolved.name}"
        for marker in ("commit_hash", ".commit_hash", "COMMIT"):
            commit_file = resolved / marker
            if commit_file.is_file():
                return f"commit:{commit_file.read_text().strip()[:64]}"
        digest = hashlib.sha256()
        for name in ("config.json", "model.safetensors.index.json"):
            file = resolved / name
            if file.is_file():
                digest.update(name.encode() + b"\0" + file.read_bytes())
        for weights in sorted(resolved.glob("*.safetensors")):
            digest.update(weights.name.encode() + b"\0")
            size = weights.stat().st_size
            with weights.open("rb") as handle:
                if size <= _FULL_HASH_LIMIT:
                    digest.update(handle.read())
                else:  # header (tensor names, shapes, offsets) + size: cheap for 13 GB shards
                    header_len = int.from_bytes(handle.read(8), "little")
                    digest.update(handle.read(min(header_len, 100_000_000)) + str(size).encode())
        return f"sha256:{digest.hexdigest()[:16]}"
    commit = (
        getattr(getattr(model, "config", None), "_commit_hash", None) if model is not None else None
    )
    return f"commit:{commit}" if commit else "unknown"


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        *,
        model: str,
        device: str = "auto",
        batch_size: int = 8,
        use_prefix_cache: bool = True,
        loaded: LoadedModel | None = None,
    ) -> None:
        self.model_ref = model
        self.device = device
        self.batch_size = max(1, batch_size)  # slots of the in-flight batch
        self.use_prefix_cache = use_prefix_cache
        self.last_stats: Any = None  # the last SlotBatcher's counters (benchmarks read them)
        self._preloaded = loaded  # a model built in memory (benchmarks); normally loaded lazily

    def loaded(self) -> LoadedModel:
        if self._preloaded is not None:
            return self._preloaded
        return load_model(self.model_ref, self.device)

    def generate(
        self, requests: Sequence[PromptRequest], *, max_new_tokens: int
    ) -> list[Generation]:
        if not requests:
            return []
        started = time.perf_counter()
        try:
            loaded = self.loaded()
        except Exception as exc:  # a missing or broken checkpoint fails the drafts, not the worker
            detail = f"could not load {self.model_ref!r}: {type(exc).__name__}: {exc}"
            return [
                Generation(
                    error=FailureReason.BACKEND_ERROR,
                    error_detail=detail[:1000],
                    model_id=self.model_ref,
                    latency_ms=int((time.perf_counter() - started) * 1000),
                )
                for _ in requests
            ]
        results: list[Generation | None] = [None] * len(requests)
        with loaded.lock:  # one generate at a time per model: the GPU is the bottleneck anyway
            try:
                self._generate_all(loaded, requests, max_new_tokens, results)
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"[:1000]
                for i, result in enumerate(results):
                    if result is None:
                        results[i] = Generation(
                            error=FailureReason.BACKEND_ERROR,
                            error_detail=detail,
                            model_id=self.model_ref,
                            model_revision=loaded.revision,
                        )
        return [
            r
            if r is not None
            else Generation(error=FailureReason.BACKEND_ERROR, model_id=self.model_ref)
            for r in results
        ]

    # -- internals ---------------------------------------------------------------------------

    def _encode(self, loaded: LoadedModel, text: str) -> list[int]:
        return list(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _generate_all(
        self,
        loaded: LoadedModel,
        requests: Sequence[PromptRequest],
        max_new_tokens: int,
        results: list[Generation | None],
    ) -> None:
        by_prefix: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_prefix[request.prefix_text].append(index)
        for prefix_text, indices in by_prefix.items():
            prefix_ids = self._encode(loaded, prefix_text)
            rows: list[tuple[int, list[int]]] = []
            for index in indices:
                ids = self._encode(loaded, requests[index].prompt_text)
                rows.append((index, ids))
            shares_prefix = all(
                ids[: len(prefix_ids)] == prefix_ids and len(ids) > len(prefix_ids)
                for _, ids in rows
            )
            if not (self.use_prefix_cache and shares_prefix):
                for index, ids in rows:  # one at a time, full prompt, stock generate
                    results[index] = self._generate_alone(loaded, ids, max_new_tokens)
                continue
            batcher = SlotBatcher(
                loaded.model,
                slots=self.batch_size,
                prefix_store=loaded.prefix_caches,
                # Decode steps as CUDA graphs: measured 1.4-1.7x on an H200 (docs/benchmarks.md).
                cuda_graphs=loaded.device == "cuda",
            )
            cases = (
                SlotCase(key=index, ids=ids[len(prefix_ids) :], max_new_tokens=max_new_tokens)
                for index, ids in rows
            )
            for done in batcher.run(prefix_ids, cases):
                results[done.key] = self._generation(
                    loaded,
                    tokens=done.tokens,
                    finish=done.finish_reason,
                    tokens_in=len(prefix_ids) + done.prompt_tokens,
                    latency_ms=done.latency_ms,
                    computed=done.prompt_tokens,  # the shared prefix is counted once, where computed
                )
            if batcher.graph_error:
                logger.warning(
                    "CUDA graph capture failed, decoding eagerly: %s", batcher.graph_error
                )
            while len(loaded.prefix_caches) > _PREFIX_CACHES_KEPT:
                loaded.prefix_caches.popitem(last=False)
            self.last_stats = batcher.stats

    def _generate_alone(
        self, loaded: LoadedModel, ids: list[int], max_new_tokens: int
    ) -> Generation:
        """Stock `generate`, one case, full prompt: the reference the batcher is held to."""
        import torch

        started = time.perf_counter()
        model = loaded.model
        input_ids = torch.tensor([ids], device=model.device)
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=list(STOP_TOKEN_IDS),
                pad_token_id=PAD_TOKEN_ID,
            )
        tokens = output[0, input_ids.shape[1] :].tolist()
        finish = "length"
        for position, token in enumerate(tokens):
            if token in STOP_TOKEN_IDS:
                tokens, finish = tokens[: position + 1], "stop"
                break
        return self._generation(
            loaded,
            tokens=tokens,
            finish=finish,
            tokens_in=len(ids),
            latency_ms=int((time.perf_counter() - started) * 1000),
            computed=len(ids),
        )

    def _generation(
        self,
        loaded: LoadedModel,
        *,
        tokens: list[int],
        finish: str,
        tokens_in: int,
        latency_ms: int,
        computed: int,
    ) -> Generation:
        return Generation(
            text=loaded.tokenizer.decode(tokens, skip_special_tokens=False),
            finish_reason=finish,
            tokens_in=tokens_in,
            tokens_out=len(tokens),
            latency_ms=latency_ms,
            model_id=self.model_ref,
            model_revision=loaded.revision,
            prompt_tokens_computed=computed,
        )
