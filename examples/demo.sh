#!/bin/sh
# make demo: examples/failed_calls.lua against the real API when BLAND_API_KEY
# and RUN_ID are set, otherwise against the bundled fake API on 127.0.0.1.
#   sh examples/demo.sh LUA BUILD_DIR
lua=$1; build=$2
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$build/?.so;;"
if [ -n "${BLAND_API_KEY:-}" ] && [ -n "${RUN_ID:-}" ]; then
  exec "$lua" examples/failed_calls.lua "$RUN_ID"
fi
dir="$build/demo-api"
out=$(sh spec/support/fakeapi.sh start "$dir") || exit 1
trap 'sh spec/support/fakeapi.sh stop "$dir"' EXIT INT TERM
BLAND_BASE_URL=$(echo "$out" | sed -n 's/^BASE_URL=//p')
echo "fake Bland API at $BLAND_BASE_URL (set BLAND_API_KEY and RUN_ID for the real one)"
BLAND_API_KEY=test-key BLAND_BASE_URL=$BLAND_BASE_URL "$lua" examples/failed_calls.lua "${RUN_ID:-run-250}"
