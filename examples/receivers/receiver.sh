#!/usr/bin/env bash
# receiver.sh: a webhook receiver for osse's deliveries (SPEC §7) in shell,
# for an agency (its webhook_url) or a portal (a subscription's url): socat
# listens and runs this script once per connection (`--handle`), which reads
# the request, checks its HMAC with openssl and records the event once.
#
# Run it (subscribe.sh registers a portal's subscription with curl and
# prints its secret):
#
#     export OSSE_WEBHOOK_SECRET=$(bash subscribe.sh my-sub http://127.0.0.1:8099/ RequestCompleted)
#     bash receiver.sh 8099 ./inbox
#
# or with an agency's `webhook_secret` from PUT /v1/agencies/{id}. osse wants
# https: URLs unless it runs with --allow-private-urls: put a TLS proxy in
# front in production. Environment: OSSE_WEBHOOK_SECRET (required), HOST
# (where to listen, default 127.0.0.1), TOLERANCE (seconds, default 300).
# Needs bash, socat, openssl, coreutils and flock (util-linux).
#
# What it guarantees (the same as receiver.py and receiver.js):
# - only deliveries signed with the secret are processed: `Osse-Signature:
#   t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (one v1= per
#   secret osse signs with; during a rotation two, and either may match); a
#   missing or bad signature, a body changed by one byte, or a t more than
#   TOLERANCE seconds from this machine's clock is 401 and processes
#   nothing. The two hex strings are compared through an HMAC of each under
#   a fresh random key, so the comparison's time says nothing about the
#   expected value;
# - each delivery is processed once: osse delivers at least once and signs
#   each attempt afresh, so a retry or a replayed capture is answered 200
#   and not processed again. The key is the body's "id" (its first member,
#   SPEC §7), which the signature covers; the Osse-Delivery header, which it
#   does not, must equal it (400 otherwise). Processed ids are kept in
#   DIR/seen, one a line, under a lock (flock): socat runs connections side
#   by side;
# - an event is acknowledged (2xx) only once it is recorded (a line of
#   DIR/events.jsonl, synced, and a line on stderr); if that fails the answer
#   is 500 and osse tries again later.
# The secret is handed to openssl as an argument (`-macopt hexkey:`), so it
# shows in the process list for the moment openssl runs: run this on a
# machine of its own, or prefer receiver.py or receiver.js.
set -euo pipefail

MAX_BODY=1048576

if [ "${1:-}" != "--handle" ]; then
  PORT=${1:-8099}
  DIR=${2:-./inbox}
  if [ -z "${OSSE_WEBHOOK_SECRET:-}" ]; then
    echo "receiver: set OSSE_WEBHOOK_SECRET to the webhook or subscription secret" >&2
    exit 2
  fi
  mkdir -p "$DIR"
  touch "$DIR/seen" "$DIR/events.jsonl"
  RECEIVER_DIR=$(cd "$DIR" && pwd)
  TOLERANCE=${TOLERANCE:-300}
  export RECEIVER_DIR TOLERANCE OSSE_WEBHOOK_SECRET
  self=$(readlink -f "$0")
  echo "receiver: listening on ${HOST:-127.0.0.1}:$PORT"
  # -T 30: a connection silent for 30 s is closed (a body that never comes).
  exec socat -T 30 TCP-LISTEN:"$PORT",bind="${HOST:-127.0.0.1}",reuseaddr,fork \
    EXEC:"bash $self --handle"
fi

# ---- one connection: stdin is the request, stdout the answer ------------

