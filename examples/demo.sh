#!/bin/sh
# make demo: the questions blandeval answers about an eval run, one command each:
# how did each agent do (report), which calls failed (calls --failed) and why
# (verdicts --failed), everything as CSV, and did a run regress (compare).
#
# With BLAND_API_KEY and RUN_ID set it reads the real API (RUN_ID_B: a later run
# of the same agents to compare against RUN_ID). Otherwise it starts the bundled
# fake API on 127.0.0.1 and reads cmp-a-2000: 2000 calls graded by three agents,
# with failed and insufficient-evidence verdicts, and cmp-b-2000, a re-run of the
# same calls in which one agent got worse.
#   sh examples/demo.sh LUA BUILD_DIR [WORK_DIR]   (WORK_DIR: default BUILD_DIR)
lua=$1; build=$2; work=${3:-$2}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$build/?.so;;"
out_dir="$work/demo"
mkdir -p "$out_dir" || exit 2

blandeval() {
  printf '\n$ blandeval %s\n' "$*"
  "$lua" bin/blandeval "$@"
}

if [ -n "${BLAND_API_KEY:-}" ] && [ -n "${RUN_ID:-}" ]; then
  run=$RUN_ID; run_a=${RUN_ID_B:+$RUN_ID}; run_b=${RUN_ID_B:-}
  echo "Bland API at ${BLAND_BASE_URL:-https://api.bland.ai}, run $run"
else
  dir="$work/demo-api"
  started=$(sh spec/support/fakeapi.sh start "$dir") || exit 2
  trap 'sh spec/support/fakeapi.sh stop "$dir"' EXIT
  trap 'exit 130' INT TERM
  BLAND_BASE_URL=$(echo "$started" | sed -n 's/^BASE_URL=//p')
  BLAND_API_KEY=test-key
  export BLAND_BASE_URL BLAND_API_KEY
  run=cmp-a-2000; run_a=cmp-a-2000; run_b=cmp-b-2000
  echo "fake Bland API at $BLAND_BASE_URL (set BLAND_API_KEY and RUN_ID for the real one)"
fi

blandeval report "$run" || exit
blandeval calls "$run" --failed --agent-results --limit 10 || exit
blandeval verdicts "$run" --failed --limit 10 || exit
csv="$out_dir/failed-calls.csv"
printf '\n$ blandeval calls %s --failed --format csv > %s\n' "$run" "$csv"
"$lua" bin/blandeval calls "$run" --failed --format csv >"$csv" || exit
echo "$(($(wc -l <"$csv") - 1)) failed calls written to $csv"
if [ -n "$run_b" ]; then
  blandeval compare "$run_a" "$run_b" --limit 5
  status=$?
  [ "$status" -gt 1 ] && exit "$status"
  [ "$status" -eq 1 ] && echo "(exit status 1: a regression was flagged)"
fi
exit 0
