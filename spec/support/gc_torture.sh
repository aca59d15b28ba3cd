#!/bin/sh
# make gc-torture: the suite with the collector forced to run all the time, against a
# build of the core that also steps it before each of its allocating Lua calls
# (-DBE_GC_TORTURE, csrc/gc_torture.h; busted helper spec/support/gc_torture.lua). A value
# the C code uses after it left the stack is then freed first:
#   - Lua 5.4, with ASan and UBSan (spec/support/sanitize.sh, build/gc-torture/): the use
#     after free is reported;
#   - LuaJIT (build/gc-torture-luajit/): it allocates its objects itself, out of ASan's
#     sight, so a use after free shows only as wrong data in a spec.
# The specs are those that drive the C core: the decoder, the client and its iterators,
# prefetch, many, the reads, the pager and the fault matrix (GC_TORTURE_SPECS to choose
# others; "spec" for all). The rest of the suite adds Lua-heavy work (the fake API's own
# specs, page generation, the command line, the allocation-failure sweeps' thousands of
# runs), a few minutes more for both runs, through no path of the core these lack. Left
# out in any case: the #heavy specs, the specs' own valgrind runs (valgrind cannot host
# ASan), and two decode specs that fill tables of 10^5..10^6 elements (each collection
# traverses the table being filled: quadratic). The last line is the totals of both runs:
# "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1

SKIP="--exclude-tags=heavy --filter-out=under%svalgrind --filter-out=large%sarrays%sand%sobjects --filter-out=many%sempty%scontainers"
HELPER=spec/support/gc_torture.lua
SPECS=${GC_TORTURE_SPECS:-$(ls spec/decode_spec.lua spec/decode_suite_spec.lua spec/decode_diff_spec.lua \
  spec/fuzz_regressions_spec.lua spec/client_spec.lua spec/client_errors_spec.lua \
  spec/client_security_spec.lua spec/prefetch_spec.lua spec/many_spec.lua spec/reads_spec.lua \
  spec/pager_spec.lua spec/fault_matrix_spec.lua 2>/dev/null)}
status=0

SANITIZE_BUILD=build/gc-torture SANITIZE_CFLAGS=-DBE_GC_TORTURE SANITIZE_NAME=gc-torture \
  BUSTED_HELPER=$HELPER BUSTED_ARGS="$SKIP $SPECS" sh spec/support/sanitize.sh | tee build/gc-torture.log
[ "$(tail -n 1 build/gc-torture.log | grep -c ' 0 failed$')" = 1 ] || status=1
t54=$(tail -n 1 build/gc-torture.log)

B=build/gc-torture-luajit
echo "== busted under luajit with $B (-DBE_GC_TORTURE)"
make --no-print-directory -s -B LUA=luajit BUILD=$B CFLAGS="-O1 -g -DBE_GC_TORTURE" all || {
  echo "gc-torture: luajit build failed"; echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC2086
luajit /usr/bin/busted --cpath="$B/?.so" -o plainTerminal --helper=$HELPER $SKIP $SPECS >"$B/busted.out" 2>&1
rc=$?
cat "$B/busted.out"
tj=$(awk '/^[0-9]+ success(es)? \/ [0-9]+ failures? \/ [0-9]+ errors? \/ [0-9]+ pending/ { t = $1 " " ($4 + $7) } END { print t }' "$B/busted.out")
[ -n "$tj" ] || tj="0 1"
if [ "$rc" -ne 0 ] || [ "${tj#* }" -ne 0 ]; then
  echo "gc-torture: luajit FAILED (busted exit $rc)"; status=1
fi

passed=$(( ${t54%% passed*} + ${tj% *} ))
failed=$(( $(echo "$t54" | sed 's/.*, \([0-9]*\) failed$/\1/') + ${tj#* } ))
[ $status -eq 0 ] && echo "gc-torture: clean (Lua 5.4 under ASan, LuaJIT)"
echo "$passed passed, $failed failed"
exit $status
