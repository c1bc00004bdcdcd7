"""Queue page and claim-next latency on PostgreSQL at 1,000 and at 1,000,000 open cases.

    eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/queue_bench.py            # 1k and 1M
    .venv/bin/python bench/queue_bench.py --sizes 1000,100000 --samples 100

Each size gets a fresh database (`appeals_bench_queue`). Claim-next is timed through the
service (`appeals.review.queueing.claim_next_case`), the queue page through Django's test client with a
logged-in reviewer (view + template + queries), both after a warm-up. The goal: p95 at 1M within
1.5x of p95 at 1k (keyset pagination, no COUNT(*) per page, a partial index in queue order).
"""

from __future__ import annotations

import argparse
import json
import platform as host_platform
import statistics
import time

from seed import bench_database, percentile, seed_cases


def measure(size: int, samples: int) -> dict:
    bench_database("appeals_bench_queue")
    seconds = seed_cases(size)
    from django.contrib.auth import get_user_model
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from appeals.models import Queue
    from appeals.review import queueing
    from appeals.review.roles import assign_role

    User = get_user_model()
    reviewers = []
    for i in range(samples + 10):
        user = User.objects.create_user(f"bench-reviewer-{i}", password="x")
        assign_role(user, "reviewer")
        reviewers.append(user)

    claim = []
    for i, reviewer in enumerate(reviewers):
        started = time.perf_counter()
        case = queueing.claim_next_case(reviewer=reviewer, queue=Queue.FLAGS)
        elapsed = time.perf_counter() - started
        assert case is not None
        if i >= 10:
            claim.append(elapsed)

    client = Client(SERVER_NAME="localhost")
    client.force_login(reviewers[0])
    page = []
    url = "/queues/flags/"
    response = client.get(url)
    page_available = response.status_code == 200
    queries = 0
    if page_available:
        with CaptureQueriesContext(connection) as ctx:
            client.get(url)
        queries = len(ctx.captured_queries)
        for i in range(samples + 5):
            started = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            if i >= 5:
                page.append(elapsed)
    reset_queries()
    connection.close()
    return {
        "size": size,
        "seed_s": seconds,
        "claim_p50": statistics.median(claim) * 1000,
        "claim_p95": percentile(claim, 0.95) * 1000,
        "page_p50": statistics.median(page) * 1000 if page else float("nan"),
        "page_p95": percentile(page, 0.95) * 1000 if page else float("nan"),
        "page_queries": queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    import subprocess
    import sys

    # One process per size: Django is configured once per process.
    if "--one" not in sys.argv:
        results = []
        for size in [int(s) for s in args.sizes.split(",")]:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(size), "--samples", str(args.samples)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
        print(
            f"Machine: {host_platform.node()}, {host_platform.processor() or host_platform.machine()}, "
            f"Python {host_platform.python_version()}\n"
        )
        print(
            "| open cases | claim-next p50 (ms) | claim-next p95 (ms) | queue page p50 (ms) | queue page p95 (ms) | queries per page | seeding (s) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in results:
            print(
                f"| {r['size']:,} | {r['claim_p50']:.1f} | {r['claim_p95']:.1f} | {r['page_p50']:.1f} | "
                f"{r['page_p95']:.1f} | {r['page_queries']} | {r['seed_s']:.0f} |"
            )
        if len(results) >= 2:
            small, large = results[0], results[-1]
            print(
                f"\nclaim-next p95 ratio {large['size']:,} / {small['size']:,}: {large['claim_p95'] / small['claim_p95']:.2f}x; "
                f"queue page p95 ratio: {large['page_p95'] / small['page_p95']:.2f}x (goal: at most 1.5x)"
            )
        return


if __name__ == "__main__":
    import sys

    if "--one" in sys.argv:
        size = int(sys.argv[sys.argv.index("--one") + 1])
        samples = int(sys.argv[sys.argv.index("--samples") + 1])
        print(json.dumps(measure(size, samples)))
    else:
        main()
