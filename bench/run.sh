#!/usr/bin/env bash
# run.sh: the submission bench. Builds a release tree, then measures, on this
# machine and this disk:
#   1. bench_log          synced RocksDB WriteBatches (the storage floor)
#   2. noop_server + load the same HTTP stack answering 200 {} (the HTTP ceiling)
#   3. osse serve + load  durable POST /v1/requests (three parallel agency tasks
#                         and a join step, an 8-field form with PII)
#   4. postgres + pgbench a naive PostgreSQL 15 event store (bench/pg.sh): the
#                         same submissions as one row per event, synchronous
#                         commit, at 1, 8 and 32 clients (issue 13)
# and prints every result line, then the ratios of (3) to (2) and to (1), and
# of (3) at the first BENCH_CONNS to (4) at each client count.
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_SECONDS (12),
# BENCH_WARMUP (2), BENCH_CONNS ("64 256"), BENCH_THREADS (1: load threads),
# BENCH_NO_BUILD (set: reuse the binaries already in $BUILD), BENCH_PII (0: the
# form without pii fields, so nothing sealed; osse_setup in lib.sh), BENCH_PG
# (0: no PostgreSQL runs; skipped anyway when PostgreSQL 15 is not installed).
# Temporary data lives in a mktemp -d directory under $BUILD, i.e. on the
# repository's disk, so fsync costs are that disk's; it is removed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
SECS=${BENCH_SECONDS:-12}
WARMUP=${BENCH_WARMUP:-2}
CONNS_LIST=${BENCH_CONNS:-"64 256"}
LOAD_THREADS=${BENCH_THREADS:-1}

source "$ROOT/bench/lib.sh"
source "$ROOT/bench/pg.sh"

# ---- build ----
bench_build osse load noop_server bench_log
bench_tmp

run_load() { # port conns token label
    "$BUILD/load" --host 127.0.0.1 --port "$1" --conns "$2" --threads "$LOAD_THREADS" \
        --seconds "$SECS" --warmup "$WARMUP" --method POST --path /v1/requests \
        --token "$3" --body "$BODY" --label "$4"
}

RESULTS=()
say "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), data on $(df -P "$TMP" | awk 'NR==2{print $1}')"

# ---- 1. synced RocksDB batches ----
say "== bench_log (synced RocksDB WriteBatch baseline) in $TMP/bench_log"
mkdir -p "$TMP/bench_log"
BL_OUT=$("$BUILD/bench_log" "$TMP/bench_log")
while IFS= read -r l; do
    case $l in rocksdb_synced_batch* | osse_log_group_commit*) say "$l"; RESULTS+=("$l") ;; esac
done <<<"$BL_OUT"
# Three storage figures: one synced batch per submission (no grouping), the
# best synced batch size, and osse's own log with group commit.
SYNC1=$(printf '%s\n' "$BL_OUT" | grep '^rocksdb_synced_batch submissions_per_batch=1 ' |
    tr ' ' '\n' | sed -n 's/^submissions_per_s=//p' | head -n1)
SYNCBEST=$(printf '%s\n' "$BL_OUT" | grep '^rocksdb_synced_batch' | tr ' ' '\n' |
    sed -n 's/^submissions_per_s=//p' | sort -g | tail -n1)
GROUP=$(printf '%s\n' "$BL_OUT" | grep '^osse_log_group_commit' | tr ' ' '\n' |
    sed -n 's/^submissions_per_s=//p' | head -n1)

# ---- 2. noop HTTP server ----
declare -A NOOP_RPS OSSE_RPS
start_server noop "$BUILD/noop_server" 0
NPID=$SRV_PID NPORT=$SRV_PORT
say "== noop_server on port $NPORT"
for c in $CONNS_LIST; do
    l=$(run_load "$NPORT" "$c" none noop)
    say "$l"; RESULTS+=("$l")
    NOOP_RPS[$c]=$(field "$l" rps)
done
stop_server "$NPID"

# ---- 3. osse ----
mkdir -p "$TMP/osse"
start_server osse "$BUILD/osse" serve --data "$TMP/osse" --listen 127.0.0.1:0
OPID=$SRV_PID OPORT=$SRV_PORT
say "== osse serve on port $OPORT, data $TMP/osse"
osse_setup "$TMP/osse" "$OPORT"
# Show what one submission did, so that the figures below are read right.
RID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/curl.body")
curl -sS "$URL/v1/requests/$RID" -H "Authorization: Bearer $ADMIN" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("== one submission: status=%s steps=%s" % (v.get("status"),
      ",".join("%s:%s" % (s.get("name"), s.get("state")) for s in v.get("steps", []))), file=sys.stderr)
' || say "(could not read the request back)"

for c in $CONNS_LIST; do
    l=$(run_load "$OPORT" "$c" "$PORTAL" osse)
    say "$l"; RESULTS+=("$l")
    OSSE_RPS[$c]=$(field "$l" rps)
done
stop_server "$OPID"

# ---- 4. a naive PostgreSQL event store, in the same sitting ----
PG_RAN=""
if [ "${BENCH_PG:-1}" = 0 ]; then
    say "== postgres: skipped (BENCH_PG=0)"
elif ! pg_available; then
    say "postgres: skipped (no PostgreSQL 15)"
else
    pg_start
    PG_OUT=$(pg_bench_all)
    while IFS= read -r l; do
        say "$l"; RESULTS+=("$l")
        PG_TPS[$(field "$l" clients)]=$(field "$l" tps)
    done <<<"$PG_OUT"
    pg_stop
    PG_RAN=1
fi

# ---- summary ----
echo "== osse submission bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${SECS}s per run after ${WARMUP}s warm-up"
for l in "${RESULTS[@]}"; do echo "$l"; done
for c in $CONNS_LIST; do
    o=${OSSE_RPS[$c]:-0} n=${NOOP_RPS[$c]:-0}
    awk -v c="$c" -v o="$o" -v n="$n" -v s1="${SYNC1:-0}" -v sb="${SYNCBEST:-0}" \
        -v g="${GROUP:-0}" 'function r(a, b) { return b > 0 ? a / b : 0 }
    BEGIN {
        printf "ratio conns=%s osse_rps=%.1f noop_rps=%.1f osse_vs_noop=%.3f", c, o, n, r(o, n)
        printf " osse_vs_synced_batch_1=%.2f osse_vs_synced_batch_best=%.3f", r(o, s1), r(o, sb)
        printf " osse_vs_log_group_commit=%.3f\n", r(o, g)
    }'
done
# osse at the first connection count (64 by default) against each PostgreSQL
# client count: both durable submissions, four events each.
if [ -n "$PG_RAN" ]; then
    c0=${CONNS_LIST%% *}
    for c in $PG_CLIENTS; do
        awk -v c="$c" -v c0="$c0" -v o="${OSSE_RPS[$c0]:-0}" -v p="${PG_TPS[$c]:-0}" 'BEGIN {
            printf "ratio_pg clients=%s osse_rps_%s=%.1f pg_tps=%.1f osse_vs_pg=%.2f\n",
                c, c0, o, p, (p > 0 ? o / p : 0) }'
    done
fi
