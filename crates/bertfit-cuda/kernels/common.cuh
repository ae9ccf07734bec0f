// Shared device helpers: the counter-based random numbers of bertfit's `rng` module, bit for bit.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

// SplitMix64 finaliser (rng::mix64).
__device__ __forceinline__ uint64_t bf_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The i-th 64-bit draw of stream `key` (rng::draw).
__device__ __forceinline__ uint64_t bf_draw(uint64_t key, uint64_t i) {
    return bf_mix64(key ^ bf_mix64(i * 0x9e3779b97f4a7c15ULL + 1ULL));
}

// The i-th uniform draw in [0, 1) with 24 bits (rng::uniform_f32): exact in f32.
__device__ __forceinline__ float bf_uniform(uint64_t key, uint64_t i) {
    return (float)(bf_draw(key, i) >> 40) * (1.0f / 16777216.0f);
}

// lo + u * (hi - lo), rounded after each operation as the CPU does (no fused multiply-add).
__device__ __forceinline__ float bf_affine(float u, float lo, float hi) {
    return __fadd_rn(lo, __fmul_rn(u, __fsub_rn(hi, lo)));
}

// Grid-stride loop over 64-bit indices.
#define BF_FOR_EACH(i, n) \
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (uint64_t)gridDim.x * blockDim.x)
