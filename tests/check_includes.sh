#!/usr/bin/env bash
# check_includes.sh: dependencies between the modules point one way, as the
# module libraries of CMakeLists.txt link:
#
#     api -> engine -> {workflows, storage, net} -> common
#
# A module includes its own headers and those of the modules below it, and
# nothing sideways or up: workflows/, storage/ and net/ include only common/
# (never each other), common/ only itself. Each unit test folder
# tests/unit/<module>/ is held to its module's rule (plus tests/), as it links
# only osse_<module>.
#
# Every `#include "X/..."` (and `#include <X/...>` where X is a module) is
# checked; one naming anything else with a folder (tests/, "../") from a
# module's code is refused too. Prints file:line and the include for each
# offence and exits 1 if there is one. Bash and grep only: it runs before any
# build, in tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(api engine workflows storage net common)
declare -A below=(
  [api]="engine workflows storage net common"
  [engine]="workflows storage net common"
  [workflows]="common"
  [storage]="common"
  [net]="common"
  [common]=""
)

mods_re=$(IFS='|'; echo "${modules[*]}")
include_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*("[^"]*/|<('"$mods_re"')/)'
target_re='include[[:space:]]*["<]([^">]*)/'
offences=0

# check DIR MODULE EXTRA: the files under DIR follow MODULE's rule and may
# also include the folders named in EXTRA.
check() {
    local dir=$1 mod=$2 extra=$3 hit file rest line text target ok m allowed=""
    [ -d "$dir" ] || return 0
    for m in "$mod" ${below[$mod]} $extra; do
        allowed+="${allowed:+, }$m/"
    done
    while IFS= read -r hit; do
        file=${hit%%:*}
        rest=${hit#*:}
        line=${rest%%:*}
        text=${rest#*:}
        [[ $text =~ $target_re ]] || continue
        target=${BASH_REMATCH[1]%%/*}
        ok=0
        for m in "$mod" ${below[$mod]} $extra; do
            [ "$target" = "$m" ] && ok=1
        done
        if [ $ok -eq 0 ]; then
            text=${text#"${text%%[![:space:]]*}"}
            echo "$file:$line: $text: $mod/ may include only $allowed" >&2
            offences=$((offences + 1))
        fi
    done < <(grep -rnE --include='*.c' --include='*.h' "$include_re" "$dir" || true)
}

for mod in "${modules[@]}"; do
    check "$mod" "$mod" ""
    check "tests/unit/$mod" "$mod" "tests"
done

if [ $offences -gt 0 ]; then
    echo "check_includes: $offences include(s) against" \
         "api -> engine -> {workflows, storage, net} -> common" >&2
    exit 1
fi
echo "check_includes: ok"
