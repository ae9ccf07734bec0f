#!/usr/bin/env bash
# Installs the pinned nvcc (CUDA 13.0) from the Python package index into .cuda-venv/ (git-ignored), where
# crates/bertfit-cuda/build.rs finds it. Pinned: an unpinned nvcc pulls 13.5, whose PTX driver 580 rejects.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PINS=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-nvvm==13.0.88
      nvidia-cuda-crt==13.0.88)
if ls .cuda-venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
    echo "nvcc already in .cuda-venv" >&2
else
    python3 -m venv .cuda-venv
    .cuda-venv/bin/pip install -q "${PINS[@]}"
fi
ls .cuda-venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc
