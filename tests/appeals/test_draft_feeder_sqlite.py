"""The drain loop on the quickstart's SQLite database (one writer at a time): claims from two
threads at once stay disjoint, and a whole drain (claims on one connection, answers stored on the
writer thread's) finishes every draft. A child process, because this process's database is
PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, threading
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import connection
from appeals.drafts import feeder
from appeals.models import Recommendation
from bench.openai_standin import StandinServer
from tests import builders

platform = builders.make_platform()
version = builders.make_policy()
for i in range(60):
    builders.flag(platform, content=f"spam {i}")

claims = {"a": [], "b": []}
errors = []
barrier = threading.Barrier(2)

def claim(name):
    try:
        barrier.wait()
        while len(claims[name]) < 15 and (taken := feeder.claim_drafts(version.id, limit=3)):
            claims[name].extend(taken)
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connection.close()

threads = [threading.Thread(target=claim, args=(n,)) for n in claims]
for t in threads: t.start()
for t in threads: t.join()
# The rest through a whole drain against a stand-in server.
Recommendation.objects.filter(status="running").update(status="pending", run_token=None)
with StandinServer(latency_s=0.05) as server:
    os.environ.update(SAFEGUARD_BACKEND="openai", SAFEGUARD_BASE_URL=server.base_url,
                      SAFEGUARD_MODEL="standin", SAFEGUARD_MAX_CONCURRENCY="8")
    stored = feeder.drain_policy_version(version.id)
    requests = server.requests
statuses = sorted(set(Recommendation.objects.values_list("status", flat=True)))
print(json.dumps({"claims": claims, "errors": errors, "stored": stored, "requests": requests,
                  "statuses": statuses}))
"""


def test_sqlite_claims_stay_disjoint_and_a_drain_stores_every_draft(tmp_path):
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
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    a, b = out["claims"]["a"], out["claims"]["b"]
    assert a and b and not set(a) & set(b)  # both claimed, never the same draft
    assert len(a) + len(b) == len(set(a) | set(b))
    assert out["stored"] == 60 and out["requests"] == 60
    assert out["statuses"] == ["ready"]
