#!/usr/bin/env bash
# run.sh: the submission bench. Builds a release tree, then measures, on this
# machine and this disk:
#   1. bench_log          synced RocksDB WriteBatches (the storage floor)
#   2. noop_server + load the same HTTP stack answering 200 {} (the HTTP ceiling)
#   3. osse serve + load  durable POST /v1/requests (three parallel agency tasks
#                         and a join step, an 8-field form with PII)
# and prints every result line, then the ratios of (3) to (2) and to (1).
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_SECONDS (12),
# BENCH_WARMUP (2), BENCH_CONNS ("64 256"), BENCH_THREADS (1: load threads),
# BENCH_NO_BUILD (set: reuse the binaries already in $BUILD).
# Temporary data lives in a mktemp -d directory under $BUILD, i.e. on the
# repository's disk, so fsync costs are that disk's; it is removed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
SECS=${BENCH_SECONDS:-12}
WARMUP=${BENCH_WARMUP:-2}
CONNS_LIST=${BENCH_CONNS:-"64 256"}
LOAD_THREADS=${BENCH_THREADS:-1}

PIDS=()
TMP=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    [ -n "$TMP" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }

# ---- build ----
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    say "== building release into $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DOSSE_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD" -j2 --target osse load noop_server bench_log >/dev/null
fi

TMP=$(mktemp -d "$BUILD/bench-tmp.XXXXXX")
LINEBUF=()
command -v stdbuf >/dev/null && LINEBUF=(stdbuf -oL -eL)

# Starts a server in the background (its output in $TMP/NAME.out) and sets
# SRV_PID and SRV_PORT (the port it announces with "listening on HOST:PORT").
# Not run in a subshell, so that PIDS reaches the cleanup.
start_server() {
    local name=$1; shift
    "${LINEBUF[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    local i port=""
    for i in $(seq 1 200); do
        port=$(grep -ho 'listening on [0-9.]*:[0-9]*' "$TMP/$name.out" "$TMP/$name.err" 2>/dev/null |
               head -n1 | sed 's/.*://') || true
        [ -n "$port" ] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$name exited early:"; cat "$TMP/$name.out" "$TMP/$name.err" >&2; exit 1
        fi
        sleep 0.05
    done
    if [ -z "$port" ]; then
        say "$name did not announce a port:"; cat "$TMP/$name.out" "$TMP/$name.err" >&2; exit 1
    fi
    SRV_PID=$pid SRV_PORT=$port
}

stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The submission body: the same for noop and osse; {n} differs per request.
BODY='{"workflow":"bench-permit","form":{"applicant_id":"1101700230708","applicant_name":"Somchai Bench {n}","business_name":"Bench Shop {n}","area_sqm":42.5,"seats":{n},"district":"bang-rak","opening_date":"2026-12-01","notes":"submitted by the load generator"}}'

run_load() { # port conns token label
    "$BUILD/load" --host 127.0.0.1 --port "$1" --conns "$2" --threads "$LOAD_THREADS" \
        --seconds "$SECS" --warmup "$WARMUP" --method POST --path /v1/requests \
        --token "$3" --body "$BODY" --label "$4"
}

field() { # line key -> value of key=value
    printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
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
for i in $(seq 1 100); do [ -s "$TMP/osse/admin.token" ] && break; sleep 0.05; done
ADMIN=$(tr -d ' \r\n' <"$TMP/osse/admin.token")
URL=http://127.0.0.1:$OPORT

api() { # method path body -> prints the answer body; fails on a non-2xx
    local out code
    out=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X "$1" "$URL$2" \
        -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' --data-binary "$3")
    code=$out
    if [ "${code:0:1}" != 2 ]; then
        say "$1 $2 -> $code: $(cat "$TMP/curl.body")"; exit 1
    fi
    cat "$TMP/curl.body"
}

api PUT /v1/calendars/th-gov '{"utc_offset":"+07:00","workdays":["mon","tue","wed","thu","fri"],"hours":["08:30","16:30"],"holidays":["2026-12-07","2026-12-10","2026-12-31"]}' >/dev/null
for a in a b c; do
    api PUT "/v1/agencies/$a" "{\"name\":\"Bench agency $a\"}" >/dev/null
done
api POST /v1/workflows '{
  "id": "bench-permit",
  "title": "Bench permit: three agencies in parallel, then a licence",
  "calendar": "th-gov",
  "form": {
    "applicant_id":   {"type": "citizen_id", "required": true, "pii": true},
    "applicant_name": {"type": "string", "required": true, "pii": true, "max_length": 200},
    "business_name":  {"type": "string", "required": true, "max_length": 200},
    "area_sqm":       {"type": "number", "required": true, "min": 1},
    "seats":          {"type": "integer", "min": 0},
    "district":       {"type": "enum", "values": ["bang-rak", "pathum-wan", "khlong-toei"]},
    "opening_date":   {"type": "date"},
    "notes":          {"type": "string", "max_length": 1000}
  },
  "steps": {
    "review_a": {"kind": "task", "agency": "a", "sla": "5 working days"},
    "review_b": {"kind": "task", "agency": "b", "sla": "10 working days", "on_breach": "approve"},
    "review_c": {"kind": "task", "agency": "c", "sla": "15 working days"},
    "licence":  {"kind": "issue", "after": ["review_a", "review_b", "review_c"],
                 "number": "BEN-{yyyy}-{seq:6}", "valid_for": "P1Y",
                 "public_fields": ["business_name", "district"]}
  }
}' >/dev/null
PORTAL=$(api POST /v1/principals '{"role":"portal","name":"bench"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# One submission by hand first: a clear error here beats a run of non-2xx.
one=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
    -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
    --data-binary "${BODY//\{n\}/0}")
if [ "$one" != 201 ]; then
    say "first submission -> $one: $(cat "$TMP/curl.body")"; exit 1
fi
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
