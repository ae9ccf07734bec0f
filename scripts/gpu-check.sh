#!/usr/bin/env bash
# The one prepared GPU run (design 5.3). Builds nothing: gpu-bundle/bertfit.xz comes from
# scripts/gpu-bundle.sh on the CPU machine and travels with the working tree (carry: gpu-bundle).
# Every stage has its own timeout and writes its file even when it fails; the whole run stays under 9 min.
#   bash scripts/gpu-check.sh [--quick] [OUT_DIR]   (OUT_DIR defaults to $OUT, else gpu-out)
# --quick skips the torch.compile baseline (~200 s): for a first call that only checks the machine and the bundle.
# Then: python3 bench/gpu_summary.py OUT_DIR >> bench/GPU.md (done by hand on the CPU machine).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
O=${1:-${OUT:-gpu-out}}
mkdir -p "$O"
W=$(mktemp -d)
B=$W/bertfit
xz -dc gpu-bundle/bertfit.xz > "$B" && chmod +x "$B" || { echo "no gpu-bundle/bertfit.xz: run scripts/gpu-bundle.sh first"; exit 1; }
# at most 8 files come back from a device call: the commit goes into device.txt, the summary to the log
cp gpu-bundle/commit.txt "$O/device.txt" 2>/dev/null
export PYTHONUNBUFFERED=1
if LIBDIR=$(python3 scripts/find-cuda-libs.py); then
    export BERTFIT_CUDA_LIB_DIR=$LIBDIR LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
echo "cuBLASLt from: ${BERTFIT_CUDA_LIB_DIR:-the loader path}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee -a "$O/device.txt"
start=$SECONDS
stage() { echo "=== $1 ($((SECONDS - start)) s in)" | tee -a "$O/run.log"; }

stage "bertfit gpu-selftest --engine (GPU engine vs CPU engine, step times, profile)"
timeout 240 "$B" gpu-selftest --engine --json "$O/engine.json" 2>&1 | tee -a "$O/run.log"

stage "the CLI on the GPU, end to end (train/resume/eval, --device cuda)"
timeout 420 bash scripts/gpu-e2e.sh "$B" "$O" 2>&1 | tee -a "$O/run.log"

stage "bertfit serve --device cuda (answers vs predict, load at 1/8/64 clients, SIGTERM)"
timeout 150 bash scripts/gpu-serve.sh "$B" "$O" 2>&1 | tee -a "$O/run.log"

stage "bench-step --device cuda (the CLI's benchmark path)"
timeout 60 "$B" bench-step B train --device cuda --precision bf16 --batch 32 --seq 128 --steps 5 2>&1 | tail -3 | tee -a "$O/run.log"

stage "bertfit gpu-selftest"
timeout 150 "$B" gpu-selftest --json "$O/selftest.json" 2>&1 | tee -a "$O/run.log"

stage "bertfit gpu-selftest at 4096 tokens (the batch-32 shapes)"
timeout 60 "$B" gpu-selftest --tokens 4096 --json "$O/selftest-4096.json" 2>&1 | tee -a "$O/run.log"

stage "PyTorch + transformers, bf16 eager"
timeout 150 python3 bench/hf_gpu.py --eager --cases bert-base:128,bert-base:128:nopad,minilm:128,bert-base:32 \
    --json "$O/hf_eager.json" 2>&1 | tee -a "$O/run.log"

if [ "$QUICK" = 0 ]; then
    stage "PyTorch + transformers, bf16 + torch.compile"
    timeout 180 python3 bench/hf_gpu.py --compile --cases bert-base:128,minilm:128,bert-base:32 \
        --json "$O/hf_compile.json" 2>&1 | tee -a "$O/run.log"
fi

stage "summary"
python3 bench/gpu_summary.py "$O" | tee -a "$O/run.log"
echo "gpu-check done in $((SECONDS - start)) s"
