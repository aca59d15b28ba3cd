#!/bin/sh
# Builds the C core with AddressSanitizer and UndefinedBehaviorSanitizer (gcc) into
# build/sanitize/ and runs the whole busted suite under Lua 5.4 against it. Any report,
# from the busted process or from any process it starts that hosts the sanitizer runtime,
# fails the run and is printed. The last line is busted's totals: "N passed, N failed".
#
#   sh spec/support/sanitize.sh          (make sanitize)
# Env: BUSTED_ARGS (spec files, --filter=...; default: spec), SANITIZE_BUILD (the build
# dir), SANITIZE_CFLAGS (added to the sanitizer flags, e.g. -DBE_GC_TORTURE), BUSTED_HELPER
# (a busted --helper), SANITIZE_NAME (what the verdict line calls the run).
#
# /usr/bin/lua5.4 is not instrumented, so the runtime must be preloaded into it. It goes
# into lua5.4 alone (curl and ps hang under it): build/sanitize/bin, first on PATH, has a
# lua5.4 that preloads it, and a cc that builds what the specs compile (the
# allocation-failure harnesses, which load this build of the module) with the same
# sanitizers. nginx, curl, sh and the rest run as usual.
set -u
cd "$(dirname "$0")/../.." || exit 1

B=${SANITIZE_BUILD:-build/sanitize}
NAME=${SANITIZE_NAME:-sanitize}
FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"

fail() { echo "$NAME: $*"; echo "0 passed, 1 failed"; exit 1; }

command -v gcc >/dev/null || fail "gcc is needed"
runtime=$(gcc -print-file-name=libasan.so)
[ -f "$runtime" ] || fail "gcc has no libasan.so (Debian: libasan8, a dependency of gcc-12)"
lua=$(command -v lua5.4) || fail "lua5.4 is needed"
[ -x /bin/bash ] || fail "bash is needed"

# -B: the flags are not in make's dependencies. -z nodelete: the module stays mapped after
# lua_close unloads it, so that the leak reports made at exit can name its functions.
make --no-print-directory -s -B LUA=lua5.4 BUILD="$B" CC=gcc \
  CFLAGS="-O1 -g $FLAGS ${SANITIZE_CFLAGS:-}" LDFLAGS="$FLAGS -Wl,-z,nodelete" all ||
  fail "build failed"

root=$(pwd)
bin="$root/$B/bin"
reports="$root/$B/reports"
rm -rf "$bin" "$reports"
mkdir -p "$bin" "$reports" "$root/$B/include"
gcc -std=c99 -pedantic -Wall -Wextra -Werror -shared -fPIC -o "$root/$B/sanitize_preload.so" \
  spec/support/sanitize_preload.c || fail "cannot build sanitize_preload.so"
# The runtime, then sanitize_preload.so, which takes LD_PRELOAD out of the environment
# again. exec -a: the interpreter's argv[0] is this wrapper, so that a spec that starts
# arg[-1] starts it under the sanitizer too.
cat >"$bin/lua5.4" <<EOF
#!/bin/bash
export LD_PRELOAD='$runtime $root/$B/sanitize_preload.so'
exec -a "\$0" '$lua' "\$@"
EOF
cat >"$bin/cc" <<EOF
#!/bin/sh
exec gcc $FLAGS "\$@"
EOF
chmod +x "$bin/lua5.4" "$bin/cc"
# luarocks (build_spec) takes the Lua prefix from the lua5.4 it finds on PATH.
inc=$(pkg-config --cflags-only-I lua5.4 | sed 's/^-I//; s/ .*//')
ln -sfn "${inc:-/usr/include/lua5.4}" "$root/$B/include/lua5.4"

# Reports go to files (a spec reads its children's stderr, and may swallow its own): each
# one found afterwards fails the run. Leaks are checked in every instrumented process as it
# exits; spec/support/lsan.supp says what is suppressed and why. intercept_tls_get_addr=0:
# gcc 12's LeakSanitizer misreads glibc 2.36's dynamic TLS and crashes at exit ("Tracer
# caught signal 11"); it then does not scan dynamic TLS, where nothing here keeps its only
# pointer to anything.
export PATH="$bin:$PATH"
export ASAN_OPTIONS="detect_leaks=1:intercept_tls_get_addr=0:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$root/spec/support/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"

out="$B/busted.out"
echo "== busted under lua5.4 with $B (ASan + UBSan${SANITIZE_CFLAGS:+, $SANITIZE_CFLAGS})"
# valgrind cannot run code built with ASan: the specs' own valgrind runs are left to
# `make test` and `make valgrind`.
# shellcheck disable=SC2086
lua5.4 /usr/bin/busted --cpath="$B/?.so" -o plainTerminal --filter-out="under valgrind" \
  ${BUSTED_HELPER:+--helper="$BUSTED_HELPER"} ${BUSTED_ARGS:-spec} >"$out" 2>&1
rc=$?
cat "$out"
totals=$(awk '/^[0-9]+ success(es)? \/ [0-9]+ failures? \/ [0-9]+ errors? \/ [0-9]+ pending/ { t = $1 " " ($4 + $7) } END { print t }' "$out")
[ -n "$totals" ] || totals="0 1"
passed=${totals% *}; failed=${totals#* }

n=$(find "$reports" -type f | wc -l)
if [ "$n" -gt 0 ]; then
  for f in "$reports"/*; do echo "--- $f"; cat "$f"; done
  echo "$NAME: FAILED: $n sanitizer report(s) above"
  echo "$passed passed, $((failed + n)) failed"
  exit 1
fi
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "$NAME: FAILED: busted exit $rc, $failed failed"
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "$NAME: clean (no sanitizer report)"
echo "$passed passed, $failed failed"
