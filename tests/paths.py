"""Where the shared datasets are: `../shared` beside the checkout, whatever machine runs the tests.

A test that needs them fails with a message naming the folder it looked in, never skips: a
missing dataset on CI is a broken set-up, not a reason to test less.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("APPEALS_SHARED_DIR", REPO.parent / "shared")).resolve()
DATASETS = SHARED / "datasets"


def shared_path(*parts: str) -> Path:
    """The path under `../shared/datasets`, or a test failure that says where it looked."""
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"{path} is missing: the tests read the shared datasets from ../shared beside the "
            "checkout (or APPEALS_SHARED_DIR)",
            pytrace=False,
        )
    return path
