#!/usr/bin/env bash
# sla.sh: the deadline bench of issue 3. Builds a release tree, then, on this
# machine and this disk:
#   1. bench_log        synced RocksDB WriteBatches and osse's log alone (the
#                       storage floor, for a same-run ratio)
#   2. osse serve --test-clock, a workflow with one task step (sla: PT24H,
#                       on_breach: notify), and N submissions through `load
#                       --requests N`: N open requests, 2N pending deadlines;
#                       the server's RSS (VmRSS) before and after them
#   3. POST /v1/test/clock {"advance":"PT20H"}: all N warnings fall due at
#                       once and fire before the answer (each durable);
#      POST /v1/test/clock {"advance":"PT5H"}: all N breaches the same way;
#                       each timed, and the events counted (osse_log_seq in
#                       /metrics, plus a look at the first and last events)
# and prints the result lines.
#
# Why all N share one due time: with the test clock standing still, every
# submission is stamped with the same instant, so a whole day's worth of
# deadlines falls due at the same moment: the worst case the issue asks for.
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_SLA_REQUESTS
# (1000000), BENCH_CONNS (64: load connections), BENCH_THREADS (1),
# BENCH_SLA_TIMEOUT (seconds allowed per phase, 1800), BENCH_LOG_SECONDS (2:
# bench_log per phase; 0 skips it), BENCH_NO_BUILD (set: reuse $BUILD).
# Temporary data lives in a mktemp -d directory under $BUILD, i.e. on the
# repository's disk; it is removed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
N=${BENCH_SLA_REQUESTS:-1000000}
CONNS=${BENCH_CONNS:-64}
LOAD_THREADS=${BENCH_THREADS:-1}
TIMEOUT=${BENCH_SLA_TIMEOUT:-1800}
LOG_SECS=${BENCH_LOG_SECONDS:-2}

source "$ROOT/bench/lib.sh"

# ---- build ----
bench_build osse load bench_log
bench_tmp
RESULTS=()
say "== machine: $(machine)"

# ---- 1. the storage floor ----
BEST_EV=0 GROUP_EV=0
if [ "$LOG_SECS" != 0 ]; then
    say "== bench_log ${LOG_SECS}s per phase (synced RocksDB WriteBatch baseline)"
    mkdir -p "$TMP/bench_log"
    BL_OUT=$("$BUILD/bench_log" "$TMP/bench_log" "$LOG_SECS" 1 256)
    while IFS= read -r l; do
        case $l in rocksdb_synced_batch* | osse_log_group_commit*) say "$l"; RESULTS+=("$l") ;; esac
    done <<<"$BL_OUT"
    # Events per second: a firing writes one event, a submission several.
    BEST_EV=$(printf '%s\n' "$BL_OUT" | grep '^rocksdb_synced_batch' | tr ' ' '\n' |
        sed -n 's/^events_per_s=//p' | sort -g | tail -n1)
    GROUP_EV=$(printf '%s\n' "$BL_OUT" | grep '^osse_log_group_commit' | tr ' ' '\n' |
        sed -n 's/^events_per_s=//p' | head -n1)
fi

# ---- 2. the server and N open requests ----
# Starts osse on $TMP/osse (output in $TMP/osse.NAME.*) and sets OPID, OPORT,
# URL. Not in a subshell, so that PIDS reaches the cleanup. Waits up to
# $TIMEOUT seconds: a restart over a million requests takes a while.
# The clock starts at a fixed instant (a Monday), never at today's date.
START='2030-12-02T09:00:00+07:00'
start_osse() {
    local name=$1 i
    "${LINEBUF[@]}" "$BUILD/osse" serve --data "$TMP/osse" --listen 127.0.0.1:0 --test-clock="$START" \
        >"$TMP/osse.$name.out" 2>"$TMP/osse.$name.err" &
    OPID=$!
    PIDS+=("$OPID")
    OPORT=""
    for i in $(seq 1 $((TIMEOUT * 20))); do
        OPORT=$(grep -ho 'listening on [0-9.]*:[0-9]*' "$TMP/osse.$name.out" "$TMP/osse.$name.err" \
            2>/dev/null | head -n1 | sed 's/.*://') || true
        [ -n "$OPORT" ] && break
        kill -0 "$OPID" 2>/dev/null ||
            { cat "$TMP/osse.$name.out" "$TMP/osse.$name.err" >&2; die "osse exited early"; }
        sleep 0.05
    done
    [ -n "$OPORT" ] || die "osse did not announce a port"
    for i in $(seq 1 100); do [ -s "$TMP/osse/admin.token" ] && break; sleep 0.05; done
    ADMIN=$(tr -d ' \r\n' <"$TMP/osse/admin.token")
    URL=http://127.0.0.1:$OPORT
    OERR=$TMP/osse.$name.err
    say "== osse serve --test-clock on port $OPORT (pid $OPID), data $TMP/osse"
}
mkdir -p "$TMP/osse"
start_osse first

