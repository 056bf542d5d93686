#!/bin/sh
# CLI tests for `dynamo-kv tokenize` / `detokenize` on models/stories260K.
# Expected ids and text were computed with HF tokenizers (the oracle of
# test_tokenizer_conformance). Run from the repository root:
#   sh kvrouter/test/tokenizer/cli.sh path/to/dynamo-kv
# The last line is "N passed, N failed"; the exit status is 0 iff none failed.
set -u
DKV=${1:-build/bin/dynamo-kv}
M=models/stories260K
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
pass=0
fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# want_out NAME EXPECTED CMD...: stdout (exact bytes) and status 0
want_out() {
    name=$1; want=$2; shift 2
    got=$("$@" 2>"$tmp/err"; echo "rc=$?")
    if [ "$got" = "$(printf '%s\nrc=0' "$want")" ]; then ok; else bad "$name: got [$got]"; fi
}
# want_err NAME NEEDLE CMD...: exit status 2 and NEEDLE on stderr
want_err() {
    name=$1; needle=$2; shift 2
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    if [ "$rc" = 2 ] && grep -q -- "$needle" "$tmp/err"; then ok
    else bad "$name: status $rc, stderr [$(cat "$tmp/err")]"; fi
}

want_out "tokenize" "1 403 407 261 378 432 383 286 261 376 298 315 421 426" \
    sh -c "printf 'Once upon a time, there was a little girl.' | $DKV tokenize --tokenizer $M"
want_out "tokenize --no-special" "403 407 261 378 432 383 286 261 376 298 315 421 426" \
    sh -c "printf 'Once upon a time, there was a little girl.' | $DKV tokenize --tokenizer $M --no-special"
want_out "trailing newline kept" "1 403 407 261 378 13" \
    sh -c "printf 'Once upon a time\n' | $DKV tokenize --tokenizer $M"
want_out "empty input" "1" sh -c "printf '' | $DKV tokenize --tokenizer $M"
# detokenize prints no newline: compare via a marker
got=$(printf '1 403 407\n261\t378 2' | "$DKV" detokenize --tokenizer $M; echo "|rc=$?")
[ "$got" = "<s> Once upon a time</s>|rc=0" ] && ok || bad "detokenize: [$got]"
got=$(printf '1 403 407 261 378 2' | "$DKV" detokenize --tokenizer $M --skip-special; echo "|rc=$?")
[ "$got" = "Once upon a time|rc=0" ] && ok || bad "detokenize --skip-special: [$got]"
got=$(printf '' | "$DKV" detokenize --tokenizer $M; echo "|rc=$?")
[ "$got" = "|rc=0" ] && ok || bad "detokenize empty: [$got]"

want_err "missing dir" "cannot read" "$DKV" tokenize --tokenizer "$tmp/nope"
want_err "no --tokenizer" "required" "$DKV" tokenize
want_err "bad flag" "unknown" "$DKV" tokenize --tokenizer $M --bogus
want_err "detokenize bad flag" "unknown" "$DKV" detokenize --tokenizer $M --no-special
mkdir "$tmp/uni"
printf '{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}' > "$tmp/uni/tokenizer.json"
want_err "unsupported model" 'unsupported model "Unigram"' "$DKV" tokenize --tokenizer "$tmp/uni"
mkdir "$tmp/pre"
printf '{"pre_tokenizer": {"type": "BertPreTokenizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}' \
    > "$tmp/pre/tokenizer.json"
want_err "unsupported pre_tokenizer" 'unsupported pre_tokenizer "BertPreTokenizer"' \
    "$DKV" tokenize --tokenizer "$tmp/pre"
mkdir "$tmp/broken"
printf '{"model": {' > "$tmp/broken/tokenizer.json"
want_err "malformed json" "tokenizer.json" "$DKV" tokenize --tokenizer "$tmp/broken"
for ids in "1 x" "512" "99999999999999999999" "-1" "1,2" "3.5"; do
    printf '%s' "$ids" > "$tmp/ids"
    want_err "detokenize bad id [$ids]" "bad token id" sh -c "$DKV detokenize --tokenizer $M < $tmp/ids"
done
printf '1\0002' > "$tmp/ids"
want_err "detokenize NUL" "" sh -c "$DKV detokenize --tokenizer $M < $tmp/ids"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
