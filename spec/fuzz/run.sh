#!/bin/sh
# Runs fuzz targets one after another (the machine's cores are shared): each
# for SECONDS on its corpus build/fuzz/corpus/<target> (seeded by
# spec/fuzz/corpus.lua, grown by the fuzzer) and the kept inputs of
# spec/fuzz/regressions/<target>, then prints its executions, coverage and
# findings. Findings are written to build/fuzz/findings/<target>/; the exit
# status is 1 when any target found something.
#   sh spec/fuzz/run.sh SECONDS TARGET...
set -u
cd "$(dirname "$0")/../.."
secs=$1
shift
LUA_PATH="spec/support/?.lua;;" lua5.4 spec/fuzz/corpus.lua build/fuzz/corpus || exit 1

status=0
summary=""
for t in "$@"; do
  case $t in
    url) max_len=1024; dict="" ;;
    *) max_len=65536; dict="-dict=spec/fuzz/json.dict" ;;
  esac
  found="build/fuzz/findings/$t"
  log="build/fuzz/$t.log"
  mkdir -p "$found"
  regressions=""
  [ -d "spec/fuzz/regressions/$t" ] && regressions="spec/fuzz/regressions/$t"
  stamp="build/fuzz/.$t.start"
  : >"$stamp"
  echo "== fuzz $t: ${secs}s, max_len $max_len"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a runaway allocation
  # shellcheck disable=SC2086
  "build/fuzz/$t" -max_total_time="$secs" -max_len="$max_len" $dict -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$found/" \
    "build/fuzz/corpus/$t" $regressions >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o ' cov: [0-9]*' "$log" | tail -n 1 | tr -dc 0-9)
  ft=$(grep -o ' ft: [0-9]*' "$log" | tail -n 1 | tr -dc 0-9)
  new=$(find "$found" -type f -newer "$stamp" | sort)
  if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
    status=1
    verdict="FOUND (exit $rc): ${new:-see $log}"
    grep -E 'invariant broken|ERROR:|runtime error|SUMMARY' "$log" | head -n 5
  else
    verdict="none"
  fi
  line=$(printf '%-15s %12s %9s %6s %7s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$verdict")
  echo "$line"
  summary="$summary$line
"
done
echo "== fuzz summary (${secs}s per target)"
printf '%-15s %12s %9s %6s %7s  %s\n' target executions exec/s cov ft findings
printf '%s' "$summary"
exit $status
