#!/usr/bin/env bash
# Proves a GPU install in one command, in under 8 minutes: the doctor, the GPU tests, then the benchmark.
#
#     pip install -e ".[gpu,dev]" && bash benchmarks/gpu_check.sh
#
# Run from the checkout's root, in the environment minilottery is installed in. Three steps, each with its own
# time limit, stopping at the first that fails (its exit status is the script's; 124 means a limit was hit):
#   1. minilottery doctor --device gpu: CuPy, CUDA, the GPU, NVRTC, cuBLAS, cuRAND, every layer's gradient check on
#      the GPU, and a LeNet-300-100 and a Conv-2 training step against the CPU's (limit 2 minutes);
#   2. every test marked gpu (the device fixture's CuPy case included), with MINILOTTERY_REQUIRE_GPU=1 so that a
#      missing GPU fails them instead of skipping them (limit 4 minutes);
#   3. minilottery bench --device gpu, without the sparse section (SciPy on the CPU, nothing of the GPU's)
#      (limit 2 minutes).
set -euo pipefail

step() {  # step TITLE SECONDS COMMAND...: runs COMMAND under a time limit, says which step failed
    local title=$1 limit=$2
    shift 2
    echo "== $title"
    timeout "$limit" "$@" || { status=$?; echo "gpu_check: '$title' failed (exit $status)" >&2; exit "$status"; }
}

step "minilottery doctor --device gpu" 120 python -m minilottery doctor --device gpu
step "GPU tests" 240 env MINILOTTERY_REQUIRE_GPU=1 python -m pytest -q -p no:cacheprovider -m gpu
step "minilottery bench --device gpu" 120 python -m minilottery bench --device gpu --no-sparse
echo "gpu_check: all three passed"
