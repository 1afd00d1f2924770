#!/usr/bin/env bash
# pg.sh: a naive PostgreSQL 15 event store beside osse (issue 13). The same
# submissions as run.sh's, written as one row per event, each submission in
# one transaction with synchronous commit, measured with pgbench at 1, 8 and
# 32 clients. Sourced by run.sh (which calls pg_bench_all after osse's runs,
# so the ratio is measured in one sitting), or run alone:
#   bash bench/pg.sh            (BENCH_SECONDS, default 12; BENCH_PG_CLIENTS)
#
# The server is started here, in a folder under the bench's $TMP (on the
# repository's disk, as osse's data), with initdb and pg_ctl, listening on
# 127.0.0.1 on a free port and on a unix socket in that folder; fsync=on and
# synchronous_commit=on are PostgreSQL's defaults and are set explicitly so
# that a site-wide config cannot change them. It runs as the postgres user
# (initdb refuses root), and is stopped and removed at exit.
#
# Functions: pg_available, pg_start, pg_stop, pg_run CLIENTS (prints one "pg
# ..." line), pg_bench_all (one line per client count; sets PG_TPS[N]).
# The caller sets ROOT, BUILD and TMP (bench_tmp) and SECS, and sources lib.sh.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CLIENTS=${BENCH_PG_CLIENTS:-"1 8 32"}
PG_USER=${PG_USER:-postgres}
# One submission of run.sh's bench workflow records four events in osse:
# RequestSubmitted, then StepOpened for each of the three parallel agency
# tasks (the join step "licence" waits), so four rows per transaction (checked
# with GET /v1/requests/{id}/events after one submission: version 4).
PG_EVENTS_PER_SUBMISSION=4
PG_DIR="" PG_PORT=""
declare -A PG_TPS

pg_available() {
    [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && command -v pgbench >/dev/null &&
        command -v psql >/dev/null && id "$PG_USER" >/dev/null 2>&1
}

pg_stop() {
    [ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
        runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
    [ -n "$PG_DIR" ] && rm -rf "$PG_DIR"
    PG_DIR=""
}

pg_psql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U bench -d postgres "$@"; }

pg_start() {
    # $TMP is mktemp's 0700 root folder: the postgres user must pass through
    # it to reach its own folder inside.
    chmod 711 "$TMP"
    PG_DIR=$TMP/pg
    mkdir -p "$PG_DIR/data" "$PG_DIR/sock"
    chown -R "$PG_USER" "$PG_DIR"
    # Stop the server before lib.sh's cleanup removes $TMP.
    trap 'pg_stop; bench_cleanup' EXIT
    # A free port: bound by the kernel, then released (a race, but on loopback
    # on a quiet machine a harmless one).
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    runuser -u "$PG_USER" -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U bench -A trust -E UTF8 \
        --no-instructions >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    # max_connections above the 32 clients; shared_buffers large enough that
    # the bench's table sits in memory, so the figure is the commit's cost.
    # On one line: pg_ctl hands -o to a shell, where a newline ends the command.
    local PG_OPTS="-c fsync=on -c synchronous_commit=on -c max_connections=100 -c shared_buffers=256MB"
    runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/sock $PG_OPTS" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; die "pg_ctl start failed"; }
    pg_psql <<'SQL'
CREATE TABLE events (
    seq    bigserial PRIMARY KEY,
    stream text NOT NULL,
    type   text NOT NULL,
    at     timestamptz NOT NULL DEFAULT now(),
    data   jsonb NOT NULL
);
CREATE INDEX events_stream ON events (stream);
SQL
    # One pgbench transaction = one submission as osse records it: the
    # RequestSubmitted with run.sh's 8-field form (the two pii fields as
    # {"enc": base64} of the lengths osse's seals have, 72 and 76), then
    # three StepOpened (as GET /v1/requests/{id}/events shows them), in one
    # transaction. :n varies the values, as load's {n} does.
    cat >"$PG_DIR/submission.sql" <<'SQL'
\set n random(1, 1000000000)
\set seats random(0, 200)
BEGIN;
INSERT INTO events (stream, type, data) VALUES ('request/r-' || :client_id || '-' || :n, 'RequestSubmitted',
  jsonb_build_object('id', 'r-' || :client_id || '-' || :n, 'workflow', 'bench-permit', 'workflow_version', 1,
    'tracking_code', upper(substr(md5(:n::text), 1, 10)), 'portal', 'p-bench',
    'form', jsonb_build_object(
      'applicant_id', jsonb_build_object('enc', substr(encode(sha512(('id' || :n)::bytea), 'base64'), 1, 72)),
      'applicant_name', jsonb_build_object('enc', substr(encode(sha512(('nm' || :n)::bytea), 'base64'), 1, 76)),
      'business_name', 'Bench Shop ' || :n, 'area_sqm', 42.5, 'seats', :seats,
      'district', 'bang-rak', 'opening_date', '2026-12-01', 'notes', 'submitted by the load generator')));
INSERT INTO events (stream, type, data) VALUES
  ('request/r-' || :client_id || '-' || :n, 'StepOpened', jsonb_build_object('step', 'review_a', 'kind', 'task', 'agency', 'a', 'due_at', now() + interval '7 days', 'warn_at', now() + interval '5 days')),
  ('request/r-' || :client_id || '-' || :n, 'StepOpened', jsonb_build_object('step', 'review_b', 'kind', 'task', 'agency', 'b', 'due_at', now() + interval '14 days', 'warn_at', now() + interval '10 days')),
  ('request/r-' || :client_id || '-' || :n, 'StepOpened', jsonb_build_object('step', 'review_c', 'kind', 'task', 'agency', 'c', 'due_at', now() + interval '21 days', 'warn_at', now() + interval '15 days'));
COMMIT;
SQL
    # Show the settings that make the figure what it is, as the server has them.
    say "== postgres settings: $(pg_psql -At -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)
        FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'commit_delay', 'shared_buffers')")"
    say "== postgres 15 on 127.0.0.1:$PG_PORT, data $PG_DIR/data (fsync=on synchronous_commit=on: the defaults)"
}

