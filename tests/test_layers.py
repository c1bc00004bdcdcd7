"""The import contracts in pyproject.toml hold, and really fail when a stage imports upward.

`scripts/test.sh` runs `lint-imports` on the checkout; this test shows on a copy of the code that
the stage contract is not one that cannot fail: one upward import breaks it, and the report names
the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_of_the_code(tmp_path: Path) -> Path:
    for package in ("appeals", "reviewer", "policies"):
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_hold_on_a_copy_of_the_code(tmp_path):
    result = _lint_imports(_copy_of_the_code(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "appeals stages" in result.stdout


def test_a_stage_importing_upward_breaks_the_stage_contract(tmp_path):
    root = _copy_of_the_code(tmp_path)
    # Drafting reaching up into review (say, to close a case from the worker) is the mistake.
    (root / "appeals" / "drafts" / "shortcut.py").write_text(
        "from appeals.review.queueing import clear_lease  # noqa: F401\n"
    )
    result = _lint_imports(root)
    assert result.returncode == 1
    assert "appeals stages" in result.stdout and "BROKEN" in result.stdout
    assert "appeals.drafts.shortcut -> appeals.review.queueing" in result.stdout


def test_intake_and_review_stay_independent(tmp_path):
    root = _copy_of_the_code(tmp_path)
    (root / "appeals" / "intake" / "shortcut.py").write_text(
        "from appeals.review import decisions  # noqa: F401\n"
    )
    result = _lint_imports(root)
    assert result.returncode == 1
    assert "appeals.intake.shortcut -> appeals.review.decisions" in result.stdout
