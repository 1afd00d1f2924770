#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, then builds
# and runs every test twice, once in a release build and once under
# AddressSanitizer + UndefinedBehaviorSanitizer. The first build is the
# README run command's (Release): -O3 warns of things -O2 does not. Before
# any build, the include direction between modules and the formatting
# (.clang-format) are checked; after the
# first, that engine/'s files call each other without a circle.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/deps.sh
bash tests/check_includes.sh
bash tests/check_format.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
bash tests/check_engine_graph.sh build
ctest --test-dir build --output-on-failure -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DOSSE_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
