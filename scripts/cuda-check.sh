#!/usr/bin/env bash
# The CUDA code without a GPU (CI runs this after scripts/test.sh): clippy over the whole workspace with the
# `cuda` feature, and the tests of the CUDA crate and of the GPU self-test's pure parts. Without nvcc the
# kernels are stubbed (BERTFIT_CUDA_STUB_KERNELS=1): everything type-checks, and asking for a GPU gives an
# error instead of a crash, which the tests check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/cuda-env.sh
cargo clippy --locked --workspace --all-targets --features bertfit-cli/cuda -- -D warnings
cargo test --locked -p bertfit-cuda
cargo test --locked -p bertfit --features cuda --lib engine::
