#!/bin/sh
# make bench-gpu: the cuda backend on a Llama 3.1 8B-shaped random BF16
# model (bench/gpu/README.md). Without CUDA in the build or without a GPU
# it says so and succeeds. Usage: sh bench/gpu/run.sh BUILD_DIR
set -eu
B=${1:-build}
bench=$B/bin/dw-cuda-bench
if [ ! -x "$bench" ]; then
    echo "bench-gpu: skipped: this build has no CUDA backend (no nvcc)"
    exit 0
fi
if ! dev=$("$bench" --probe 2>&1); then
    echo "bench-gpu: skipped: $dev"
    exit 0
fi
echo "bench-gpu: $dev"
model=$B/bench/llama8b
mkdir -p "$B/bench"
if [ ! -f "$model/config.json" ]; then
    "$B/bin/dynamo-mkmodel" --out "$model" --hidden 4096 --layers 32 \
        --heads 32 --kv-heads 8 --intermediate 14336 --vocab 128256 \
        --max-pos 131072 --rope-theta 500000 --rope-llama3 8 --dtype bf16
fi
"$bench" --model "$model" --batches "${GPU_BATCHES:-1,64,256}" \
    --ctx "${GPU_CTX:-1024}" --prompt "${GPU_PROMPT:-4096}" \
    --steps "${GPU_STEPS:-32}" --out "$B/bench/gpu.json"

# The baseline: PyTorch's forward pass of the same model on the same GPU,
# eager and torch.compile'd, after checking that forward pass against the
# embedded model's known greedy output (models/stories260K/README.md).
here=$(dirname "$0")
if ! python3 -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' \
        2>/dev/null; then
    echo "bench-gpu: no PyTorch with CUDA here: the baseline is skipped"
    python3 "$here/compare.py" "$B/bench/gpu.json"
    exit 0
fi
want="432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295"
got=$(python3 "$here/torch_ref.py" --model models/stories260K --dtype f32 \
      --check "1 403 407 261 378" --check-steps 25)
if [ "$got" != "$want" ]; then
    echo "bench-gpu: torch_ref.py's forward pass is wrong on stories260K:" >&2
    echo "  got  $got" >&2
    echo "  want $want" >&2
    exit 1
fi
echo "bench-gpu: torch_ref.py reproduces stories260K's greedy output"
set -- --model "$model" --batches "${GPU_BATCHES:-1,64,256}" \
    --ctx "${GPU_CTX:-1024}" --prompt "${GPU_PROMPT:-4096}" \
    --steps "${GPU_STEPS:-32}"
python3 "$here/torch_ref.py" "$@" --out "$B/bench/gpu-torch.json"
python3 "$here/torch_ref.py" "$@" --compile \
    --out "$B/bench/gpu-torch-compile.json"
python3 "$here/compare.py" "$B/bench/gpu.json" "$B/bench/gpu-torch.json" \
    "$B/bench/gpu-torch-compile.json" --out "$B/bench/gpu-compare.json"
