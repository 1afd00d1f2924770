#!/usr/bin/env bash
# Installs what osse needs to build and test, from Debian 12's packages, when
# something is missing. Runs as root (or through sudo when that exists).
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang clang-format python3 curl
      libuv1-dev librocksdb-dev libmsgpack-dev libsodium-dev node-llhttp
      libjansson-dev libfyaml-dev libcurl4-openssl-dev libssl-dev openssl
      # the package test: dpkg-shlibdeps, systemd-analyze verify, groff -man, strace
      dpkg-dev systemd groff-base strace
      python3-jsonschema) # /usr/bin/python3 checks answers and definitions against the served schemas
pkgs+=(socat util-linux) # examples/receivers
# The pages' browser tests (tests/browser/): Debian's chromium, a Thai font.
pkgs+=(chromium fonts-thai-tlwg)
# Node and npm for puppeteer-core and the Node receiver, only when there is
# none (a machine may have its own newer node; Debian 12's is 18, which
# puppeteer-core takes).
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# puppeteer-core, pinned by tests/browser/package-lock.json (it fetches no
# browser: the tests drive /usr/bin/chromium).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -d "$here/browser/node_modules" ]; then
  (cd "$here/browser" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
