#!/bin/sh
# Runs every spec that loads the C core in the busted process under valgrind (Lua 5.4),
# less the #heavy ones (a 64 MiB input takes minutes there): any invalid access, use of
# uninitialised memory or definite leak fails the run. Left out: the specs that never load
# the module (fakeapi, pagegen), decode_oom (the module runs in its harness's processes,
# which check themselves), and the specs' own valgrind runs of their harnesses, which
# `make test` has run. The processes the specs start are not traced.
set -e
command -v valgrind >/dev/null || EXTRA_PACKAGES=valgrind sh spec/support/deps.sh
log=build/lua5.4/valgrind.log
specs=$(ls spec/*_spec.lua | grep -v -e '/fakeapi_spec' -e '/pagegen_spec' -e '/decode_oom_spec')
# shellcheck disable=SC2086
BLANDEVAL_SPEC_SCALE=${BLANDEVAL_SPEC_SCALE:-0.1} \
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --log-file="$log" \
  lua5.4 /usr/bin/busted --cpath="build/lua5.4/?.so" -o plainTerminal --exclude-tags=heavy \
    --filter-out="under valgrind" $specs || {
  rc=$?; cat "$log"; echo "valgrind: failed (exit $rc)"; exit 1; }
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$log"
echo "valgrind: clean"