metric() { # name -> value (first sample line)
    curl -sS -m 120 "$URL/metrics" | awk -v m="$1" '$1 == m {print $2; exit}'
}
metric_sum() { # name -> sum over all its labelled samples
    curl -sS -m 120 "$URL/metrics" | awk -v m="$1" 'index($1, m "{") == 1 {s += $2} END {print s + 0}'
}

# Far ahead of the real clock, so that a restart (whose clock starts at the
# later of the real time and the last event's) finds nothing due yet.
api POST /v1/test/clock "{\"now\":\"$START\"}" >/dev/null
api PUT /v1/agencies/a '{"name":"SLA bench agency"}' >/dev/null
api POST /v1/workflows '{
  "id": "sla-bench",
  "title": "SLA bench: one agency task with a 24-hour wall-clock SLA",
  "form": {"name": {"type": "string", "required": true, "max_length": 200}},
  "steps": {
    "review": {"kind": "task", "agency": "a", "sla": "PT24H", "on_breach": "notify"}
  }
}' >/dev/null
PORTAL=$(api POST /v1/principals '{"role":"portal","name":"sla-bench"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
BODY='{"workflow":"sla-bench","form":{"name":"Bench Shop {n}"}}'

# One by hand first, to fail early with a clear message and to show the deadlines.
one=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
    -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
    --data-binary "${BODY//\{n\}/0}")
[ "$one" = 201 ] || die "first submission -> $one: $(cat "$TMP/curl.body")"
RID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/curl.body")
api GET "/v1/requests/$RID" '' | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("== one submission: status=%s steps=%s" % (v.get("status"), ",".join(
    "%s:%s sla=%s due_at=%s" % (s.get("name"), s.get("state"), s.get("sla"), s.get("due_at"))
    for s in v.get("steps", []))), file=sys.stderr)
' || say "(could not read the request back)"

sleep 1 # let the setup's allocations settle
RSS0=$(rss_kb)
SEQ0=$(metric osse_log_seq)
say "== rss_before=${RSS0}kB log_seq=$SEQ0; submitting $N requests over $CONNS connections"
LOAD_LINE=$("$BUILD/load" --host 127.0.0.1 --port "$OPORT" --conns "$CONNS" \
    --threads "$LOAD_THREADS" --requests "$N" --seconds "$TIMEOUT" --method POST \
    --path /v1/requests --token "$PORTAL" --body "$BODY" --label sla-submit)
say "$LOAD_LINE"
RESULTS+=("$LOAD_LINE")
server_alive
OK=$(field "$LOAD_LINE" ok)
SUBMIT_RPS=$(field "$LOAD_LINE" rps)
sleep 1
RSS1=$(rss_kb)
SEQ1=$(metric osse_log_seq)
OPEN=$(metric_sum osse_open_tasks)
# Requests open now: the N of the run that succeeded, plus the one by hand.
OPEN_REQ=$((OK + 1))
[ "$OPEN" = "$OPEN_REQ" ] || say "warning: osse_open_tasks=$OPEN, expected $OPEN_REQ"
l=$(awk -v n="$OPEN_REQ" -v a="$RSS0" -v b="$RSS1" -v rps="$SUBMIT_RPS" -v open="$OPEN" \
    -v s0="$SEQ0" -v s1="$SEQ1" 'BEGIN {
    d = (b - a) * 1024
    printf "sla_bench requests=%d open_tasks=%d pending_deadlines=%d rss_before_mb=%.1f rss_after_mb=%.1f", \
        n, open, 2 * n, a / 1024, b / 1024
    printf " bytes_per_request=%.0f bytes_per_deadline=%.0f submit_rps=%.1f events_per_request=%.2f\n", \
        d / n, d / (2 * n), rps, (s1 - s0) / n }')
say "$l"
RESULTS+=("$l")

