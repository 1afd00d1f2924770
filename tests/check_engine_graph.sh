#!/usr/bin/env bash
# check_engine_graph.sh BUILD_DIR: the files of engine/ call each other one
# way, never in a circle (issue 10). The graph is read from the compiled
# objects, not from the sources: an edge a.c -> b.c is a global function or
# object that b.c.o defines and a.c.o uses (nm). Calls through a function
# pointer (the reactors of commit.c) are not edges, which is the point of
# them. tsort finds a circle if there is one; the check prints the files from
# the bottom up (each calls only files before it) and exits 0, or prints the
# circle and exits 1. Runs after a build, in tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
objdir=$(find "$build" -type d -path '*osse_engine.dir/engine' | head -1)
[ -n "$objdir" ] || { echo "check_engine_graph: no engine objects under $build" >&2; exit 1; }

# The objects of today's sources only (a build folder keeps those of files
# since moved away).
objs=()
for o in "$objdir"/*.c.o; do
  [ -f "engine/$(basename "$o" .o)" ] && objs+=("$o")
done

declare -A owner
for o in "${objs[@]}"; do
  f=$(basename "$o" .c.o)
  while read -r sym; do owner[$sym]=$f; done < <(nm --defined-only -g "$o" | awk '{print $3}')
done

edges=$(for o in "${objs[@]}"; do
  f=$(basename "$o" .c.o)
  echo "$f $f" # every file is a node, also one that calls no other
  nm -u "$o" | awk '{print $2}' | while read -r sym; do
    d=${owner[$sym]:-}
    if [ -n "$d" ] && [ "$d" != "$f" ]; then echo "$d $f"; fi
  done
done | sort -u)

if ! order=$(echo "$edges" | tsort 2>/tmp/tsort.$$); then
  echo "check_engine_graph: engine/ calls itself in a circle:" >&2
  sed 's/^tsort: //' /tmp/tsort.$$ >&2
  rm -f /tmp/tsort.$$
  exit 1
fi
rm -f /tmp/tsort.$$
echo "engine/, bottom up: $(echo $order)"
