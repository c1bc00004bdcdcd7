"""Shared set-up for the benchmarks: a dedicated PostgreSQL database and fast bulk seeding.

`bench_database("name")` points Django at a fresh database on the server of DATABASE_URL
(dropped and re-created), migrates it, and returns its URL. `seed_cases(n)` inserts n open
flag cases (with items and ready recommendations) with INSERT … SELECT generate_series, in
seconds for a million rows, rather than through the intake API.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_database(name: str, *, keep: bool = False) -> str:
    """Create (or reuse, with keep=True) the database `name` and point Django at it."""
    import psycopg

    # The bench creates its own database, so it connects as the owner role (which may).
    base = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    os.environ["MIGRATION_DATABASE_URL"] = ""
    if not base.startswith("postgres"):
        sys.exit("Benchmarks run on PostgreSQL: set DATABASE_URL (see scripts/services.sh env)")
    parts = urlparse(base)
    admin_url = urlunparse(parts._replace(path="/postgres"))
    url = urlunparse(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewer.settings")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    # The test client speaks plain http; measure the pages, not the redirect to https.
    os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return url


SPAM_POLICY = ROOT.parent / "shared" / "datasets" / "spam-policy-example" / "policy.txt"


def ensure_fixtures():
    """A platform, the roles, a policy version, and a reviewer per persona name."""
    from appeals.models import Platform
    from appeals.review.roles import bootstrap_roles
    from policies.services import import_policy_version

    bootstrap_roles()
    platform, _ = Platform.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    text = (
        SPAM_POLICY.read_text()
        if SPAM_POLICY.exists()
        else (
            "# Spam (#SP)\n## Allowed (SP0 - fine)\nSP0.a ok\n## Spam (SP2 - spam)\nSP2.a promo\n"
        )
    )
    version = import_policy_version(slug="spam", name="Spam", text=text)
    return platform, version


def seed_cases(n: int, *, decided_fraction: float = 0.0) -> float:
    """Insert n flag cases; a fraction of them decided. Returns seconds taken."""
    from django.db import connection

    platform, version = ensure_fixtures()
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM appeals_item")
        offset = cur.fetchone()[0]
        cur.execute(
            """
            INSERT INTO appeals_item (platform_id, external_id, policy_version_id, content, content_type,
                author_id, reporter_id, source, metadata, received_at)
            SELECT %s, 'bench-' || (g + %s), %s,
                   'Bench item ' || g || ': check out my shop at example.com', 'text',
                   'author-' || (g %% 5000), 'reporter-' || (g %% 700),
                   (ARRAY['user_report','trusted_flagger','automated','own_initiative'])[1 + g %% 4],
                   '{}'::jsonb, now() - make_interval(secs => g)
            FROM generate_series(1, %s) AS g
            """,
            [platform.id, offset, version.id, n],
        )
        cur.execute(
            """
            INSERT INTO appeals_case (kind, platform_id, external_id, item_id, policy_version_id, queue,
                status, priority, due_at, created_at, request_sha256, escalation_reason, appellant_id,
                statement, original_action, original_rule_ids)
            SELECT 'flag', i.platform_id, i.external_id, i.id, i.policy_version_id, 'flags',
                   CASE WHEN random() < %s THEN 'decided' ELSE 'open' END,
                   CASE WHEN i.source = 'trusted_flagger' THEN 10 ELSE 0 END,
                   i.received_at + interval '24 hours', i.received_at, md5(i.external_id) || md5(i.external_id),
                   '', '', '', '', '[]'::jsonb
            FROM appeals_item i WHERE i.id > %s
            """,
            [decided_fraction, offset],
        )
        cur.execute(
            """
            INSERT INTO appeals_recommendation (case_id, status, failure_reason, failure_detail, requested_at,
                started_at, finished_at, attempts, violation, policy_category, rule_ids, unknown_rule_ids,
                confidence, rationale, reasoning, raw_output, injection_signals, policy_version_id,
                policy_sha256, backend, model_id, model_revision, prompt_sha256, reasoning_effort,
                tokens_in, tokens_out, latency_ms, engine_attempts)
            SELECT c.id, 'ready', '', '', c.created_at, c.created_at, c.created_at, 1, (c.id %% 3 = 0),
                   CASE WHEN c.id %% 3 = 0 THEN 'SP2.a' ELSE '' END,
                   CASE WHEN c.id %% 3 = 0 THEN '["SP2.a"]'::jsonb ELSE '[]'::jsonb END, '[]'::jsonb,
                   'high', 'Bench rationale.', 'Bench reasoning.', '', '[]'::jsonb, c.policy_version_id,
                   '', 'bench', 'bench-model', '', '', 'medium', 900, 80, 1200, 1
            FROM appeals_case c WHERE c.item_id > %s
            """,
            [offset],
        )
        cur.execute("ANALYZE appeals_item; ANALYZE appeals_case; ANALYZE appeals_recommendation;")
    return time.perf_counter() - started


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
