"""In-flight batching for GptOss: cases of any length in one batch, slots refilled as answers end.

The transformers backend drafts through `SlotBatcher`. Its design, in short (details and
measurements in docs/safeguard-engine.md):

- **A slot cache we own.** Per layer, preallocated key/value buffers `[slots, kv_heads, capacity,
  head_dim]`. A case occupies one slot from position 0: the policy prefix's keys/values (computed
  once per prefix and kept) are copied in, then the case's own tokens are prefilled at their true
  positions, then every decode step writes one key/value per row at that row's own position. No
  padding ever sits between a row's tokens, so positions (rotary) and sliding windows are exactly
  those of the case drafted alone, and nothing is concatenated per step.
- **Our own attention function**, registered through transformers' public `AttentionInterface`
  under `SLOT_ATTENTION`. The model is called with a prepared mask mapping (the public
  "already prepared by generate" path of `GptOssModel.forward`) whose values are `SlotView`s: the
  attention function writes the new keys/values into the slots and attends with a causal mask
  built from each row's position, the sliding-window layers over a gathered window of the last
  `sliding_window` positions of each row. Attention sinks are handled exactly like transformers'
  eager GptOss attention; grouped-query attention never materialises repeated key/value heads.
  Any other caller of the model (stock `generate`) gets eager attention unchanged.
- **Grouped-GEMM experts in decode**: transformers' own `grouped_mm_experts_forward`, registered
  through its public experts interface under `GROUPED_EXPERTS` (stock `generate` swaps
  `grouped_mm` for `batched_mm` when decoding; a name of our own keeps grouped GEMMs).
- **In-flight refill**: when a row's answer ends (a stop token or its own token limit), its slot
  takes the next waiting case: a sub-batch of new cases is prefilled (right-padded; padded tokens
  are written past each row's end, where nothing reads them) and joins the decode batch. Cases
  come from any iterable, pulled only when slots free, so a caller can stream them.
- **Few host syncs**: a step's new tokens are copied to the host asynchronously and read one step
  later, so the GPU always has the next step queued; a row that stopped runs one extra
  (discarded) step.

Greedy output is token-identical to drafting each case alone with stock `generate` (the CPU tests
hold it to that, sliding windows exceeded, refill included): every row sees exactly its own
tokens at its own positions, and masked keys contribute exactly zero to the softmax.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

SLOT_ATTENTION = "safeguard_slots"
GROUPED_EXPERTS = "safeguard_grouped_mm"
STOP_TOKEN_IDS = (200002, 199999, 200012)  # <|return|>, <|endoftext|>, <|call|>
PAD_TOKEN_ID = 199999


# -- registration with transformers' public interfaces -------------------------------------------


def register_slot_attention() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(SLOT_ATTENTION, slot_attention)
    # Stock callers (generate) build eager's float masks for this implementation.
    ALL_MASK_ATTENTION_FUNCTIONS.register(SLOT_ATTENTION, eager_mask)
    return SLOT_ATTENTION


def register_grouped_experts() -> str:
    from transformers.integrations.moe import ALL_EXPERTS_FUNCTIONS, grouped_mm_experts_forward

    ALL_EXPERTS_FUNCTIONS.register(GROUPED_EXPERTS, grouped_mm_experts_forward)
    return GROUPED_EXPERTS


def prepare_model(model: Any, *, grouped_experts: bool = True) -> Any:
    """Switch a loaded GptOss model to the slot attention (and grouped-GEMM experts). Idempotent."""
    register_slot_attention()
    if getattr(model.config, "_attn_implementation", None) != SLOT_ATTENTION:
        model.set_attn_implementation(SLOT_ATTENTION)
    if grouped_experts and _has_experts_interface(model):
        register_grouped_experts()
        if getattr(model.config, "_experts_implementation", None) != GROUPED_EXPERTS:
            model.set_experts_implementation(GROUPED_EXPERTS)
    return model


def _has_experts_interface(model: Any) -> bool:
    if not hasattr(model, "set_experts_implementation"):
        return False
    try:
        experts = model.model.layers[0].mlp.experts
    except (AttributeError, IndexError):
        return False
    # Dense (dequantised) experts only: native MXFP4 replaces the experts module with its own.
    weight = getattr(experts, "gate_up_proj", None)
    return weight is not None and bool(getattr(weight, "is_floating_point", lambda: False)())


def _torch() -> Any:
    import torch

    return torch


def kv_bytes_per_token(model: Any) -> int:
    """Key/value bytes one token takes in the slot cache, all layers (49,152 for gpt-oss-20b)."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = model.model.layers[0].self_attn.k_proj.weight.dtype
    element = _torch().empty((), dtype=dtype).element_size()
    return 2 * len(config.layer_types) * config.num_key_value_heads * head_dim * element


