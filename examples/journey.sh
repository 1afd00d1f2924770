#!/usr/bin/env bash
# journey.sh: one request of a service from the public manual, walked from
# the e-form to a verified licence, with this script playing every party:
# the public, the platform team, a portal, the agencies, DOPA's identity
# registry and a payment gateway. Each prints what it sees.
#
# Run it against the server of the README's run command (another terminal):
#
#     bash examples/journey.sh
#
# Environment: OSSE_URL (default http://127.0.0.1:8080), OSSE_TOKEN_FILE
# (the platform token, default ./data/admin.token), DOPA_PORT (where the fake
# registry listens, default 8081 as examples/workflows/_setup.yaml says; when
# dopa's lookup_url names another place the platform points it here).
#
# Needs bash, curl, coreutils, openssl (to verify the licence's signature
# offline) and python3 for one thing only: the fake DOPA registry, which
# needs a listening socket; it runs in the background and is stopped at exit.
# Only documented routes and shapes of docs/SPEC.md are used. Any answer
# with an unexpected status stops the journey with a message.
#
# The service is commercial-registration (a linkage to DOPA, the registrar's
# task, a 50-baht fee with a Thai QR, a certificate in the public registry).
# food-premises-licence would add parallel tasks and an automatic approval,
# but its form needs a floor plan uploaded with POST /v1/files, which this
# build does not have yet.
set -euo pipefail

