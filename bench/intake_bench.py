"""Bulk intake throughput: POST /api/v1/items/bulk, 1,000 items a request, on PostgreSQL.

Creates a throwaway database next to the one DATABASE_URL names (`appeals_bench`), migrates it,
issues a real API token, sends RUNS bulk requests of ITEMS new items each through Django's test
client (the whole stack: middleware, token check, JSON, validation, intake, audit chain, Celery
publish on commit), and prints the median items/s as a markdown table. Celery messages go to a
dedicated Redis database (15 unless --redis-db) which is flushed afterwards; the bench database
is dropped at the end.

    eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/intake_bench.py [--runs 5] [--items 1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "appeals_bench"
CONTENT = (
    "Limited offer!!! Buy gold rings and designer watches at 90% off, only today, visit "
    "shopcoach.biz and enter code GOLD90. Thousands of happy customers. Message me for a "
    "wholesale price list. #{n}"
)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _admin_connection(database_url: str):
    import psycopg

    parts = urlsplit(database_url)
    return psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )


def _recreate_database(database_url: str) -> None:
    with _admin_connection(database_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _drop_database(database_url: str) -> None:
    with _admin_connection(database_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="also measure this many client processes sending at once",
    )
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra request")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    # The bench creates its own database, so it connects as the owner role (which may).
    database_url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    os.environ["MIGRATION_DATABASE_URL"] = ""
    if not database_url.startswith(("postgres://", "postgresql://")):
        print(
            'Set DATABASE_URL to PostgreSQL first: eval "$(bash scripts/services.sh env)"',
            file=sys.stderr,
        )
        return 2
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith("redis://"):
        broker = _with_path(broker, f"/{args.redis_db}")
        os.environ["CELERY_BROKER_URL"] = broker
    os.environ["DATABASE_URL"] = _with_path(database_url, f"/{BENCH_DB}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewer.settings")
    # The test client speaks plain http; measure the pages, not the redirect to https.
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

    _recreate_database(database_url)
    try:
        return _bench(args, broker)
    finally:
        from django.db import connections

        connections.close_all()
        if broker.startswith("redis://"):
            import redis

            redis.Redis.from_url(broker).flushdb()
        if not args.keep:
            _drop_database(database_url)


def _bench(args, broker: str) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from appeals.intake.tokens import create_api_token, get_or_create_platform
    from appeals.models import AuditEvent, Case
    from tests.builders import make_policy

    call_command("migrate", verbosity=0)
    make_policy()
    acme, _ = get_or_create_platform(slug="acme")
    _, raw = create_api_token(platform=acme, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", SERVER_NAME="localhost")

    counter = iter(range(10**9))

    def body(n: int) -> str:
        items = []
        for _ in range(n):
            i = next(counter)
            items.append(
                {
                    "external_id": f"bench-{i}",
                    "policy": "spam",
                    "content": CONTENT.format(n=i),
                    "source": "user_report",
                    "author_id": f"user-{i % 997}",
                    "metadata": {"lang": "en", "n": i},
                }
            )
        return json.dumps({"items": items})

    cpu_times: list[float] = []
    db_cpu_times: list[float] = []

    def send(payload: str) -> float:
        backend = _backend_cpu(connection)
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.post("/api/v1/items/bulk", payload, content_type="application/json")
        elapsed = time.perf_counter() - started
        cpu_times.append(time.process_time() - cpu_started)
        if backend is not None:
            db_cpu_times.append(_backend_cpu(connection) - backend)
        assert response.status_code == 200, response.content[:500]
        assert response.json()["created"] == args.items, response.content[:500]
        return elapsed

    send(body(args.items))  # warm-up: imports, connection, caches
    cpu_times.clear()
    db_cpu_times.clear()
    load_before = os.getloadavg()[0]
    timings = [send(body(args.items)) for _ in range(args.runs)]
    cpu_per_request = statistics.median(cpu_times)
    db_cpu_per_request = statistics.median(db_cpu_times) if db_cpu_times else None

    # Resending the same batch: every item answered as already here.
    resend = body(args.items)
    send(resend)
    started = time.perf_counter()
    again = client.post("/api/v1/items/bulk", resend, content_type="application/json")
    resend_s = time.perf_counter() - started
    assert again.json()["existing"] == args.items

    # One item a request, for comparison.
    singles = 200
    started = time.perf_counter()
    for _ in range(singles):
        i = next(counter)
        item = {"external_id": f"single-{i}", "policy": "spam", "content": CONTENT.format(n=i)}
        response = client.post("/api/v1/items", json.dumps(item), content_type="application/json")
        assert response.status_code == 201
    singles_s = time.perf_counter() - started

    parallel_rate = None
    if args.clients > 1:
        parallel_rate = _parallel(args, raw, body)

    if args.profile:
        profiler = cProfile.Profile()
        payload = body(args.items)
        profiler.enable()
        send(payload)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue(), file=sys.stderr)

    rates = [args.items / t for t in timings]
    median = statistics.median(rates)
    print("| measure | value |\n|---|---|")
    print(f"| bulk requests of {args.items:,} new items | {args.runs} (after 1 warm-up) |")
    print(f"| median throughput | **{median:,.0f} items/s** |")
    print(f"| per run (items/s) | {', '.join(f'{r:,.0f}' for r in rates)} |")
    print(
        f"| median request time | {statistics.median(timings) * 1000:,.0f} ms, of which "
        f"{cpu_per_request * 1000:,.0f} ms CPU in this process (client + Django) |"
    )
    if db_cpu_per_request is not None:
        print(f"| PostgreSQL backend CPU per request | {db_cpu_per_request * 1000:,.0f} ms |")
        cpu_bound = args.items / (cpu_per_request + db_cpu_per_request)
        print(
            f"| CPU-bound rate, one client (items / (Django CPU + PostgreSQL CPU)) | "
            f"{cpu_bound:,.0f} items/s |"
        )
    if parallel_rate is not None:
        print(
            f"| {args.clients} clients at once, {args.runs} requests each | "
            f"**{parallel_rate:,.0f} items/s** |"
        )
    print(f"| resend of {args.items:,} items already here | {args.items / resend_s:,.0f} items/s |")
    print(f"| single-item POST /items | {singles / singles_s:,.0f} requests/s |")
    print(
        f"| cases / audit events written | {Case.objects.count():,} / {AuditEvent.objects.count():,} |"
    )
    print(
        f"| database | PostgreSQL {connection.pg_version // 10000} ({connection.settings_dict['HOST']}) |"
    )
    print(f"| broker | {broker or 'filesystem://'} (flushed after) |")
    print(
        f"| machine | {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load_before:.1f} before the runs |"
    )
    print()
    print(
        'Command: `eval "$(bash scripts/services.sh env)" && .venv/bin/python bench/intake_bench.py '
        f"--runs {args.runs} --items {args.items}`"
    )
    return 0


def _backend_cpu(connection) -> float | None:
    """CPU seconds the PostgreSQL backend serving `connection` has used (when it is local)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _parallel(args, raw_token: str, body) -> float:
    """Items/s with several client processes at once, as several web workers would see it."""
    import multiprocessing

    from django.db import connections

    payloads = [[body(args.items) for _ in range(args.runs)] for _ in range(args.clients)]
    connections.close_all()  # each process opens its own
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(args.clients + 1)
    workers = [
        ctx.Process(target=_client_process, args=(raw_token, mine, barrier)) for mine in payloads
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if any(worker.exitcode for worker in workers):
        raise SystemExit("a client process failed")
    return args.clients * args.runs * args.items / elapsed


def _client_process(raw_token: str, payloads: list[str], barrier) -> None:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}", SERVER_NAME="localhost")
    barrier.wait()
    for payload in payloads:
        response = client.post("/api/v1/items/bulk", payload, content_type="application/json")
        assert response.status_code == 200 and response.json()["failed"] == 0, response.content[
            :300
        ]


if __name__ == "__main__":
    sys.exit(main())
