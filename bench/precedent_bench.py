"""Precedents (issue 14): embedding throughput on this machine's CPU, and the five most similar
decided cases at 1,000,000 cases, measured end to end (the index query, the catch-up, and the
database re-check of every hit through `appeals.precedents.services.similar_decided_cases`).

    .venv/bin/python bench/precedent_bench.py [--cases 1000000] [--queries 300] [--dtype f16]
        [--ef 64,128,256] [--keep DIR] [--reuse-embeddings FILE.npz] [--out result.json]

Data, all of it from real texts in ../shared/datasets (resolved as tests/paths.py does):
- every text of the OpenAI moderation eval set, HateCheck, the teen-safety golden sets and the
  spam golden set is embedded with the product's model (that is the throughput figure);
- one text in 20 is held out as a query (a new case), never in the index;
- the other real embeddings are the seeds of the 1,000,000 decided cases: case i is seed
  i mod n plus Gaussian noise (σ per dimension, default 0.03: a cosine of about 0.85 to its seed),
  normalised. See docs/benchmarks.md for why this is no easier for the index than real data.
The database is a new SQLite file (the embedded default) migrated by Django, with 1,000,000
items, decided cases, decisions and their embeddings (float16 bytes) written with plain SQL;
the held-out queries are open cases of their own. Recall@5 is measured against an exact search.
Prints one JSON object (and writes it to --out).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def real_texts() -> list[str]:
    from tests.paths import DATASETS

    texts: list[str] = []
    with gzip.open(DATASETS / "openai-moderation" / "samples-1680.jsonl.gz", "rt") as handle:
        texts += [json.loads(line)["prompt"] for line in handle]
    with open(DATASETS / "hatecheck" / "test_suite_cases.csv", newline="") as handle:
        texts += [row["test_case"] for row in csv.DictReader(handle)]
    for path in sorted((DATASETS / "teen-safety-policy-pack" / "datasets").glob("*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        # A disclaimer line, then a header whose first column is the example prompt.
        header = next(
            i for i, row in enumerate(rows) if row and row[0].lower().startswith("example")
        )
        texts += [row[0] for row in rows[header + 1 :] if row]
    with open(DATASETS / "spam-policy-example" / "golden_dataset.csv", newline="") as handle:
        texts += [row[1] for row in csv.reader(handle) if len(row) > 1 and row[0].strip().isdigit()]
    seen, unique = set(), []
    for text in (t.strip() for t in texts):
        if text and text not in seen:
            seen.add(text)
            unique.append(text)
    return unique


def bench_embedding(texts: list[str]) -> tuple[np.ndarray, dict]:
    from appeals.precedents import embedder

    embedder.embed(texts[:8])  # load the model
    start, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.embed(texts, batch_size=64)
    batched, cpu = time.perf_counter() - start, time.process_time() - cpu
    single = texts[:: max(1, len(texts) // 100)][:100]
    start = time.perf_counter()
    for text in single:
        embedder.embed([text])
    one = time.perf_counter() - start
    chars = [len(t) for t in texts]
    return vectors, {
        "texts": len(texts),
        "mean_chars": round(sum(chars) / len(chars)),
        "p95_chars": int(np.percentile(chars, 95)),
        "batch": 64,
        "texts_per_s_batched": round(len(texts) / batched, 1),
        "texts_per_cpu_s_batched": round(len(texts) / cpu, 1),
        "texts_per_s_one_at_a_time": round(len(single) / one, 1),
        "model": f"{embedder.model_id().name} {embedder.model_id().version}",
    }


def grow(seeds: np.ndarray, n: int, sigma: float, rng) -> np.ndarray:
    """n float16 vectors: seed i mod len(seeds) plus N(0, sigma²) per dimension, normalised."""
    out = np.empty((n, seeds.shape[1]), dtype=np.float16)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = seeds[np.arange(start, stop) % len(seeds)] + rng.normal(
            0, sigma, size=(stop - start, seeds.shape[1])
        ).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out


def fill_database(vectors: np.ndarray, queries: np.ndarray) -> dict:
    """Items, decided cases, decisions and embeddings 1..n; the queries as open cases n+1.."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from appeals.models import Platform
    from appeals.precedents import embedder
    from appeals.review.roles import assign_role, bootstrap_roles
    from policies.services import import_policy_version

    bootstrap_roles()
    user = get_user_model().objects.create_user("bench-reviewer", password="x" * 20)
    assign_role(user, "reviewer")
    platform = Platform.objects.create(slug="bench", name="Bench")
    version = import_policy_version(
        slug="spam", name="Spam", text="# Spam (#SP)\n\n## SP2 promotion\nSP2.b ads - x\n"
    )
    model = embedder.model_id()
    now = timezone.now().isoformat()
    n, total = len(vectors), len(vectors) + len(queries)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            "INSERT INTO appeals_item (id, platform_id, external_id, policy_version_id, content,"
            " content_type, author_id, reporter_id, source, metadata, received_at, language)"
            " SELECT i, %s, 'bench-' || i, %s, 'bench text ' || i, 'text', 'author-' || (i %% 5000),"
            " '', 'user_report', '{}', %s, 'en' FROM s",
            [total, platform.id, version.id, now],
        )
        cursor.execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            "INSERT INTO appeals_case (id, kind, platform_id, external_id, item_id,"
            " policy_version_id, queue, status, priority, due_at, created_at, request_sha256,"
            " escalation_reason, appellant_id, statement, original_action, original_rule_ids,"
            " original_mismatch)"
            " SELECT i, 'flag', %s, 'bench-' || i, i, %s, 'flags',"
            " CASE WHEN i <= %s THEN 'decided' ELSE 'open' END, 0, %s, %s, '', '', '', '', '',"
            " '[]', '[]' FROM s",
            [total, platform.id, version.id, n, now, now],
        )
        cursor.execute(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            "INSERT INTO appeals_decision (id, case_id, decided_by_id, decided_at, outcome, action,"
            " rule_ids, note, model_outcome, accepted_recommendation, model_action,"
            " recommendation_shown, blind_outcome, blind_rule_ids, dsa_mapping, notice,"
            " policy_name)"
            " SELECT i, i, %s, %s, CASE WHEN i %% 3 = 0 THEN 'violating' ELSE 'not_violating' END,"
            " CASE WHEN i %% 3 = 0 THEN 'remove' ELSE 'none' END,"
            " CASE WHEN i %% 3 = 0 THEN '[\"SP2.b\"]' ELSE '[]' END, '', '', 0, '', 1, '', '[]',"
            " '{}', '', 'Spam' FROM s",
            [n, user.id, now],
        )
        everything = np.vstack([vectors, queries.astype(np.float16)])
        for start in range(0, total, 50_000):
            stop = min(total, start + 50_000)
            cursor.executemany(
                "INSERT INTO appeals_embedding (id, item_id, model_name, model_version, dtype,"
                " dims, vector, text_sha256, created_at) VALUES (%s, %s, %s, %s, 'f16', %s, %s,"
                " '', %s)",
                [
                    (i + 1, i + 1, model.name, model.version, 384, everything[i].tobytes(), now)
                    for i in range(start, stop)
                ],
            )
    return {"seconds": round(time.perf_counter() - started, 1), "user": user}