def slots_that_fit(requested: int, free_bytes: int, slot_bytes: int, reserve: int = 6 << 30) -> int:
    """How many of `requested` slots fit in `free_bytes`, keeping `reserve` for prefill
    activations, logits and CUDA graphs (at least one slot: a single case must still run)."""
    if slot_bytes <= 0:
        return requested
    return max(1, min(requested, (free_bytes - reserve) // slot_bytes))


# -- the attention function --------------------------------------------------------------------


@dataclass(eq=False)
class SlotView:
    """What one forward pass tells the attention function (one per layer type).

    rows: slot index per batch row (`rows_slice` when the rows are slots 0..n-1, so keys are a view);
    positions: `[b, q_len]` position of each query token, which is also where its key/value is
    stored; mask: additive float mask `[b, 1, 1, q_len, kv_len]` over slot positions 0..kv_len-1;
    window: for decode on sliding layers, the gathered key positions `[b, W]` and their mask.
    """

    cache: SlotCache
    rows: Any
    rows_slice: slice | None
    positions: Any
    kv_len: int
    mask: Any
    window_index: Any = None
    window_mask: Any = None
    prefill_sliding_mask: Any = None


def slot_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    if not isinstance(attention_mask, SlotView):
        from transformers.models.gpt_oss.modeling_gpt_oss import eager_attention_forward

        return eager_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs
        )
    torch = _torch()
    view = attention_mask
    cache = view.cache
    layer = module.layer_idx
    k_buf, v_buf = cache.keys[layer], cache.values[layer]
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    # Store the new keys/values at each row's own positions: [b, q_len, kv_heads, dim].
    row_index = view.rows.view(-1, 1)
    k_buf[row_index, :, view.positions] = key.transpose(1, 2).to(k_buf.dtype)
    v_buf[row_index, :, view.positions] = value.transpose(1, 2).to(v_buf.dtype)
    sliding = getattr(module, "sliding_window", None)
    if sliding and view.window_index is not None:
        index = view.window_index[:, None, :, None].expand(-1, kv_heads, -1, dim)
        keys = (k_buf[view.rows_slice] if view.rows_slice is not None else k_buf[view.rows]).gather(
            2, index
        )
        values = (
            v_buf[view.rows_slice] if view.rows_slice is not None else v_buf[view.rows]
        ).gather(2, index)
        mask = view.window_mask
    else:
        if view.rows_slice is not None:
            keys = k_buf[view.rows_slice, :, : view.kv_len]
            values = v_buf[view.rows_slice, :, : view.kv_len]
        else:
            keys = k_buf[view.rows, :, : view.kv_len]
            values = v_buf[view.rows, :, : view.kv_len]
        mask = view.mask
        if sliding:
            mask = cache.sliding_mask(view)
    kv_len = keys.shape[2]
    # Grouped-query attention without repeating the key/value heads: [b, kv, groups*q, dim].
    q = query.reshape(batch, kv_heads, groups * q_len, dim)
    scores = torch.matmul(q, keys.transpose(2, 3)) * scaling
    scores = scores.view(batch, kv_heads, groups, q_len, kv_len) + mask
    sinks = module.sinks.reshape(1, kv_heads, groups, 1, 1).expand(batch, -1, -1, q_len, -1)
    # GptOss's attention sinks: one more logit per head in the softmax, dropped afterwards
    # (transformers' eager GptOss attention, operation for operation).
    combined = torch.cat([scores, sinks.to(scores.dtype)], dim=-1)
    combined = combined - combined.amax(dim=-1, keepdim=True)
    probs = torch.softmax(combined, dim=-1)[..., :-1].to(values.dtype)
    out = torch.matmul(probs.reshape(batch, kv_heads, groups * q_len, kv_len), values)
    return out.view(batch, heads, q_len, dim).transpose(1, 2).contiguous(), None


# -- the slot cache ----------------------------------------------------------------------------


class SlotCache:
    """Per-layer key/value buffers `[slots, kv_heads, capacity, head_dim]`, zero-initialised."""

    def __init__(self, model: Any, slots: int, capacity: int) -> None:
        torch = _torch()
        config = model.config
        self.layer_types = list(config.layer_types)
        self.sliding_window = int(getattr(config, "sliding_window", 0) or 0)
        kv_heads = config.num_key_value_heads
        head_dim = (
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        param = next(model.parameters())
        dtype = model.model.layers[0].self_attn.k_proj.weight.dtype
        self.device = param.device
        self.slots = slots
        self.capacity = capacity
        shape = (slots, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=self.device) for _ in self.layer_types]
        self.values = [
            torch.zeros(shape, dtype=dtype, device=self.device) for _ in self.layer_types
        ]

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def grow(self, capacity: int) -> None:
        torch = _torch()
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                new = torch.zeros(
                    (*old.shape[:2], capacity, old.shape[3]), dtype=old.dtype, device=old.device
                )
                new[:, :, : self.capacity] = old
                buffers[i] = new
        self.capacity = capacity

    def load_prefix(self, slots: Any, prefix: PrefixKV) -> None:
        length = prefix.length
        for layer in range(len(self.layer_types)):
            self.keys[layer][slots, :, :length] = prefix.keys[layer]
            self.values[layer][slots, :, :length] = prefix.values[layer]

    def move(self, src: int, dst: int, length: int) -> None:
        for buffers in (self.keys, self.values):
            for buf in buffers:
                buf[dst, :, :length] = buf[src, :, :length]

    def sliding_mask(self, view: SlotView) -> Any:
        """The full-attention mask narrowed to the sliding window (prefill only; decode gathers)."""
        if view.prefill_sliding_mask is None:
            torch = _torch()
            keys = torch.arange(view.kv_len, device=self.device)
            outside = keys.view(1, 1, -1) <= (view.positions.unsqueeze(-1) - self.sliding_window)
            view.prefill_sliding_mask = view.mask.masked_fill(
                outside[:, None, None], torch.finfo(view.mask.dtype).min
            )
        return view.prefill_sliding_mask


@dataclass
class PrefixKV:
    """One policy prefix's keys/values per layer `[kv_heads, length, head_dim]`, computed once."""

    length: int
    keys: list[Any]
    values: list[Any]
    last_token: int


class _StaticStep:
    """A decode step over slots 0..size-1 with fixed shapes (kv over the whole capacity)."""

    def __init__(
        self, batcher: SlotBatcher, cache: SlotCache, cur_tok: Any, cur_pos: Any, size: int
    ) -> None:
        torch = _torch()
        self.size = size
        self.graph: Any = None
        self._batcher, self._cache = batcher, cache
        self._cur_tok, self._cur_pos = cur_tok, cur_pos
        self._rows = torch.arange(size, device=cache.device)
        self.out = torch.zeros(size, dtype=torch.long, device=cache.device)

    def _step(self) -> None:
        cache, size = self._cache, self.size
        logits = self._batcher._forward(
            cache,
            self._rows,
            slice(0, size),
            self._cur_tok[:size].view(-1, 1),
            self._cur_pos[:size].view(-1, 1),
            cache.capacity,
            decode=True,
        )
        self.out.copy_(logits[:, -1].argmax(dim=-1))
        self._cur_tok[:size] = self.out
        self._cur_pos[:size] += 1
        self._cur_pos.clamp_(max=cache.capacity - 1)

    def capture(self, pool: Any) -> None:
        torch = _torch()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up (cuBLAS workspaces, allocator) off the capture
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            self._step()
        self.graph = graph

    def __call__(self) -> Any:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()
        return self.out


# -- the batcher ---------------------------------------------------------------------------------


@dataclass
class SlotCase:
    """One case to draft: `ids` are the prompt tokens after the shared prefix (at least one)."""

    key: Any
    ids: list[int]
    max_new_tokens: int


@dataclass
class SlotResult:
    key: Any
    tokens: list[int]
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int  # the case's own prompt tokens (the shared prefix is not counted)
    latency_ms: int  # from the start of the run to this case's last token


@dataclass(eq=False)
class _Row:
    case: SlotCase
    slot: int
    length: int  # tokens in the slot (prefix + case + generated), i.e. next write position
    tokens: list[int] = field(default_factory=list)
    done: bool = False


@dataclass
class BatchStats:
    decode_steps: int = 0
    decode_rows: int = 0
    prefill_calls: int = 0
    prefill_tokens: int = 0
    step_ms_by_batch: dict[int, list[float]] = field(default_factory=dict)


class SlotBatcher:
    """Drafts cases under one shared prefix with in-flight batching (see the module docstring).

    `run(prefix_ids, cases)` yields a `SlotResult` per case as each finishes (not in input order).
    `cases` may be any iterable, even an endless generator: it is read only when a slot is free, so
    a caller can feed new work (e.g. more pending drafts from a queue) while the batch runs.
    """

    def __init__(
        self,
        model: Any,
        *,
        slots: int = 8,
        capacity: int | None = None,
        refill_min: int | None = None,
        prefill_tokens: int = 4096,
        stop_token_ids: Iterable[int] = STOP_TOKEN_IDS,
        pad_token_id: int = PAD_TOKEN_ID,
        prefix_store: dict[Any, PrefixKV] | None = None,
        step_timing: bool = False,
        static_decode: bool = False,
        cuda_graphs: bool = False,
    ) -> None:
        self.model = model
        self.slots = max(1, slots)
        self.capacity = capacity
        self.refill_min = refill_min if refill_min is not None else max(1, self.slots // 16)
        self.prefill_tokens = max(1, prefill_tokens)
        self.stop_token_ids = tuple(stop_token_ids)
        self.pad_token_id = pad_token_id
        self.prefix_store = prefix_store if prefix_store is not None else {}
        self.step_timing = step_timing
        # Static decode: fixed batch sizes (buckets) attending over the whole slot capacity, so a
        # step has the same shapes every time; with cuda_graphs each bucket's step is captured
        # once per run and replayed (one launch instead of ~1,500 kernel launches per step).
        self.cuda_graphs = cuda_graphs
        self.static_decode = static_decode or cuda_graphs
        self.graph_error: str | None = None  # why capture failed (then steps run eagerly)
        self.stats = BatchStats()
        self.cache: SlotCache | None = None

    # -- public ----------------------------------------------------------------------------

    def run(self, prefix_ids: list[int], cases: Iterable[SlotCase]) -> Iterator[SlotResult]:
        torch = _torch()
        with torch.inference_mode():
            yield from self._run(list(prefix_ids), iter(cases))

    def prefix(self, prefix_ids: list[int]) -> PrefixKV:
        """The prefix's keys/values, computed once per distinct prefix and kept in `prefix_store`."""
        key = tuple(prefix_ids)
        found = self.prefix_store.get(key)
        if found is not None:
            return found
        torch = _torch()
        with torch.inference_mode():
            single = SlotCache(self.model, 1, len(prefix_ids))
            device = single.device
            ids = torch.tensor([prefix_ids], device=device)
            positions = torch.arange(len(prefix_ids), device=device).view(1, -1)
            self._forward(
                single,
                torch.zeros(1, dtype=torch.long, device=device),
                slice(0, 1),
                ids,
                positions,
                len(prefix_ids),
                decode=False,
            )
            prefix = PrefixKV(
                length=len(prefix_ids),
                keys=[k[0].clone() for k in single.keys],
                values=[v[0].clone() for v in single.values],
                last_token=prefix_ids[-1],
            )
        self.prefix_store[key] = prefix
        return prefix

    # -- internals -------------------------------------------------------------------------

    def _run(self, prefix_ids: list[int], cases: Iterator[SlotCase]) -> Iterator[SlotResult]:
        torch = _torch()
        started = time.perf_counter()
        prefix = self.prefix(prefix_ids)
        pending: deque[SlotCase] = deque()
        exhausted = False

        def pull(n: int) -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < n:
                try:
                    case = next(cases)
                except StopIteration:
                    exhausted = True
                    break
                if not case.ids:
                    raise ValueError(f"case {case.key!r} has no prompt tokens after the prefix")
                if case.max_new_tokens < 1:
                    raise ValueError(f"case {case.key!r}: max_new_tokens must be at least 1")
                pending.append(case)

        pull(self.slots)
        if not pending:
            return
        need = prefix.length + max(len(c.ids) + c.max_new_tokens for c in pending)
        capacity = max(self.capacity or 0, need)
        slots = min(self.slots, len(pending)) if exhausted else self.slots
        device = next(self.model.parameters()).device
        if device.type == "cuda":
            # Never more slots than fit next to the weights: an out-of-memory error would fail
            # every draft of the call; fewer slots only make it slower.
            free = torch.cuda.mem_get_info(device)[0] + torch.cuda.memory_reserved(device)
            free -= torch.cuda.memory_allocated(device)
            fitted = slots_that_fit(slots, free, kv_bytes_per_token(self.model) * capacity)
            if fitted < slots:
                logger.warning(
                    "%d slots of %d tokens do not fit in %.1f GiB of free GPU memory: using %d",
                    slots,
                    capacity,
                    free / 2**30,
                    fitted,
                )
                slots = fitted
        cache = SlotCache(self.model, slots, capacity)
        self.cache = cache
        device = cache.device
        rows: list[_Row | None] = [None] * slots
        cur_tok = torch.full((slots,), self.pad_token_id, dtype=torch.long, device=device)
        cur_pos = torch.zeros(slots, dtype=torch.long, device=device)
        arange_slots = torch.arange(slots, device=device)
        # (owners at launch, tokens on host, event); read one launch later.
        inflight: deque[tuple[list[_Row | None], Any, Any, float]] = deque()
        finished: list[SlotResult] = []
        pinned = device.type == "cuda"
        last_decode_settled: list[float | None] = [None]

        def launch_readback(owners: list[_Row | None], tokens: Any, launched: float) -> None:
            if pinned:
                host = torch.empty(tokens.shape, dtype=tokens.dtype, pin_memory=True)
                host.copy_(tokens, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
            else:
                host, event = tokens.clone(), None  # static steps reuse their output buffer
            inflight.append((owners, host, event, launched))

        def settle(keep: int) -> None:
            while len(inflight) > keep:
                owners, host, event, launched = inflight.popleft()
                if event is not None:
                    event.synchronize()
                if self.step_timing:
                    # Consecutive decode steps finishing: the time of one step on the device
                    # (the next one was already queued behind it).
                    now = time.perf_counter()
                    if launched and last_decode_settled[0] is not None:
                        ms = (now - last_decode_settled[0]) * 1000
                        self.stats.step_ms_by_batch.setdefault(len(owners), []).append(ms)
                    last_decode_settled[0] = now if launched else None
                values = host.tolist()
                for row, token in zip(owners, values, strict=True):
                    if row is None or row.done:
                        continue
                    row.tokens.append(int(token))
                    stop = token in self.stop_token_ids
                    if stop or len(row.tokens) >= row.case.max_new_tokens:
                        row.done = True
                        rows[row.slot] = None
                        finished.append(
                            SlotResult(
                                key=row.case.key,
                                tokens=row.tokens,
                                finish_reason="stop" if stop else "length",
                                prompt_tokens=len(row.case.ids),
                                latency_ms=int((time.perf_counter() - started) * 1000),
                            )
                        )

        def refill() -> None:
            free = [i for i, r in enumerate(rows) if r is None]
            pull(len(free))
            take = min(len(free), len(pending))
            if take == 0:
                return
            active = slots - len(free)
            # Prefill costs about one decode step whatever its size: with rows still decoding,
            # wait until `refill_min` slots are free (or the last waiting cases fit).
            if active and take < self.refill_min and not (exhausted and take == len(pending)):
                return
            new = [pending.popleft() for _ in range(take)]
            longest = prefix.length + max(len(c.ids) + c.max_new_tokens for c in new)
            if longest > cache.capacity:
                settle(0)
                cache.grow(longest)
                if steps:  # captured steps point at the old buffers
                    steps[:] = self._static_steps(cache, cur_tok, cur_pos)
            placed = [
                _Row(case=c, slot=s, length=prefix.length + len(c.ids))
                for c, s in zip(new, free, strict=False)
            ]
            # Prefill in sub-batches of about `prefill_tokens` (padded) tokens, longest first.
            placed.sort(key=lambda r: len(r.case.ids), reverse=True)
            start = 0
            while start < len(placed):
                width = len(placed[start].case.ids)
                count = max(1, self.prefill_tokens // width)
                chunk = placed[start : start + count]
                start += len(chunk)
                self._prefill(cache, prefix, chunk, cur_tok, cur_pos, launch_readback)
                for row in chunk:
                    rows[row.slot] = row

        def compact() -> None:
            """With no case waiting, move the highest rows into free low slots to shrink the batch."""
            while True:
                top = max((i for i, r in enumerate(rows) if r is not None), default=-1)
                hole = next((i for i, r in enumerate(rows) if r is None), slots)
                if hole >= top:
                    return
                row = rows[top]
                assert row is not None
                cache.move(top, hole, row.length + 1)
                cur_tok[hole] = cur_tok[top]
                cur_pos[hole] = cur_pos[top]
                rows[hole], rows[top] = row, None
                row.slot = hole

        steps = self._static_steps(cache, cur_tok, cur_pos) if self.static_decode else []
        refill()
        while True:
            settle(1)
            yield from finished
            finished.clear()
            if not exhausted or pending:
                refill()
            if exhausted and not pending:
                compact()
            active = [r for r in rows if r is not None and not r.done]
            if not active:
                settle(0)
                yield from finished
                finished.clear()
                if exhausted and not pending and not any(r is not None for r in rows):
                    return
                continue
            high = max(r.slot for r in active) + 1
            owners = list(rows[:high])
            launched = time.perf_counter() if self.step_timing else 0.0
            kv_len = max(r.length for r in active) + 1
            if kv_len > cache.capacity:  # a row past its budget cannot happen; guard anyway
                raise RuntimeError("slot capacity exceeded")
            static = next((step for step in steps if step.size >= high), None)
            if static is not None:
                owners += [None] * (static.size - high)
                tokens = static()
            else:
                tokens = self._decode(cache, cur_tok, cur_pos, arange_slots[:high], high, kv_len)
            for r in active:
                r.length += 1
            self.stats.decode_steps += 1
            self.stats.decode_rows += len(active)
            launch_readback(owners, tokens, launched)

    def _static_steps(self, cache: SlotCache, cur_tok: Any, cur_pos: Any) -> list[_StaticStep]:
        """One static decode step per batch bucket (all slots, halves down to 8), smallest first."""
        sizes = {cache.slots}
        size = cache.slots
        while size // 2 >= 8:
            size //= 2
            sizes.add(size)
        built = [_StaticStep(self, cache, cur_tok, cur_pos, n) for n in sorted(sizes)]
        if self.cuda_graphs and cache.device.type == "cuda":
            torch = _torch()
            # Warm-up runs real steps: keep the rows' state and restore it afterwards (the keys
            # and values they write lie past each row's position, where the next steps rewrite).
            saved_tok, saved_pos = cur_tok.clone(), cur_pos.clone()
            pool = torch.cuda.graph_pool_handle()
            try:
                for step in reversed(built):  # largest first: the others reuse its memory
                    step.capture(pool)
            except Exception as exc:  # noqa: BLE001 - fall back to eager steps, say why
                self.graph_error = f"{type(exc).__name__}: {exc}"[:500]
                for step in built:
                    step.graph = None
            torch.cuda.synchronize()
            cur_tok.copy_(saved_tok)
            cur_pos.copy_(saved_pos)
        return built

    def _decode(
        self, cache: SlotCache, cur_tok: Any, cur_pos: Any, rows: Any, high: int, kv_len: int
    ) -> Any:
        torch = _torch()
        positions = cur_pos[:high].view(-1, 1)
        logits = self._forward(
            cache, rows, slice(0, high), cur_tok[:high].view(-1, 1), positions, kv_len, decode=True
        )
        tokens = logits[:, -1].argmax(dim=-1)
        cur_tok[:high] = tokens
        cur_pos[:high] += 1
        cur_pos.clamp_(max=cache.capacity - 1)
        del torch
        return tokens

    def _prefill(
        self,
        cache: SlotCache,
        prefix: PrefixKV,
        chunk: list[_Row],
        cur_tok: Any,
        cur_pos: Any,
        launch_readback: Callable[..., None],
    ) -> None:
        torch = _torch()
        device = cache.device
        slots = torch.tensor([r.slot for r in chunk], device=device)
        cache.load_prefix(slots, prefix)
        width = max(len(r.case.ids) for r in chunk)
        ids = torch.tensor(
            [r.case.ids + [self.pad_token_id] * (width - len(r.case.ids)) for r in chunk],
            device=device,
        )
        positions = (prefix.length + torch.arange(width, device=device)).expand(len(chunk), -1)
        lengths = torch.tensor([len(r.case.ids) for r in chunk], device=device)
        logits = self._forward(
            cache,
            slots,
            None,
            ids,
            positions,
            prefix.length + width,
            decode=False,
            last=lengths - 1,
        )
        tokens = logits[:, -1].argmax(dim=-1)
        cur_tok[slots] = tokens
        cur_pos[slots] = prefix.length + lengths
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += int(sum(len(r.case.ids) for r in chunk))
        owners: list[_Row | None] = list(chunk)
        launch_readback(owners, tokens, 0.0)

    def _forward(
        self,
        cache: SlotCache,
        rows: Any,
        rows_slice: slice | None,
        ids: Any,
        positions: Any,
        kv_len: int,
        *,
        decode: bool,
        last: Any = None,
    ) -> Any:
        """One forward pass over `rows`; returns logits `[b, 1, vocab]` at each row's last token."""
        torch = _torch()
        device = cache.device
        dtype = cache.keys[0].dtype
        neg = torch.finfo(dtype).min
        keys = torch.arange(kv_len, device=device)
        valid = keys.view(1, 1, -1) <= positions.unsqueeze(-1)  # [b, q, kv]
        mask = torch.zeros(valid.shape, dtype=dtype, device=device).masked_fill_(~valid, neg)
        mask = mask[:, None, None]  # [b, 1, 1, q, kv]
        full = SlotView(cache, rows, rows_slice, positions, kv_len, mask)
        sliding = full
        if "sliding_attention" in cache.layer_types:
            window = cache.sliding_window
            if decode and window and window < kv_len:
                # Each row's last `window` positions, gathered: [b, W].
                start = (positions[:, 0] - window + 1).clamp(min=0)
                index = start.view(-1, 1) + torch.arange(window, device=device).view(1, -1)
                inside = index <= positions
                index = index.clamp(max=cache.capacity - 1)
                wmask = torch.zeros(inside.shape, dtype=dtype, device=device).masked_fill_(
                    ~inside, neg
                )
                sliding = SlotView(
                    cache,
                    rows,
                    rows_slice,
                    positions,
                    kv_len,
                    mask,
                    index,
                    wmask[:, None, None, None],
                )
            else:
                sliding = SlotView(cache, rows, rows_slice, positions, kv_len, mask)
        mapping = {"full_attention": full, "sliding_attention": sliding}
        base = self.model.model
        output = base(
            input_ids=ids, position_ids=positions, attention_mask=mapping, use_cache=False
        )
        hidden = output.last_hidden_state
        if last is not None:
            hidden = hidden[torch.arange(hidden.shape[0], device=device), last].unsqueeze(1)
        else:
            hidden = hidden[:, -1:]
        logits = self.model.lm_head(hidden)
        return logits.float() if not decode else logits
