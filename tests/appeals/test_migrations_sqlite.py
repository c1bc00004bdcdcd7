"""Migration 0004 (the audit event's source) on SQLite: adding a column rebuilds the table there,
and the rebuilt table must still refuse UPDATE (the append-only trigger of 0002; 0003's
AlterFields had already lost it on SQLite). A child process, because this process's database is
PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import django
django.setup()
from django.core.management import call_command
from django.db import DatabaseError, connection

def triggers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return sorted(row[0] for row in cursor.fetchall())

call_command("migrate", "appeals", "0003", verbosity=0)
before = triggers()
call_command("migrate", "appeals", "0004", verbosity=0)
after = triggers()
from appeals.audit import record_event
from appeals.models import AuditEvent
from django.db import transaction
with transaction.atomic():
    event = record_event(AuditEvent.Kind.EXPORTED, case=None, source=AuditEvent.Source.COMMAND)
try:
    AuditEvent.objects.filter(id=event.id).update(source="admin")
    refused = False
except DatabaseError:
    refused = True
call_command("migrate", "appeals", "0003", verbosity=0)
print(before, after, triggers(), refused)
"""


def test_the_append_only_trigger_survives_the_source_migration_on_sqlite(tmp_path):
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
    before, after, after_undo, refused = result.stdout.split()
    # 0003's AlterFields already rebuilt the table on SQLite and dropped the trigger; 0004 puts
    # it back, and undoing 0004 (another rebuild) leaves it in place as well.
    trigger = "['appeals_auditevent_no_update']"
    assert (after, after_undo, refused) == (trigger, trigger, "True"), before
