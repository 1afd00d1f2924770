#!/usr/bin/env bash
# audit.sh: the audit bench of issue 4. Builds a release tree, then measures,
# on this machine and this disk:
#   1. bench_log            synced RocksDB WriteBatches (the storage floor)
#   2. the Merkle tree's cost on the append path: durable POST /v1/requests
#      (run.sh's bench-permit body and workflow) through `load`, alternately on
#      `osse serve` (tree and signed heads) and `osse serve --bench-without-tree`,
#      each on a fresh data folder, BENCH_ROUNDS times each; every figure, and
#      the ratio with/without of the means
#   3. a log of BENCH_EVENTS events, built through `load --requests N` on an
#      `osse serve` (with the tree); after a SIGTERM stop, timed:
#      `osse export`, `osse verify FILE --key KEY`, `osse replay FILE --key KEY`
#      and `osse replay --data DIR`, with events/s for each; both replay
#      digests must equal the live GET /v1/admin/digest taken before the stop
# and prints the result lines at the end.
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_SECONDS (10:
# per append run), BENCH_WARMUP (2), BENCH_ROUNDS (2: with/without pairs),
# BENCH_CONNS (64: append runs), BENCH_EVENTS (10000000: log size for part 3;
# 0 skips it), BENCH_FILL_CONNS (64), BENCH_THREADS (1: load threads),
# BENCH_LOG_SECONDS (3: bench_log per phase), BENCH_NO_BUILD (set: reuse $BUILD).
# Temporary data lives in a mktemp -d directory under $BUILD, i.e. on the
# repository's disk; it is removed at exit. Part 3 needs about 500 bytes of disk
# per event (the data folder plus the export).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-2}
CONNS=${BENCH_CONNS:-64}
EVENTS=${BENCH_EVENTS:-10000000}
FILL_CONNS=${BENCH_FILL_CONNS:-64}
LOAD_THREADS=${BENCH_THREADS:-1}
LOG_SECS=${BENCH_LOG_SECONDS:-3}

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_build osse load bench_log
bench_tmp
RESULTS=()
result() { say "$1"; RESULTS+=("$1"); }
T0=$(now_s)
say "== machine: $(machine)"
say "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- 1. synced RocksDB batches ----
say "== bench_log ${LOG_SECS}s per phase (synced RocksDB WriteBatch baseline)"
mkdir -p "$TMP/bench_log"
BL_OUT=$("$BUILD/bench_log" "$TMP/bench_log" "$LOG_SECS" 1 64 256)
while IFS= read -r l; do
    case $l in rocksdb_synced_batch* | osse_log_group_commit*) result "$l" ;; esac
done <<<"$BL_OUT"
SYNCBEST=$(printf '%s\n' "$BL_OUT" | grep '^rocksdb_synced_batch' | tr ' ' '\n' |
    sed -n 's/^submissions_per_s=//p' | sort -g | tail -n1)
rm -rf "$TMP/bench_log"

# ---- 2. the append path with and without the tree ----
# One run: a fresh data folder, a fresh server, run.sh's setup, `load`.
append_run() { # round mode(tree|notree)
    local dir="$TMP/append-$1-$2" flags=() l
    [ "$2" = notree ] && flags=(--bench-without-tree)
    mkdir -p "$dir"
    start_server "osse-$1-$2" "$BUILD/osse" serve --data "$dir" --listen 127.0.0.1:0 "${flags[@]}"
    osse_setup "$dir" "$SRV_PORT"
    l=$("$BUILD/load" --host 127.0.0.1 --port "$SRV_PORT" --conns "$CONNS" --threads "$LOAD_THREADS" \
        --seconds "$SECS" --warmup "$WARMUP" --method POST --path /v1/requests \
        --token "$PORTAL" --body "$BODY" --label "audit-$2-round$1")
    stop_server "$SRV_PID"
    rm -rf "$dir"
    result "$l"
    [ "$(field "$l" errors)" = 0 ] && [ "$(field "$l" non2xx)" = 0 ] ||
        die "errors or non-2xx answers in that run"
    RPS_LAST=$(field "$l" rps)
}
WITH=() WITHOUT=()
for r in $(seq 1 "$ROUNDS"); do
    say "== round $r: with the tree, then without, ${SECS}s each after ${WARMUP}s warm-up, $CONNS conns"
    append_run "$r" tree; WITH+=("$RPS_LAST")
    append_run "$r" notree; WITHOUT+=("$RPS_LAST")
