#!/bin/sh
# Local fake Bland Evals API (nginx + ngx_http_lua, handler in spec/support/fakeapi/).
#
#   sh spec/support/fakeapi.sh start DIR   start with its private prefix in DIR (created), wait
#                                          until it answers, print BASE_URL=, TLS_URL=, CERT=
#   sh spec/support/fakeapi.sh stop DIR    stop it and wait until it is gone
#
# Runs as any user. Env: NGINX (binary), FAKEAPI_EXTRA_CONF (text added inside http {}).
set -u

die() { echo "fakeapi: $*" >&2; exit 1; }

cmd=${1:-}; dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then die "usage: $0 start|stop DIR"; fi

# The daemonized master is not our child: once it exits it can stay a zombie until init reaps
# it (seconds, in some containers), so a zombie counts as gone.
alive() {
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

stop() {
  [ -f "$dir/nginx.pid" ] || { echo "fakeapi: not running in $dir" >&2; return 0; }
  pid=$(cat "$dir/nginx.pid")
  kids=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || { rm -f "$dir/nginx.pid"; return 0; }   # TERM = fast shutdown
  i=0
  while alive "$pid" && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
  if alive "$pid"; then
    echo "fakeapi: nginx $pid ignored TERM, killing it" >&2
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null
  fi
  rm -f "$dir/nginx.pid"
}

case $cmd in
  stop) stop; exit 0 ;;
  start) ;;
  *) die "unknown command '$cmd' (start|stop)" ;;
esac

support=$(cd "$(dirname "$0")" && pwd) || die "cannot find spec/support"
mkdir -p "$dir/tmp" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
[ -f "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null && die "already running in $dir"

nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}   # /usr/sbin is often not in PATH
[ -x "$nginx" ] || command -v "$nginx" >/dev/null || die "nginx not found (apt-get install nginx libnginx-mod-http-lua)"

# Debian ships the lua module as a dynamic module needing ndk first; OpenResty has both built in.
modules=""
for m in ndk_http_module ngx_http_lua_module; do
  for d in /usr/lib/nginx/modules /usr/share/nginx/modules /usr/lib64/nginx/modules; do
    if [ -f "$d/$m.so" ]; then modules="$modules load_module $d/$m.so;"; break; fi
  done
done

# Self-signed certificate for 127.0.0.1 and localhost (an EC key is much faster to make than RSA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$dir/openssl.log" 2>&1 ||
  { cat "$dir/openssl.log" >&2; die "openssl could not make a certificate"; }

# A master started as root would run its worker as nobody; keep the current user instead.
user=""
[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"

# sed replacement text: escape \ & and the | delimiter.
esc() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

# A port nobody listens on: curl exit 7 = connection refused. A race with another process is
# caught by nginx's bind error below, and we try again.
port_free() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; [ $? -eq 7 ]; }

tries=0
while :; do
  tries=$((tries + 1))
  [ $tries -le 20 ] || die "no free port pair found after 20 tries"
  port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
  tls_port=$((port + 1))
  if ! port_free $port || ! port_free $tls_port; then continue; fi
  sed -e "s|@DIR@|$(esc "$dir")|g" -e "s|@SUPPORT@|$(esc "$support")|g" \
      -e "s|@PORT@|$port|g" -e "s|@TLS_PORT@|$tls_port|g" \
      -e "s|@LOAD_MODULES@|$(esc "$modules")|" -e "s|@USER@|$(esc "$user")|" \
      -e "s|@EXTRA_CONF@|$(esc "${FAKEAPI_EXTRA_CONF:-}")|" \
      "$support/fakeapi/nginx.conf.template" >"$dir/nginx.conf" || die "cannot write $dir/nginx.conf"
  : >"$dir/error.log"
  # -e: the compiled-in error log (/var/log/nginx) is opened before the config is read.
  if "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon on;' >"$dir/start.log" 2>&1; then
    break
  fi
  grep -q "Address already in use" "$dir/start.log" "$dir/error.log" && continue
  { echo "fakeapi: nginx failed to start:"; cat "$dir/start.log"; echo "--- $dir/error.log:"
    cat "$dir/error.log"; } >&2
  exit 1
done

# The master has bound the ports; wait for the worker to answer.
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/_stats")" = 200 ]; do
  i=$((i + 1))
  if [ $i -ge 100 ]; then
    { echo "fakeapi: nginx started but does not answer; $dir/error.log:"; cat "$dir/error.log"; } >&2
    stop; exit 1
  fi
  sleep 0.02
done

printf 'BASE_URL=http://127.0.0.1:%s\nTLS_URL=https://127.0.0.1:%s\nCERT=%s/cert.pem\n' \
  "$port" "$tls_port" "$dir" | tee "$dir/env"
