#!/usr/bin/env bash
# The CUDA code without a GPU (CI runs this after scripts/test.sh): builds every target of the workspace
# with the `cuda` feature (the CLI included, so everything type-checks) and runs the CUDA crate's tests and
# the GPU self-test's pure tests. It reuses the dependencies scripts/test.sh built (same features), so it
# costs the workspace crates only. Without nvcc the kernels are stubbed (BERTFIT_CUDA_STUB_KERNELS=1):
# asking for a GPU then gives an error instead of a crash, which a test checks.
# With --clippy it also runs clippy with the feature (-D warnings): slower on a cold cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/cuda-env.sh
cargo test --locked --workspace --features bertfit-cli/cuda -- engine:: memory:: launch:: blaslt:: device::
if [ "${1:-}" = "--clippy" ]; then
    cargo clippy --locked --workspace --all-targets --features bertfit-cli/cuda -- -D warnings
fi
