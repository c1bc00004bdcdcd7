"""Write screenshots of every console page at 1280×720 into docs/screenshots/.

    .venv/bin/python bench/screenshots.py [OUT_DIR]

It runs the browser test `test_screenshots` (tests/reviewer/test_browser.py) with SCREENSHOT_DIR
set: a live server on a throwaway test database, a realistic day of casework (tests/reviewer/
demo.py, with drafts as test data) and Debian's Chromium through Playwright.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    env = dict(os.environ, SCREENSHOT_DIR=str(out.resolve()))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/reviewer/test_browser.py::test_screenshots",
        ],
        cwd=ROOT,
        env=env,
    )
    if result.returncode == 0:
        for png in sorted(out.glob("*.png")):
            print(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