done
RATIO=$(awk -v w="${WITH[*]}" -v o="${WITHOUT[*]}" -v sb="${SYNCBEST:-0}" -v c="$CONNS" '
    function mean(s,   a, n, i, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) t += a[i]; return t / n }
    function mn(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
    function mx(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
    BEGIN {
        mw = mean(w); mo = mean(o)
        printf "audit_ratio conns=%s with_tree_rps=%.1f without_tree_rps=%.1f with_vs_without=%.3f", c, mw, mo, (mo > 0 ? mw / mo : 0)
        printf " with_range=%.1f..%.1f without_range=%.1f..%.1f", mn(w), mx(w), mn(o), mx(o)
        printf " with_vs_synced_batch_best=%.3f\n", (sb > 0 ? mw / sb : 0)
    }')
result "$RATIO"

# ---- 3. a log of BENCH_EVENTS events: export, verify, replay ----
if [ "$EVENTS" != 0 ]; then
    DATA="$TMP/log"
    mkdir -p "$DATA"
    start_server osse-log "$BUILD/osse" serve --data "$DATA" --listen 127.0.0.1:0
    OPID=$SRV_PID
    osse_setup "$DATA" "$SRV_PORT"
    say "== osse serve on port $SRV_PORT (pid $OPID), data $DATA"
    size_now() { api GET /v1/admin/digest | json_get size; }

    # How many events one submission writes: a short run, measured by size.
    CAL=2000
    S0=$(size_now)
    "$BUILD/load" --host 127.0.0.1 --port "$SRV_PORT" --conns "$FILL_CONNS" --threads "$LOAD_THREADS" \
        --requests "$CAL" --seconds 600 --method POST --path /v1/requests --token "$PORTAL" \
        --body "$BODY" --label calibrate >/dev/null
    S1=$(size_now)
    PER=$(awk -v a="$S0" -v b="$S1" -v n="$CAL" 'BEGIN { printf "%.3f", (b - a) / n }')
    LEFT=$(awk -v s="$S1" -v e="$EVENTS" -v p="$PER" 'BEGIN { n = (e - s) / p; n = int(n) + (n > int(n)); print (n > 0 ? n : 0) }')
    say "== $PER events per submission (size $S0 -> $S1 over $CAL); $LEFT more submissions for $EVENTS events"

    # The fill, in about ten pieces, to show progress.
    CHUNK=$(( (LEFT + 9) / 10 )); [ "$CHUNK" -lt 1 ] && CHUNK=1
    FT0=$(now_s) SENT=0
    while [ "$SENT" -lt "$LEFT" ]; do
        n=$CHUNK; [ $((SENT + n)) -gt "$LEFT" ] && n=$((LEFT - SENT))
        l=$("$BUILD/load" --host 127.0.0.1 --port "$SRV_PORT" --conns "$FILL_CONNS" --threads "$LOAD_THREADS" \
            --requests "$n" --seconds 36000 --method POST --path /v1/requests --token "$PORTAL" \
            --body "$BODY" --label fill)
        [ "$(field "$l" errors)" = 0 ] && [ "$(field "$l" non2xx)" = 0 ] || { say "$l"; die "errors in the fill"; }
        SENT=$((SENT + n))
        kill -0 "$OPID" 2>/dev/null || die "the server died: $(tail -n 5 "$TMP/osse-log.err")"
        say "   fill: $SENT/$LEFT submissions, ~$(awk -v s="$S1" -v n="$SENT" -v p="$PER" 'BEGIN{printf "%.0f", s + n * p}') events, $(awk -v a="$FT0" -v b="$(now_s)" 'BEGIN{printf "%.0f", b - a}')s, chunk rps=$(field "$l" rps)"
    done
    FT1=$(now_s)
    LIVE=$(api GET /v1/admin/digest)
    SIZE=$(printf '%s' "$LIVE" | json_get size)
    DIGEST=$(printf '%s' "$LIVE" | json_get digest)
    KEY=$(api GET /v1/log/public-key | json_get verifier_key)
    result "$(awk -v n="$SENT" -v s="$SIZE" -v s1="$S1" -v a="$FT0" -v b="$FT1" -v c="$FILL_CONNS" 'BEGIN {
        t = b - a; if (t <= 0) t = 1e-9
        printf "audit_fill submissions=%.0f events=%.0f log_size=%.0f seconds=%.1f submissions_per_s=%.1f events_per_s=%.0f conns=%s\n", n, s - s1, s, t, n / t, (s - s1) / t, c }')"
    [ "$SIZE" -ge "$EVENTS" ] || say "warning: the log has $SIZE events, fewer than $EVENTS"
    say "== live digest size=$SIZE $DIGEST; key $KEY; stopping the server (SIGTERM)"
    ST0=$(now_s)
    stop_server "$OPID"
    ST1=$(now_s)
    DATA_BYTES=$(du -sb "$DATA" | cut -f1)
    result "$(awk -v s="$SIZE" -v b="$DATA_BYTES" -v t="$(awk -v a="$ST0" -v b="$ST1" 'BEGIN{print b - a}')" 'BEGIN {
        printf "audit_data events=%.0f data_bytes=%.0f data_mb=%.1f bytes_per_event=%.1f stop_s=%.2f\n", s, b, b / 1e6, b / s, t }')"

    timed() { # label cmd... -> runs it, output in $TMP/LABEL.out/.err, sets EL (seconds)
        local label=$1 a b; shift
        a=$(now_s)
        "$@" >"$TMP/$label.out" 2>"$TMP/$label.err" ||
            { say "$label failed:"; tail -n 5 "$TMP/$label.err" >&2; die "$label failed"; }
        b=$(now_s)
        EL=$(awk -v a="$a" -v b="$b" 'BEGIN{print b - a}')
    }
    per_s() { # label seconds extra -> one result line
        result "$(awk -v l="$1" -v s="$SIZE" -v t="$2" -v x="${3:-}" 'BEGIN {
            printf "audit_%s events=%.0f seconds=%.2f events_per_s=%.0f%s\n", l, s, t, s / t, x }')"
    }

    say "== osse export --data DIR > FILE"
    a=$(now_s)
    "$BUILD/osse" export --data "$DATA" >"$TMP/log.bin" 2>"$TMP/export.err" ||
        { tail -n 5 "$TMP/export.err" >&2; die "export failed"; }
    EL=$(awk -v a="$a" -v b="$(now_s)" 'BEGIN{print b - a}')
    FILE_BYTES=$(stat -c %s "$TMP/log.bin")
    per_s export "$EL" "$(awk -v f="$FILE_BYTES" -v t="$EL" -v s="$SIZE" 'BEGIN {
        printf " file_bytes=%.0f file_mb=%.1f mb_per_s=%.1f file_bytes_per_event=%.1f", f, f / 1e6, f / 1e6 / t, f / s }')"

    say "== osse verify FILE --key KEY"
    timed verify "$BUILD/osse" verify "$TMP/log.bin" --key "$KEY"
    grep -q '^ok: ' "$TMP/verify.out" || die "verify did not say ok: $(cat "$TMP/verify.out")"
    say "   $(cat "$TMP/verify.out")"
    per_s verify "$EL" "$(awk -v f="$FILE_BYTES" -v t="$EL" 'BEGIN { printf " mb_per_s=%.1f", f / 1e6 / t }')"

    check_replay() { # label: the last line must be the live digest, "events N" the size
        local d n
        d=$(tail -n1 "$TMP/$1.out")
        n=$(sed -n 's/^events //p' "$TMP/$1.out" | head -n1)
        if [ "$d" != "$DIGEST" ] || [ "$n" != "$SIZE" ]; then
            say "!! $1: digest $d events $n"
            say "!! live: digest $DIGEST events $SIZE"
            die "DIGEST MISMATCH in $1"
        fi
    }
    say "== osse replay FILE --key KEY"
    timed replay_file "$BUILD/osse" replay "$TMP/log.bin" --key "$KEY"
    check_replay replay_file
    per_s replay_file "$EL" " digest_ok=1"

    say "== osse replay --data DIR"
    timed replay_data "$BUILD/osse" replay --data "$DATA"
    check_replay replay_data
    per_s replay_data "$EL" " digest_ok=1"
    result "audit_digest size=$SIZE digest=$DIGEST"
    rm -f "$TMP/log.bin"
fi

# ---- summary ----
echo "== osse audit bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${SECS}s per append run after ${WARMUP}s warm-up, $(awk -v a="$T0" -v b="$(now_s)" 'BEGIN{printf "%.0f", b - a}')s in all"
for l in "${RESULTS[@]}"; do echo "$l"; done
