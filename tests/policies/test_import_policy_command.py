"""`manage.py import_policy` as an operator runs it: publishing records when, and a policy whose
publishing is gated by a golden set cannot be published around the gate from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from appeals.models import AuditEvent
from policies.models import PolicyVersion
from policies.workbench import golden
from tests import workers
from tests.builders import POLICY_TEXT

pytestmark = pytest.mark.django_db(transaction=True)

SET = '{"content": "Buy gold rings here!", "expected": 1, "rule_ids": ["SP2.b"]}\n'


def import_policy(tmp_path, text: str, *args: str) -> subprocess.CompletedProcess:
    if connection.vendor != "postgresql":
        pytest.skip("the subprocess shares the test database on PostgreSQL only")
    path = tmp_path / "policy.md"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": workers.test_database_url(), "MIGRATION_DATABASE_URL": ""}
    return subprocess.run(
        [sys.executable, "manage.py", "import_policy", str(path), "--slug", "spam", *args]
        + ["--name", "Spam"],
        cwd=workers.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_published_import_records_when_and_is_audited_as_published(tmp_path):
    result = import_policy(tmp_path, POLICY_TEXT)
    assert result.returncode == 0, result.stderr
    version = PolicyVersion.objects.get(policy__slug="spam", number=1)
    assert version.status == PolicyVersion.Status.PUBLISHED
    assert version.published_at is not None
    published = AuditEvent.objects.get(kind=AuditEvent.Kind.POLICY_VERSION_PUBLISHED)
    assert published.data["policy_version_id"] == version.id
    assert published.source == AuditEvent.Source.COMMAND


def test_a_gated_policy_is_not_published_from_the_command_line(tmp_path):
    assert import_policy(tmp_path, POLICY_TEXT).returncode == 0
    policy = PolicyVersion.objects.get(policy__slug="spam").policy
    golden.import_golden_set(
        policy=policy, name="core", data=SET, fmt="jsonl", gates_publishing=True
    )

    refused = import_policy(tmp_path, POLICY_TEXT + "\nA second version.\n")
    assert refused.returncode != 0
    assert "gated by the golden set 'core'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert list(policy.versions.values_list("number", "status")) == [(1, "published")]

    draft = import_policy(tmp_path, POLICY_TEXT + "\nA second version.\n", "--draft")
    assert draft.returncode == 0, draft.stderr
    assert "v2 (draft)" in draft.stdout or "(draft)" in draft.stdout
    assert policy.current_version().number == 1
