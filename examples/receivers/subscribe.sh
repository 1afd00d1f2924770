#!/usr/bin/env bash
# subscribe.sh: registers (or updates) a portal's subscription with curl
# (PUT /v1/subscriptions/{id}, SPEC §7) and prints its secret, the one
# receiver.sh, receiver.py and receiver.js check signatures with:
#
#     export OSSE_URL=https://osse.example.go.th OSSE_TOKEN=<a portal token>
#     export OSSE_WEBHOOK_SECRET=$(bash subscribe.sh my-sub https://portal.example.go.th/hooks \
#         RequestCompleted RequestRejected)
#
# Arguments: the subscription's id, the receiver's URL, then one or more
# request event types (SPEC §5). Environment: OSSE_URL (default
# http://127.0.0.1:8080), OSSE_TOKEN (a portal's or the platform's token).
# Prints only the secret on stdout; on an error answer, osse's error body on
# stderr and exit 1. The same PUT again keeps the secret. Needs curl and sed.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: subscribe.sh ID URL EVENT..." >&2
  exit 2
fi
: "${OSSE_TOKEN:?set OSSE_TOKEN to a portal token}"
OSSE_URL=${OSSE_URL:-http://127.0.0.1:8080}
id=$1 url=$2
shift 2
case "$url" in
  *'"'* | *\\*) echo "subscribe.sh: the URL may not hold \" or \\" >&2; exit 2 ;;
esac
events=""
for ev in "$@"; do
  [[ $ev =~ ^[A-Za-z]+$ ]] || { echo "subscribe.sh: $ev is not an event type" >&2; exit 2; }
  events+="${events:+,}\"$ev\""
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The token goes in a header read from stdin, not on curl's command line.
status=$(printf 'Authorization: Bearer %s\n' "$OSSE_TOKEN" |
  curl -sS -o "$out" -w '%{http_code}' -X PUT -H @- -H 'Content-Type: application/json' \
    --data-binary "{\"url\":\"$url\",\"events\":[$events]}" "$OSSE_URL/v1/subscriptions/$id")
case "$status" in
  200 | 201) ;;
  *) echo "subscribe.sh: PUT /v1/subscriptions/$id answered $status:" >&2
     cat "$out" >&2; echo >&2; exit 1 ;;
esac
sed -n 's/.*"secret":"\([A-Za-z0-9_-]*\)".*/\1/p' "$out"
