#!/bin/sh
# bench/openresty.sh: one nginx worker serving N concurrent requests, each paging a
# run whose fake API adds 50 ms per page (slow50-100: 4 pages of 25), through the
# ngx transport (subrequests) and with the libcurl transport forced (blocking).
# Prints each wall time as a ratio to one request alone, measured in the same run;
# the goal for the ngx transport is <= 1.3.
#   sh bench/openresty.sh [N]        (make bench runs it; default N = 100)
set -u
n=${1:-100}
dir=$(mktemp -d)
trap 'sh spec/support/fakeapi.sh stop "$dir/app"; sh spec/support/fakeapi.sh stop "$dir/api"; rm -rf "$dir"' EXIT INT TERM
fake=$(sh spec/support/fakeapi.sh start "$dir/api" | sed -n 's|^BASE_URL=http://127.0.0.1:||p')
[ -n "$fake" ] || exit 1
app=$(EXAMPLE_TEST_LOCATIONS=1 sh spec/support/example-nginx.sh start "$dir/app" "$fake" | sed -n 's|^APP_URL=||p')
[ -n "$app" ] || exit 1

seconds() { date +%s.%N; }
alone() {   # the best of 5 single requests
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' "$app/_t/count/$1/slow50-100"
  done | sort -n | head -n 1
}
concurrent() {   # one run of N concurrent requests
  urls=""
  for _ in $(seq 1 "$n"); do urls="$urls $app/_t/count/$1/slow50-100"; done
  s=$(seconds)
  # shellcheck disable=SC2086
  ok=$(curl -s --no-progress-meter -Z --parallel-immediate --parallel-max "$n" $urls 2>/dev/null |
    grep -c '^ok 100$')
  e=$(seconds)
  [ "$ok" -eq "$n" ] || echo "  ($ok of $n requests answered ok 100)" >&2
  echo "$e - $s" | bc
}

curl -s -o /dev/null "$app/_t/count/ngx/slow50-100"      # warm the fake API's page cache
echo "openresty benchmark: $n concurrent requests on one nginx worker, 4 pages of 50 ms each"
for t in ngx curl; do
  a=$(alone $t)
  if [ $t = ngx ]; then       # the best of 3, as alone is the best of 5
    c=$( (concurrent $t; concurrent $t; concurrent $t) | sort -n | head -n 1)
  else                        # blocked, it takes N times as long: once is enough
    c=$(concurrent $t)
  fi
  awk -v t="$t" -v a="$a" -v n="$n" -v c="$c" \
    'BEGIN { printf "%-5s transport: alone %.3f s, %d concurrent %.3f s, ratio %.2fx\n", t, a, n, c, c / a
      if (t == "ngx") printf "ROW\tP5 OpenResty: %d concurrent on one worker (ngx)\t%.3f s\t%.3f s alone\t%.2fx\t<= 1.3x\t%s\n",
        n, c, a, c / a, (c / a <= 1.3) ? "yes" : "NO"
      else printf "ROW\tP5   the same, libcurl forced (blocking)\t%.3f s\t%.3f s alone\t%.2fx\t-\t-\n", c, a, c / a }'

done
