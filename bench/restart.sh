#!/usr/bin/env bash
# restart.sh: start time after a crash at scale (issue 13). For each size N in
# BENCH_RESTART_EVENTS (events in the log), on this machine and this disk:
#   1. osse serve on a fresh data folder, the bench-permit setup of run.sh
#      (osse_setup in lib.sh), then one submission by hand whose id is the
#      one read back after the restart, and whose growth of the log (lib.sh's
#      log_size: `osse_log_seq` of GET /metrics, else the signed tree head's
#      `size` once it stops growing) gives the events per submission (4
#      today: RequestSubmitted and three StepOpened);
#   2. submissions through the real HTTP write path (`load --requests R`,
#      POST /v1/requests with the portal token): BENCH_RESTART_OPEN (50000)
#      of bench-permit, each leaving three tasks open, then submissions of
#      bench-closed (lib.sh's closed_setup: approved at submission by its
#      rule, a licence issued, the request completed at once) until the log
#      holds at least N events (checked with log_size, topped up if short).
#      So the sizes differ in history, not in open work, as a ministry's log
#      does over the years. BENCH_RESTART_OPEN=all: every submission of
#      bench-permit (every request open, the bench before the sixth session);
#   3. the server's VmRSS, then kill -9 (a crash: nothing flushed or closed);
#   4. osse serve again on the same folder and port, timed from the exec: to
#      its "listening on" line, and to the first 2xx of an authenticated
#      GET /v1/requests/{the id of step 1} (curl polled every BENCH_POLL_S);
#      its CPU seconds at that answer, and its VmRSS BENCH_SETTLE_S later;
# and prints one line per size:
#   restart events=E target=N requests=R open=O seconds_to_listening=S
#     seconds_to_first_answer=S2 cpu_s=C rss_before_kb=A rss_after_kb=B
#     data_kb=D wal_kb=W fill_rps=F (W: the size of RocksDB's write-ahead logs
#     at the kill, what its open replays)
# then, with two sizes or more, the first size against the last (list them
# smallest first):
#   restart_compare small=E1 large=E2 diff_s=... diff_listening_s=... within_2s=yes|no
# (diff_s compares seconds_to_first_answer; issue 13's bar is the two start
# times within 2 s of each other; the bench prints, it does not assert).
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_RESTART_EVENTS
# ("1000000 10000000"), BENCH_CONNS (64: load connections), BENCH_THREADS (1),
# BENCH_TIMEOUT (3600: seconds allowed for a fill and for a start),
# BENCH_POLL_S (0.02: pause between two polls of the restarted server),
# BENCH_SETTLE_S (2: pause before the RSS after the restart),
# BENCH_RESTART_OPEN (50000, or all: the open requests of step 2),
# BENCH_NO_BUILD (set: reuse the binaries already in $BUILD).
# Each size has its own data folder in a mktemp -d directory under $BUILD (on
# the repository's disk), removed after that size; the whole directory is
# removed at exit, and every server is killed. The start reads the open
# requests' records and the counters snapshot, not the ended requests
# (docs/design.md, "The start reads only open work"); it still reads every
# key of the key store into memory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
SIZES=${BENCH_RESTART_EVENTS:-"1000000 10000000"}
SETTLE=${BENCH_SETTLE_S:-2}
OPEN=${BENCH_RESTART_OPEN:-50000}

source "$ROOT/bench/lib.sh"

for n in $SIZES; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_RESTART_EVENTS: '$n' is not a positive number of events"
done
[[ $OPEN =~ ^(all|0|[1-9][0-9]*)$ ]] || die "BENCH_RESTART_OPEN: '$OPEN' is neither a number nor all"
bench_need curl python3

bench_build osse load
bench_tmp
say "== machine: $(machine); load average $(cut -d' ' -f1-3 /proc/loadavg)"