reply() {
  printf 'HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n' \
    "$1" $((${#2} + 1))
  printf 'Connection: close\r\n\r\n%s\n' "$2"
  exit 0
}

# HMAC-SHA256 of stdin under the key given in hex: lower-case hex.
hmac_hex() {
  openssl dgst -sha256 -mac HMAC -macopt hexkey:"$1" | sed 's/^.*= //'
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

IFS= read -r -t 10 -n 8192 line || exit 0
read -r method _ <<<"${line%$'\r'}"
len="" sig="" did="" n=0
while IFS= read -r -t 10 -n 8192 line; do
  line=${line%$'\r'}
  [ -z "$line" ] && break
  n=$((n + 1))
  [ "$n" -le 100 ] || reply "431 Request Header Fields Too Large" "too many headers"
  name=${line%%:*}
  value=${line#*:}
  value=${value#"${value%%[! $'\t']*}"}
  case "${name,,}" in
    content-length) len=$value ;;
    osse-signature) sig=$value ;;
    osse-delivery) did=$value ;;
  esac
done
[ "$method" = POST ] || reply "405 Method Not Allowed" "deliveries are POSTed"
[[ $len =~ ^[0-9]{1,8}$ ]] || reply "411 Length Required" "a Content-Length is required"
[ "$((10#$len))" -le "$MAX_BODY" ] || reply "413 Payload Too Large" "too large"
head -c "$((10#$len))" >"$tmp"
[ "$(stat -c %s "$tmp")" -eq "$((10#$len))" ] || reply "400 Bad Request" "the body was cut short"

# The signature: t=, then one or more v1=.
t="" v1s=()
IFS=, read -r -a parts <<<"$sig"
for p in "${parts[@]}"; do
  p=${p// /}
  case "$p" in
    t=*) t=${p#t=} ;;
    v1=*) v1s+=("${p#v1=}") ;;
  esac
done
if ! [[ $t =~ ^[0-9]{1,12}$ ]] || [ ${#v1s[@]} -eq 0 ]; then
  reply "401 Unauthorized" "bad signature: no t= or v1= in Osse-Signature"
fi
age=$(($(date +%s) - 10#$t))
if [ "${age#-}" -gt "$TOLERANCE" ]; then
  reply "401 Unauthorized" "bad signature: the signature's time is more than ${TOLERANCE}s away"
fi
key=$(printf '%s' "$OSSE_WEBHOOK_SECRET" | od -An -v -tx1 | tr -d ' \n')
want=$({ printf '%s.' "$t"; cat "$tmp"; } | hmac_hex "$key")
blind=$(openssl rand -hex 32)
want_b=$(printf '%s' "$want" | hmac_hex "$blind")
ok=0
for v in "${v1s[@]}"; do
  if [ "$(printf '%s' "$v" | hmac_hex "$blind")" = "$want_b" ]; then
    ok=1
  fi
done
[ "$ok" = 1 ] || reply "401 Unauthorized" "bad signature: no v1= matches"

# The delivery's id: the body's first member, which the signature covers.
body=$(cat "$tmp")
re='^\{"id":"([A-Za-z0-9._:-]{1,128})"'
if ! [[ $body =~ $re ]] || [ "${BASH_REMATCH[1]}" != "$did" ]; then
  reply "400 Bad Request" "Osse-Delivery does not match the body's id"
fi
re='"type":"([A-Za-z]+)"'
type=unknown
if [[ $body =~ $re ]]; then
  type=${BASH_REMATCH[1]}
fi

# Once: the event first, then its id, under the lock. A crash between the
# two makes a retry record it again, never lose it.
exec 9>>"$RECEIVER_DIR/lock"
flock -x 9
if grep -qxF -- "$did" "$RECEIVER_DIR/seen"; then
  reply "200 OK" "already processed"
fi
if ! { tr '\n' ' ' <"$tmp"; echo; } >>"$RECEIVER_DIR/events.jsonl" ||
  ! sync "$RECEIVER_DIR/events.jsonl" ||
  ! echo "$did" >>"$RECEIVER_DIR/seen" || ! sync "$RECEIVER_DIR/seen"; then
  reply "500 Internal Server Error" "cannot record it"
fi
echo "processed $did $type" >&2
reply "200 OK" "processed"
