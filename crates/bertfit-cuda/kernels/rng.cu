// Random fills from the counter-based stream: element i of the output is draw i of `key`, so a fill
// equals the CPU's `rng::uniform_f32(key, i)` bit for bit, whatever the grid.
#include "common.cuh"

extern "C" __global__ void fill_uniform_f32(float* out, uint64_t n, uint64_t key, float lo, float hi) {
    BF_FOR_EACH(i, n) { out[i] = bf_affine(bf_uniform(key, i), lo, hi); }
}

// The same values rounded to bf16 (round to nearest even).
extern "C" __global__ void fill_uniform_bf16(__nv_bfloat16* out, uint64_t n, uint64_t key, float lo, float hi) {
    BF_FOR_EACH(i, n) { out[i] = __float2bfloat16_rn(bf_affine(bf_uniform(key, i), lo, hi)); }
}

// Throughput probe for dropout-style draws: thread t takes draws [t * per_thread, (t + 1) * per_thread)
// and writes how many fell below `p` (so nothing is optimised away and the CPU can check a few threads).
extern "C" __global__ void count_below(uint32_t* out, uint64_t threads, uint64_t per_thread, uint64_t key, float p) {
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= threads) return;
    uint32_t below = 0;
    for (uint64_t j = 0; j < per_thread; ++j) {
        below += bf_uniform(key, t * per_thread + j) < p;
    }
    out[t] = below;
}
