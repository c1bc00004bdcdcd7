"""Exporting a million decisions from PostgreSQL: rows per second and peak memory.

    eval "$(bash scripts/services.sh env)"
    .venv/bin/python bench/export_bench.py                       # 1,000,000 decisions, CSV
    .venv/bin/python bench/export_bench.py --rows 100000 --format jsonl --tracemalloc

Seeds a fresh database (`appeals_bench_export`) with INSERT … SELECT generate_series (items,
cases, ready recommendations, then one decision per case), then runs the same export the console
and `manage.py export_decisions` run (`appeals.disclosure.exports.Export`) into a temporary file.
Memory: the growth of the process's peak RSS (ru_maxrss) across the export, and with
`--tracemalloc` a second, slower pass that reports the Python heap's peak.
Goal: ≥ 30,000 rows/s and < 200 MB. Results go in docs/benchmarks-export.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host_platform
import resource
import tempfile
import time

from seed import bench_database, seed_cases


def seed_decisions() -> float:
    """One decision per decided case (a quarter removals citing SP2.a), by a bench reviewer."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from appeals.review.roles import assign_role

    reviewer = get_user_model().objects.create_user("bench-reviewer", password="x")
    assign_role(reviewer, "reviewer")
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO appeals_decision (case_id, decided_by_id, decided_at, outcome, action,
                rule_ids, note, recommendation_id, model_outcome, agrees_with_model,
                accepted_recommendation, recommendation_shown, blind_outcome, blind_rule_ids,
                blind_agrees_with_model, claimed_at, model_action, action_agrees, rules_agree,
                rules_overlap, notice, policy_name, appeal_window_days, appeal_deadline, dsa_mapping)
            SELECT c.id, %s, c.created_at + make_interval(mins => (5 + c.id %% 600)::int),
                   CASE WHEN c.id %% 4 = 0 THEN 'violating' ELSE 'not_violating' END,
                   CASE WHEN c.id %% 4 = 0 THEN 'remove' ELSE 'none' END,
                   CASE WHEN c.id %% 4 = 0 THEN '["SP2.a"]' ELSE '[]' END::jsonb,
                   '', r.id, CASE WHEN r.violation THEN 'violating' ELSE 'not_violating' END,
                   (c.id %% 4 = 0) = r.violation, false, true, '', '[]'::jsonb, NULL,
                   c.created_at + make_interval(mins => (c.id %% 5)::int),
                   CASE WHEN r.violation THEN 'remove' ELSE 'none' END,
                   (c.id %% 4 = 0) = r.violation,
                   -- The model cites SP2.a on every third case, the reviewer on every fourth.
                   CASE WHEN c.id %% 3 = 0 OR c.id %% 4 = 0 THEN (c.id %% 3 = 0) = (c.id %% 4 = 0) END,
                   CASE WHEN c.id %% 3 = 0 OR c.id %% 4 = 0
                        THEN CASE WHEN c.id %% 12 = 0 THEN 1.0 ELSE 0.0 END END,
                   -- What each decision told, stored with it (issue 10.5): the notice's text
                   -- as `decide_case` writes it, one per outcome and day.
                   CASE WHEN c.id %% 4 = 0 THEN
                     'We reviewed the content against our Spam policy and found that it breaks '
                     || E'these rules:\n- SP2.a: Cold promotion\n\nAs a result, the content has '
                     || E'been removed.\n\nA person on our review team made this decision, after '
                     || 'checking a recommendation prepared by an automated system.'
                     || E'\n\nYou can appeal this decision within 183 days, until '
                     || to_char(c.created_at + interval '183 days', 'YYYY-MM-DD') || '.'
                   ELSE
                     'We reviewed the reported content against our Spam policy and found that it '
                     || E'does not break its rules. No action has been taken.\n\nA person on our '
                     || 'review team made this decision, after checking a recommendation prepared '
                     || 'by an automated system.'
                   END,
                   'Spam', 183, c.created_at + interval '183 days',
                   ('{"default": {"category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD", '
                    || '"decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT"}}')::jsonb
            FROM appeals_case c JOIN appeals_recommendation r ON r.case_id = c.id
            WHERE c.status = 'decided'
            """,
            [reviewer.id],
        )
        cur.execute("ANALYZE appeals_decision")
    return time.perf_counter() - started


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def calibration_seconds() -> float:
    """CPU seconds for an empty 10-million-step Python loop: how fast this machine is right now
    (a shared VM's speed drifts between runs; rows/s are only comparable at similar values)."""
    started = time.process_time()
    for _ in range(10_000_000):
        pass
    return round(time.process_time() - started, 2)


def run_export(fmt: str, chunk_size: int, *, trace: bool = False) -> dict:
    import tracemalloc

    from appeals.disclosure.exports import Export, ExportFilters

    export = Export(fmt=fmt, filters=ExportFilters(), actor_label="bench", chunk_size=chunk_size)
    rss_before = maxrss_mb()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", suffix=f".{fmt}") as out:
        for chunk in export.chunks():
            out.write(chunk)
        out.flush()
        size = os.path.getsize(out.name)
    seconds = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (
        usage_after.ru_stime - usage_before.ru_stime
    )
    result = {
        "rows": export.rows,
        "records": export.records,
        "seconds": round(seconds, 2),
        "rows_per_second": round(export.rows / seconds),
        # This process's own CPU time (PostgreSQL's work is in its server processes).
        "cpu_seconds": round(cpu, 2),
        "load_average_after": os.getloadavg()[0],
        "bytes": size,
        "maxrss_before_mb": round(rss_before, 1),
        "maxrss_after_mb": round(maxrss_mb(), 1),
        "maxrss_growth_mb": round(maxrss_mb() - rss_before, 1),
    }
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        result["tracemalloc_peak_mb"] = round(peak / 2**20, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("csv", "jsonl", "dsa"), default="csv")
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument(
        "--keep", action="store_true", help="reuse an already seeded appeals_bench_export database"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also run a (slower) pass under tracemalloc for the Python heap peak",
    )
    args = parser.parse_args()

    bench_database("appeals_bench_export", keep=args.keep)
    from appeals.models import Decision

    seeded = {}
    if not (args.keep and Decision.objects.exists()):
        seeded["cases_seconds"] = round(seed_cases(args.rows, decided_fraction=1.0), 1)
        seeded["decisions_seconds"] = round(seed_decisions(), 1)
    result = {
        "decisions": Decision.objects.count(),
        "format": args.format,
        "chunk_size": args.chunk_size,
        "seed": seeded,
        "calibration_loop_seconds": calibration_seconds(),
        "export": run_export(args.format, args.chunk_size),
        "machine": f"{host_platform.processor() or host_platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {host_platform.python_version()}",
    }
    if args.tracemalloc:
        result["export_traced"] = run_export(args.format, args.chunk_size, trace=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
