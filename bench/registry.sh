#!/usr/bin/env bash
# registry.sh: the public registry's CSV export bench of issue 11. Builds a
# release tree, then, on this machine and this disk:
#   1. osse serve --test-clock (a fixed instant), a workflow whose only step
#      is `issue` (three public text fields), and N submissions through `load
#      --requests N`: each POST /v1/requests issues a licence at once; the
#      count is checked (osse_requests{status="completed"}, the newest
#      licence's number)
#   2. a restart on that data folder (SIGTERM, start, time to `listening`),
#      so that what is measured is a server whose projections hold N licences
#   3. GET /v1/public/licences.csv: once to a file (its rows are counted),
#      then timed to /dev/null, without and with ?workflow= (the field.<name>
#      columns), and once through a slow reader (curl --limit-rate for a
#      bounded time); for each, the server's VmRSS before, every 50 ms
#      during (a background sampler) and after, and VmHWM (reset before each
#      export by writing 5 to /proc/PID/clear_refs, so it is that export's
#      peak)
#   4. the floors of the same run: the same number of bytes read from the
#      page cache (cat), served by python3 -m http.server from a file, and
#      streamed by noop_server (osse's HTTP stack and osse_http_respond_stream
#      in 64 KiB slices, with no registry behind it), each read by curl over
#      loopback
# and prints the result lines, the ratios of the export to the floors, and a
# memory line: the resident size before the export, each export's growth
# above it (the larger of the sampled peak and VmHWM, minus the RSS before),
# and the resident bytes per licence (RSS after the restart minus that of
# the fresh server before the fill, over N).
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_LICENCES
# (1000000), BENCH_CONNS (64: load connections), BENCH_THREADS (1),
# BENCH_TIMEOUT (seconds allowed per phase, 1800), BENCH_SLOW_RATE (2M: curl
# --limit-rate of the slow reader), BENCH_SLOW_SECONDS (20: how long it
# reads), BENCH_NO_BUILD (set: reuse $BUILD).
# Temporary data lives in a mktemp -d directory under $BUILD, i.e. on the
# repository's disk; it is removed at exit. It needs about 0.5 kB of disk
# per licence for the data folder and the CSV file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
N=${BENCH_LICENCES:-1000000}
CONNS=${BENCH_CONNS:-64}
LOAD_THREADS=${BENCH_THREADS:-1}
TIMEOUT=${BENCH_TIMEOUT:-1800}
SLOW_RATE=${BENCH_SLOW_RATE:-2M}
SLOW_SECS=${BENCH_SLOW_SECONDS:-20}
T_START=$(date +%s)

source "$ROOT/bench/lib.sh"

# ---- build ----
bench_build osse load noop_server
bench_tmp
RESULTS=()
say "== machine: $(machine); load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the server ----
# Starts osse on $TMP/osse (output in $TMP/osse.NAME.*) and sets OPID, OPORT,
# URL, ADMIN and START_S (seconds from the exec to `listening`). Not in a
# subshell, so that PIDS reaches the cleanup.
CLOCK='2030-01-07T09:00:00+07:00'
start_osse() {
    local name=$1 i t0
    t0=$(now_s)
    "${LINEBUF[@]}" "$BUILD/osse" serve --data "$TMP/osse" --listen 127.0.0.1:0 \
        --test-clock="$CLOCK" >"$TMP/osse.$name.out" 2>"$TMP/osse.$name.err" &
    OPID=$!
    PIDS+=("$OPID")
    OPORT=""
    for i in $(seq 1 $((TIMEOUT * 50))); do
        OPORT=$(grep -ho 'listening on [0-9.]*:[0-9]*' "$TMP/osse.$name.out" "$TMP/osse.$name.err" \
            2>/dev/null | head -n1 | sed 's/.*://') || true
        [ -n "$OPORT" ] && break
        kill -0 "$OPID" 2>/dev/null ||
            { cat "$TMP/osse.$name.out" "$TMP/osse.$name.err" >&2; die "osse exited early"; }
        sleep 0.02
    done
    [ -n "$OPORT" ] || die "osse did not announce a port"
    START_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
    for i in $(seq 1 100); do [ -s "$TMP/osse/admin.token" ] && break; sleep 0.05; done
    ADMIN=$(tr -d ' \r\n' <"$TMP/osse/admin.token")
    URL=http://127.0.0.1:$OPORT
    OERR=$TMP/osse.$name.err
    say "== osse serve --test-clock on port $OPORT (pid $OPID), data $TMP/osse, listening after ${START_S}s"
}

