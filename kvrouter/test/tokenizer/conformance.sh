#!/bin/sh
# Tokenizer conformance in one command (run from the repository root):
#   sh kvrouter/test/tokenizer/conformance.sh BUILD_DIR
# Runs BUILD_DIR/test/test_tokenizer_conformance (ids, decode and streaming
# against HF tokenizers for seven tokenizers over corpus.json; the oracle is
# computed into .cache/tokenizer/ on first use) and the dynamo-kv
# tokenize/detokenize CLI tests. Needs node + npm for the oracle.
set -u
B=${1:?usage: conformance.sh BUILD_DIR}
rc=0
"$B/test/test_tokenizer_conformance" || rc=1
sh kvrouter/test/tokenizer/cli.sh "$B/bin/dynamo-kv" || rc=1
exit $rc
