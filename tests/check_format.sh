#!/usr/bin/env bash
# check_format.sh: every C source and header of the repository is as
# clang-format (Debian 12's, version 14) writes it with .clang-format. Prints
# each file that differs and how to fix it, exits 1 if there is one. Runs
# before any build, in tests/run.sh. To format: clang-format -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} file(s) differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "  fix with: clang-format -i ${bad[*]}" >&2
  exit 1
fi
echo "check_format: $(git ls-files '*.c' '*.h' | wc -l) files as .clang-format writes them"
