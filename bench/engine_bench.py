"""Benchmark of the safeguard engine on CPU: batching and policy-prefix reuse, engine overhead, and the
OpenAI-compatible backend against a real `transformers serve` on loopback.

    python bench/engine_bench.py            # full run (a few minutes on 2 cores)
    python bench/engine_bench.py --quick    # smoke run (well under a minute once fixtures are cached)
    python bench/engine_bench.py --write docs/benchmarks-engine.md

The model is a random mid-size GptOss (hidden 512, 4 layers, 8 experts top-2, sliding window 128,
fp32, the real 201k-token tokenizer): its words are noise, but its compute per token is the real
architecture's, which is what batching and prefix reuse change. Every case is given the same
number of new tokens (stop tokens are suppressed) so variants do the same work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from policies.safeguard import CaseSpec, EngineConfig, parse_output, policy_spec  # noqa: E402
from policies.safeguard.backend import PromptRequest  # noqa: E402
from policies.safeguard.engine import Engine  # noqa: E402
from tests import safeguard_fixtures  # noqa: E402

POLICY_FILE = Path(
    "/work/shared/datasets/teen-safety-policy-pack/example_policies/harmful-body-ideals/policy.md"
)
DATE = dt.date(2026, 1, 15)
WORDS = [
    "cat",
    "dog",
    "sun",
    "car",
    "tree",
    "book",
    "road",
    "milk",
    "door",
    "fish",
    "lamp",
    "bird",
    "cake",
    "rain",
]


def bench_policy_text() -> str:
    if POLICY_FILE.exists():
        return POLICY_FILE.read_text()
    return (safeguard_fixtures.FIXTURE_POLICY_TEXT + "\n") * 6  # about the same size


def bench_cases(n: int) -> list[CaseSpec]:
    """Short cases of one token length (single-token words swapped), so they batch together."""
    cases = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(28))
        cases.append(CaseSpec(key=f"c{i}", content=f"Case {i % 10}: {words}."))
    return cases


def build_model(quick: bool):  # noqa: ANN201 - (model, tokenizer)
    import torch
    from transformers import AutoTokenizer, GptOssConfig, GptOssForCausalLM

    torch.manual_seed(0)
    config = GptOssConfig(
        vocab_size=201088,
        hidden_size=512,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        head_dim=64,
        num_local_experts=8,
        num_experts_per_tok=2,
        sliding_window=128,
        layer_types=["sliding_attention", "full_attention"] * 2,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    model = GptOssForCausalLM(config).eval()
    # Random weights never emit a stop token on purpose, but might by chance: suppress them so
    # every variant generates exactly the same number of tokens.
    model.generation_config.suppress_tokens = [200002, 199999, 200012]
    # The engine's own decode loop has no suppress list: zero those rows of the (tied) output
    # matrix instead, so their logit is 0 and a random model's top logit is always another token.
    with torch.no_grad():
        model.model.embed_tokens.weight[[200002, 199999, 200012]] = 0
    tokenizer = AutoTokenizer.from_pretrained(safeguard_fixtures.build_tokenizer_dir())
    return model, tokenizer


def run_variant(name: str, backend, requests: list[PromptRequest], new_tokens: int) -> dict:  # noqa: ANN001
    started = time.perf_counter()
    generations = backend.generate(requests, max_new_tokens=new_tokens)
    elapsed = time.perf_counter() - started
    errors = [g.error_detail for g in generations if g.error is not None]
    if errors:
        raise RuntimeError(f"{name}: {errors[0]}")
    return {
        "name": name,
        "cases": len(requests),
        "seconds": elapsed,
        "cases_per_s": len(requests) / elapsed,
        "prompt_tokens_per_case": statistics.mean(g.prompt_tokens_computed for g in generations),
        "prompt_tokens": statistics.mean(g.tokens_in for g in generations),
        "texts": [g.text for g in generations],
    }


class _FullPromptBatches:
    """Batches of full prompts without prefix reuse: what plain batching buys on its own."""

    name = "bench"

    def __init__(self, loaded, batch_size: int) -> None:  # noqa: ANN001
        self.loaded = loaded
        self.batch_size = batch_size

    def generate(self, requests: list[PromptRequest], *, max_new_tokens: int) -> list:
        import torch

        from policies.safeguard.backend import Generation

        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        out = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            # The bench's cases have one token length: a plain batch, no padding.
            ids = torch.tensor(
                [tokenizer(r.prompt_text, add_special_tokens=False)["input_ids"] for r in chunk]
            )
            with torch.inference_mode():
                result = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=[200002, 199999, 200012],
                    pad_token_id=199999,
                )
            for row in result[:, ids.shape[1] :].tolist():
                out.append(
                    Generation(
                        text=tokenizer.decode(row, skip_special_tokens=False),
                        tokens_in=ids.shape[1],
                        tokens_out=len(row),
                        prompt_tokens_computed=ids.shape[1],
                    )
                )
        return out


def engine_overhead_ms(policy, cases: list[CaseSpec], repeats: int) -> float:  # noqa: ANN001
    """Milliseconds per case spent in the engine outside the model: render + neutralise + injection
    signals + parse of a typical harmony answer."""
    engine = Engine(EngineConfig(backend="openai"))
    answer = safeguard_fixtures.FIXTURE_CASES[1].completion
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.prepare(policy, cases, conversation_date=DATE)
        for _case in cases:
            parse_output(answer, policy=policy)
        timings.append((time.perf_counter() - started) * 1000 / len(cases))
    return statistics.median(timings)


def serve_throughput(n_requests: int, concurrencies: tuple[int, ...]) -> list[dict]:
    """The openai backend against `transformers serve` (tiny checkpoint) on loopback."""
    import socket

    import httpx

    checkpoint = safeguard_fixtures.build_tiny_checkpoint()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cli = Path(sys.executable).with_name("transformers")
    process = subprocess.Popen(
        [
            str(cli),
            "serve",
            str(checkpoint),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--attn-implementation",
            "eager",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    results = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("transformers serve did not start")
            time.sleep(0.5)
        policy = safeguard_fixtures.fixture_policy()
        cases = [f.case for f in safeguard_fixtures.FIXTURE_CASES] * (n_requests // 4)
        for concurrency in concurrencies:
            config = EngineConfig(
                base_url=f"http://127.0.0.1:{port}/v1",
                model=str(checkpoint),
                max_new_tokens=120,
                max_concurrency=concurrency,
            )
            engine = Engine(config)
            engine.draft(policy, cases[:2], conversation_date=DATE)  # warm up
            started = time.perf_counter()
            drafts = engine.draft(policy, cases, conversation_date=DATE)
            elapsed = time.perf_counter() - started
            results.append(
                {
                    "concurrency": concurrency,
                    "requests": len(cases),
                    "seconds": elapsed,
                    "requests_per_s": len(cases) / elapsed,
                    "ready": sum(d.is_ready for d in drafts),
                }
            )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return results


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, load average at start {load:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few cases, few tokens")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument(
        "--sequential-cases",
        type=int,
        default=None,
        help="cases for the variants without prefix reuse (cases/s is a rate; a subset keeps the run short)",
    )
    parser.add_argument("--no-serve", action="store_true", help="skip the transformers serve part")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument(
        "--write", type=Path, default=None, help="write the results as markdown to this file"
    )
    args = parser.parse_args()
    n_cases = args.cases or (8 if args.quick else 64)
    new_tokens = args.new_tokens or (8 if args.quick else 64)
    n_sequential = min(n_cases, args.sequential_cases or (8 if args.quick else 16))
    command = "python bench/engine_bench.py " + " ".join(sys.argv[1:])

    from policies.safeguard.batching import prepare_model
    from policies.safeguard.transformers_backend import LoadedModel, TransformersBackend

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    host = machine()
    model, tokenizer = build_model(args.quick)
    prepare_model(model)  # what the backend's loader does: slot attention, grouped-GEMM experts
    loaded = LoadedModel(model=model, tokenizer=tokenizer, device="cpu", revision="random")
    policy = policy_spec("bench", bench_policy_text())
    cases = bench_cases(n_cases)
    engine = Engine(EngineConfig(backend="transformers", device="cpu"))
    requests = [r for r, _ in engine.prepare(policy, cases, conversation_date=DATE)]
    lengths = {
        len(tokenizer(r.prompt_text, add_special_tokens=False)["input_ids"]) for r in requests
    }
    prefix_len = len(tokenizer(requests[0].prefix_text, add_special_tokens=False)["input_ids"])

    rows = []
    one = TransformersBackend(model="bench", device="cpu", use_prefix_cache=False, loaded=loaded)
    rows.append(run_variant("one at a time, full prompt", one, requests[:n_sequential], new_tokens))
    rows.append(
        run_variant(
            "batches of 8, full prompts",
            _FullPromptBatches(loaded, 8),
            requests[:n_sequential],
            new_tokens,
        )
    )
    cached_one = TransformersBackend(model="bench", device="cpu", batch_size=1, loaded=loaded)
    loaded.prefix_caches.clear()
    rows.append(
        run_variant(
            "policy prefix cached, one at a time", cached_one, requests[:n_sequential], new_tokens
        )
    )
    cached = TransformersBackend(model="bench", device="cpu", batch_size=8, loaded=loaded)
    loaded.prefix_caches.clear()
    variant = run_variant(
        "policy prefix cached + 8 slots (engine default)", cached, requests, new_tokens
    )
    # The prefix is computed once per run: charge it to the cases of this run.
    variant["prompt_tokens_per_case"] += prefix_len / n_cases
    rows.append(variant)
    for row in rows[2:3]:
        row["prompt_tokens_per_case"] += prefix_len / row["cases"]

    # More slots: all cases in one in-flight batch.
    wide = TransformersBackend(model="bench", device="cpu", batch_size=32, loaded=loaded)
    loaded.prefix_caches.clear()
    variant = run_variant("policy prefix cached + 32 slots", wide, requests, new_tokens)
    variant["prompt_tokens_per_case"] += prefix_len / n_cases
    rows.append(variant)

    baseline = rows[0]["cases_per_s"]
    identical = all(row["texts"] == rows[3]["texts"][: row["cases"]] for row in rows)
    overhead = engine_overhead_ms(policy, cases, repeats=5 if args.quick else 20)
    serve = [] if args.no_serve else serve_throughput(8 if args.quick else 32, (1, 8))

    lines = [
        f"Command: `{command.strip()}`  ",
        f"Machine: {host}  ",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Model: random GptOss, hidden 512, 4 layers (2 sliding-window 128, 2 full), 8 experts top-2, fp32, "
        f"eager attention, real o200k_harmony tokenizer; {n_cases} cases, prompt {min(lengths)}-{max(lengths)} "
        f"tokens of which {prefix_len} are the shared policy prefix (harmful-body-ideals policy + system block); "
        f"{new_tokens} new tokens per case.",
        "",
        "| variant | cases | cases/s | vs one at a time | prompt tokens computed per case |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['cases']} | {row['cases_per_s']:.2f} | "
            f"{row['cases_per_s'] / baseline:.1f}x | {row['prompt_tokens_per_case']:.0f} |"
        )
    lines += [
        "",
        f"Greedy outputs token-identical across variants: {'yes' if identical else 'NO'}.  ",
        f"Engine overhead outside the model (render + neutralise + injection signals + parse): "
        f"{overhead:.2f} ms per case (median of runs over {n_cases} cases).",
    ]
    if serve:
        lines += [
            "",
            "OpenAI-compatible backend against `transformers serve` (tiny fixture checkpoint, loopback, "
            "no continuous batching):",
            "",
            "| max_concurrency | requests | requests/s | ready drafts |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for row in serve:
            lines.append(
                f"| {row['concurrency']} | {row['requests']} | {row['requests_per_s']:.2f} | {row['ready']} |"
            )
    report = "\n".join(lines) + "\n"
    print(report)
    print(
        json.dumps(
            {
                "rows": [{k: v for k, v in r.items() if k != "texts"} for r in rows],
                "overhead_ms": overhead,
                "serve": serve,
            },
            indent=2,
        )
    )
    if args.write:
        args.write.write_text("# Safeguard engine benchmark\n\n" + report)


if __name__ == "__main__":
    main()