OSSE_URL=${OSSE_URL:-http://127.0.0.1:8080}
OSSE_TOKEN_FILE=${OSSE_TOKEN_FILE:-./data/admin.token}
DOPA_PORT=${DOPA_PORT:-8081}
WORKFLOW=commercial-registration

die() { echo "journey.sh: $*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }
part() { printf '\n== %s\n' "$*"; }

for tool in curl openssl python3 base64; do
  command -v "$tool" >/dev/null || die "$tool is needed (bash tests/deps.sh installs it)"
done
[ -r "$OSSE_TOKEN_FILE" ] || die "no platform token at $OSSE_TOKEN_FILE (start osse as the README's run command does, or set OSSE_TOKEN_FILE)"
ADMIN=$(cat "$OSSE_TOKEN_FILE")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/osse-journey.XXXXXX")
DOPA_PID=
cleanup() {
  if [ -n "$DOPA_PID" ]; then kill "$DOPA_PID" 2>/dev/null || true; wait "$DOPA_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# --- HTTP and JSON, with curl and the shell only ---------------------------

# call WANT METHOD PATH [TOKEN [BODY]]: the answer's body goes to stdout; a
# status other than WANT stops the journey and shows the answer.
call() {
  local want=$1 method=$2 path=$3 token=${4:-} body=${5:-} status
  local args=(-sS -o "$TMP/body" -w '%{http_code}' -X "$method")
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
  status=$(curl "${args[@]}" "$OSSE_URL$path") ||
    die "$method $path: cannot reach osse at $OSSE_URL (is it running? see the README's run command)"
  [ "$status" = "$want" ] ||
    die "$method $path answered $status, expected $want: $(head -c 600 "$TMP/body")"
  cat "$TMP/body"
}

# get JSON KEY: the first value of KEY in a compact JSON text (osse's
# answers): a string without its quotes, or a number, true, false or null.
# Good for the flat values this script reads; nested objects use obj.
get() {
  local v
  v=$(grep -oE "\"$2\":(\"([^\"\\\\]|\\\\.)*\"|[^,}\"]*)" <<<"$1" | head -n 1) || true
  v=${v#\"$2\":}
  v=${v#\"}
  v=${v%\"}
  printf '%s' "$v"
}

# obj JSON KEY: the first object value of KEY, when it holds no other object.
obj() { grep -oE "\"$2\":\{[^{}]*\}" <<<"$1" | head -n 1 | sed "s/^\"$2\"://" || true; }

# each JSON LIST_KEY FIRST_KEY: the objects of the first list LIST_KEY, one
# a line (objects whose first key is FIRST_KEY, holding strings, scalars and
# one level of objects or arrays).
STR='"([^"\\]|\\.)*"'
each() {
  local o="\{\"$3\":($STR|[^][{}\"]|\{[^{}]*\}|\[[^][]*\])*\}" l
  l=$(grep -oE "\"$2\":\[($o(,$o)*)?\]" <<<"$1" | head -n 1) || true
  grep -oE "$o" <<<"${l#*:}" || true
}

# --- 1. The public ---------------------------------------------------------

part "1. The public reads the service manual (no token)"
SERVICES=$(call 200 GET /v1/public/services)
say "GET /v1/public/services:"
while read -r s; do
  say "  $(get "$s" id): $(get "$s" title) (longest path: $(get "$s" max_working_days) working day(s))"
done < <(each "$SERVICES" services id)
MANUAL=$(call 200 GET "/v1/public/services/$WORKFLOW")
say "GET /v1/public/services/$WORKFLOW:"
say "  $(get "$MANUAL" title), version $(get "$MANUAL" version)"
say "  legal basis: $(get "$MANUAL" legal_basis)"
say "  the form asks for: $(each "$MANUAL" fields name | while read -r f; do
  printf '%s%s ' "$(get "$f" name)" "$([ "$(get "$f" required)" = true ] && echo '*')"; done)(* required)"
n=0
while read -r st; do
  n=$((n + 1))
  sla=$(get "$st" sla)
  [ "$sla" = null ] && sla=
  say "  step $n: $(get "$st" title) [$(get "$st" kind)] by $(get "$st" agency)${sla:+, within $sla}"
done < <(each "$MANUAL" steps name)
FEE=$(obj "$MANUAL" fee)
say "  fee: $(get "$FEE" expression) baht; longest path: $(get "$MANUAL" max_working_days) working day(s)"

# --- 2. The platform -------------------------------------------------------

part "2. The platform team sets up the parties (platform token)"
principal() { # principal ROLE NAME [AGENCY]: its token in TOKEN
  local body="{\"role\":\"$1\",\"name\":\"$2\"}" a
  [ -n "${3:-}" ] && body="{\"role\":\"$1\",\"agency\":\"$3\",\"name\":\"$2\"}"
  a=$(call 201 POST /v1/principals "$ADMIN" "$body")
  TOKEN=$(get "$a" token)
  say "platform: POST /v1/principals $1${3:+ for $3} -> $(get "$a" id) (its token is shown once)"
}
principal portal "Biz Portal"
PORTAL=$TOKEN
principal payment "KTB payment gateway"
GATEWAY=$TOKEN

# An agency PUT replaces the agency: keep its name and URLs, change one key.
# put_agency ID KEY VALUE
put_agency() {
  local a name hook look bill
  a=$(call 200 GET "/v1/agencies/$1" "$ADMIN")
  name=$(get "$a" name) hook=$(get "$a" webhook_url) look=$(get "$a" lookup_url) bill=$(get "$a" biller_id)
  case $2 in lookup_url) look=$3 ;; biller_id) bill=$3 ;; esac
  local body="{\"name\":\"$name\""
  [ "$hook" != null ] && body+=",\"webhook_url\":\"$hook\""
  [ "$look" != null ] && body+=",\"lookup_url\":\"$look\""
  [ "$bill" != null ] && body+=",\"biller_id\":\"$bill\""
  call 200 PUT "/v1/agencies/$1" "$ADMIN" "$body}" >/dev/null
  say "platform: PUT /v1/agencies/$1 (name and URLs kept): $2 = $3"
}

# The fee's collector needs a PromptPay biller id for the QR code; the
# shipped _setup.yaml gives district-office one, an older data folder may not.
COLLECTOR=district-office
A=$(call 200 GET "/v1/agencies/$COLLECTOR" "$ADMIN")
if [ "$(get "$A" biller_id)" = null ]; then
  put_agency "$COLLECTOR" biller_id 099400016520001
else
  say "platform: $COLLECTOR collects fees as PromptPay biller $(get "$A" biller_id)"
fi
LOOKUP="http://127.0.0.1:$DOPA_PORT/dopa/lookup"
A=$(call 200 GET /v1/agencies/dopa "$ADMIN")
if [ "$(get "$A" lookup_url)" != "$LOOKUP" ]; then
  put_agency dopa lookup_url "$LOOKUP"
else
  say "platform: dopa answers lookups at $LOOKUP"
fi

# --- 3. DOPA's identity registry (fake) ------------------------------------

part "3. DOPA's civil registration answers identity lookups (a fake, port $DOPA_PORT)"
# Every citizen id it is asked about is of a living person; it notes each
# question in a file that the script shows once the linkage is done.
python3 - "$DOPA_PORT" "$TMP/dopa.log" 2>"$TMP/dopa.err" <<'EOF' &
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, log = int(sys.argv[1]), sys.argv[2]
class Registry(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        answer = json.dumps({"citizen_id": asked.get("citizen_id"), "alive": True}).encode()
        with open(log, "a") as f:
            f.write("  %s %s (request %s, step %s) -> %s\n" % (
                self.command, self.path, self.headers.get("Osse-Request"),
                self.headers.get("Osse-Step"), answer.decode()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
HTTPServer(("127.0.0.1", port), Registry).serve_forever()
EOF
DOPA_PID=$!
for _ in $(seq 50); do
  kill -0 "$DOPA_PID" 2>/dev/null ||
    die "the fake registry did not start on port $DOPA_PORT (set DOPA_PORT): $(tail -n 1 "$TMP/dopa.err")"
  curl -sf -o /dev/null -X POST -d '{}' "$LOOKUP" && break
  sleep 0.1
done
curl -sf -o /dev/null -X POST -d '{}' "$LOOKUP" || die "the fake registry does not answer at $LOOKUP"
rm -f "$TMP/dopa.log" # its own readiness probes
say "  listening at $LOOKUP"

# --- 4. Portal, agencies, public -------------------------------------------

part "4. The portal submits the e-form; the agencies decide (portal and agency tokens)"
FORM='{"owner_id":"1101700230708","owner_name":"Somchai Jaidee","trade_name":"Baan Somchai Noodles","business_type":"restaurant","capital_baht":50000,"district":"bang-rak","started_on":"2026-11-20"}'
REQ=$(call 201 POST /v1/requests "$PORTAL" "{\"workflow\":\"$WORKFLOW\",\"form\":$FORM}")
ID=$(get "$REQ" id)
CODE=$(get "$REQ" tracking_code)
say "portal: POST /v1/requests -> request $ID, tracking code $CODE, $(get "$REQ" status)"

declare -A AGENCY_TOKEN
# Until the request waits for its fee: each open task's agency reads its
# inbox and approves with the version it read there.
for _ in $(seq 100); do
  VIEW=$(call 200 GET "/v1/requests/$ID" "$PORTAL")
  STATUS=$(get "$VIEW" status)
  case $STATUS in
    awaiting_payment) break ;;
    in_progress) ;;
    *) die "the request is $STATUS: $(get "$VIEW" reason)" ;;
  esac
  decided=0
  while read -r st; do
    [ "$(get "$st" kind)" = task ] && [ "$(get "$st" state)" = open ] || continue
    step=$(get "$st" name) agency=$(get "$st" agency)
    if [ -z "${AGENCY_TOKEN[$agency]:-}" ]; then
      principal agency "$agency back office" "$agency"
      AGENCY_TOKEN[$agency]=$TOKEN
    fi
    tok=${AGENCY_TOKEN[$agency]}
    inbox=$(call 200 GET "/v1/agencies/$agency/tasks?state=open&limit=500" "$tok")
    task=$(grep -oE "\{\"request_id\":\"$ID\",\"step\":\"$step\"[^{}]*\}" <<<"$inbox") ||
      die "step $step is open but not in $agency's inbox"
    say "$agency: GET /v1/agencies/$agency/tasks -> $step of $ID, due $(get "$task" due_at), version $(get "$task" version)"
    after=$(call 200 POST "/v1/tasks/$ID/$step/decision" "$tok" \
      "{\"outcome\":\"approve\",\"reason\":\"documents in order\",\"expected_version\":$(get "$task" version)}")
    say "$agency: POST /v1/tasks/$ID/$step/decision approve -> $(get "$after" status)"
    decided=1
  done < <(each "$VIEW" steps name)
  [ "$decided" = 1 ] || sleep 0.1 # the linkage answers on the server's loop
done
[ "$STATUS" = awaiting_payment ] || die "the request is still $STATUS after its tasks"
if [ -s "$TMP/dopa.log" ]; then say "dopa (fake registry) was asked:"; cat "$TMP/dopa.log"; fi

TRACK=$(call 200 GET "/v1/track/$CODE")
say "public: GET /v1/track/$CODE -> $(get "$TRACK" status)"
while read -r st; do
  say "  $(get "$st" name) [$(get "$st" kind), $(get "$st" agency)]: $(get "$st" state)"
done < <(each "$TRACK" steps name)

# --- 5. The payment gateway ------------------------------------------------

part "5. The fee is paid (the portal shows the QR code; the gateway pays)"
VIEW=$(call 200 GET "/v1/requests/$ID" "$PORTAL")
FEE=$(obj "$VIEW" fee)
AMOUNT=$(get "$FEE" amount) REF=$(get "$FEE" reference) QR=$(get "$FEE" qr)
say "portal: fee $AMOUNT THB, reference $REF"
say "portal: QR payload $QR"
[ "$QR" != null ] || die "the fee has no QR code: its collecting agency has no biller_id"

# The gateway reads the QR as a bank app does: EMVCo tag-length-value, the
# bill payment (tag 30) holding the biller id and the reference, and the
# CRC-16/CCITT-FALSE of tag 63 over everything before its value.
tlv() { # tlv PAYLOAD TAG -> value
  local s=$1 i=0 len
  while [ "$i" -lt "${#s}" ]; do
    len=$((10#${s:i+2:2}))
    [ "${s:i:2}" = "$2" ] && { printf '%s' "${s:i+4:len}"; return; }
    i=$((i + 4 + len))
  done
}
crc16() {
  local s=$1 crc=0xFFFF i b
  for ((i = 0; i < ${#s}; i++)); do
    printf -v b '%d' "'${s:i:1}"
    crc=$((crc ^ (b << 8)))
    for _ in 1 2 3 4 5 6 7 8; do
      if ((crc & 0x8000)); then crc=$(((crc << 1 ^ 0x1021) & 0xFFFF)); else crc=$(((crc << 1) & 0xFFFF)); fi
    done
  done
  printf '%04X' "$crc"
}
BILL=$(tlv "$QR" 30)
[ "$(crc16 "${QR%????}")" = "$(tlv "$QR" 63)" ] || die "the QR payload's CRC is wrong"
[ "$(tlv "$BILL" 02)" = "$REF" ] || die "the QR code's reference is not the fee's"
say "gateway: QR read: biller $(tlv "$BILL" 01), reference $(tlv "$BILL" 02), $(tlv "$QR" 54) THB, CRC $(tlv "$QR" 63) OK"
PAID=$(call 200 POST "/v1/requests/$ID/payments" "$GATEWAY" \
  "{\"step\":\"fee\",\"amount\":\"$(tlv "$QR" 54)\",\"reference\":\"$REF\",\"transaction\":\"KTB-$ID\"}")
say "gateway: POST /v1/requests/$ID/payments -> $(get "$PAID" status), paid: $(get "$(obj "$PAID" fee)" paid)"

# --- 6. The licence --------------------------------------------------------

part "6. The licence is issued; the public checks it (no token)"
TRACK=$(call 200 GET "/v1/track/$CODE")
[ "$(get "$TRACK" status)" = completed ] || die "the request is $(get "$TRACK" status), not completed"
NUMBER=$(get "$(obj "$TRACK" licence)" number)
say "public: GET /v1/track/$CODE -> completed, licence $NUMBER"
LIC=$(call 200 GET "/v1/public/licences/$NUMBER")
say "public: GET /v1/public/licences/$NUMBER -> $(get "$LIC" status), valid $(get "$LIC" valid_from) to $(get "$LIC" valid_until)"
say "  fields: $(obj "$LIC" fields)"

# Offline check: the JWS's signature over "header.payload" with the log's
# Ed25519 key, wrapped as a DER SubjectPublicKeyInfo for openssl.
b64url() { local s; s=$(tr '_-' '/+'); while [ $((${#s} % 4)) -ne 0 ]; do s+="="; done; base64 -d <<<"$s"; }
KEY=$(call 200 GET /v1/log/public-key)
JWS=$(get "$LIC" jws)
IFS=. read -r JH JP JS <<<"$JWS"
printf '%s.%s' "$JH" "$JP" >"$TMP/signed"
b64url <<<"$JS" >"$TMP/sig"
{ printf '\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00'; base64 -d <<<"$(get "$KEY" public_key)"; } >"$TMP/key.der"
say "  JWS header: $(b64url <<<"$JH"); the log's key_id: $(get "$KEY" key_id)"
say "  document: $(b64url <<<"$JP")"
openssl pkeyutl -verify -pubin -inkey "$TMP/key.der" -keyform DER -rawin \
  -in "$TMP/signed" -sigfile "$TMP/sig" >"$TMP/openssl.out" 2>&1 ||
  die "the licence's signature does not verify: $(cat "$TMP/openssl.out")"
say "signature OK (openssl, Ed25519, key of GET /v1/log/public-key)"
# And a document changed by one character is refused.
printf '%s.%sA' "$JH" "$JP" >"$TMP/forged"
if openssl pkeyutl -verify -pubin -inkey "$TMP/key.der" -keyform DER -rawin \
  -in "$TMP/forged" -sigfile "$TMP/sig" >/dev/null 2>&1; then
  die "a changed document verified"
fi
say "  (a document changed by one character: signature refused)"

CSV=$(call 200 GET "/v1/public/licences.csv?workflow=$WORKFLOW")
say "public: GET /v1/public/licences.csv?workflow=$WORKFLOW:"
say "  $(head -n 1 <<<"$CSV" | tr -d '\r')"
grep -F "$NUMBER," <<<"$CSV" | tr -d '\r' | sed 's/^/  /' || die "licence $NUMBER is not in the CSV"
say
say "journey done: request $ID, tracking code $CODE, licence $NUMBER"