RESULTS=()
for n in $SIZES; do
    dir=$TMP/osse-$n
    # ---- 1. a fresh server, the setup, one submission by hand ----
    fill_server "fill-$n" "$dir"
    say "== size $n: osse serve on port $OPORT (pid $OPID), data $dir"
    osse_setup "$dir" "$OPORT"
    e0=$(log_size)
    rid=$(submit_one "$BODY")
    e1=$(log_size)
    per=$((e1 - e0))
    [ "$per" -gt 0 ] || die "one submission grew the log by $per events"
    say "== one submission: id $rid, $per events; the log holds $e1"

    # ---- 2. the fill: OPEN open requests, then closed ones until N events ----
    reqs=2 # osse_setup's submission and the one by hand
    fill_s=0 round=0
    if [ "$OPEN" != all ]; then
        if [ "$OPEN" -gt 0 ]; then
            say "== filling: $OPEN open submissions"
            fill_requests "$OPORT" "$OPEN" "$BODY" "restart-open-$n"
            reqs=$((reqs + OPEN))
            fill_s=$(field "$FILL_LINE" seconds)
        fi
        c0=$(log_size)
        closed_setup
        c1=$(log_size)
        per=$((c1 - c0 - 1)) # WorkflowPublished is not the submission's
        reqs=$((reqs + 1))
        body=$CLOSED_BODY
        say "== one closed submission: $per events; the log holds $c1"
    else
        body=$BODY
    fi
    events=$(log_size)
    while [ "$events" -lt "$n" ]; do
        round=$((round + 1))
        [ "$round" -le 5 ] || die "the log holds $events events after 5 fills, not $n"
        r=$(((n - events + per - 1) / per))
        say "== filling: $r submissions (the log holds $events of $n events)"
        fill_requests "$OPORT" "$r" "$body" "restart-fill-$n"
        reqs=$((reqs + r))
        fill_s=$(awk -v a="$fill_s" -v b="$(field "$FILL_LINE" seconds)" 'BEGIN { print a + b }')
        events=$(log_size)
    done
    fill_rps=$(awk -v r="$((reqs - 2))" -v s="$fill_s" 'BEGIN { printf "%.1f", (s > 0 ? r / s : 0) }')

    # ---- 3. the crash ----
    rss_before=$(rss_kb "$OPID")
    kill9 "$OPID"
    data_kb=$(du -sk "$dir" | cut -f1)
    # RocksDB's write-ahead logs: what its open replays into a memtable (at
    # most a memtable's worth since the last flush, wherever the kill lands).
    wal_kb=$(find "$dir" -name '*.log' -printf '%s\n' | awk '{s += $1} END {printf "%d", s / 1024}')
    say "== killed -9 at rss ${rss_before} kB; data folder ${data_kb} kB, write-ahead log ${wal_kb} kB"

    # ---- 4. the restart, timed ----
    osse_start_timed "restart-$n" "$dir" "$OPORT" "$rid"
    sleep "$SETTLE"
    rss_after=$(rss_kb "$OPID")
    got=$(log_size)
    [ "$got" -ge "$events" ] || die "after the restart the log holds $got events, not $events"
    l="restart events=$events target=$n requests=$reqs open=$OPEN seconds_to_listening=$LISTEN_S"
    l+=" seconds_to_first_answer=$ANSWER_S cpu_s=$CPU_S rss_before_kb=$rss_before"
    l+=" rss_after_kb=$rss_after data_kb=$data_kb wal_kb=$wal_kb fill_rps=$fill_rps"
    say "$l"
    # What the start said of its parts (the log's own timings), up to listening.
    sed -n '1,/listening/p' "$OERR" | grep -E 'msg=("records read"|"keys|"log |listening)' |
        sed 's/^/   start: /' || true
    RESULTS+=("$l")
    stop_server "$OPID"
    pids_forget "$OPID"
    rm -rf "$dir"
done

# ---- summary ----
echo "== osse restart bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
for l in "${RESULTS[@]}"; do echo "$l"; done
if [ "${#RESULTS[@]}" -ge 2 ]; then
    first=${RESULTS[0]} last=${RESULTS[${#RESULTS[@]} - 1]}
    awk -v e1="$(field "$first" events)" -v e2="$(field "$last" events)" \
        -v a1="$(field "$first" seconds_to_first_answer)" -v a2="$(field "$last" seconds_to_first_answer)" \
        -v l1="$(field "$first" seconds_to_listening)" -v l2="$(field "$last" seconds_to_listening)" 'BEGIN {
        d = a2 - a1
        printf "restart_compare small=%s large=%s diff_s=%.3f diff_listening_s=%.3f within_2s=%s\n",
            e1, e2, d, l2 - l1, (d <= 2 && d >= -2) ? "yes" : "no" }'
fi
