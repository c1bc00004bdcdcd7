"""Drafting in-process with transformers: load gpt-oss-safeguard once per process, batch under one policy.

torch and transformers are imported inside functions only, so importing the package stays cheap
for the web process. A model is loaded on the first draft (never at import) and kept per
(model, device) for the life of the worker.

Every prompt under one policy version starts with the same tokens (system block + policy), often
over a thousand of them. The key/value cache of that prefix is computed once and reused: per
batch it is deep-copied (generate mutates the cache it is given) and repeated to the batch size.
Cases are batched only with cases of the same token length, because padding between the prefix
and a case would count against GptOss's sliding-window layers and change the output; batched
output is token-identical to one-at-a-time (tests hold it to that).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backend import Generation, PromptRequest
from .types import FailureReason

# <|return|>, <|endoftext|>, <|call|>: the model's answer (or an unsupported tool call) ends here.
STOP_TOKEN_IDS = (200002, 199999, 200012)
PAD_TOKEN_ID = 199999
_PREFIX_CACHES_KEPT = 4
_FULL_HASH_LIMIT = 256 * 1024 * 1024  # hash whole weight files up to this size; headers beyond


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    revision: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    prefix_caches: OrderedDict[str, Any] = field(default_factory=OrderedDict)


_LOADED: dict[tuple[str, str], LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


SDPA_SINKS = "safeguard_fused_sinks"  # no "sdpa" in the name: transformers reserves it


def sdpa_sinks_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """GptOss attention through torch's fused scaled_dot_product_attention, sinks included exactly.

    GptOss adds a learned per-head "sink" logit to every softmax and drops its column afterwards.
    The same softmax comes out of SDPA with one extra key/value pair that is all zeros: its score
    is q·0 + mask, so putting the sink into the additive mask's extra column gives exactly that
    logit, and its zero value adds nothing to the output. Unlike eager attention this never
    materialises the probabilities in Python-visible tensors or repeats the KV heads.
    """
    import torch
    import torch.nn.functional as F

    batch, heads, q_len, _ = query.shape
    kv_len = key.shape[2]
    key = F.pad(key, (0, 0, 0, 1))
    value = F.pad(value, (0, 0, 0, 1))
    if attention_mask is None:
        base = query.new_zeros(batch, heads, q_len, kv_len)
    else:
        mask = attention_mask[:, :, :, :kv_len]
        if mask.dtype == torch.bool:
            mask = torch.zeros_like(mask, dtype=query.dtype).masked_fill(
                ~mask, torch.finfo(query.dtype).min
            )
        base = mask.to(query.dtype).expand(batch, heads, q_len, kv_len)
    sinks = module.sinks.to(query.dtype).view(1, heads, 1, 1).expand(batch, heads, q_len, 1)
    output = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=torch.cat([base, sinks], dim=-1),
        dropout_p=0.0,
        scale=scaling,
        enable_gqa=heads != key.shape[1],
    )
    return output.transpose(1, 2).contiguous(), None


def register_sdpa_sinks() -> str:
    """Register `sdpa_sinks_attention` with transformers (with eager's float masks); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(SDPA_SINKS, sdpa_sinks_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SDPA_SINKS, eager_mask)
    return SDPA_SINKS


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    return "cuda"  # unavailable_reason() has already refused auto/cuda without a GPU


def load_model(
    model_ref: str, device: str = "auto", *, attn_implementation: str | None = None
) -> LoadedModel:
    """Load (once per process and (model, device)) the tokenizer and model. Thread-safe."""
    target = resolve_device(device)
    key = (model_ref, target if attn_implementation is None else f"{target}:{attn_implementation}")
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is None:
            loaded = _load(model_ref, target, attn_implementation)
            _LOADED[key] = loaded
        return loaded


def _load(model_ref: str, target: str, attn_implementation: str | None) -> LoadedModel:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model_ref)
    quant = getattr(config, "quantization_config", None)
    quant_method = (
        quant.get("quant_method")
        if isinstance(quant, dict)
        else getattr(quant, "quant_method", None)
    )
    kwargs: dict[str, Any] = {}
    if attn_implementation == SDPA_SINKS:
        register_sdpa_sinks()
    if target == "cpu":
        # GptOss on CPU: only eager attention handles the attention sinks (sdpa unsupported, flex
        # fails on sinks, flash kernels need hub downloads). fp32 is faster than bf16 on CPUs.
        kwargs["attn_implementation"] = attn_implementation or "eager"
        kwargs["dtype"] = torch.float32
        if str(quant_method) == "mxfp4":
            from transformers import Mxfp4Config

            # MXFP4 kernels need CUDA; dequantise the expert weights while loading.
            kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    else:
        kwargs["dtype"] = "auto"
        kwargs["device_map"] = "cuda"
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(model_ref, **kwargs)
    if target == "cpu" and next(model.parameters()).dtype != torch.float32:
        model = model.float()
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    return LoadedModel(
        model=model, tokenizer=tokenizer, device=target, revision=model_revision(model_ref, model)
    )


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
        attn_implementation: str | None = None,
        loaded: LoadedModel | None = None,
    ) -> None:
        self.model_ref = model
        self.device = device
        self.batch_size = max(1, batch_size)
        self.use_prefix_cache = use_prefix_cache
        self.attn_implementation = attn_implementation
        self._preloaded = loaded  # a model built in memory (benchmarks); normally loaded lazily

    def loaded(self) -> LoadedModel:
        if self._preloaded is not None:
            return self._preloaded
        return load_model(self.model_ref, self.device, attn_implementation=self.attn_implementation)

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
                for index, ids in rows:  # one at a time, full prompt
                    batch = self._run(loaded, [ids], None, 0, max_new_tokens)
                    results[index] = batch[0]
                continue
            cache = self._prefix_cache(loaded, prefix_ids)
            by_length: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
            for index, ids in rows:
                by_length[len(ids)].append((index, ids))
            for group in by_length.values():
                for start in range(0, len(group), self.batch_size):
                    chunk = group[start : start + self.batch_size]
                    batch = self._run(
                        loaded, [ids for _, ids in chunk], cache, len(prefix_ids), max_new_tokens
                    )
                    for (index, _), generation in zip(chunk, batch, strict=True):
                        results[index] = generation

    def _prefix_cache(self, loaded: LoadedModel, prefix_ids: list[int]) -> Any:
        import torch

        key = hashlib.sha256(json.dumps(prefix_ids).encode()).hexdigest()
        cache = loaded.prefix_caches.get(key)
        if cache is not None:
            loaded.prefix_caches.move_to_end(key)
            return cache
        with torch.inference_mode():
            input_ids = torch.tensor([prefix_ids], device=loaded.model.device)
            output = loaded.model(input_ids=input_ids, use_cache=True)
        cache = output.past_key_values
        loaded.prefix_caches[key] = cache
        while len(loaded.prefix_caches) > _PREFIX_CACHES_KEPT:
            loaded.prefix_caches.popitem(last=False)
        return cache

    def _run(
        self,
        loaded: LoadedModel,
        rows: list[list[int]],
        prefix_cache: Any,
        prefix_len: int,
        max_new_tokens: int,
    ) -> list[Generation]:
        import torch

        started = time.perf_counter()
        model = loaded.model
        input_ids = torch.tensor(rows, device=model.device)
        kwargs: dict[str, Any] = {}
        if prefix_cache is not None:
            # generate() appends to the cache it is given: work on a copy, one row per case.
            past = copy.deepcopy(prefix_cache)
            if len(rows) > 1:
                past.batch_repeat_interleave(len(rows))
            kwargs["past_key_values"] = past
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
                **kwargs,
            )
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        computed = (
            (input_ids.shape[1] - prefix_len) if prefix_cache is not None else input_ids.shape[1]
        )
        generations: list[Generation] = []
        for row, tokens in zip(rows, new_tokens, strict=True):
            finish = "length"
            for position, token in enumerate(tokens):
                if token in STOP_TOKEN_IDS:
                    tokens, finish = tokens[: position + 1], "stop"
                    break
            generations.append(
                Generation(
                    text=loaded.tokenizer.decode(tokens, skip_special_tokens=False),
                    finish_reason=finish,
                    tokens_in=len(row),
                    tokens_out=len(tokens),
                    latency_ms=elapsed_ms,  # the batch's wall time: what this case waited
                    model_id=self.model_ref,
                    model_revision=loaded.revision,
                    prompt_tokens_computed=computed,  # the shared prefix is counted once, where it is computed
                )
            )
        return generations
