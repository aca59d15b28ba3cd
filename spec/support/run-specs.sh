#!/bin/sh
# Runs the busted specs under each interpreter given and sums busted's own
# totals: the last line is "N passed, N failed" over all of them.
# Extra busted arguments (a spec file, --filter=...) come from $BUSTED_ARGS.
# "nginx" runs the client, reads, query, analysis and fault matrix specs inside an nginx worker, with
# the ngx transport (examples/nginx.conf and spec/support/nginx_busted.lua), less their #curl tests;
# or only the *_spec.lua files that $BUSTED_ARGS names, if it names any.
NGINX_SPECS="spec/client_spec.lua spec/client_errors_spec.lua spec/client_security_spec.lua
  spec/reads_spec.lua spec/many_spec.lua spec/query_spec.lua spec/analysis_spec.lua
  spec/fault_matrix_spec.lua"
named=""
for a in ${BUSTED_ARGS:-}; do
  case $a in *_spec.lua) named="$named $a" ;; esac
done
[ -n "$named" ] && NGINX_SPECS=$named

in_nginx() {
  dir=$(mktemp -d)
  app=$(EXAMPLE_TEST_LOCATIONS=1 sh spec/support/example-nginx.sh start "$dir" 9 | sed -n 's|^APP_URL=||p')
  [ -n "$app" ] || { rm -rf "$dir"; return 1; }
  query="root=$(pwd)"
  for s in $NGINX_SPECS; do query="$query&spec=$s"; done
  curl -s --max-time 600 "$app/_t/busted?$query"
  rc=$?
  sh spec/support/fakeapi.sh stop "$dir"
  rm -rf "$dir"
  return $rc
}

passed=0; failed=0; status=0
for lua in "$@"; do
  out="build/$lua/busted.out"
  mkdir -p "build/$lua"
  echo "== busted under $lua"
  if [ "$lua" = nginx ]; then
    in_nginx >"$out" 2>&1
  else
    # shellcheck disable=SC2086
    "$lua" /usr/bin/busted --cpath="build/$lua/?.so" -o plainTerminal ${BUSTED_ARGS:-spec} >"$out" 2>&1
  fi
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