# Resets VmHWM to the current RSS (Linux >= 4.0), so that the next VmHWM is
# the peak of what follows. Prints 1 when it worked.
hwm_reset() { if echo 5 >"/proc/$1/clear_refs" 2>/dev/null; then echo 1; else echo 0; fi; }
metric() { # name -> value (first sample line whose name is exactly name)
    # awk reads to the end: an early exit can fail curl's write, and with it the pipe.
    curl -sS -m 120 "$URL/metrics" | awk -v m="$1" '$1 == m && !f {print $2; f = 1}'
}

# Samples VmRSS (kB) of pid every 50 ms into file until killed. The read is
# a bash builtin, so that sampling costs no fork per sample.
sampler() { # pid file
    local k v _
    while :; do
        while read -r k v _; do
            [ "$k" = VmRSS: ] && { printf '%s\n' "$v" >>"$2"; break; }
        done <"/proc/$1/status" 2>/dev/null || exit 0
        sleep 0.05
    done
}
SAMPLER=""
sampler_start() { # pid file
    : >"$2"
    sampler "$1" "$2" &
    SAMPLER=$! # not in PIDS: it ends by itself when the server's /proc entry goes
}
sampler_stop() {
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
}

mkdir -p "$TMP/osse"
start_osse first

# ---- 1. fill: N licences ----
api PUT /v1/agencies/reg '{"name":"Registry bench agency"}' >/dev/null
WF=registry-bench
api POST /v1/workflows '{
  "id": "registry-bench",
  "title": "Registry bench: a licence at once",
  "form": {
    "business_name": {"type": "string", "required": true, "max_length": 200},
    "district":      {"type": "string", "required": true, "max_length": 100},
    "street":        {"type": "string", "max_length": 200}
  },
  "steps": {
    "licence": {"kind": "issue", "agency": "reg", "number": "REG-{yyyy}-{seq:7}",
                "valid_for": "P1Y", "public_fields": ["business_name", "district", "street"]}
  }
}' >/dev/null
PORTAL=$(api POST /v1/principals '{"role":"portal","name":"registry-bench"}' | json_get token)
BODY='{"workflow":"registry-bench","form":{"business_name":"Registry Bench Shop {n}","district":"Bang Rak","street":"{n} Charoen Krung Road, Bang Rak"}}'

# One by hand first, to fail early with a clear message and to show the licence.
one=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
    -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
    --data-binary "${BODY//\{n\}/0}")
[ "$one" = 201 ] || die "first submission -> $one: $(cat "$TMP/curl.body")"
curl -sS "$URL/v1/public/licences?limit=1" | python3 -c '
import json, sys
v = json.load(sys.stdin)["licences"]
assert v, "no licence after the first submission"
print("== one submission: licence %s status=%s fields=%s" % (v[0]["number"], v[0]["status"],
      json.dumps(v[0]["fields"])), file=sys.stderr)
' || die "the first submission issued no licence"

WANT=$((N + 1)) # the N of the run and the one by hand
sleep 1
RSS_FILL0=$(rss_kb "$OPID")
say "== rss=${RSS_FILL0}kB; submitting $N requests over $CONNS connections"
LOAD_LINE=$("$BUILD/load" --host 127.0.0.1 --port "$OPORT" --conns "$CONNS" \
    --threads "$LOAD_THREADS" --requests "$N" --seconds "$TIMEOUT" --method POST \
    --path /v1/requests --token "$PORTAL" --body "$BODY" --label registry-fill)
say "$LOAD_LINE"
RESULTS+=("$LOAD_LINE")
server_alive
[ "$(field "$LOAD_LINE" ok)" = "$N" ] || die "the fill got $(field "$LOAD_LINE" ok) 2xx of $N"
COMPLETED=$(metric 'osse_requests{status="completed"}')
NEWEST=$(curl -sS "$URL/v1/public/licences?limit=1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["licences"][0]["number"])')
WANT_NUMBER=$(printf 'REG-2030-%07d' "$WANT")
[ "$COMPLETED" = "$WANT" ] || die "osse_requests{status=\"completed\"}=$COMPLETED, expected $WANT"
[ "$NEWEST" = "$WANT_NUMBER" ] || die "newest licence $NEWEST, expected $WANT_NUMBER"
l=$(awk -v n="$N" -v s="$(field "$LOAD_LINE" seconds)" -v r="$(field "$LOAD_LINE" rps)" \
    -v c="$COMPLETED" -v nw="$NEWEST" -v a="$RSS_FILL0" -v b="$(rss_kb "$OPID")" 'BEGIN {
    printf "registry_fill submissions=%d seconds=%.1f submissions_per_s=%.1f completed=%d newest=%s", n, s, r, c, nw
    printf " rss_before_mb=%.1f rss_after_mb=%.1f\n", a / 1024, b / 1024 }')
say "$l"
RESULTS+=("$l")

# ---- 2. restart on the folder ----
t0=$(now_s)
kill -TERM "$OPID"
wait "$OPID" 2>/dev/null || true
STOP_S=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }')
start_osse restart
until curl -sf -m 5 "$URL/healthz" >/dev/null; do server_alive; sleep 0.1; done
[ "$(metric 'osse_requests{status="completed"}')" = "$WANT" ] || die "after the restart the count is not $WANT"
sleep 2 # let the start's allocations and RocksDB settle
RSS_IDLE=$(rss_kb "$OPID")
l=$(awk -v n="$WANT" -v s="$STOP_S" -v t="$START_S" -v r="$RSS_IDLE" -v h="$(hwm_kb "$OPID")" 'BEGIN {
    printf "registry_restart licences=%d stop_s=%s start_to_listening_s=%s rss_mb=%.1f start_peak_mb=%.1f\n", \
        n, s, t, r / 1024, h / 1024 }')
