# shellcheck shell=bash
# lib.sh: helpers shared by the bench scripts (sourced, not run): run.sh,
# sla.sh, audit.sh, registry.sh, restart.sh, memory.sh and wrk.sh. A script
# may redefine a helper after sourcing (sla.sh has its own api with a timeout
# and a liveness check).
#
# The caller sets ROOT and BUILD, and sources this file before anything else;
# it gets: a cleanup at exit that kills every server in PIDS (by pid) and
# removes $TMP; say/die; bench_build TARGETS...; bench_tmp (makes $TMP under
# $BUILD, so that data sits on the repository's disk); start_server and
# stop_server; field; now_s; the submission BODY and the bench-permit setup
# (osse_setup), as run.sh does them; and for the issue 13 benches: pids_forget,
# cpu_s, log_size, submit_one, fill_requests, bg_run, kill9 and
# osse_start_timed.

PIDS=()
TMP=""
bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM
# A command that fails outside a test ends the script (set -e): say where,
# so that no bench ends without a word.
trap 'say "${0##*/}: line $LINENO: a command failed (exit $?)"' ERR

say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): $*"; exit 1; }
now_s() { date +%s.%N; }

field() { # line key -> value of key=value
    printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

bench_need() { # commands...: each must be on PATH
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || die "$c is needed"
    done
}

bench_build() { # targets... (the build skipped when BENCH_NO_BUILD is set; each must be there)
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        say "== building release into $BUILD"
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DOSSE_SANITIZE=OFF >/dev/null
        cmake --build "$BUILD" -j2 --target "$@" >/dev/null
    fi
    local b
    for b in "$@"; do
        [ -x "$BUILD/$b" ] || die "no $BUILD/$b (build it, or unset BENCH_NO_BUILD)"
    done
}

LINEBUF=()
command -v stdbuf >/dev/null && LINEBUF=(stdbuf -oL -eL)

bench_tmp() {
    TMP=$(mktemp -d "$BUILD/bench-tmp.XXXXXX")
}

machine() {
    printf '%s cores, %s, %s, data on %s' "$(nproc)" \
        "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" \
        "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
        "$(df -P "$TMP" | awk 'NR==2{print $1}')"
}

# Starts a server in the background (its output in $TMP/NAME.out and .err)
# and sets SRV_PID and SRV_PORT (the port it announces with "listening on
# HOST:PORT"). Not to be run in a subshell, so that PIDS reaches the cleanup.
start_server() {
    local name=$1; shift
    "${LINEBUF[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    local i port=""
    for i in $(seq 1 1200); do
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
    # shellcheck disable=SC2034 # read by the scripts that source this file
    SRV_PID=$pid SRV_PORT=$port
}

# fill_server NAME DIR: osse serve on the fresh data folder DIR (made here),
# output in $TMP/NAME.*; sets OPID, OPORT and OERR (restart.sh, memory.sh).
fill_server() {
    mkdir -p "$2"
    start_server "$1" "$BUILD/osse" serve --data "$2" --listen 127.0.0.1:0
    OPID=$SRV_PID OPORT=$SRV_PORT OERR=$TMP/$1.err
}

stop_server() { # pid: SIGTERM, then wait for it to exit
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The submission body of run.sh; {n} differs per request.
BODY='{"workflow":"bench-permit","form":{"applicant_id":"1101700230708","applicant_name":"Somchai Bench {n}","business_name":"Bench Shop {n}","area_sqm":42.5,"seats":{n},"district":"bang-rak","opening_date":"2026-12-01","notes":"submitted by the load generator"}}'

# server_alive: when the osse of $OPID is gone, dies with the tail of its
# stderr ($OERR). No-op without $OPID.
server_alive() {
    [ -z "${OPID:-}" ] && return 0
    kill -0 "$OPID" 2>/dev/null && return 0
    say "osse is gone; its stderr:"; tail -n 20 "${OERR:-/dev/null}" >&2
    die "the server died"
}

# api METHOD PATH [BODY] [MAX_SECONDS]: with the platform token $ADMIN
# against $URL (at most MAX_SECONDS, default 300); prints the answer body;
# dies on a non-2xx.
api() {
    local code data=()
    [ -n "${3:-}" ] && data=(-H 'Content-Type: application/json' --data-binary "$3")
    code=$(curl -sS -m "${4:-300}" -o "$TMP/curl.body" -w '%{http_code}' -X "$1" "$URL$2" \
        -H "Authorization: Bearer $ADMIN" "${data[@]}") ||
        { server_alive; die "$1 $2: curl failed (timeout ${4:-300}s?)"; }
    [ "${code:0:1}" = 2 ] || die "$1 $2 -> $code: $(cat "$TMP/curl.body")"
    cat "$TMP/curl.body"
}

# rss_kb [PID] / hwm_kb [PID]: VmRSS / VmHWM in kB of PID (default $OPID).
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/${1:-$OPID}/status"; }
hwm_kb() { awk '/^VmHWM:/{print $2}' "/proc/${1:-$OPID}/status"; }

json_get() { # key: reads JSON on stdin, prints its top-level key
    python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# bench_form: the 8-field form of bench-permit (JSON). BENCH_PII=0: the same
# form with no field marked pii (nothing sealed: the cost of sealing,
# measured beside the default in one sitting).
bench_form() {
    local pii=true
    [ "${BENCH_PII:-1}" = 0 ] && pii=false
    printf '%s' '{
    "applicant_id":   {"type": "citizen_id", "required": true, "pii": '$pii'},
    "applicant_name": {"type": "string", "required": true, "pii": '$pii', "max_length": 200},
    "business_name":  {"type": "string", "required": true, "max_length": 200},
    "area_sqm":       {"type": "number", "required": true, "min": 1},
    "seats":          {"type": "integer", "min": 0},
    "district":       {"type": "enum", "values": ["bang-rak", "pathum-wan", "khlong-toei"]},
    "opening_date":   {"type": "date"},
    "notes":          {"type": "string", "max_length": 1000}
  }'
}

# osse_setup DIR PORT: on a running osse serve over DIR, publishes what
# run.sh publishes (calendar th-gov, agencies a b c, workflow bench-permit, a
# portal principal), sends one submission by hand (to fail early with a clear
# message), and sets URL, ADMIN and PORTAL.
osse_setup() {
    local dir=$1 i one
    URL=http://127.0.0.1:$2
    for i in $(seq 1 100); do [ -s "$dir/admin.token" ] && break; sleep 0.05; done
    ADMIN=$(tr -d ' \r\n' <"$dir/admin.token")
    api PUT /v1/calendars/th-gov '{"utc_offset":"+07:00","workdays":["mon","tue","wed","thu","fri"],"hours":["08:30","16:30"],"holidays":["2026-12-07","2026-12-10","2026-12-31"]}' >/dev/null
    for i in a b c; do
        api PUT "/v1/agencies/$i" "{\"name\":\"Bench agency $i\"}" >/dev/null
    done
    api POST /v1/workflows '{
  "id": "bench-permit",
  "title": "Bench permit: three agencies in parallel, then a licence",
  "calendar": "th-gov",
  "form": '"$(bench_form)"',
  "steps": {
    "review_a": {"kind": "task", "agency": "a", "sla": "5 working days"},
    "review_b": {"kind": "task", "agency": "b", "sla": "10 working days", "on_breach": "approve"},
    "review_c": {"kind": "task", "agency": "c", "sla": "15 working days"},
    "licence":  {"kind": "issue", "after": ["review_a", "review_b", "review_c"],
                 "number": "BEN-{yyyy}-{seq:6}", "valid_for": "P1Y",
                 "public_fields": ["business_name", "district"]}
  }
}' >/dev/null
    PORTAL=$(api POST /v1/principals '{"role":"portal","name":"bench"}' | json_get token)
    one=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
        -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
        --data-binary "${BODY//\{n\}/0}")
    [ "$one" = 201 ] || die "first submission -> $one: $(cat "$TMP/curl.body")"
}

