"""Migration 0012_appeal_links: existing appeals that arrived before the flag was decided are
linked to its decision with their mismatch worked out, and two open appeals on one item stop the
migration with a sentence naming them. On SQLite, in a child process (this process's database is
PostgreSQL, where the runtime role may not migrate)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import datetime as dt, sys
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", verbosity=0)
call_command("migrate", "appeals", "0011", verbosity=0)
apps = MigrationExecutor(connection).loader.project_state(("appeals", "0011_three_level_agreement")).apps
now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
User = apps.get_model("auth", "User")
Policy = apps.get_model("policies", "Policy")
PolicyVersion = apps.get_model("policies", "PolicyVersion")
Platform = apps.get_model("appeals", "Platform")
Item = apps.get_model("appeals", "Item")
Case = apps.get_model("appeals", "Case")
Decision = apps.get_model("appeals", "Decision")
user = User.objects.create(username="carol")
policy = Policy.objects.create(slug="spam", name="Spam")
version = PolicyVersion.objects.create(policy=policy, number=1, text="x", sha256="0" * 64)
platform = Platform.objects.create(slug="acme", name="Acme")

def case(kind, item, external_id, **fields):
    return Case.objects.create(
        kind=kind, platform=platform, external_id=external_id, item=item, policy_version=version,
        queue="appeals" if kind == "appeal" else "flags", due_at=now, request_sha256="x", **fields
    )

item = Item.objects.create(platform=platform, external_id="ad-1", policy_version=version, content="c")
flag = case("flag", item, "ad-1", status="decided")
early = case("appeal", item, "appeal-1", original_action="remove", original_rule_ids=["SP2.b"])
decision = Decision.objects.create(
    case=flag, decided_by=user, outcome="violating", action="restrict", rule_ids=["SP3.a"]
)
mode = sys.argv[1]
if mode == "duplicate":
    case("appeal", item, "appeal-2", original_action="remove")
try:
    call_command("migrate", "appeals", "0012", verbosity=0)
except RuntimeError as error:
    print("REFUSED", error)
    raise SystemExit(0)
from appeals.models import Case as Now
linked = Now.objects.get(id=early.id)
print("LINKED", linked.appealed_decision_id == decision.id, linked.original_mismatch)
"""


def _run(tmp_path, mode: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "CELERY_BROKER_URL": "memory://",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_an_appeal_that_came_before_the_decision_is_linked_by_the_migration(tmp_path):
    out = _run(tmp_path, "link")
    assert out.startswith("LINKED True "), out
    assert "the original action was remove; the decision recorded on case #1 was restrict." in out
    assert "The platform cites SP2.b; case #1 recorded SP3.a." in out


def test_two_open_appeals_on_one_item_stop_the_migration_naming_them(tmp_path):
    out = _run(tmp_path, "duplicate")
    assert out == (
        "REFUSED At most one appeal per decision may be open, but these items have several: "
        "item 1: cases 2, 3. Decide all but one of each (on the previous release), then migrate "
        "again."
    )
