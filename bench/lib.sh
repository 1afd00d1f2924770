# lib.sh: helpers shared by the bench scripts (sourced, not run): run.sh,
# sla.sh and audit.sh. A script may redefine a helper after sourcing (sla.sh
# has its own api with a timeout and a liveness check).
#
# The caller sets ROOT and BUILD, and sources this file before anything else;
# it gets: a cleanup at exit that kills every server in PIDS (by pid) and
# removes $TMP; say/die; bench_build TARGETS...; bench_tmp (makes $TMP under
# $BUILD, so that data sits on the repository's disk); start_server and
# stop_server; field; now_s; the submission BODY and the bench-permit setup
# (osse_setup), as run.sh does them.

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
    [ -n "$TMP" ] && rm -rf "$TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
die() { say "$(basename "$0"): $*"; exit 1; }
now_s() { date +%s.%N; }

field() { # line key -> value of key=value
    printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

bench_build() { # targets... (skipped when BENCH_NO_BUILD is set)
    [ -n "${BENCH_NO_BUILD:-}" ] && return 0
    say "== building release into $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DOSSE_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD" -j2 --target "$@" >/dev/null
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
    SRV_PID=$pid SRV_PORT=$port
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
    # BENCH_PII=0: the same form with no field marked pii (nothing sealed:
    # the cost of sealing, measured beside the default in one sitting).
    local pii=true
    [ "${BENCH_PII:-1}" = 0 ] && pii=false
    api POST /v1/workflows '{
  "id": "bench-permit",
  "title": "Bench permit: three agencies in parallel, then a licence",
  "calendar": "th-gov",
  "form": {
    "applicant_id":   {"type": "citizen_id", "required": true, "pii": '$pii'},
    "applicant_name": {"type": "string", "required": true, "pii": '$pii', "max_length": 200},
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
    PORTAL=$(api POST /v1/principals '{"role":"portal","name":"bench"}' | json_get token)
    one=$(curl -sS -o "$TMP/curl.body" -w '%{http_code}' -X POST "$URL/v1/requests" \
        -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' \
        --data-binary "${BODY//\{n\}/0}")
    [ "$one" = 201 ] || die "first submission -> $one: $(cat "$TMP/curl.body")"
}