# ---- issue 13: restart and memory at scale (restart.sh, memory.sh) ----

# pids_forget PID: PID is gone (waited for); the cleanup no longer kills it.
pids_forget() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# cpu_s PID: user + system CPU seconds of PID so far (/proc/PID/stat).
cpu_s() {
    local st tck
    st=$(cat "/proc/$1/stat") || return 1
    tck=$(getconf CLK_TCK)
    # Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    printf '%s\n' "${st##*) }" | awk -v t="$tck" '{ printf "%.2f\n", ($12 + $13) / t }'
}

# log_size: the number of events in the log: `osse_log_seq` of GET /metrics
# (the last event's seq, at once); without that gauge, the signed tree head
# (GET /v1/log/checkpoint `size`, SPEC §6), read until it stops growing (a
# head is signed at most once a second, so it trails the last writes).
log_size() {
    local m a b i
    # (awk reads to the end: an early exit would fail curl's write, and the pipe.)
    m=$(curl -sS -m 60 "$URL/metrics" | awk '$1 == "osse_log_seq" && !f { print $2; f = 1 }') ||
        { server_alive; die "GET /metrics failed"; }
    if [ -n "$m" ]; then
        printf '%s\n' "$m"
        return
    fi
    a=$(head_size)
    for i in $(seq 1 30); do
        sleep 1.2
        b=$(head_size)
        [ "$a" = "$b" ] && break
        a=$b
    done
    printf '%s\n' "$a"
}
head_size() {
    curl -sS -m 60 "$URL/v1/log/checkpoint" | json_get size ||
        { server_alive; die "GET /v1/log/checkpoint failed"; }
}

