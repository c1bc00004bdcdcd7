#!/usr/bin/env bash
# Start or stop the PostgreSQL and Redis that the test suite runs against, on loopback,
# in a throwaway directory, stopped by PID. Usage: scripts/services.sh start|stop|env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${SERVICES_DIR:-$ROOT/var/services}"
PG_PORT="${TEST_PG_PORT:-54329}"
REDIS_PORT="${TEST_REDIS_PORT:-63799}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"

start_postgres() {
    mkdir -p "$RUN_DIR/pg-socket"
    chown -R postgres:postgres "$RUN_DIR/pg-socket"
    if [ ! -s "$RUN_DIR/pg-data/PG_VERSION" ]; then
        rm -rf "$RUN_DIR/pg-data"
        mkdir -p "$RUN_DIR/pg-data"
        chown postgres:postgres "$RUN_DIR/pg-data"
        su postgres -s /bin/sh -c "$PG_BIN/initdb -D '$RUN_DIR/pg-data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" >"$RUN_DIR/initdb.log"
    fi
    touch "$RUN_DIR/postgres.log" && chown postgres:postgres "$RUN_DIR/postgres.log"
    su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$RUN_DIR/pg-data' -l '$RUN_DIR/postgres.log' -w -o \"-p $PG_PORT -c listen_addresses=127.0.0.1 -k '$RUN_DIR/pg-socket' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=512MB\" start" >/dev/null
    # Two roles, as in production (README, "Security"): the owner creates the databases and runs
    # the migrations; the app and its workers connect as the runtime role, which may only read
    # and append to the audit table. Neither is a superuser.
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q >/dev/null <<'SQL'
SELECT 'CREATE ROLE appeals_owner LOGIN CREATEDB'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'appeals_owner') \gexec
SELECT 'CREATE ROLE appeals_app LOGIN'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'appeals_app') \gexec
SELECT 'CREATE DATABASE appeals OWNER appeals_owner'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'appeals') \gexec
SQL
}

start_redis() {
    mkdir -p "$RUN_DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log" --dir "$RUN_DIR/redis"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "redis did not start; see $RUN_DIR/redis.log" >&2; return 1
}

stop_all() {
    if [ -f "$RUN_DIR/pg-data/postmaster.pid" ]; then
        su postgres -s /bin/sh -c "$PG_BIN/pg_ctl -D '$RUN_DIR/pg-data' -m fast -w stop" >/dev/null || true
    fi
    if [ -f "$RUN_DIR/redis.pid" ]; then
        kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null || true
        rm -f "$RUN_DIR/redis.pid"
    fi
}

case "${1:-}" in
    start)
        mkdir -p "$RUN_DIR"
        chmod 755 "$ROOT/var" "$RUN_DIR" 2>/dev/null || true
        stop_all
        start_postgres
        start_redis
        ;;
    stop) stop_all ;;
    env)
        echo "export DATABASE_URL=postgres://appeals_app@127.0.0.1:$PG_PORT/appeals"
        echo "export MIGRATION_DATABASE_URL=postgres://appeals_owner@127.0.0.1:$PG_PORT/appeals"
        # For tests that play someone who holds the whole server (and for bench/ scripts).
        echo "export SUPERUSER_DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/appeals"
        echo "export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0"
        ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
