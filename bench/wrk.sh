#!/usr/bin/env bash
# wrk.sh: osse measured with a load generator that is not ours (issue 13):
# Debian's wrk (installed with apt-get when missing; that needs root). On
# this machine, in one sitting:
#   1. osse serve on a fresh data folder and the bench-permit setup of run.sh
#      (osse_setup in lib.sh);
#   2. wrk -t1 -c64 -d${BENCH_SECONDS}s --latency on GET /healthz;
#   3. the same on POST /v1/requests: a Lua script (written to $TMP) sends
#      run.sh's submission body, {n} replaced by a counter per request, with
#      the portal token and Content-Type: application/json;
# both runs through the same Lua script, whose `response` callback counts
# the answers that are not 2xx (and keeps the first one) and whose `done`
# prints them. Prints one line per run:
#   wrk path=P conns=C threads=T seconds=S requests=N rps p50_ms p99_ms
#     non2xx errors osse_cpu_us_per_request
# (rps, p50_ms and p99_ms from wrk's own report; non2xx from the Lua count;
# errors wrk's socket errors, timeouts included; the server's user+system
# CPU time over the run from /proc/PID/stat, divided by wrk's requests),
# then `wrk_ratio submissions_vs_healthz=...` (the two rps). Exits 1 with
# the first non-2xx answer when a submission was not answered 2xx.
#
# Environment knobs: BUILD (default <repo>/build-bench), BENCH_SECONDS (10:
# seconds per wrk run), BENCH_WRK_CONNS (64), BENCH_WRK_THREADS (1),
# BENCH_NO_BUILD (set: reuse the binaries already in $BUILD).
# Temporary data lives in a mktemp -d directory under $BUILD (the
# repository's disk); it is removed at exit, and the server is killed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
SECS=${BENCH_SECONDS:-10}
WCONNS=${BENCH_WRK_CONNS:-64}
WTHREADS=${BENCH_WRK_THREADS:-1}

source "$ROOT/bench/lib.sh"