# submit_one BODY: one POST /v1/requests with $PORTAL; dies on anything but
# 201; the answer stays in $TMP/curl.body and its id is printed.
submit_one() {
    local code
    code=$(curl -sS -m 60 -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
        -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
        --data-binary "${1//\{n\}/0}") || { server_alive; die "POST /v1/requests: curl failed"; }
    [ "$code" = 201 ] || die "POST /v1/requests -> $code: $(cat "$TMP/curl.body")"
    json_get id <"$TMP/curl.body"
}

# fill_requests PORT N BODY LABEL: N submissions of BODY through the real
# HTTP write path (`load --requests N` over $BENCH_CONNS connections, at most
# $BENCH_TIMEOUT seconds); dies unless all N got a 2xx; sets FILL_LINE. load
# runs in the background and is waited for, so that a SIGTERM or SIGINT to
# the script ends it at once (the cleanup kills it with the servers).
fill_requests() {
    bg_run "$TMP/fill.out" "$BUILD/load" --host 127.0.0.1 --port "$1" --conns "${BENCH_CONNS:-64}" \
        --threads "${BENCH_THREADS:-1}" --requests "$2" --seconds "${BENCH_TIMEOUT:-3600}" \
        --method POST --path /v1/requests --token "$PORTAL" --body "$3" --label "$4" ||
        { server_alive; die "load failed"; }
    FILL_LINE=$(cat "$TMP/fill.out")
    say "$FILL_LINE"
    server_alive
    [ "$(field "$FILL_LINE" ok)" = "$2" ] ||
        die "the fill got $(field "$FILL_LINE" ok) 2xx of $2 (errors=$(field "$FILL_LINE" errors) non2xx=$(field "$FILL_LINE" non2xx))"
}

# bg_run OUT CMD...: runs CMD in the background, its stdout in OUT (stderr
# as the script's), its pid in PIDS while it runs, and waits for it; returns
# its exit status. A bash waiting on `wait` runs its traps at once, while it
# would wait for a foreground command to end first.
bg_run() {
    local out=$1 pid rc=0
    shift
    "$@" >"$out" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    pids_forget "$pid"
    return "$rc"
}

# kill9 PID: SIGKILL (a crash: nothing is flushed or closed), then reaps it.
kill9() {
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    pids_forget "$1"
}

