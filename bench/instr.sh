#!/usr/bin/env bash
# instr.sh: the instructions of one durable submission, counted by
# valgrind's callgrind (issue 13).
#
# This machine's timings move by 10-20 % between runs of the same binary
# (bench/README.md), and it has no hardware counters (perf stat says "not
# supported"), so a change worth a few percent cannot be told from noise by
# CPU time. Instructions counted by callgrind are the same from run to run
# within a percent: this compares two builds' work, not their speed (a
# cache miss or a system call counts as the instructions around it).
#
# Starts osse serve from $BUILD (default $ROOT/build-bench; a release tree:
# not built here) under callgrind, sets it up as run.sh does (lib.sh's
# osse_setup), zeroes the counts, runs `load` for $SECONDS_LOAD seconds
# (default 20) with $CONNS connections (default 16) of lib.sh's BODY, dumps
# the counts, and prints one RESULT line: the submissions answered, and
# instructions (Ir) a submission of the loop thread, of the log's writer
# and of the whole process (every thread: the pool's, RocksDB's). The
# writer's share depends on how many submissions a synced write holds,
# which is not the same under valgrind as at full speed; the loop's does
# not. CG_DIR=DIR keeps the dumps there (for callgrind_annotate).
#
#   ROOT=$PWD BUILD=$PWD/build-rel LABEL=mine bash bench/instr.sh
set -euo pipefail
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build-bench}
source "$ROOT/bench/lib.sh"
bench_need valgrind callgrind_control
[ -x "$BUILD/osse" ] && [ -x "$BUILD/load" ] || die "no osse and load in $BUILD"
bench_tmp
CG=${CG_DIR:-$TMP/cg}
mkdir -p "$TMP/osse" "$CG"
rm -f "$CG"/cg.out*
start_server osse valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
    --callgrind-out-file="$CG/cg.out" "$BUILD/osse" serve --data "$TMP/osse" \
    --listen 127.0.0.1:0 ${EXTRA:-}
OPID=$SRV_PID
osse_setup "$TMP/osse" "$SRV_PORT"
callgrind_control -z "$OPID" >/dev/null 2>&1
"$BUILD/load" --host 127.0.0.1 --port "$SRV_PORT" --conns "${CONNS:-16}" --threads 1 \
    --seconds "${SECONDS_LOAD:-20}" --warmup 0 --method POST --path /v1/requests \
    --token "$PORTAL" --body "$BODY" --label osse >"$TMP/load.out"
callgrind_control -d "$OPID" >/dev/null 2>&1
cat "$TMP/load.out"
ok=$(field "$(cat "$TMP/load.out")" ok)
[ "${ok:-0}" -gt 0 ] || die "no submission answered"
# The dump of the zeroed window: one file a thread, "cg.out.1-NN"; its
# "summary:" line is the thread's Ir. Thread 1 is the loop; the writer is
# the one whose functions include the log's writer_main.
loop=0 writer=0 all=0
for f in "$CG"/cg.out.1-*; do
    ir=$(awk '/^(summary|totals):/{print $2; exit}' "$f")
    ir=${ir:-0}
    all=$((all + ir))
    case $f in *-01) loop=$ir ;; esac
    if grep -q 'writer_main' "$f"; then writer=$((writer + ir)); fi
done
awk -v ok="$ok" -v l="$loop" -v w="$writer" -v a="$all" -v lab="${LABEL:-}" 'BEGIN{
    printf "RESULT %s submissions=%d loop_ir=%.0f writer_ir=%.0f proc_ir=%.0f (a submission)\n",
        lab, ok, l / ok, w / ok, a / ok }'
stop_server "$OPID"