# ---- 2b. a restart: the same open requests without write buffers ----
# The RSS above includes what RocksDB holds for the writes just made
# (memtables); after a restart the process holds the projections rebuilt from
# the log, plus RocksDB's caches as recovery left them.
if [ "${BENCH_SLA_RESTART:-1}" != 0 ]; then
    t0=$(now_s)
    kill -TERM "$OPID"
    wait "$OPID" 2>/dev/null || true
    t1=$(now_s)
    start_osse restart
    until curl -sf -m 5 "$URL/healthz" >/dev/null; do server_alive; sleep 0.1; done
    t2=$(now_s)
    sleep 1
    RSS2=$(rss_kb)
    OPEN2=$(metric_sum osse_open_tasks)
    # Setting the clock to START again both reads it and checks that the restart
    # did not move it (the clock does not go back: a later clock is a 409).
    NOW2=$(api POST /v1/test/clock "{\"now\":\"$START\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["now"])')
    [ "$OPEN2" = "$OPEN_REQ" ] || say "warning: after the restart osse_open_tasks=$OPEN2, expected $OPEN_REQ"
    l=$(awk -v n="$OPEN_REQ" -v a="$RSS0" -v b="$RSS2" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
        -v open="$OPEN2" -v now="$NOW2" 'BEGIN {
        d = (b - a) * 1024
        printf "sla_restart requests=%d open_tasks=%d stop_s=%.2f start_s=%.2f clock=%s", \
            n, open, t1 - t0, t2 - t1, now
        printf " rss_mb=%.1f bytes_per_request=%.0f bytes_per_deadline=%.0f\n", \
            b / 1024, d / n, d / (2 * n) }')
    say "$l"
    RESULTS+=("$l")
fi

# ---- 3. a day's worth of deadlines at once ----
fire() { # kind advance expect_type
    local kind=$1 adv=$2 type=$3 s0 s1 t0 t1 rss_a rss_b hwm
    s0=$(metric osse_log_seq)
    rss_a=$(rss_kb)
    t0=$(now_s)
    api POST /v1/test/clock "{\"advance\":\"$adv\"}" "$TIMEOUT" >/dev/null
    t1=$(now_s)
    server_alive
    rss_b=$(rss_kb)
    hwm=$(hwm_kb)
    s1=$(metric osse_log_seq)
    # The first and the last of the new events, to show what was recorded.
    local first last
    first=$(api GET "/v1/log?after=$s0&limit=1" '' |
        python3 -c 'import json,sys; e=json.load(sys.stdin)["events"]; print(e[0]["type"] if e else "none")')
    last=$(api GET "/v1/log?after=$((s1 - 1))&limit=1" '' |
        python3 -c 'import json,sys; e=json.load(sys.stdin)["events"]; print(e[0]["type"] if e else "none")')
    [ "$first" = "$type" ] && [ "$last" = "$type" ] ||
        say "warning: first new event $first, last $last, expected $type"
    l=$(awk -v k="$kind" -v n="$OPEN_REQ" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
        -v a="$rss_a" -v b="$rss_b" -v h="$hwm" -v f="$first" -v la="$last" -v adv="$adv" 'BEGIN {
        el = t1 - t0
        printf "sla_fire kind=%s advance=%s deadlines=%d seconds=%.3f per_s=%.0f events=%d", \
            k, adv, n, el, n / el, s1 - s0
        printf " first=%s last=%s rss_before_mb=%.1f rss_after_mb=%.1f rss_peak_mb=%.1f\n", \
            f, la, a / 1024, b / 1024, h / 1024 }')
    say "$l"
    RESULTS+=("$l")
}
fire warning PT20H SlaWarned
fire breach PT5H SlaBreached
BREACHES=$(metric_sum osse_sla_breaches)
[ "$BREACHES" = "$OPEN_REQ" ] || say "warning: osse_sla_breaches=$BREACHES, expected $OPEN_REQ"

# ---- summary ----
echo "== osse deadline bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$OPEN_REQ open requests"
for l in "${RESULTS[@]}"; do echo "$l"; done
if [ "$LOG_SECS" != 0 ]; then
    for l in "${RESULTS[@]}"; do
        case $l in sla_fire*)
            awk -v k="$(field "$l" kind)" -v p="$(field "$l" per_s)" -v b="$BEST_EV" -v g="$GROUP_EV" \
                'function r(x, y) { return y > 0 ? x / y : 0 }
            BEGIN { printf "ratio kind=%s fired_per_s=%.0f synced_batch_best_events_per_s=%.0f fired_vs_synced_batch_best=%.3f log_group_commit_events_per_s=%.0f fired_vs_log_group_commit=%.3f\n", k, p, b, r(p, b), g, r(p, g) }' ;;
        esac
    done
fi
echo "osse_sla_breaches_total=$BREACHES"
