"""`manage.py evaluate` in a subprocess against a stand-in server: the table, and an exit code
that follows the gate."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from appeals import policy_workbench
from policies.workbench import golden, runs, versions
from tests import workers
from tests.builders import POLICY_TEXT, decide, flag
from tests.standin_server import StandInServer

pytestmark = pytest.mark.django_db(transaction=True)

SET = (
    '{"content": "Buy gold rings here!", "expected": 1, "rule_ids": ["SP2.b"], "must_pass": true}\n'
    '{"content": "Click here to win", "expected": 1, "rule_ids": ["SP3.a"]}\n'
    '{"content": "How do I upload a photo?", "expected": 0}\n'
)


def evaluate(server, *args):
    if connection.vendor != "postgresql":
        pytest.skip("the subprocess shares the test database on PostgreSQL only")
    env = {
        **os.environ,
        "DATABASE_URL": workers.test_database_url(),
        "MIGRATION_DATABASE_URL": "",
        "SAFEGUARD_BACKEND": "openai",
        "SAFEGUARD_BASE_URL": server.base_url,
        "SAFEGUARD_MODEL": "stand-in",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "evaluate", *args],
        cwd=workers.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_evaluate_prints_the_table_and_exits_on_the_gate(spam_policy, dave, settings):
    golden.import_golden_set(policy=spam_policy.policy, name="core", data=SET, fmt="jsonl")
    with StandInServer() as server:
        ok = evaluate(server, "--policy", "spam", "--golden-set", "core")
        assert ok.returncode == 0, ok.stderr
        assert "F1            1.000" in ok.stdout and "Cohen's κ" in ok.stdout
        assert "gate passed" in ok.stdout

        versions.create_draft(
            policy=spam_policy.policy, text=POLICY_TEXT + "\nLENIENT.\n", actor=dave
        )
        worse = evaluate(
            server, "--policy", "spam", "--policy-version", "2", "--golden-set", "core"
        )
        assert worse.returncode == 3, worse.stderr
        assert "F1              n/a" in worse.stdout or "F1            0.000" in worse.stdout
        assert "must-pass item failed" in worse.stderr and "F1 fell from 1.000" in worse.stderr

        # Without --policy-version the newest version (the draft) runs; v1 holds.
        limited = evaluate(
            server,
            "--policy",
            "spam",
            "--policy-version",
            "1",
            "--golden-set",
            "core",
            "--limit",
            "1",
        )
        assert limited.returncode == 0 and "items 1 " in limited.stdout

        missing = evaluate(server, "--policy", "spam", "--golden-set", "nope")
        assert missing.returncode == 1 and "no golden set 'nope'" in missing.stderr


def test_evaluate_replays_recent_decided_cases(spam_policy, platform, alice, settings):
    for content, outcome in [("Buy gold rings here!", "violating"), ("hello", "not_violating")]:
        case = flag(platform, content=content)
        decide(
            alice,
            case,
            outcome=outcome,
            action="remove" if outcome == "violating" else "none",
            rule_ids=["SP2.b"] if outcome == "violating" else [],
        )
    with StandInServer() as server:
        result = evaluate(server, "--policy", "spam", "--replay", "5")
    assert result.returncode == 0, result.stderr
    assert "items 2 " in result.stdout and "F1            1.000" in result.stdout


def test_runs_service_reports_progress(spam_policy):
    golden_set = golden.import_golden_set(
        policy=spam_policy.policy, name="p", data=SET, fmt="jsonl"
    )
    run = policy_workbench.start_evaluation(
        version=spam_policy, golden_set=golden_set, enqueue=False
    )
    assert runs.progress(run) == (0, 3)