say "$l"
RESULTS+=("$l")

# ---- 3. the export ----
# export_run LABEL QUERY OUTFILE [curl options...]: one export of
# /v1/public/licences.csv?QUERY into OUTFILE, with the server's memory
# around it; prints a registry_export line and sets X_BYTES, X_SECS, X_GROWTH.
export_run() {
    local label=$1 query=$2 outf=$3 samples=$TMP/rss.$1 w rc ok a b h reset
    shift 3
    reset=$(hwm_reset "$OPID")
    a=$(rss_kb "$OPID")
    sampler_start "$OPID" "$samples"
    set +e
    w=$(curl -sS -o "$outf" -w '%{http_code} %{size_download} %{time_total} %{time_starttransfer}' \
        "$@" "$URL/v1/public/licences.csv${query:+?$query}")
    rc=$?
    set -e
    sampler_stop
    server_alive
    sleep 0.5
    b=$(rss_kb "$OPID")
    h=$(hwm_kb "$OPID")
    # curl 28 is the slow reader's own --max-time: it stopped reading on purpose.
    ok=1
    [ "$rc" = 0 ] || [ "$rc" = 28 ] || ok=0
    [ "${w%% *}" = 200 ] || ok=0
    [ "$ok" = 1 ] || die "export $label: curl rc=$rc, answer $w"
    set -- $w
    X_BYTES=$2 X_SECS=$3
    l=$(awk -v lb="$label" -v q="${query:-none}" -v n="${ROWS:-0}" -v by="$2" -v s="$3" -v fb="$4" \
        -v a="$a" -v b="$b" -v h="$h" -v rs="$reset" -v f="$samples" -v cut="$rc" \
        -v tb="${TOTAL_BYTES:-0}" 'BEGIN {
        # The samples: the largest, the first and last, and the largest of
        # each half (a slow reader whose export grows shows it here).
        k = 0
        while ((getline v < f) > 0) { k++; x[k] = v + 0 }
        peak = a; h1 = 0; h2 = 0
        for (i = 1; i <= k; i++) {
            if (x[i] > peak) peak = x[i]
            if (i <= k / 2) { if (x[i] > h1) h1 = x[i] } else if (x[i] > h2) h2 = x[i]
        }
        top = (rs == 1 && h > peak) ? h : peak
        printf "registry_export label=%s query=%s bytes=%.0f seconds=%.3f first_byte_s=%.3f mb_per_s=%.1f", \
            lb, q, by, s, fb, (s > 0 ? by / s / 1e6 : 0)
        if (cut == 0 && n > 0)
            printf " licences=%d licences_per_s=%.0f", n, (s > 0 ? n / s : 0)
        else
            printf " licences_read=%.0f", (n > 0 && tb > 0 ? n * by / tb : 0)
        printf " rss_before_mb=%.1f rss_peak_sampled_mb=%.1f hwm_mb=%.1f rss_after_mb=%.1f", \
            a / 1024, peak / 1024, (rs == 1 ? h / 1024 : -1), b / 1024
        printf " growth_mb=%.1f samples=%d first_half_max_mb=%.1f second_half_max_mb=%.1f\n", \
            (top - a) / 1024, k, h1 / 1024, h2 / 1024 }')
    X_GROWTH=$(field "$l" growth_mb)
    say "$l"
    RESULTS+=("$l")
}