# osse_start_timed NAME DIR PORT RID: execs `osse serve --data DIR --listen
# 127.0.0.1:PORT` (output in $TMP/NAME.out and .err) and, from the exec,
# polls (every $BENCH_POLL_S, default 0.02 s, at most $BENCH_TIMEOUT s) for
# its "listening on" line and for the first 2xx of GET /v1/requests/RID with
# $ADMIN. Sets OPID, OERR, URL, LISTEN_S and ANSWER_S (seconds from the exec)
# and CPU_S (the server's CPU seconds at the first answer). LISTEN_S is taken
# from the `ts=` of the server's `msg=listening` log line when there is one
# (it is logged just before the "listening on" line; both real time), else
# from the poll that first saw the line; a server that answered before the
# poll saw the line gets LISTEN_S = ANSWER_S (an upper bound).
# Not to be run in a subshell, so that PIDS reaches the cleanup.
osse_start_timed() {
    local name=$1 dir=$2 port=$3 rid=$4 t0 t code limit=${BENCH_TIMEOUT:-3600}
    local poll=${BENCH_POLL_S:-0.02}
    URL=http://127.0.0.1:$port
    t0=$EPOCHREALTIME
    "${LINEBUF[@]}" "$BUILD/osse" serve --data "$dir" --listen "127.0.0.1:$port" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    OPID=$!
    PIDS+=("$OPID")
    OERR=$TMP/$name.err
    LISTEN_S="" ANSWER_S=""
    while :; do
        t=$EPOCHREALTIME
        if [ -z "$LISTEN_S" ] && grep -q 'listening on' "$TMP/$name.out" "$TMP/$name.err" 2>/dev/null; then
            LISTEN_S=$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.3f", b - a }')
        fi
        code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN" \
            "$URL/v1/requests/$rid") || true
        if [ "${code:0:1}" = 2 ]; then
            t=$EPOCHREALTIME
            CPU_S=$(cpu_s "$OPID")
            ANSWER_S=$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.3f", b - a }')
            break
        fi
        server_alive
        awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$limit" 'BEGIN { exit !(b - a > l) }' &&
            die "$name: no 2xx from GET /v1/requests/$rid within ${limit}s (last status $code)"
        sleep "$poll"
    done
    # The server's own time of its `msg=listening` log line (written just
    # before "listening on", real time in ms) is sharper than the poll; the
    # poll's time is kept when there is no such line.
    local ts e
    ts=$(grep -o '^ts=[^ ]* level=info msg=listening' "$OERR" | head -n1 | sed 's/^ts=//; s/ .*//')
    if [ -n "$ts" ] && e=$(date -d "$ts" +%s.%N 2>/dev/null); then
        e=$(awk -v a="$t0" -v b="$e" -v m="$ANSWER_S" \
            'BEGIN { d = b - a; if (d >= 0 && d <= m + 0.001) printf "%.3f", d }')
        [ -n "$e" ] && LISTEN_S=$e
    fi
    [ -n "$LISTEN_S" ] || LISTEN_S=$ANSWER_S
    say "== $name: osse (pid $OPID) listening after ${LISTEN_S}s, first answer after ${ANSWER_S}s, cpu ${CPU_S}s"
}

CLOSED_BODY=${BODY/\"bench-permit\"/\"bench-closed\"}

# closed_setup (after osse_setup): publishes bench-closed, the same form
# with one task step approved by its auto_approve rule at submission and a
# licence issued after it, so that each submission ends its request at once
# (memory.sh, restart.sh); sends one submission of it by hand; dies unless
# the answer's status is completed; sets RID.
closed_setup() {
    local status
    api POST /v1/workflows '{
  "id": "bench-closed",
  "title": "Bench closed: approved at submission, then a licence",
  "calendar": "th-gov",
  "form": '"$(bench_form)"',
  "steps": {
    "review": {"kind": "task", "agency": "a", "sla": "5 working days",
               "auto_approve": "form.area_sqm <= 50"},
    "licence": {"kind": "issue", "after": ["review"], "number": "BCL-{yyyy}-{seq:7}",
                "valid_for": "P1Y", "public_fields": ["business_name", "district"]}
  }
}' >/dev/null
    RID=$(submit_one "$CLOSED_BODY")
    status=$(json_get status <"$TMP/curl.body" 2>/dev/null) || status=""
    [ "$status" = completed ] ||
        die "a bench-closed submission did not complete at once: $(cat "$TMP/curl.body")"
}
