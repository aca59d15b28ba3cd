#!/bin/sh
# bench/run.sh (make bench): every figure next to its anchor, measured in the same
# run, then one table of them. P1 bench/decode.lua, P2-P4 bench/iterate.lua against
# the fake API on 127.0.0.1, P5 bench/openresty.sh. Assumes both builds exist.
#   sh bench/run.sh            BENCH_QUICK=1: P1-P3 only
set -u
out=build/bench
mkdir -p "$out"
rows="$out/rows.tsv"
: >"$rows"
export LUA_PATH="lua/?.lua;lua/?/init.lua;spec/support/?.lua;;"
PYTHON=/usr/bin/python3; [ -x "$PYTHON" ] || PYTHON=python3
export PYTHON

cc -O2 -Wall -Wextra -o "$out/floor" bench/floor.c $(pkg-config --cflags --libs libcurl) || exit 1

run() {          # prints the output and keeps its ROW lines
  "$@" | while IFS= read -r line; do
    case "$line" in ROW*) printf '%s\n' "$line" >>"$rows" ;; *) printf '%s\n' "$line" ;; esac
  done
}

for l in lua5.4 luajit; do
  LUA_CPATH="build/$l/?.so;;" run "$l" bench/decode.lua
done

dir=$(mktemp -d)
trap 'sh spec/support/fakeapi.sh stop "$dir"; rm -rf "$dir"' EXIT INT TERM
started=$(sh spec/support/fakeapi.sh start "$dir") || exit 1
BLAND_BASE_URL=$(echo "$started" | sed -n 's/^BASE_URL=//p')
export BLAND_BASE_URL BLAND_API_KEY=test-key FLOOR="$out/floor"
echo "iterating against the fake API at $BLAND_BASE_URL"
for l in lua5.4 luajit; do
  LUA_CPATH="build/$l/?.so;;" run "$l" bench/iterate.lua P2 P3
done
if [ -z "${BENCH_QUICK:-}" ]; then
  LUA_CPATH="build/lua5.4/?.so;;" run lua5.4 bench/iterate.lua P4
  run sh bench/openresty.sh
fi

echo
awk -F '\t' 'BEGIN { printf "%-56s %-14s %-24s %-8s %-15s %s\n", "figure", "blandeval", "anchor", "ratio", "goal", "holds" }
  { printf "%-56s %-14s %-24s %-8s %-15s %s\n", $2, $3, $4, $5, $6, $7 }' "$rows"
