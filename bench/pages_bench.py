"""Server time of the console's pages on PostgreSQL with up to 1,000,000 cases.

    eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/pages_bench.py                       # 1k and 1M cases
    .venv/bin/python bench/pages_bench.py --sizes 1000000 --samples 100

Each size gets a fresh database (`appeals_bench_pages`), seeded with INSERT … SELECT
generate_series (bench/seed.py): flag cases with items and ready recommendations, 10% of them
decided, 200 cases per author. Each page is requested through Django's test client as a
logged-in reviewer (middleware, view, queries and template: the server's share of a request),
after a warm-up; the table reports median and p95 and the queries each page makes.
"""

from __future__ import annotations

import argparse
import html
import json
import platform as host_platform
import re
import statistics
import subprocess
import sys
import time

from seed import bench_database, percentile, seed_cases

PAGES = ("dashboard", "queue", "queue_next", "case", "case_other")


def _time(client, url: str, samples: int, warmup: int = 5) -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    queries = len(ctx.captured_queries)
    timings = []
    for i in range(samples + warmup):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        if i >= warmup:
            timings.append(elapsed)
    return timings, queries


def measure(size: int, samples: int, decided: float) -> dict:
    bench_database("appeals_bench_pages")
    seconds = seed_cases(size, decided_fraction=decided)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from appeals.models import Case, Queue
    from appeals.review import queueing
    from appeals.review.roles import assign_role

    with connection.cursor() as cursor:
        # Steady state: autovacuum would have set the visibility map by now.
        cursor.execute("VACUUM ANALYZE appeals_case")
    reviewer = get_user_model().objects.create_user("bench-pages", password="x")
    assign_role(reviewer, "reviewer")
    claimed = queueing.claim_next_case(reviewer=reviewer, queue=Queue.FLAGS)
    other = Case.objects.open().order_by("-id").values_list("id", flat=True).first()

    client = Client(HTTP_HOST="localhost")
    client.force_login(reviewer)
    first_page = client.get("/queues/flags/").content.decode()
    next_query = html.unescape(re.search(r'href="\?([^"]+)" rel="next"', first_page).group(1))
    urls = {
        "dashboard": "/",
        "queue": "/queues/flags/",
        "queue_next": "/queues/flags/?" + next_query,
        "case": f"/cases/{claimed.id}/",
        "case_other": f"/cases/{other}/",
    }
    result = {"size": size, "seed_s": seconds, "open": Case.objects.open().count()}
    for name in PAGES:
        timings, queries = _time(client, urls[name], samples)
        result[name] = {
            "p50": statistics.median(timings) * 1000,
            "p95": percentile(timings, 0.95) * 1000,
            "queries": queries,
        }
    connection.close()
    return result


LABELS = {
    "dashboard": "Dashboard `/`",
    "queue": "Queue list, first page",
    "queue_next": "Queue list, next page (cursor)",
    "case": "Case page (claimed, with decision form)",
    "case_other": "Case page (read-only)",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--decided",
        type=float,
        default=0.1,
        help="fraction of the seeded cases already decided (default 0.1)",
    )
    args = parser.parse_args()
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        # One process per size: Django is configured once per process.
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(size),
                "--samples",
                str(args.samples),
                "--decided",
                str(args.decided),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"Machine: {host_platform.node()}, {host_platform.processor() or host_platform.machine()}, "
        f"Python {host_platform.python_version()}; {args.samples} samples per page\n"
    )
    print("| page | cases (open) | p50 (ms) | p95 (ms) | queries |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in PAGES:
        for r in results:
            row = r[name]
            print(
                f"| {LABELS[name]} | {r['size']:,} ({r['open']:,}) | {row['p50']:.1f} | {row['p95']:.1f} | "
                f"{row['queries']} |"
            )
    print()
    for r in results:
        print(f"Seeding {r['size']:,} cases took {r['seed_s']:.0f} s.")


if __name__ == "__main__":
    if "--one" in sys.argv:
        size = int(sys.argv[sys.argv.index("--one") + 1])
        samples = int(sys.argv[sys.argv.index("--samples") + 1])
        decided = float(sys.argv[sys.argv.index("--decided") + 1])
        print(json.dumps(measure(size, samples, decided)))
    else:
        main()