def build_index(vectors: np.ndarray, dtype: str) -> tuple[object, dict]:
    from appeals.precedents import index as precedent_index

    index = precedent_index._new_index()
    before = rss_mb()
    started = time.perf_counter()
    for start in range(0, len(vectors), 100_000):
        stop = min(len(vectors), start + 100_000)
        index.add(
            np.arange(start + 1, stop + 1, dtype=np.uint64),
            vectors[start:stop].astype(np.float32),
            threads=os.cpu_count() or 1,
        )
    return index, {
        "dtype": dtype,
        "build_seconds": round(time.perf_counter() - started, 1),
        "index_memory_mb": round(index.memory_usage / 2**20),
        "rss_growth_mb": round(rss_mb() - before),
    }


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (1-based) of the exact k nearest by cosine, from the same float16 vectors."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), 100_000):
        block = vectors[start : start + 100_000].astype(np.float32)
        scores = queries @ block.T
        ids = np.broadcast_to(np.arange(start + 1, start + 1 + len(block)), scores.shape)
        merged_s = np.concatenate([best_scores, scores], axis=1)
        merged_i = np.concatenate([best_ids, ids], axis=1)
        top = np.argpartition(-merged_s, k, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_s, top, axis=1)
        best_ids = np.take_along_axis(merged_i, top, axis=1)
    return best_ids


