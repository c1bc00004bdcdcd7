"""In-flight batching (`policies.safeguard.batching`) held to stock `generate`, token for token.

Tiny fixture checkpoint, CPU, fp32. The reference is a separately loaded model with transformers'
own eager attention and default experts, drafting each case alone with its full prompt. The
fixture's sliding window is 32 tokens and every prompt is over 300 (the policy prefix alone), so
the sliding-window layers run past their window in prefill and in every decode step.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from policies.safeguard import CaseSpec, EngineConfig
from policies.safeguard.batching import (
    GROUPED_EXPERTS,
    SLOT_ATTENTION,
    STOP_TOKEN_IDS,
    SlotBatcher,
    SlotCase,
    prepare_model,
)
from policies.safeguard.engine import Engine
from policies.safeguard.transformers_backend import TransformersBackend
from tests.paths import shared_path
from tests.safeguard_fixtures import FIXTURE_CASES, FIXTURE_DATE, fixture_policy


def _moderation_texts(count: int) -> list[str]:
    """Real texts of different lengths (cut to keep a CPU test short)."""
    texts: list[str] = []
    lengths: set[int] = set()
    path = shared_path("openai-moderation", "samples-1680.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["prompt"].strip()[:420]
            if text and len(text) not in lengths:
                lengths.add(len(text))
                texts.append(text)
            if len(texts) == count:
                break
    return texts


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path):  # noqa: ANN201 - (reference model, prepared model, tokenizer)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load():  # noqa: ANN202
        return AutoModelForCausalLM.from_pretrained(
            tiny_checkpoint, attn_implementation="eager", dtype=torch.float32
        ).eval()

    reference, batched = load(), load()
    prepare_model(batched)
    return reference, batched, AutoTokenizer.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def prompts(models) -> tuple[list[int], list[list[int]]]:  # noqa: ANN001
    """(policy prefix ids, full prompt ids) for 18 real moderation texts + the 4 fixture cases."""
    _, _, tokenizer = models
    cases = [CaseSpec(key=f"m{i}", content=t) for i, t in enumerate(_moderation_texts(18))]
    cases += [f.case for f in FIXTURE_CASES]
    prepared = Engine(EngineConfig(backend="transformers", device="cpu")).prepare(
        fixture_policy(), cases, conversation_date=FIXTURE_DATE
    )

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    prefix = encode(prepared[0][0].prefix_text)
    full = [encode(request.prompt_text) for request, _ in prepared]
    assert all(ids[: len(prefix)] == prefix for ids in full)
    return prefix, full


def _alone(model, ids: list[int], max_new_tokens: int) -> list[int]:  # noqa: ANN001
    """Stock generate, one case, full prompt, greedy; cut after the first stop token."""
    import torch

    input_ids = torch.tensor([ids])
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=list(STOP_TOKEN_IDS),
            pad_token_id=199999,
        )
    tokens = out[0, len(ids) :].tolist()
    for i, token in enumerate(tokens):
        if token in STOP_TOKEN_IDS:
            return tokens[: i + 1]
    return tokens


def _cases(prefix: list[int], full: list[list[int]], budgets: list[int]) -> list[SlotCase]:
    return [
        SlotCase(key=i, ids=ids[len(prefix) :], max_new_tokens=budgets[i])
        for i, ids in enumerate(full)
    ]


def test_cases_of_different_lengths_in_one_batch_match_drafting_each_alone(models, prompts) -> None:  # noqa: ANN001
    reference, batched, _ = models
    prefix, full = prompts
    case_lengths = [len(ids) - len(prefix) for ids in full]
    assert len(set(case_lengths)) >= 16  # real texts, all different lengths
    assert len(prefix) > 32 * 10  # far past the fixture's sliding window of 32
    budgets = [40] * len(full)
    expected = [_alone(reference, ids, 40) for ids in full]

    batcher = SlotBatcher(batched, slots=len(full))
    got = {r.key: r for r in batcher.run(prefix, _cases(prefix, full, budgets))}

    assert [got[i].tokens for i in range(len(full))] == expected
    assert batcher.stats.prefill_calls == 1  # every case entered the one batch at once
    assert batcher.stats.decode_rows / batcher.stats.decode_steps > 10
    # Fixture cases answer with a stop token; the others run to their budget.
    assert {got[i].finish_reason for i in range(len(full))} == {"stop", "length"}
    assert [got[i].prompt_tokens for i in range(len(full))] == case_lengths


def test_in_flight_refill_gives_each_case_the_tokens_it_gets_alone(models, prompts) -> None:  # noqa: ANN001
    reference, batched, _ = models
    prefix, full = prompts
    budgets = [5 + (i * 7) % 31 for i in range(len(full))]  # answers end unevenly
    expected = [_alone(reference, ids, budgets[i]) for i, ids in enumerate(full)]

    batcher = SlotBatcher(batched, slots=4, refill_min=1)
    order: list[int] = []
    got: dict[int, list[int]] = {}
    for result in batcher.run(prefix, _cases(prefix, full, budgets)):
        order.append(result.key)
        got[result.key] = result.tokens

    assert [got[i] for i in range(len(full))] == expected
    assert batcher.stats.prefill_calls > len(full) // 4  # slots were refilled as cases ended
    assert batcher.cache is not None and batcher.cache.slots == 4
    assert order != sorted(order)  # results come as cases finish, not in input order


def test_static_decode_steps_the_cuda_graph_path_are_token_identical(models, prompts) -> None:  # noqa: ANN001
    """Fixed-shape steps over the whole slot capacity (what is captured as CUDA graphs)."""
    reference, batched, _ = models
    prefix, full = prompts
    picked = full[:10]
    budgets = [12 + 3 * i for i in range(len(picked))]
    expected = [_alone(reference, ids, budgets[i]) for i, ids in enumerate(picked)]

    batcher = SlotBatcher(batched, slots=8, static_decode=True, refill_min=1)
    got = {r.key: r.tokens for r in batcher.run(prefix, _cases(prefix, picked, budgets))}

    assert [got[i] for i in range(len(picked))] == expected


def test_cases_are_pulled_from_the_iterable_only_as_slots_free(models, prompts) -> None:  # noqa: ANN001
    _, batched, _ = models
    prefix, full = prompts
    pulled: list[int] = []

    def stream():  # noqa: ANN202 - e.g. a worker asking its queue for more pending drafts
        for case in _cases(prefix, full[:12], [6] * 12):
            pulled.append(case.key)
            yield case

    batcher = SlotBatcher(batched, slots=3, refill_min=1)
    results = batcher.run(prefix, stream())
    first = next(results)

    assert len(pulled) <= 3 + 1  # the first batch, not the whole stream
    rest = list(results)
    assert sorted([first.key] + [r.key for r in rest]) == list(range(12))


def test_a_case_with_no_tokens_after_the_prefix_is_refused(models, prompts) -> None:  # noqa: ANN001
    _, batched, _ = models
    prefix, _ = prompts
    with pytest.raises(ValueError, match="no prompt tokens"):
        list(SlotBatcher(batched).run(prefix, [SlotCase(key="empty", ids=[], max_new_tokens=4)]))


def test_grouped_gemm_experts_match_the_default_experts(models, prompts) -> None:  # noqa: ANN001
    import torch

    reference, _, _ = models
    prefix, full = prompts
    from policies.safeguard.batching import register_grouped_experts

    register_grouped_experts()
    experts = reference.model.layers[0].mlp.experts
    hidden = torch.randn(37, reference.config.hidden_size)
    indices = torch.randint(0, reference.config.num_local_experts, (37, 2))
    weights = torch.rand(37, 2)
    with torch.inference_mode():
        default = experts(hidden, indices, weights)
        reference.set_experts_implementation(GROUPED_EXPERTS)
        try:
            grouped = experts(hidden, indices, weights)
            grouped_tokens = [_alone(reference, ids, 30) for ids in full[-4:]]
        finally:
            reference.set_experts_implementation("eager")
        eager_tokens = [_alone(reference, ids, 30) for ids in full[-4:]]

    torch.testing.assert_close(grouped, default, rtol=1e-5, atol=1e-6)
    assert grouped_tokens == eager_tokens


def test_a_prepared_model_still_serves_stock_generate_with_eager_attention(
    models,  # noqa: ANN001
    prompts,  # noqa: ANN001
) -> None:
    reference, batched, _ = models
    _, full = prompts
    assert batched.config._attn_implementation == SLOT_ATTENTION

    assert _alone(batched, full[0], 20) == _alone(reference, full[0], 20)


def test_the_backend_drafts_mixed_lengths_through_the_batcher(tiny_checkpoint: Path) -> None:
    cases = [CaseSpec(key=f"m{i}", content=t) for i, t in enumerate(_moderation_texts(6))]
    cases += [f.case for f in FIXTURE_CASES]
    requests = [
        r
        for r, _ in Engine(EngineConfig(backend="transformers", device="cpu")).prepare(
            fixture_policy(), cases, conversation_date=FIXTURE_DATE
        )
    ]
    alone = TransformersBackend(model=str(tiny_checkpoint), device="cpu", use_prefix_cache=False)
    batched = TransformersBackend(model=str(tiny_checkpoint), device="cpu", batch_size=4)

    reference = alone.generate(requests, max_new_tokens=30)
    result = batched.generate(requests, max_new_tokens=30)

    assert [g.text for g in result] == [g.text for g in reference]
    assert [g.finish_reason for g in result] == [g.finish_reason for g in reference]
    assert [g.tokens_in for g in result] == [g.tokens_in for g in reference]
    assert len({g.tokens_in for g in result}) > 5  # really mixed lengths
    assert all(g.prompt_tokens_computed < g.tokens_in - 300 for g in result)  # prefix reused
    assert batched.last_stats is not None and batched.last_stats.prefill_calls >= 3


@pytest.mark.parametrize("static", [False, True])
def test_a_longer_case_arriving_later_grows_the_slots_and_still_matches(
    models,  # noqa: ANN001
    prompts,  # noqa: ANN001
    static: bool,
) -> None:
    reference, batched, _ = models
    prefix, full = prompts
    ordered = sorted(full, key=len)[::4]  # shortest first: the last cases need more room
    budgets = [16] * len(ordered)
    expected = [_alone(reference, ids, 16) for ids in ordered]

    batcher = SlotBatcher(batched, slots=2, static_decode=static, refill_min=1)
    got = {r.key: r.tokens for r in batcher.run(prefix, _cases(prefix, ordered, budgets))}

    assert [got[i] for i in range(len(ordered))] == expected
    assert batcher.cache is not None
    assert batcher.cache.capacity >= len(ordered[-1]) + 16 > len(ordered[0]) + 16


def test_slots_are_capped_to_what_fits_in_free_gpu_memory(models) -> None:  # noqa: ANN001
    from policies.safeguard.batching import kv_bytes_per_token, slots_that_fit

    _, batched, _ = models
    # 2 layers x (key + value) x 2 KV heads x 16 dims x 4 bytes (fp32).
    assert kv_bytes_per_token(batched) == 2 * 2 * 2 * 16 * 4
    gib = 1 << 30
    slot = 185 * (1 << 20)  # gpt-oss-20b, 3,768 tokens: 49,152 bytes per token
    assert slots_that_fit(256, 100 * gib, slot) == 256
    assert slots_that_fit(256, 40 * gib, slot) == (34 * gib) // slot  # 6 GiB kept back
    assert slots_that_fit(256, 2 * gib, slot) == 1  # one case still runs (or fails on its own)
