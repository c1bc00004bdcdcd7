#!/usr/bin/env bash
# Run the whole test suite against real services: PostgreSQL and Redis (installed from Debian's
# packages if missing, started on loopback, stopped by PID), a real Celery worker, and Debian's
# Chromium for the browser tests. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "Missing Debian packages: ${need[*]} (run as root, or install them)" >&2; exit 1
    fi
    echo "Installing ${need[*]}…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bash scripts/install.sh test

bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
eval "$(bash scripts/services.sh env)"
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
PYTHONPATH=. .venv/bin/lint-imports --no-cache >/dev/null \
    || { PYTHONPATH=. .venv/bin/lint-imports --no-cache; exit 1; }
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null \
    || { echo "Models and migrations differ: run manage.py makemigrations" >&2; exit 1; }
.venv/bin/python -m pytest "$@"
