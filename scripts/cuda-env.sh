# Sourced by the test scripts: builds of crates/bertfit-cuda embed stub kernels when no nvcc is reachable
# (NVCC, CUDA_ROOT/bin, .cuda-venv from scripts/setup-cuda-toolchain.sh, or PATH), so the workspace builds
# and tests on machines without CUDA.
if [ -z "${BERTFIT_CUDA_STUB_KERNELS:-}" ] && [ -z "${NVCC:-}" ] && [ ! -x "${CUDA_ROOT:-/nonexistent}/bin/nvcc" ] \
    && ! ls .cuda-venv/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1 \
    && ! command -v nvcc >/dev/null 2>&1; then
    export BERTFIT_CUDA_STUB_KERNELS=1
fi
