#!/usr/bin/env bash
# memory.sh: the server's resident memory at N closed requests against N open
# ones (issue 13). For each kind in BENCH_MEMORY_KINDS, on this machine:
#   1. osse serve on a fresh data folder, the bench-permit setup of run.sh
#      (osse_setup in lib.sh: one bench-permit submission), and a second
#      workflow, bench-closed: the same 8-field form, one task step that
#      approves itself at submission (`auto_approve: form.area_sqm <= 50`;
#      the body's area is 42.5) and an `issue` step after it, so that one
#      POST /v1/requests ends the request `completed` with a signed licence;
#      one submission of it by hand, dying unless its answer says
#      `completed`; VmRSS after BENCH_SETTLE_S (rss_base_kb);
#   2. N submissions through the real HTTP write path (`load --requests N`):
#      kind=open of bench-permit (each leaves three tasks open), kind=closed
#      of bench-closed; the counts checked on GET /metrics
#      (osse_requests{status=...}) when it has them; VmRSS after
#      BENCH_SETTLE_S (rss_loaded_kb);
#   3. kill -9, osse serve again on the same folder (timed to the first 2xx
#      of GET /v1/requests/{the closed one}, as restart.sh does), VmRSS
#      after BENCH_SETTLE_S (rss_restarted_kb);
# and prints one line per kind:
#   memory kind=open|closed requests=N rss_base_kb rss_loaded_kb
#     rss_restarted_kb bytes_per_request_loaded bytes_per_request_restarted
#     seconds_to_first_answer data_kb fill_rps
# (bytes_per_request_* = (rss_*_kb - rss_base_kb) * 1024 / N), and with both
# kinds a memory_compare line (closed over open, restarted).
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_MEMORY_REQUESTS
# (1000000), BENCH_MEMORY_KINDS ("open closed"), BENCH_CONNS (64: load
# connections), BENCH_THREADS (1), BENCH_TIMEOUT (3600: seconds allowed for a
# fill and for a start), BENCH_SETTLE_S (2: pause before each RSS),
# BENCH_POLL_S (0.02), BENCH_NO_BUILD (set: reuse the binaries in $BUILD).
# Each kind has its own data folder in a mktemp -d directory under $BUILD,
# removed after that kind; the whole directory is removed at exit, and every
# server is killed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
N=${BENCH_MEMORY_REQUESTS:-1000000}
KINDS=${BENCH_MEMORY_KINDS:-"open closed"}
SETTLE=${BENCH_SETTLE_S:-2}

source "$ROOT/bench/lib.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_MEMORY_REQUESTS: '$N' is not a positive number"
for k in $KINDS; do
    case $k in open | closed) ;; *) die "BENCH_MEMORY_KINDS: '$k' is neither open nor closed" ;; esac
done
bench_need curl python3

bench_build osse load
bench_tmp
say "== machine: $(machine); load average $(cut -d' ' -f1-3 /proc/loadavg)"

metric() { # name -> value, or nothing when GET /metrics has no such line
    # awk reads to the end: an early exit would fail curl's write, and the pipe.
    curl -sS -m 60 "$URL/metrics" | awk -v m="$1" '$1 == m && !f { print $2; f = 1 }' ||
        { server_alive; die "GET /metrics failed"; }
}

# check_counts KIND: the requests by status on GET /metrics, when it has them:
# N + 1 of the kind's status (the fill and the one by hand), 1 of the other.
check_counts() {
    local done_n open_n want_done want_open
    done_n=$(metric 'osse_requests{status="completed"}')
    open_n=$(metric 'osse_requests{status="in_progress"}')
    if [ -z "$done_n" ] || [ -z "$open_n" ]; then
        say "== (GET /metrics has no osse_requests by status: counts not checked)"
        return
    fi
    if [ "$1" = closed ]; then want_done=$((N + 1)) want_open=1; else want_done=1 want_open=$((N + 1)); fi
    if [ "$done_n" != "$want_done" ] || [ "$open_n" != "$want_open" ]; then
        die "kind=$1: completed=$done_n in_progress=$open_n, expected $want_done and $want_open"
    fi
    say "== counts: completed=$done_n in_progress=$open_n"
}

RESULTS=()
declare -A PER_REQ
for kind in $KINDS; do
    dir=$TMP/osse-$kind
    # ---- 1. a fresh server, both workflows, one of each by hand ----
    fill_server "fill-$kind" "$dir"
    say "== kind $kind: osse serve on port $OPORT (pid $OPID), data $dir"
    osse_setup "$dir" "$OPORT"
    closed_setup
    sleep "$SETTLE"
    rss_base=$(rss_kb "$OPID")

    # ---- 2. N requests of the kind ----
    body=$BODY
    [ "$kind" = closed ] && body=$CLOSED_BODY
    say "== rss ${rss_base} kB; submitting $N $kind requests"
    fill_requests "$OPORT" "$N" "$body" "memory-$kind"
    check_counts "$kind"
    sleep "$SETTLE"
    rss_loaded=$(rss_kb "$OPID")

    # ---- 3. kill -9 and restart ----
    kill9 "$OPID"
    data_kb=$(du -sk "$dir" | cut -f1)
    osse_start_timed "restart-$kind" "$dir" "$OPORT" "$RID"
    check_counts "$kind"
    sleep "$SETTLE"
    rss_restarted=$(rss_kb "$OPID")
    l=$(awk -v k="$kind" -v n="$N" -v b="$rss_base" -v lo="$rss_loaded" -v r="$rss_restarted" \
        -v a="$ANSWER_S" -v d="$data_kb" -v f="$(field "$FILL_LINE" rps)" 'BEGIN {
        printf "memory kind=%s requests=%d rss_base_kb=%d rss_loaded_kb=%d rss_restarted_kb=%d", k, n, b, lo, r
        printf " bytes_per_request_loaded=%.0f bytes_per_request_restarted=%.0f", (lo - b) * 1024 / n, (r - b) * 1024 / n
        printf " seconds_to_first_answer=%s data_kb=%d fill_rps=%s\n", a, d, f }')
    say "$l"
    RESULTS+=("$l")
    PER_REQ[$kind]=$(field "$l" bytes_per_request_restarted)
    stop_server "$OPID"
    pids_forget "$OPID"
    rm -rf "$dir"
done

# ---- summary ----
echo "== osse memory bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
for l in "${RESULTS[@]}"; do echo "$l"; done
if [ -n "${PER_REQ[open]:-}" ] && [ -n "${PER_REQ[closed]:-}" ]; then
    awk -v o="${PER_REQ[open]}" -v c="${PER_REQ[closed]}" 'BEGIN {
        printf "memory_compare requests='"$N"' open_bytes_per_request=%s closed_bytes_per_request=%s closed_vs_open=%.3f\n",
            o, c, (o > 0 ? c / o : 0) }'
fi