[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS: '$SECS' is not a whole number of seconds"
[[ $WCONNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_WRK_CONNS: '$WCONNS' is not a positive number"
[[ $WTHREADS =~ ^[1-9][0-9]*$ ]] || die "BENCH_WRK_THREADS: '$WTHREADS' is not a positive number"
bench_need curl python3

# ---- wrk, from Debian, when missing ----
if ! command -v wrk >/dev/null; then
    [ "$(id -u)" = 0 ] || die "wrk is not installed and this is not root: run 'apt-get install -y wrk' as root"
    say "== installing wrk (apt-get install -y wrk)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >"${TMPDIR:-/tmp}/wrk-install.$$.log" 2>&1; then
        say "== apt-get install failed; apt-get update, then again"
        DEBIAN_FRONTEND=noninteractive apt-get update >>"${TMPDIR:-/tmp}/wrk-install.$$.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >>"${TMPDIR:-/tmp}/wrk-install.$$.log" 2>&1 ||
            { tail -n 5 "${TMPDIR:-/tmp}/wrk-install.$$.log" >&2; rm -f "${TMPDIR:-/tmp}/wrk-install.$$.log"
              die "could not install wrk with apt-get (is the Debian package wrk reachable?)"; }
    fi
    rm -f "${TMPDIR:-/tmp}/wrk-install.$$.log"
    command -v wrk >/dev/null || die "apt-get installed wrk, but there is no wrk on PATH"
fi

bench_build osse
[ -x "$BUILD/osse" ] || die "no $BUILD/osse (build it, or unset BENCH_NO_BUILD)"
bench_tmp
say "== machine: $(machine); load average $(cut -d' ' -f1-3 /proc/loadavg); $(wrk --version 2>&1 | head -n1)"

# ---- the Lua script: a counter in the body, non-2xx answers counted ----
# Each thread numbers its requests from id * 1e9, so no two bodies are alike.
LUA=$TMP/wrk.lua
{
    cat <<'EOF'
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  mode = args[1] or "get"
  non2xx = 0
  first = ""
  n = id * 1000000000
end
EOF
    printf 'local template = [==[%s]==]\n' "$BODY"
    cat <<'EOF'
function request()
  if mode ~= "post" then
    if not plain then plain = wrk.format() end
    return plain
  end
  n = n + 1
  local body = string.gsub(template, "{n}", tostring(n))
  return wrk.format("POST", nil, nil, body)
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first == "" then
      first = tostring(status) .. " " .. string.sub(string.gsub(body or "", "[\r\n]", " "), 1, 500)
    end
  end
end
function done(summary, latency, requests)
  local total, f = 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("non2xx")
    if f == "" then f = t:get("first") end
  end
  io.write(string.format("lua_non2xx=%d\n", total))
  if f ~= "" then io.write("lua_first_non2xx=" .. f .. "\n") end
end
EOF
} >"$LUA"

# ---- the server ----
mkdir -p "$TMP/osse"
start_server osse "$BUILD/osse" serve --data "$TMP/osse" --listen 127.0.0.1:0
OPID=$SRV_PID OPORT=$SRV_PORT OERR=$TMP/osse.err
say "== osse serve on port $OPORT (pid $OPID), data $TMP/osse"
osse_setup "$TMP/osse" "$OPORT"

# to_ms VALUE: wrk's latency (123.45us, 1.23ms, 1.05s, 2.00m) in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        u = v; sub(/^[0-9.]+/, "", u); x = v + 0
        if (u == "us") x /= 1000; else if (u == "s") x *= 1000; else if (u == "m") x *= 60000
        printf "%.3f", x }'
}

# run_wrk PATH MODE [WRK OPTIONS...]: one wrk run (MODE get or post, for the
# Lua script); sets W_LINE, its result line; wrk's report stays in
# $TMP/wrk.MODE.out. Not in a subshell, so that wrk's pid reaches the cleanup.
run_wrk() {
    local path=$1 mode=$2 out c0 c1 reqs lat50 lat99 errs W_RPS W_NON2XX v
    shift 2
    c0=$(cpu_s "$OPID")
    bg_run "$TMP/wrk.$mode.out" wrk -t"$WTHREADS" -c"$WCONNS" -d"${SECS}s" --latency \
        -s "$LUA" "$@" "$URL$path" -- "$mode" 2>"$TMP/wrk.$mode.err" ||
        { cat "$TMP/wrk.$mode.out" "$TMP/wrk.$mode.err" >&2; server_alive; die "wrk failed on $path"; }
    c1=$(cpu_s "$OPID")
    server_alive
    out=$(cat "$TMP/wrk.$mode.out" "$TMP/wrk.$mode.err")
    W_RPS=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$out")
    reqs=$(awk '/ requests in / { print $1; exit }' <<<"$out")
    lat50=$(awk '$1 == "50%" { print $2; exit }' <<<"$out")
    lat99=$(awk '$1 == "99%" { print $2; exit }' <<<"$out")
    W_NON2XX=$(sed -n 's/^lua_non2xx=//p' <<<"$out")
    errs=$(awk '/Socket errors:/ {
        s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' <<<"$out")
    for v in "$W_RPS" "$reqs" "$lat50" "$lat99" "$W_NON2XX"; do
        [ -n "$v" ] || { say "$out"; die "could not read wrk's report on $path (above)"; }
    done
    W_LINE=$(awk -v p="$path" -v c="$WCONNS" -v t="$WTHREADS" -v s="$SECS" -v n="$reqs" -v r="$W_RPS" \
        -v a="$(to_ms "$lat50")" -v b="$(to_ms "$lat99")" -v x="$W_NON2XX" -v e="${errs:-0}" \
        -v c0="$c0" -v c1="$c1" 'BEGIN {
        printf "wrk path=%s conns=%s threads=%s seconds=%s requests=%s rps=%s p50_ms=%s p99_ms=%s", p, c, t, s, n, r, a, b
        printf " non2xx=%s errors=%s osse_cpu_us_per_request=%.1f\n", x, e, (n > 0 ? (c1 - c0) * 1e6 / n : 0) }')
}

RESULTS=()
run_wrk /healthz get
l=$W_LINE
say "$l"
RESULTS+=("$l")
H_RPS=$(field "$l" rps)
run_wrk /v1/requests post -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json'
l=$W_LINE
say "$l"
RESULTS+=("$l")
S_RPS=$(field "$l" rps)
S_NON2XX=$(field "$l" non2xx)
S_FIRST=$(sed -n 's/^lua_first_non2xx=//p' "$TMP/wrk.post.out")

# ---- summary ----
echo "== osse wrk bench, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, ${SECS}s per run"
for l in "${RESULTS[@]}"; do echo "$l"; done
awk -v s="$S_RPS" -v h="$H_RPS" 'BEGIN { printf "wrk_ratio submissions_vs_healthz=%.4f\n", (h > 0 ? s / h : 0) }'
[ "$S_NON2XX" = 0 ] || die "$S_NON2XX submissions were not answered 2xx; the first: $S_FIRST"
