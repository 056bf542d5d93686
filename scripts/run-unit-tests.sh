#!/bin/sh
# Runs each unit-test command (a binary, or a quoted command line); prints a
# summary and fails if any failed.
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $t"
    if sh -c "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed [$t]"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