def percentile(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sigma", type=float, default=0.03)
    parser.add_argument("--dtype", default="f16", choices=["f32", "f16", "i8"])
    parser.add_argument(
        "--ef", default="64,128,256", help="expansion_search values to compare (first: timed)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--reuse-embeddings",
        type=Path,
        default=None,
        help="an .npz from an earlier run (written if missing): skips re-embedding while the "
        "index part is tuned; the embedding figures are then that run's",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="a folder for the database and the index, kept after the run; a later run with "
        "the same folder and arguments reuses them instead of writing them again",
    )
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="precedent-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.sqlite3"
    reuse = args.keep is not None and (workdir / "index" / "precedents.json").exists()
    if db.exists() and not reuse:
        db.unlink()
    os.environ.update(
        DATABASE_URL=f"sqlite:///{db}",
        MIGRATION_DATABASE_URL="",
        CELERY_BROKER_URL="memory://",
        DJANGO_SETTINGS_MODULE="reviewer.settings",
        PRECEDENTS_INDEX_DIR=str(workdir / "index"),
        PRECEDENTS_INDEX_DTYPE=args.dtype,
        APPEALS_VAR_DIR=str(workdir),
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    if not reuse:
        call_command("migrate", verbosity=0)
    from appeals.models import Case, Decision, Embedding
    from appeals.precedents import index as precedent_index
    from appeals.precedents import services
    from appeals.review.permissions import can_view_case

    result: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg(),
        "cases": args.cases,
        "sigma": args.sigma,
    }
    texts = real_texts()
    cache = args.reuse_embeddings
    if cache and cache.exists():
        saved = np.load(cache, allow_pickle=False)
        vectors, result["embedding"] = saved["vectors"], json.loads(str(saved["figures"]))
        result["embedding"]["reused_from"] = str(cache)
    else:
        vectors, result["embedding"] = bench_embedding(texts)
        if cache:
            np.savez(cache, vectors=vectors, figures=json.dumps(result["embedding"]))
    held_out = np.arange(len(texts)) % 20 == 0
    seeds, queries = vectors[~held_out], vectors[held_out][: args.queries]
    result["real_texts"] = {"seeds": int(len(seeds)), "queries": int(len(queries))}
    rng = np.random.default_rng(14)
    grown = grow(seeds, args.cases, args.sigma, rng)
    to_seed = np.einsum(
        "ij,ij->i", grown[:2000].astype(np.float32), seeds[np.arange(2000) % len(seeds)]
    )
    result["grown_cosine_to_seed_mean"] = round(float(to_seed.mean()), 3)
    real_nn = seeds[:500] @ seeds.T
    np.fill_diagonal(real_nn[:, :500], -1)
    result["real_seed_nearest_other_seed_cosine_mean"] = round(float(real_nn.max(axis=1).mean()), 3)

    if reuse:
        result["reused"] = str(workdir)
        user = get_user_model().objects.get(username="bench-reviewer")
    else:
        filled = fill_database(grown, queries)
        user = filled.pop("user")
        result["database"] = {**filled, "bytes": db.stat().st_size}
        index, result["index"] = build_index(grown, args.dtype)
        built = precedent_index.PrecedentIndex(
            index, precedent_index.Marks(Embedding.objects.count(), Decision.objects.count())
        )
        started = time.perf_counter()
        built.save()
        result["index"]["save_seconds"] = round(time.perf_counter() - started, 1)
        del index, built
    result["database_rows"] = {
        "embeddings": Embedding.objects.count(),
        "decided_cases": Case.objects.filter(status="decided").count(),
        "decisions": Decision.objects.count(),
    }
    result["index_file_mb"] = round(
        (Path(os.environ["PRECEDENTS_INDEX_DIR"]) / precedent_index.INDEX_FILE).stat().st_size
        / 2**20
    )
    precedent_index.forget()
    before = rss_mb()
    started = time.perf_counter()
    loaded = precedent_index.current()  # as a new process: reads the file, then catches up
    result["index_load_seconds"] = round(time.perf_counter() - started, 1)
    result["index_memory_mb"] = round(loaded.index.memory_usage / 2**20)
    result["rss_after_load_growth_mb"] = round(rss_mb() - before)

    exact = exact_top(grown, queries, 5)
    exact_sims = [
        sorted(
            (float(queries[q] @ grown[i - 1].astype(np.float32)) for i in exact[q]), reverse=True
        )
        for q in range(len(queries))
    ]
    query_cases = list(
        Case.objects.filter(status="open").select_related("item", "policy_version").order_by("id")
    )
    assert len(query_cases) == len(queries)

    def reviewer_may_read(case):
        return can_view_case(user, case)

    efs = [int(x) for x in args.ef.split(",")]
    result["by_ef"] = {}
    for ef in efs:
        loaded.index.expansion_search = ef
        timings = {"usearch_query": [], "page_first": [], "page_again": []}
        recall_index, recall_page, sim_ratio = [], [], []
        for q, case in enumerate(query_cases):
            vector = queries[q].astype(np.float16).astype(np.float32)
            start = time.perf_counter()
            hits = loaded.search(vector, services.FIRST_ASK)
            timings["usearch_query"].append((time.perf_counter() - start) * 1000)
            # The whole panel as a reviewer gets it: catch-up, the index, the re-check, the
            # permission check of every hit; first for this case, then again (the page's
            # refresh: the same rows now in the database's cache).
            start = time.perf_counter()
            found = services.similar_decided_cases(case, visible=reviewer_may_read)
            timings["page_first"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            services.similar_decided_cases(case, visible=reviewer_may_read)
            timings["page_again"].append((time.perf_counter() - start) * 1000)
            truth = set(int(i) for i in exact[q])
            recall_index.append(len(truth & {k for k, _ in hits[:5]}) / 5)
            recall_page.append(len(truth & {p.case.item_id for p in found.cases}) / 5)
            sim_ratio.append(sum(p.similarity for p in found.cases) / sum(exact_sims[q]))
        result["by_ef"][ef] = {
            "top5_ms": {
                name: {
                    "p50": percentile(values[10:], 50),
                    "p95": percentile(values[10:], 95),
                    "p99": percentile(values[10:], 99),
                }
                for name, values in timings.items()
            },
            "recall_at_5_index": round(float(np.mean(recall_index)), 4),
            "recall_at_5_page": round(float(np.mean(recall_page)), 4),
            "page_similarity_sum_over_exact": round(float(np.mean(sim_ratio)), 4),
        }
    result["peak_rss_mb"] = round(rss_mb())
    result["load_average_at_end"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
