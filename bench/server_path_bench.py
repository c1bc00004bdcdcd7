"""The server path end to end: intake → Celery gpu worker(s) on Redis → OpenAI-compatible server → ready drafts.

    eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/server_path_bench.py                 # 640 cases, 2 s per request, 64 in flight
    .venv/bin/python bench/server_path_bench.py --cases 1280 --workers 2 --concurrency 32

The server is `bench/openai_standin.py`: fixed latency per request (default 2 s), unlimited
parallelism, a well-formed answer; it counts the requests in flight. Everything else is the product
as deployed: a fresh PostgreSQL database (`appeals_bench_server`, dropped at the end), real
moderation texts as items through the intake service (`receive_items_bulk`, the bulk API's body:
one transaction, draft tasks of SAFEGUARD_BATCH_SIZE ids published to Redis on commit), and
`celery -A reviewer worker -Q gpu --pool solo` processes with the openai backend and
SAFEGUARD_MAX_CONCURRENCY requests in flight each. Each draft is stored (READY, audit event) by the
worker as its answer comes back.

Reported: drafts/s from the intake's commit to the last stored draft, against the server-bound
ideal (requests in flight / latency: 64 / 2 s = 32 drafts/s), the peak in flight the server saw,
and the workers' CPU time. The goal (issue 12): at least 90% of the ideal on a 2-core machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform as host_platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "appeals_bench_server"


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _texts(count: int) -> list[str]:
    from tests.paths import shared_path

    texts: list[str] = []
    with gzip.open(
        shared_path("openai-moderation", "samples-1680.jsonl.gz"), "rt", encoding="utf-8"
    ) as handle:
        for line in handle:
            text = json.loads(line)["prompt"].strip()
            if text:
                texts.append(text[:4000])
    return [texts[i % len(texts)] for i in range(count)]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_worker(index: int, env: dict, log_dir: Path) -> tuple[subprocess.Popen, Path]:
    log_path = log_dir / f"server-path-worker-{index}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "reviewer",
            "worker",
            "--pool",
            "solo",
            "--queues",
            "gpu",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"bench-{index}-{os.getpid()}@localhost",
        ],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return process, log_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=640)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=64, help="SAFEGUARD_MAX_CONCURRENCY")
    parser.add_argument("--workers", type=int, default=1, help="gpu worker processes")
    parser.add_argument("--batch", type=int, default=8, help="SAFEGUARD_BATCH_SIZE (ids a task)")
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()

    database_url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not broker.startswith(
        "redis://"
    ):
        print('Needs PostgreSQL and Redis: eval "$(bash scripts/services.sh env)"', file=sys.stderr)
        return 2
    broker = _with_path(broker, f"/{args.redis_db}")
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["SAFEGUARD_BATCH_SIZE"] = str(args.batch)

    import redis
    from seed import bench_database

    from bench.openai_standin import StandinServer

    redis.Redis.from_url(broker).flushdb()
    url = bench_database(BENCH_DB)  # fresh, migrated; Django set up against it
    log_dir = ROOT / "var" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    server = StandinServer(latency_s=args.latency).start()
    workers: list[tuple[subprocess.Popen, Path]] = []
    try:
        from django.db import connection
        from django.db.models import Count, Max
        from django.utils import timezone
        from seed import ensure_fixtures

        from appeals.intake.bulk import receive_items_bulk
        from appeals.intake.schemas import ItemIn
        from appeals.models import Recommendation

        platform, version = ensure_fixtures()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "MIGRATION_DATABASE_URL": "",
            "CELERY_BROKER_URL": broker,
            "DJANGO_SETTINGS_MODULE": "reviewer.settings",
            "PYTHONUNBUFFERED": "1",
            "SAFEGUARD_BACKEND": "openai",
            "SAFEGUARD_BASE_URL": server.base_url,
            "SAFEGUARD_MODEL": "standin",
            "SAFEGUARD_MAX_CONCURRENCY": str(args.concurrency),
            "SAFEGUARD_BATCH_SIZE": str(args.batch),
            "SAFEGUARD_TIMEOUT_SECONDS": str(max(30, int(args.latency * 5))),
        }
        workers = [_start_worker(i, env, log_dir) for i in range(args.workers)]
        deadline = time.monotonic() + 60
        while not all(b"ready." in log.read_bytes() for _, log in workers):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in workers):
                print(workers[0][1].read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.2)

        payloads = [
            ItemIn(external_id=f"srv-{i}", policy="spam", content=text)
            for i, text in enumerate(_texts(args.cases))
        ]
        cpu_before = sum(_cpu_seconds(p.pid) for p, _ in workers)
        started = time.perf_counter()
        outcomes = receive_items_bulk(platform=platform, payloads=payloads, invalid={})
        committed = time.perf_counter()
        committed_monotonic = time.monotonic()
        committed_at = timezone.now()
        assert all(o.status == 201 for o in outcomes), "intake refused some items"
        done = 0
        while done < args.cases:
            time.sleep(0.1)
            done = Recommendation.objects.exclude(status__in=Recommendation.IN_FLIGHT).count()
            if time.perf_counter() - committed > args.cases * args.latency + 120:
                print("timed out waiting for drafts", file=sys.stderr)
                return 1
        # The end is when the last draft was stored (the worker's clock: same host).
        last_stored = Recommendation.objects.aggregate(last=Max("finished_at"))["last"]
        finished = committed + (last_stored - committed_at).total_seconds()
        cpu_used = sum(_cpu_seconds(p.pid) for p, _ in workers) - cpu_before
        statuses = dict(
            Recommendation.objects.order_by().values_list("status").annotate(n=Count("id"))
        )
        attempts = sorted(set(Recommendation.objects.values_list("attempts", flat=True)))
        latencies = sorted(Recommendation.objects.values_list("latency_ms", flat=True))
        spans = sorted(server.spans)
        first_arrival, last_answer = spans[0][0], max(end for _, end in spans)
        busy = sum(end - begin for begin, end in spans)
        in_flight_target = args.concurrency * args.workers
        ideal = in_flight_target / args.latency
        elapsed = finished - committed
        rate = args.cases / elapsed
        result = {
            "cases": args.cases,
            "latency_s": args.latency,
            "workers": args.workers,
            "max_concurrency": args.concurrency,
            "batch_size": args.batch,
            "intake_s": round(committed - started, 3),
            "drain_s": round(elapsed, 3),
            "drafts_per_s": round(rate, 2),
            "drafts_per_s_from_intake_start": round(args.cases / (finished - started), 2),
            "ideal_drafts_per_s": ideal,
            "of_ideal": round(rate / ideal, 4),
            # The last wave cannot be full: the best any client can do over N cases.
            "of_ideal_bound": round(
                args.cases / (-(-args.cases // in_flight_target) * args.latency) / ideal, 4
            ),
            "peak_in_flight": server.peak_in_flight,
            # Requests in flight on average between the first arrival and the last answer.
            "mean_in_flight": round(busy / (last_answer - first_arrival), 1),
            "first_request_after_commit_s": round(first_arrival - committed_monotonic, 3),
            "server_span_s": round(last_answer - first_arrival, 3),
            "client_latency_ms_p50_max": [latencies[len(latencies) // 2], latencies[-1]],
            "server_requests": server.requests,
            "statuses": statuses,
            "attempts": attempts,
            "worker_cpu_s": round(cpu_used, 1),
            "host": f"{host_platform.node()} ({os.cpu_count()} CPUs), Python "
            f"{host_platform.python_version()}, PostgreSQL {connection.pg_version // 10000}",
        }
        print(json.dumps(result, indent=2))
        print(
            f"\n| cases | workers × in flight | latency | drafts/s | ideal | of ideal | peak in "
            f"flight | worker CPU s |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {args.cases} | {args.workers} × {args.concurrency} | {args.latency:g} s | "
            f"{rate:.2f} | {ideal:g} | {rate / ideal:.1%} | {server.peak_in_flight} | "
            f"{cpu_used:.1f} |"
        )
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
        ok = statuses == {"ready": args.cases} and server.requests == args.cases
        return 0 if ok else 1
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
        from django.db import connections

        connections.close_all()
        redis.Redis.from_url(broker).flushdb()
        import psycopg

        admin = _with_path(database_url, "/postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
