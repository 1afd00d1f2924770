#!/usr/bin/env bash
# files.sh: memory and start with N uploaded files held by ended requests
# (issue 13, docs/design.md "Files on disk").
#
#   1. osse serve on a fresh data folder, the bench-permit setup of run.sh
#      (osse_setup in lib.sh) and a workflow bench-files: a name, an area
#      and a `file` field; one task step that approves itself at submission
#      (`auto_approve: form.area <= 50`), so that each submission ends its
#      request `completed` at once;
#   2. N times, over BENCH_FILES_CLIENTS keep-alive connections (python3's
#      http.client): POST /v1/files (a small PDF), then POST /v1/requests
#      naming it; each answer checked (201, then `completed`); VmRSS after
#      BENCH_SETTLE_S (rss_loaded_kb; rss_base_kb before the N);
#   3. kill -9, osse serve again on the same folder, timed to `listening`
#      and to the first 2xx of GET /v1/requests/{the last one} (lib.sh's
#      osse_start_timed), VmRSS after BENCH_SETTLE_S (rss_restarted_kb), the
#      start's `files read` count, and GET /v1/files/{the first file}, whose
#      bytes must come back;
# and prints one line:
#   files n=N rss_base_kb rss_loaded_kb rss_restarted_kb
#     bytes_per_file_loaded bytes_per_file_restarted files_kept listen_s
#     answer_s fill_s
# (bytes_per_file_* = (rss_*_kb - rss_base_kb) * 1024 / N).
#
# Environment knobs: BUILD (default <repo>/build-bench; its osse is the one
# measured), BENCH_FILES (20000), BENCH_FILES_CLIENTS (8), BENCH_SETTLE_S
# (2), BENCH_TIMEOUT (3600), BENCH_NO_BUILD (set: reuse $BUILD/osse). Compare
# two builds by pointing BUILD at each in turn, in one sitting.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
N=${BENCH_FILES:-20000}
CLIENTS=${BENCH_FILES_CLIENTS:-8}
SETTLE=${BENCH_SETTLE_S:-2}

source "$ROOT/bench/lib.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_FILES: '$N' is not a positive number"
bench_need curl python3
bench_build osse
bench_tmp
say "== machine: $(machine); load average $(cut -d' ' -f1-3 /proc/loadavg)"

fill_server fill "$TMP/data"
osse_setup "$TMP/data" "$OPORT"
api POST /v1/workflows '{
  "id": "bench-files",
  "title": "Bench files: one document, approved at submission",
  "calendar": "th-gov",
  "form": {
    "name": {"type": "string", "required": true},
    "area": {"type": "number", "required": true},
    "doc":  {"type": "file", "required": true, "content_types": ["application/pdf"]}
  },
  "steps": {"review": {"kind": "task", "agency": "a", "auto_approve": "form.area <= 50"}}
}' >/dev/null
sleep "$SETTLE"
RSS_BASE=$(rss_kb)

t0=$EPOCHREALTIME
python3 - "$OPORT" "$PORTAL" "$N" "$CLIENTS" >"$TMP/fill.out" <<'EOF'
import http.client, json, sys, threading
port, token, n, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lock = threading.Lock()
state = {"next": 0, "first": None, "last": None, "err": None}

def worker():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    auth = {"Authorization": "Bearer " + token}
    while True:
        with lock:
            i = state["next"]
            if i >= n or state["err"]:
                return
            state["next"] = i + 1
        c.request("POST", "/v1/files", body=b"%%PDF-1.4 bench file %d" % i,
                  headers=dict(auth, **{"Content-Type": "application/pdf"}))
        r = c.getresponse()
        up = json.loads(r.read())
        if r.status != 201:
            state["err"] = "upload %d -> %d %r" % (i, r.status, up)
            return
        body = json.dumps({"workflow": "bench-files",
                           "form": {"name": "Bench %d" % i, "area": 42.5, "doc": up["id"]}})
        c.request("POST", "/v1/requests", body=body,
                  headers=dict(auth, **{"Content-Type": "application/json"}))
        r = c.getresponse()
        sub = json.loads(r.read())
        if r.status != 201 or sub.get("status") != "completed":
            state["err"] = "submission %d -> %d %r" % (i, r.status, sub)
            return
        with lock:
            if i == 0:
                state["first"] = up["id"]
            state["last"] = sub["id"]

ts = [threading.Thread(target=worker) for _ in range(clients)]
for t in ts:
    t.start()
for t in ts:
    t.join()
if state["err"]:
    sys.exit(state["err"])
print(state["first"], state["last"])
EOF
FILL_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
read -r FIRST_FILE RID <"$TMP/fill.out"
sleep "$SETTLE"
RSS_LOADED=$(rss_kb)

kill9 "$OPID"
osse_start_timed restart "$TMP/data" "$OPORT" "$RID"
sleep "$SETTLE"
RSS_RESTARTED=$(rss_kb)
KEPT=$(sed -n 's/.*msg="files read" files=\([0-9]*\).*/\1/p' "$OERR" | tail -n1)
# The start's own account of where its time went (stderr).
grep -E 'msg="(log opened|records read|files (read|indexed)|keys read|listening)"' "$OERR" >&2 || true
# An old file reads back from disk (GET with the portal that uploaded it).
code=$(curl -sS -m 60 -o "$TMP/file.body" -w '%{http_code}' "$URL/v1/files/$FIRST_FILE" \
    -H "Authorization: Bearer $PORTAL")
[ "$code" = 200 ] && grep -q '^%PDF-1.4 bench file 0$' "$TMP/file.body" ||
    die "GET /v1/files/$FIRST_FILE after the restart -> $code: $(head -c 300 "$TMP/file.body")"

per() { awk -v a="$1" -v b="$RSS_BASE" -v n="$N" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'; }
echo "files n=$N rss_base_kb=$RSS_BASE rss_loaded_kb=$RSS_LOADED rss_restarted_kb=$RSS_RESTARTED" \
    "bytes_per_file_loaded=$(per "$RSS_LOADED") bytes_per_file_restarted=$(per "$RSS_RESTARTED")" \
    "files_kept=${KEPT:-unknown} listen_s=$LISTEN_S answer_s=$ANSWER_S fill_s=$FILL_S"
