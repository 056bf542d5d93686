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
# the PyTorch baseline (bench/gpu/torch_ref.py) is still to come
