#!/usr/bin/env bash
# Set everything up and run the console on its embedded default: SQLite, a Celery broker on the
# local filesystem, the demo policies and cases, a web server and the workers. Ctrl-C stops all.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-8000}"

bash scripts/install.sh base
export DEBUG="${DEBUG:-true}"
PY=.venv/bin/python
mkdir -p var

$PY manage.py migrate --verbosity 0
$PY manage.py bootstrap_roles >/dev/null
DEMO_OUTPUT="$($PY manage.py load_demo "$@")"
echo "$DEMO_OUTPUT"
PASSWORD="$(echo "$DEMO_OUTPUT" | sed -n 's/^Password: //p')"

# One worker process serves both queues here; in production the gpu queue has its own workers.
.venv/bin/celery -A reviewer worker --queues default,gpu --pool solo --beat \
    --schedule var/celerybeat-schedule --loglevel INFO >var/worker.log 2>&1 &
WORKER_PID=$!
trap 'kill $WORKER_PID 2>/dev/null || true' EXIT INT TERM

cat <<MSG

  Appeals Copilot is running on the embedded default (SQLite, filesystem broker).
  Open http://127.0.0.1:$PORT/ and log in as: reviewer   password: ${PASSWORD:-as printed when the demo was first loaded}
  (also: senior, auditor, policyadmin, admin; same password)   Worker log: var/worker.log

MSG
$PY manage.py runserver "127.0.0.1:$PORT"
