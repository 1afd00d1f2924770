#!/usr/bin/env bash
# Installs what osse needs to build and test, from Debian 12's packages, when
# something is missing. Runs as root (or through sudo when that exists).
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang clang-format python3 curl
      libuv1-dev librocksdb-dev libmsgpack-dev libsodium-dev node-llhttp
      libjansson-dev libfyaml-dev libcurl4-openssl-dev libssl-dev openssl
      python3-jsonschema) # /usr/bin/python3 checks answers and definitions against the served schemas
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
