#!/usr/bin/env bash
# Builds the CUDA-enabled release binary on this (CPU) machine and packs it for scripts/gpu-check.sh:
# gpu-bundle/bertfit.xz (git-ignored; name `gpu-bundle` in the device tool's carry list).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-cuda-toolchain.sh >/dev/null
cargo build --release --locked -p bertfit-cli --features cuda
mkdir -p gpu-bundle
strip -o gpu-bundle/bertfit target/release/bertfit
xz -9 -T0 -f gpu-bundle/bertfit
git rev-parse HEAD > gpu-bundle/commit.txt
git status --porcelain --untracked-files=no | sed 's/^/dirty: /' >> gpu-bundle/commit.txt
ls -l gpu-bundle
