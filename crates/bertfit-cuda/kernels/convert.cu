// Precision conversions: f32 masters to the bf16 operand copy (round to nearest even).
#include "common.cuh"

extern "C" __global__ void f32_to_bf16(const float* in, __nv_bfloat16* out, uint64_t n) {
    BF_FOR_EACH(i, n) { out[i] = __float2bfloat16_rn(in[i]); }
}
