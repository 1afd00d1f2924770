#!/usr/bin/env bash
# threads.sh: the CPU of one durable submission, by thread (issue 13).
#
# Starts osse serve from $BUILD (default $ROOT/build-bench; not built here:
# build a release tree first, with -DCMAKE_C_FLAGS=-g for a profile), sets it
# up as run.sh does (lib.sh's osse_setup), runs `load` for 6 s with 64
# connections of bench-permit submissions (lib.sh's BODY), and prints one
# RESULT line: the rate, the load generator's CPU over osse's (same 4 s
# window), and CPU microseconds per submission of the whole process, of the
# loop thread (user and system apart) and of the busiest other thread (the
# log's writer), from /proc utime+stime, with their page faults (minflt)
# and the growth of the resident set per submission. CPU per submission is steadier than
# the rate on a shared machine: compare builds in alternating runs (A, B, A,
# B...). PERF=FILE records the loop thread with perf for 4 s instead of
# sampling the load generator (PERF_F Hz, default 499; PERF_COMM=NAME
# records the thread of that name instead, e.g. the log's writer); the
# figures of such a run carry perf's overhead.
#
#   ROOT=$PWD BUILD=$PWD/build-rel LABEL=mine bash bench/threads.sh
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build-bench}
source "$ROOT/bench/lib.sh"
[ -x "$BUILD/osse" ] && [ -x "$BUILD/load" ] || die "no osse and load in $BUILD"
bench_tmp
mkdir -p "$TMP/osse"
start_server osse "$BUILD/osse" serve --data "$TMP/osse" --listen 127.0.0.1:0 ${EXTRA:-}
OPID=$SRV_PID
osse_setup "$TMP/osse" "$SRV_PORT"
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "$1"; }
# tid comm utime+stime utime stime, per thread
snap() {
    local t
    for t in /proc/$OPID/task/*; do
        echo "$(basename "$t") $(tr ' ' _ <"$t/comm") $(awk '{print $14+$15, $14, $15, $10}' "$t/stat")"
    done | sort
}
rss() { awk '/^VmRSS/{print $2}' /proc/$OPID/status; }
snap >"$TMP/a"
r0=$(rss)
p0=$(ticks /proc/$OPID/stat)
"$BUILD/load" --host 127.0.0.1 --port "$SRV_PORT" --conns 64 --threads 1 --seconds 6 --warmup 0 \
    --method POST --path /v1/requests --token "$PORTAL" --body "$BODY" --label osse >"$TMP/load.out" &
LP=$!
l0=0 l1=0 o0=0 o1=1
sleep 1
if [ -n "${PERF:-}" ]; then
    PTID=$OPID
    if [ -n "${PERF_COMM:-}" ]; then
        for t in /proc/$OPID/task/*; do
            [ "$(cat "$t/comm")" = "$PERF_COMM" ] && PTID=$(basename "$t") && break
        done
        [ "$PTID" != "$OPID" ] || die "no thread named $PERF_COMM in osse"
    fi
    perf record -F "${PERF_F:-499}" --call-graph dwarf,16384 -t "$PTID" -o "$PERF" -- sleep 4 \
        >/dev/null 2>&1 || true
else
    l0=$(ticks /proc/$LP/stat) o0=$(ticks /proc/$OPID/stat)
    sleep 4
    l1=$(ticks /proc/$LP/stat) o1=$(ticks /proc/$OPID/stat)
fi
wait $LP
p1=$(ticks /proc/$OPID/stat)
snap >"$TMP/b"
r1=$(rss)
cat "$TMP/load.out"
ok=$(field "$(cat "$TMP/load.out")" ok)
rps=$(field "$(cat "$TMP/load.out")" rps)
[ "${ok:-0}" -gt 0 ] || die "no submission answered"
# per thread: CPU share of a core and page faults (minflt) per submission
join "$TMP/a" "$TMP/b" | awk -v ok="$ok" '{d=$8-$3; if (d>0) printf "%s(%s) %.0f%% %.2fflt ", $2, $1, d/6, ($11-$6)/ok} END{print ""}'
read -r lt lu ls lf < <(join "$TMP/a" "$TMP/b" | awk -v pid="$OPID" '$1==pid{print $8-$3, $9-$4, $10-$5, $11-$6}')
read -r other of < <(join "$TMP/a" "$TMP/b" | awk -v pid="$OPID" '$1!=pid{d=$8-$3; if (d>m) {m=d; f=$11-$6}} END{print m+0, f+0}')
awk -v ok="$ok" -v p=$((p1 - p0)) -v lt="$lt" -v lu="$lu" -v ls="$ls" -v w="$other" -v hz="$HZ" \
    -v lf="$lf" -v of="$of" -v rss=$((r1 - r0)) \
    -v rps="$rps" -v lab="${LABEL:-}" -v lg=$((l1 - l0)) -v og=$((o1 - o0)) 'BEGIN{
    u = 1e6 / hz / ok
    printf "RESULT %s rps=%.0f loadgen_per_osse=%.3f proc_us=%.1f loop_us=%.1f loop_user_us=%.1f loop_sys_us=%.1f other_us=%.1f loop_faults=%.2f other_faults=%.2f rss_bytes=%.0f\n",
        lab, rps, (og > 0 ? lg / og : 0), p * u, lt * u, lu * u, ls * u, w * u, lf / ok, of / ok, rss * 1024 / ok }'
stop_server "$OPID"
