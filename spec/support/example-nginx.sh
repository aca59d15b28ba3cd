#!/bin/sh
# Runs examples/nginx.conf for the specs and the benchmark, pointed at the fake
# API instead of api.bland.ai, with the module from this build tree.
#
#   sh spec/support/example-nginx.sh start DIR FAKE_PORT   prints APP_URL=http://127.0.0.1:PORT
#   sh spec/support/fakeapi.sh stop DIR                    stops it
#
# EXAMPLE_TEST_LOCATIONS=1 adds spec/support/example-test.conf inside the server block.
set -u
die() { echo "example-nginx: $*" >&2; exit 1; }
[ "${1:-}" = start ] && [ -n "${2:-}" ] && [ -n "${3:-}" ] || die "usage: $0 start DIR FAKE_PORT"
dir=$2; fake_port=$3
root=$(cd "$(dirname "$0")/../.." && pwd) || die "cannot find the repository"
mkdir -p "$dir/tmp" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
user=""
[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
extra=""; support_path=""
[ "${EXAMPLE_TEST_LOCATIONS:-}" = 1 ] && support_path="$root/spec/support/?.lua;" &&
  extra=$(grep -v '^#' "$root/spec/support/example-test.conf" | sed "s|@FAKE_PORT@|$fake_port|g" | tr '\n' ' ')
esc() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
port_free() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; [ $? -eq 7 ]; }

tries=0
while :; do
  tries=$((tries + 1))
  [ $tries -le 20 ] || die "no free port found after 20 tries"
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
  port_free $port || continue
  # the example, with the fake API for the upstream and this tree for the paths
  sed -e "s|/path/to/blandeval|$(esc "$root")|g" \
      -e "s|lua_package_path \"|lua_package_path \"$(esc "$support_path")|" \
      -e "s|server api.bland.ai:443;|server 127.0.0.1:$fake_port;|" \
      -e "s|proxy_pass https://bland_api|proxy_pass http://bland_api|" \
      -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$port; $(esc "$extra")|" \
      -e "s|^worker_processes 1;|worker_processes 1;\n$(esc "$user")|" \
      "$root/examples/nginx.conf" >"$dir/nginx.conf" || die "cannot write $dir/nginx.conf"
  : >"$dir/error.log"
  if BLAND_API_KEY=${BLAND_API_KEY:-test-key} "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
       -g 'daemon on;' >"$dir/start.log" 2>&1; then
    break
  fi
  grep -q "Address already in use" "$dir/start.log" "$dir/error.log" && continue
  { echo "example-nginx: nginx failed to start:"; cat "$dir/start.log" "$dir/error.log"; } >&2
  exit 1
done
i=0
until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"; do
  i=$((i + 1))
  [ $i -lt 100 ] || { cat "$dir/error.log" >&2; sh "$root/spec/support/fakeapi.sh" stop "$dir"; die "nginx does not answer"; }
  sleep 0.02
done
echo "APP_URL=http://127.0.0.1:$port"
