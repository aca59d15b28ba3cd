#!/bin/sh
# Runs the decode and client specs under valgrind (Lua 5.4), less the #heavy
# ones (a 64 MiB input takes minutes there): any invalid access, use of
# uninitialised memory or definite leak fails the run.
set -e
command -v valgrind >/dev/null || EXTRA_PACKAGES=valgrind sh spec/support/deps.sh
log=build/lua5.4/valgrind.log
BLANDEVAL_SPEC_SCALE=${BLANDEVAL_SPEC_SCALE:-0.1} \
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --log-file="$log" \
  lua5.4 /usr/bin/busted --cpath="build/lua5.4/?.so" -o plainTerminal --exclude-tags=heavy \
    spec/decode_spec.lua spec/decode_suite_spec.lua spec/decode_diff_spec.lua \
    spec/client_spec.lua spec/client_errors_spec.lua spec/client_security_spec.lua \
    spec/prefetch_spec.lua spec/reads_spec.lua spec/many_spec.lua || {
  rc=$?; cat "$log"; echo "valgrind: failed (exit $rc)"; exit 1; }
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$log"
echo "valgrind: clean"