# First to a file: its rows are counted, and it is the floors' input.
ROWS=$WANT
export_run to-file "" "$TMP/export.csv"
TOTAL_BYTES=$X_BYTES
LINES=$(wc -l <"$TMP/export.csv")
[ "$LINES" = $((WANT + 1)) ] || die "the CSV has $LINES lines, expected $((WANT + 1)) (a header and $WANT rows)"
say "== CSV: $LINES lines; $(head -n2 "$TMP/export.csv" | tr -d '\r' | tr '\n' '|')"
export_run all "" /dev/null
ALL_SECS=$X_SECS ALL_BYTES=$X_BYTES ALL_GROWTH=$X_GROWTH
export_run workflow "workflow=$WF" "$TMP/export-wf.csv"
WF_SECS=$X_SECS WF_BYTES=$X_BYTES WF_GROWTH=$X_GROWTH
say "== CSV with workflow=: $(head -n2 "$TMP/export-wf.csv" | tr -d '\r' | tr '\n' '|')"
[ "$(wc -l <"$TMP/export-wf.csv")" = $((WANT + 1)) ] || die "the workflow= CSV is not $WANT rows"
rm -f "$TMP/export-wf.csv"
export_run slow "" /dev/null --limit-rate "$SLOW_RATE" --max-time "$SLOW_SECS"
SLOW_GROWTH=$X_GROWTH
# The server still answers after the reader went away mid-stream.
curl -sf -m 10 "$URL/healthz" >/dev/null || die "no /healthz after the slow reader left"
RSS_END=$(rss_kb "$OPID")
stop_server "$OPID"

# ---- 4. the floors: the same bytes without the registry ----
floor_line() { # label bytes seconds
    local l
    l=$(awk -v lb="$1" -v by="$2" -v s="$3" 'BEGIN {
        printf "floor label=%s bytes=%.0f seconds=%.3f mb_per_s=%.1f\n", lb, by, s, (s > 0 ? by / s / 1e6 : 0) }')
    say "$l"
    RESULTS+=("$l")
}
cat "$TMP/export.csv" >/dev/null # into the page cache
t0=$(now_s)
cat "$TMP/export.csv" >/dev/null
CAT_SECS=$(awk -v a="$t0" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }')
floor_line cat "$TOTAL_BYTES" "$CAT_SECS"

PYPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PYPORT" --bind 127.0.0.1 --directory "$TMP" >"$TMP/py.out" 2>&1 &
PYPID=$!
PIDS+=("$PYPID")
for i in $(seq 1 100); do curl -sf -m 1 -o /dev/null "http://127.0.0.1:$PYPORT/" && break; sleep 0.1; done
set -- $(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$PYPORT/export.csv")
PY_SECS=$2
[ "$1" = "$TOTAL_BYTES" ] || die "python http.server sent $1 bytes, expected $TOTAL_BYTES"
floor_line python-http.server "$1" "$2"
stop_server "$PYPID"

start_server noop "$BUILD/noop_server" 0 "$TOTAL_BYTES"
NPID=$SRV_PID
hwm_reset "$NPID" >/dev/null
set -- $(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "http://127.0.0.1:$SRV_PORT/stream")
NOOP_SECS=$2
[ "$1" = "$TOTAL_BYTES" ] || die "noop_server sent $1 bytes, expected $TOTAL_BYTES"
floor_line noop-stream "$1" "$2"
say "== noop_server VmHWM during its stream: $(hwm_kb "$NPID") kB"
stop_server "$NPID"

# ---- summary ----
echo "== osse registry bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$WANT licences, $(($(date +%s) - T_START))s in all"
for l in "${RESULTS[@]}"; do echo "$l"; done
awk -v n="$WANT" -v by="$ALL_BYTES" -v s="$ALL_SECS" -v ws="$WF_SECS" -v wb="$WF_BYTES" \
    -v c="$CAT_SECS" -v p="$PY_SECS" -v o="$NOOP_SECS" -v r="$RSS_IDLE" -v g="$ALL_GROWTH" \
    -v wg="$WF_GROWTH" -v sg="$SLOW_GROWTH" -v e="$RSS_END" -v f0="$RSS_FILL0" 'function r_(a, b) { return b > 0 ? a / b : 0 }
BEGIN {
    printf "ratio licences=%d export_licences_per_s=%.0f export_mb_per_s=%.1f workflow_licences_per_s=%.0f", \
        n, r_(n, s), r_(by, s) / 1e6, r_(n, ws)
    printf " export_vs_noop_stream=%.3f export_vs_python_http=%.3f export_vs_cat=%.3f\n", \
        r_(o, s), r_(p, s), r_(c, s)
    printf "memory rss_before_export_mb=%.1f export_growth_mb=%.1f workflow_growth_mb=%.1f slow_reader_growth_mb=%.1f", \
        r / 1024, g, wg, sg
    printf " growth_vs_rss=%.4f rss_at_end_mb=%.1f resident_bytes_per_licence=%.0f\n", \
        r_(g * 1024, r), e / 1024, r_((r - f0) * 1024, n) }'
