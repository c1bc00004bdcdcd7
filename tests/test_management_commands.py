"""Every management command as an operator runs it: `python manage.py NAME --help` in a subprocess.

The commands are discovered, not listed: a new command (or an option that clashes with one of
Django's own, as `safeguard_check --version` once did) fails here before anyone types it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import get_commands

from tests.workers import REPO_ROOT

COMMANDS = sorted(get_commands())
OUR_APPS = ("appeals", "policies", "reviewer")


def manage(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "reviewer.settings", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_project_commands_are_among_those_discovered():
    ours = {name for name, app in get_commands().items() if app in OUR_APPS}
    assert {"safeguard_check", "import_policy", "load_demo", "export_decisions"} <= ours


@pytest.mark.parametrize("command", COMMANDS)
def test_help_runs_through_manage_py(command):
    result = manage(command, "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"usage: manage.py {command}" in result.stdout
    assert "Traceback" not in result.stderr
