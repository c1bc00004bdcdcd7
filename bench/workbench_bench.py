"""Benchmark of an evaluation run: 1,000 golden items against a stand-in OpenAI-compatible
server that answers each request after 1 s, serving any number in parallel.

    python bench/workbench_bench.py [--items 1000] [--latency 1.0] [--write docs/benchmarks.md]

Runs in this process on a throwaway SQLite database (or DATABASE_URL if set), through the same
`execute_run` the Celery task calls, with the workbench's settings (WORKBENCH_MAX_CONCURRENCY,
WORKBENCH_CHUNK_SIZE). The target is at most 40 s on the 2-core CI machine: sequential drafting
would take items × latency (1,000 s), so the run has to keep many requests in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="workbench-bench-")
    os.environ.setdefault("APPEALS_VAR_DIR", tmp)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewer.settings")
    from tests.standin_server import StandInServer

    with StandInServer(latency=args.latency) as server:
        os.environ.update(
            SAFEGUARD_BACKEND="openai",
            SAFEGUARD_BASE_URL=server.base_url,
            SAFEGUARD_MODEL="stand-in",
        )
        import django

        django.setup()
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from policies.workbench import golden, runs
        from tests.builders import make_policy

        version = make_policy(slug=f"bench-{int(time.time())}")
        lines = "".join(
            json.dumps(
                {
                    "content": f"item {i}: "
                    + ("buy gold today" if i % 4 == 0 else "see you later"),
                    "expected": i % 4 == 0,
                    "rule_ids": ["SP2.b"] if i % 4 == 0 else [],
                    "language": "en",
                }
            )
            + "\n"
            for i in range(args.items)
        )
        golden_set = golden.import_golden_set(
            policy=version.policy, name="bench", data=lines, fmt="jsonl"
        )
        run = runs.create_run(version=version, golden_set=golden_set)
        started = time.perf_counter()
        run = runs.execute_run(run.id)
        elapsed = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "items": args.items,
                    "latency_s": args.latency,
                    "seconds": round(elapsed, 2),
                    "items_per_s": round(args.items / elapsed, 1),
                    "server_peak_in_flight": server.peak,
                    "requests": server.requests,
                    "results": run.results.count(),
                    "f1": run.metrics["f1"],
                    "concurrency": settings.WORKBENCH_MAX_CONCURRENCY,
                    "chunk": settings.WORKBENCH_CHUNK_SIZE,
                    "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
