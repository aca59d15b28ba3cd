#!/bin/sh
# Runs the busted specs under each interpreter given and sums busted's own
# totals: the last line is "N passed, N failed" over all of them.
# Extra busted arguments (a spec file, --filter=...) come from $BUSTED_ARGS.
passed=0; failed=0; status=0
for lua in "$@"; do
  out="build/$lua/busted.out"
  mkdir -p "build/$lua"
  echo "== busted under $lua"
  # shellcheck disable=SC2086
  "$lua" /usr/bin/busted --cpath="build/$lua/?.so" -o plainTerminal ${BUSTED_ARGS:-spec} >"$out" 2>&1
  rc=$?
  cat "$out"
  totals=$(awk '/^[0-9]+ success(es)? \/ [0-9]+ failures? \/ [0-9]+ errors? \/ [0-9]+ pending/ { t = $1 " " ($4 + $7) } END { print t }' "$out")
  if [ -z "$totals" ]; then
    echo "busted under $lua ended without its totals (exit $rc)"
    failed=$((failed + 1)); status=1; continue
  fi
  passed=$((passed + ${totals% *})); failed=$((failed + ${totals#* }))
  [ "$rc" -ne 0 ] && status=1
done
echo "$passed passed, $failed failed"
exit $status
