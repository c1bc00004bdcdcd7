"""The export on the quickstart's SQLite database: the times and durations the database computes
(`IsoTime`, `WholeSeconds`) must read the same as on PostgreSQL, where the rest of the suite
runs. A child process, because this process's database is PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import datetime as dt, json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from appeals.disclosure.exports import Export, ExportFilters
from appeals.models import Case, Decision
from appeals.review.roles import bootstrap_roles
from tests import builders

bootstrap_roles()
platform = builders.make_platform()
builders.make_policy()
alice = builders.make_user("alice", "reviewer")
carol = builders.make_user("carol", "senior_reviewer")

ad = builders.flag(platform, external_id="ad-1", author_id="author-7")
removed = builders.decide(alice, ad, outcome="violating", action="remove", rule_ids=["SP2.b"])
# Received on a whole second, 90 s and a fraction before the decision: no fraction to
# write, and a duration to truncate.
whole = removed.decided_at.replace(microsecond=0) - dt.timedelta(seconds=90)
Case.objects.filter(id=ad.id).update(created_at=whole)
complaint = builders.appeal(platform, item_external_id="ad-1", appellant_id="author-7")
builders.decide(carol, complaint, outcome="overturn")

expected = {}
for d in Decision.objects.select_related("case"):
    expected[d.id] = {
        "received_at": d.case.created_at.isoformat(timespec="microseconds"),
        "decided_at": d.decided_at.isoformat(timespec="microseconds"),
        "claimed_at": d.claimed_at.isoformat(timespec="microseconds"),
        "received_to_decided_seconds": int((d.decided_at - d.case.created_at).total_seconds()),
        "claimed_to_decided_seconds": int((d.decided_at - d.claimed_at).total_seconds()),
        "decided_late": d.decided_at > d.case.due_at,
    }
out = {"expected": expected, "removed": removed.id}
for fmt in ("csv", "jsonl", "dsa"):
    out[fmt] = "".join(Export(fmt=fmt, filters=ExportFilters(), actor_label="test").chunks())
print(json.dumps(out))
"""


def test_sqlite_export_times_and_durations_match_the_decisions(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "CELERY_BROKER_URL": "memory://",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {int(k): v for k, v in out["expected"].items()}
    records = {r["decision_id"]: r for r in map(json.loads, out["jsonl"].splitlines())}
    assert set(records) == set(expected)
    for decision_id, want in expected.items():
        assert {k: records[decision_id][k] for k in want} == want
    seconds = [r["received_to_decided_seconds"] for r in records.values()]
    assert 90 in seconds  # 90 s and a fraction, truncated
    assert any(r["received_at"].endswith(".000000+00:00") for r in records.values())
    assert out["csv"].count("\n") > 2
    statements = [s for line in out["dsa"].splitlines() for s in json.loads(line)["statements"]]
    # One statement: the removal restricts; the overturn on appeal restores.
    assert [s["application_date"] for s in statements] == [
        expected[out["removed"]]["decided_at"][:10]
    ]