pg_run() { # clients -> one "pg ..." line on stdout
    local c=$1 out tps lat
    out=$(pgbench -n -f "$PG_DIR/submission.sql" -c "$c" -j "$c" -T "$SECS" \
        -h 127.0.0.1 -p "$PG_PORT" -U bench postgres 2>&1) ||
        { say "$out"; die "pgbench -c $c failed"; }
    # PostgreSQL 15 prints one tps line, "(without initial connection time)";
    # older ones print two, the one to take being "excluding connections".
    tps=$(printf '%s\n' "$out" | grep '^tps = ' | grep -v 'including' | head -n1 | awk '{print $3}')
    lat=$(printf '%s\n' "$out" | sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' | head -n1)
    [ -n "$tps" ] || { say "$out"; die "no tps in pgbench's output"; }
    awk -v c="$c" -v s="$SECS" -v t="$tps" -v l="${lat:-0}" -v e="$PG_EVENTS_PER_SUBMISSION" 'BEGIN {
        printf "pg path=events clients=%s seconds=%s tps=%.1f lat_avg_ms=%.3f events_per_s=%.1f label=postgres\n",
            c, s, t, l, t * e }'
}

pg_bench_all() { # prints the lines (stdout) and sets PG_TPS[N]
    local c l
    for c in $PG_CLIENTS; do
        l=$(pg_run "$c")
        echo "$l"
        PG_TPS[$c]=$(field "$l" tps)
    done
    say "== postgres: $(pg_psql -At -c 'SELECT count(*) FROM events') rows written"
}

# Run alone: its own $TMP under $BUILD, the server, the three runs.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    BUILD=${BUILD:-$ROOT/build-bench}
    SECS=${BENCH_SECONDS:-12}
    source "$ROOT/bench/lib.sh"
    pg_available || die "no PostgreSQL 15 in $PG_BIN (or no pgbench, psql, user $PG_USER)"
    mkdir -p "$BUILD"
    bench_tmp
    pg_start
    pg_bench_all
fi
