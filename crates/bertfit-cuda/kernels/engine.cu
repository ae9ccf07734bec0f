// The engine's kernels (design 2.5, milestone M2): f32 activations, f32 statistics, fixed-order
// reductions (warp butterflies, per-chunk partials summed in chunk order), no float atomics. Dropout
// masks draw the CPU's counters: element (row, j) of a site uses `prow[row] * width + j` (packed tokens)
// or `row * width + j` (dense); attention probabilities use ((b * heads + h) * S + q) * S + k.
// Where the CPU backend's arithmetic is a plain sequence of roundings (dropout, AdamW, embedding sums),
// the kernels spell it with _rn intrinsics so nvcc cannot contract it into fused multiply-adds.
#include "common.cuh"

__device__ __forceinline__ float bf_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float bf_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// The dropout factor of counter i: `scale` when kept (uniform >= p), else 0.
__device__ __forceinline__ float bf_keep(uint64_t key, float p, float scale, uint64_t i) {
    return bf_uniform(key, i) >= p ? scale : 0.0f;
}

extern "C" __global__ void fill_f32(float* out, uint64_t n, float v) {
    BF_FOR_EACH(i, n) { out[i] = v; }
}

// The bf16 value of each element (round to nearest even), kept as f32.
extern "C" __global__ void round_bf16(const float* in, float* out, uint64_t n) {
    BF_FOR_EACH(i, n) { out[i] = __bfloat162float(__float2bfloat16_rn(in[i])); }
}

// Every row of c (rows x n) set to the bias row (a dense layer's output before its product adds in).
extern "C" __global__ void bias_rows(float* c, const float* bias, uint64_t rows, uint32_t n) {
    uint64_t total = rows * n;
    BF_FOR_EACH(i, total) { c[i] = bias[i % n]; }
}

// Column sums of x (rows x width), stage 1: block (x, y) sums rows [y * rpc, (y + 1) * rpc) of its
// columns in row order into part[y * width + j].
extern "C" __global__ void col_partials(const float* x, float* part, uint64_t rows, uint32_t width, uint32_t rpc) {
    uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    uint64_t r0 = (uint64_t)blockIdx.y * rpc;
    uint64_t r1 = min(rows, r0 + rpc);
    float acc = 0.0f;
    for (uint64_t r = r0; r < r1; ++r) acc += x[r * width + j];
    part[(uint64_t)blockIdx.y * width + j] = acc;
}

// Stage 2: out[j] (+)= sum over chunks, in chunk order.
extern "C" __global__ void col_finish(const float* part, float* out, uint32_t chunks, uint32_t width, int accumulate) {
    uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    float acc = 0.0f;
    for (uint32_t c = 0; c < chunks; ++c) acc += part[(uint64_t)c * width + j];
    out[j] = accumulate ? out[j] + acc : acc;
}

// Word + position (+ segment, when `segment` is not null) rows per packed token (the CPU's order of additions).
extern "C" __global__ void embed_sum(const uint32_t* ids, const uint32_t* pos, const uint32_t* types,
                                     const float* word, const float* position, const float* segment,
                                     float* out, uint64_t n, uint32_t width) {
    uint64_t total = n * width;
    BF_FOR_EACH(i, total) {
        uint64_t t = i / width;
        uint32_t j = (uint32_t)(i % width);
        float v = __fadd_rn(word[(uint64_t)ids[t] * width + j], position[(uint64_t)pos[t] * width + j]);
        out[i] = segment ? __fadd_rn(v, segment[(uint64_t)types[t] * width + j]) : v;
    }
}

// Embedding-table gradient, stage 1: block c sums the dy rows of tokens order[chunk_start[c] ..
// chunk_end[c]) (tokens of one table row, in order) into part[c].
extern "C" __global__ void embed_grad_chunks(const uint32_t* order, const uint32_t* chunk_start, const uint32_t* chunk_end,
                                             const float* dy, float* part, uint32_t chunks, uint32_t width) {
    uint32_t c = blockIdx.x;
    if (c >= chunks) return;
    uint32_t q0 = chunk_start[c], q1 = chunk_end[c];
    for (uint32_t j = threadIdx.x; j < width; j += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t q = q0; q < q1; ++q) acc += dy[(uint64_t)order[q] * width + j];
        part[(uint64_t)c * width + j] = acc;
    }
}

// Stage 2: block g adds the partials of its chunks (group_chunk[g] .. group_chunk[g + 1]), in order, into
// table row rows[g]. No two blocks write the same row: no atomics, a fixed order.
extern "C" __global__ void embed_grad_rows(const uint32_t* group_chunk, const uint32_t* rows, const float* part,
                                           float* table, uint32_t groups, uint32_t width) {
    uint32_t g = blockIdx.x;
    if (g >= groups) return;
    uint32_t c0 = group_chunk[g], c1 = group_chunk[g + 1];
    float* dst = table + (uint64_t)rows[g] * width;
    for (uint32_t j = threadIdx.x; j < width; j += blockDim.x) {
        float acc = 0.0f;
        for (uint32_t c = c0; c < c1; ++c) acc += part[(uint64_t)c * width + j];
        dst[j] += acc;
    }
}

// One warp per row: mean and variance in two passes, then the normalised row.
extern "C" __global__ void layer_norm_fwd(const float* x, const float* w, const float* b, float* out,
                                          uint64_t rows, uint32_t width, float eps) {
    uint64_t r = (uint64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    uint32_t lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float* xr = x + r * width;
    float s = 0.0f;
    for (uint32_t j = lane; j < width; j += 32) s += xr[j];
    float mean = bf_warp_sum(s) / (float)width;
    float v = 0.0f;
    for (uint32_t j = lane; j < width; j += 32) {
        float d = xr[j] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(bf_warp_sum(v) / (float)width + eps);
    float* o = out + r * width;
    for (uint32_t j = lane; j < width; j += 32) o[j] = (xr[j] - mean) * rstd * w[j] + b[j];
}

// LayerNorm backward, input gradient (one warp per row); keeps mean and 1/std per row in stats for
// layer_norm_partials.
extern "C" __global__ void layer_norm_bwd(const float* x, const float* w, const float* dy, float* dx, float* stats,
                                          uint64_t rows, uint32_t width, float eps) {
    uint64_t r = (uint64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    uint32_t lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float* xr = x + r * width;
    const float* gr = dy + r * width;
    float s = 0.0f;
    for (uint32_t j = lane; j < width; j += 32) s += xr[j];
    float mean = bf_warp_sum(s) / (float)width;
    float v = 0.0f;
    for (uint32_t j = lane; j < width; j += 32) {
        float d = xr[j] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(bf_warp_sum(v) / (float)width + eps);
    float sg = 0.0f, sgx = 0.0f;
    for (uint32_t j = lane; j < width; j += 32) {
        float g = gr[j] * w[j];
        sg += g;
        sgx += g * (xr[j] - mean) * rstd;
    }
    float mg = bf_warp_sum(sg) / (float)width;
    float mgx = bf_warp_sum(sgx) / (float)width;
    float* o = dx + r * width;
    for (uint32_t j = lane; j < width; j += 32) {
        float xh = (xr[j] - mean) * rstd;
        o[j] = rstd * (gr[j] * w[j] - mg - xh * mgx);
    }
    if (lane == 0) {
        stats[2 * r] = mean;
        stats[2 * r + 1] = rstd;
    }
}

// LayerNorm weight and bias gradient partials (as col_partials): Σ dy · x̂ and Σ dy over a row chunk.
extern "C" __global__ void layer_norm_partials(const float* x, const float* dy, const float* stats, float* pw, float* pb,
                                               uint64_t rows, uint32_t width, uint32_t rpc) {
    uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= width) return;
    uint64_t r0 = (uint64_t)blockIdx.y * rpc;
    uint64_t r1 = min(rows, r0 + rpc);
    float aw = 0.0f, ab = 0.0f;
    for (uint64_t r = r0; r < r1; ++r) {
        float g = dy[r * width + j];
        aw += g * (x[r * width + j] - stats[2 * r]) * stats[2 * r + 1];
        ab += g;
    }
    pw[(uint64_t)blockIdx.y * width + j] = aw;
    pb[(uint64_t)blockIdx.y * width + j] = ab;
}

// out = a · mask (+ res) over rows of width; `a` may be `out` (in place); res may be null; drop = 0 is a
// plain copy or sum. prow (may be null: dense counters) maps packed token rows to padded rows.
extern "C" __global__ void dropout_rows(const float* a, const float* res, float* out, const uint32_t* prow,
                                        uint64_t rows, uint32_t width, uint64_t key, float p, float scale, int drop) {
    uint64_t total = rows * width;
    BF_FOR_EACH(i, total) {
        float v = a[i];
        if (drop) {
            uint64_t r = i / width;
            uint64_t base = prow ? (uint64_t)prow[r] * width : r * width;
            v = __fmul_rn(v, bf_keep(key, p, scale, base + i % width));
        }
        if (res) v = __fadd_rn(v, res[i]);
        out[i] = v;
    }
}

// Activations: 0 GELU (erf), 1 GELU (tanh), 2 ReLU, 3 tanh.
__device__ __forceinline__ float bf_act(int kind, float v) {
    switch (kind) {
        case 0: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
        case 1: return 0.5f * v * (1.0f + tanhf(0.7978846f * v * (1.0f + 0.044715f * v * v)));
        case 2: return fmaxf(v, 0.0f);
        default: return tanhf(v);
    }
}

__device__ __forceinline__ float bf_act_grad(int kind, float v) {
    switch (kind) {
        case 0: return 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143268f * expf(-0.5f * v * v);
        case 1: {
            float t = tanhf(0.7978846f * v * (1.0f + 0.044715f * v * v));
            return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * 0.7978846f * (1.0f + 3.0f * 0.044715f * v * v);
        }
        case 2: return v > 0.0f ? 1.0f : 0.0f;
        default: {
            float t = tanhf(v);
            return 1.0f - t * t;
        }
    }
}

extern "C" __global__ void activation_fwd(int kind, const float* x, float* out, uint64_t n) {
    BF_FOR_EACH(i, n) { out[i] = bf_act(kind, x[i]); }
}

extern "C" __global__ void activation_bwd(int kind, const float* x, const float* dy, float* dx, uint64_t n) {
    BF_FOR_EACH(i, n) { dx[i] = dy[i] * bf_act_grad(kind, x[i]); }
}

// Attention (f32 or bf16 operands): heads packed into [sequences x heads, L, d] blocks (L the batch's longest sequence,
// rows past a sequence's end zero), scores and products by strided-batched cuBLASLt, softmax and its
// backward one warp per score row.

// Element x of the packed [B·heads, L, d] blocks: its token row in the packed sequence (-1 past the
// sequence's end) and its column h * d + j of a [N, H] block.
struct BfHeadAt {
    int64_t token;
    uint64_t col;
};

__device__ __forceinline__ BfHeadAt bf_head_at(uint64_t x, const uint32_t* cu, uint32_t heads, uint32_t d, uint32_t L) {
    uint32_t j = (uint32_t)(x % d);
    uint64_t r = x / d;
    uint32_t i = (uint32_t)(r % L);
    uint64_t bh = r / L;
    uint32_t b = (uint32_t)(bh / heads), h = (uint32_t)(bh % heads);
    uint32_t s0 = cu[b], len = cu[b + 1] - s0;
    return BfHeadAt{i < len ? (int64_t)(s0 + i) : -1, (uint64_t)h * d + j};
}

__device__ __forceinline__ void bf_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void bf_store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// dst[bh][i][j] = src[(cu[b] + i) * src_row + h * d + j] for i < len(b), else 0 (bh = b * heads + h), as f32
// or rounded to bf16 (the operands of bf16 attention products).
template <typename T>
__device__ __forceinline__ void bf_heads_pack(const float* src, uint64_t src_row, T* dst, const uint32_t* cu,
                                              uint32_t heads, uint32_t d, uint32_t L, uint64_t total) {
    BF_FOR_EACH(x, total) {
        BfHeadAt at = bf_head_at(x, cu, heads, d, L);
        bf_store(dst + x, at.token >= 0 ? src[(uint64_t)at.token * src_row + at.col] : 0.0f);
    }
}

extern "C" __global__ void heads_pack(const float* src, uint64_t src_row, float* dst, const uint32_t* cu,
                                      uint32_t heads, uint32_t d, uint32_t L, uint64_t total) {
    bf_heads_pack(src, src_row, dst, cu, heads, d, L, total);
}

extern "C" __global__ void heads_pack_bf16(const float* src, uint64_t src_row, __nv_bfloat16* dst, const uint32_t* cu,
                                           uint32_t heads, uint32_t d, uint32_t L, uint64_t total) {
    bf_heads_pack(src, src_row, dst, cu, heads, d, L, total);
}

// The inverse for rows inside their sequence: dst[(cu[b] + i) * dst_row + h * d + j] = src[bh][i][j].
extern "C" __global__ void heads_unpack(const float* src, float* dst, uint64_t dst_row, const uint32_t* cu,
                                        uint32_t heads, uint32_t d, uint32_t L, uint64_t total) {
    BF_FOR_EACH(x, total) {
        BfHeadAt at = bf_head_at(x, cu, heads, d, L);
        if (at.token >= 0) dst[(uint64_t)at.token * dst_row + at.col] = src[x];
    }
}

// One warp per score row (bh, i) of s ([rows = B·heads·L] x L): P = softmax(scale · s) over the sequence's
// keys, 0 past them and on rows past the sequence. With pd: s gets P and pd the dropped P̃; without: s gets P̃.
extern "C" __global__ void attn_softmax(float* s, float* pd, const uint32_t* cu, uint32_t heads, uint32_t L, float scale,
                                        uint32_t padded, uint64_t key, float p, float keep, int drop, uint64_t rows,
                                        __nv_bfloat16* out16) {
    uint64_t r = (uint64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    uint32_t lane = threadIdx.x & 31;
    if (r >= rows) return;
    uint64_t bh = r / L;
    uint32_t i = (uint32_t)(r % L);
    uint32_t b = (uint32_t)(bh / heads);
    uint32_t len = cu[b + 1] - cu[b];
    float* row = s + r * L;
    float* drow = pd ? pd + r * L : nullptr;
    __nv_bfloat16* row16 = out16 ? out16 + r * L : nullptr;
    if (i >= len) {
        for (uint32_t k = lane; k < L; k += 32) {
            row[k] = 0.0f;
            if (drow) drow[k] = 0.0f;
            if (row16) row16[k] = __float2bfloat16_rn(0.0f);
        }
        return;
    }
    float mx = -INFINITY;
    for (uint32_t k = lane; k < len; k += 32) {
        float v = row[k] * scale;
        row[k] = v;
        mx = fmaxf(mx, v);
    }
    mx = bf_warp_max(mx);
    float sum = 0.0f;
    for (uint32_t k = lane; k < len; k += 32) {
        float e = expf(row[k] - mx);
        row[k] = e;
        sum += e;
    }
    float inv = 1.0f / bf_warp_sum(sum);
    uint64_t base = (bh * padded + i) * (uint64_t)padded;
    for (uint32_t k = lane; k < L; k += 32) {
        float pv = k < len ? row[k] * inv : 0.0f;
        float dv = (drop && k < len) ? pv * bf_keep(key, p, keep, base + k) : pv;
        if (drow) {
            row[k] = pv;
            drow[k] = dv;
        } else {
            row[k] = dv;
        }
        // the product after this one reads P̃ (the dropped probabilities)
        if (row16) row16[k] = __float2bfloat16_rn(dv);
    }
}

// Backward through dropout and softmax, one warp per row: dp holds dP̃ = dO Vᵀ on entry, and on exit
// dS = scale · P ∘ (dP − Σ_k P dP) with dP = dP̃ ∘ mask; 0 outside the sequence.
extern "C" __global__ void attn_softmax_bwd(const float* pm, float* dp, const uint32_t* cu, uint32_t heads, uint32_t L,
                                            float scale, uint32_t padded, uint64_t key, float p, float keep, int drop,
                                            uint64_t rows, __nv_bfloat16* out16) {
    uint64_t r = (uint64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    uint32_t lane = threadIdx.x & 31;
    if (r >= rows) return;
    uint64_t bh = r / L;
    uint32_t i = (uint32_t)(r % L);
    uint32_t b = (uint32_t)(bh / heads);
    uint32_t len = cu[b + 1] - cu[b];
    float* row = dp + r * L;
    const float* prow = pm + r * L;
    __nv_bfloat16* row16 = out16 ? out16 + r * L : nullptr;
    if (i >= len) {
        for (uint32_t k = lane; k < L; k += 32) {
            row[k] = 0.0f;
            if (row16) row16[k] = __float2bfloat16_rn(0.0f);
        }
        return;
    }
    uint64_t base = (bh * padded + i) * (uint64_t)padded;
    float dot = 0.0f;
    for (uint32_t k = lane; k < len; k += 32) {
        float g = row[k];
        if (drop) g *= bf_keep(key, p, keep, base + k);
        row[k] = g;
        dot += prow[k] * g;
    }
    dot = bf_warp_sum(dot);
    for (uint32_t k = lane; k < L; k += 32) {
        float ds = k < len ? scale * prow[k] * (row[k] - dot) : 0.0f;
        row[k] = ds;
        if (row16) row16[k] = __float2bfloat16_rn(ds);
    }
}

// Pooling over packed sequences (block b = sequence b): first token or mean (f64 sum, as the CPU).
extern "C" __global__ void pool_fwd(const float* x, float* out, const uint32_t* cu, uint32_t width, int mean) {
    uint32_t b = blockIdx.x;
    uint32_t s0 = cu[b], s1 = cu[b + 1];
    for (uint32_t j = threadIdx.x; j < width; j += blockDim.x) {
        float v = 0.0f;
        if (s1 > s0) {
            if (!mean) {
                v = x[(uint64_t)s0 * width + j];
            } else {
                double acc = 0.0;
                for (uint32_t t = s0; t < s1; ++t) acc += (double)x[(uint64_t)t * width + j];
                v = (float)(acc / (double)(s1 - s0));
            }
        }
        out[(uint64_t)b * width + j] = v;
    }
}

// Its gradient, added into dx (token rows).
extern "C" __global__ void pool_bwd(const float* dy, float* dx, const uint32_t* cu, uint32_t width, int mean) {
    uint32_t b = blockIdx.x;
    uint32_t s0 = cu[b], s1 = cu[b + 1];
    if (s1 == s0) return;
    uint32_t end = mean ? s1 : s0 + 1;
    float scale = mean ? 1.0f / (float)(s1 - s0) : 1.0f;
    for (uint32_t j = threadIdx.x; j < width; j += blockDim.x) {
        float g = __fmul_rn(dy[(uint64_t)b * width + j], scale);
        for (uint32_t t = s0; t < end; ++t) dx[(uint64_t)t * width + j] = __fadd_rn(dx[(uint64_t)t * width + j], g);
    }
}

// Σ x² in f64 over segments of one region, stage 1: block (i, s) of a fixed grid sums its grid-stride
// share of segment s (seg[2s] offset, seg[2s + 1] length, in elements of base) into part[s * gridDim.x + i]
// through a shared-memory tree in a fixed order. The host adds the partials in order.
extern "C" __global__ void sum_sq_segments(const float* base, const uint64_t* seg, double* part) {
    __shared__ double sh[256];
    const float* x = base + seg[2 * blockIdx.y];
    uint64_t n = seg[2 * blockIdx.y + 1];
    double acc = 0.0;
    BF_FOR_EACH(i, n) { acc += (double)x[i] * (double)x[i]; }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (uint32_t s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[(uint64_t)blockIdx.y * gridDim.x + blockIdx.x] = sh[0];
}

// AdamW on one segment (ops::adamw's roundings), then the gradient zeroed for the next accumulation.
extern "C" __global__ void adamw_step(float* w, float* g, float* m, float* v, uint64_t n, float lr, float decay,
                                      float beta1, float beta2, float eps, float bias1, float bias2_sqrt, float grad_scale) {
    float step = __fdiv_rn(lr, bias1);
    float lr_decay = __fmul_rn(lr, decay);
    float c1 = __fsub_rn(1.0f, beta1), c2 = __fsub_rn(1.0f, beta2);
    BF_FOR_EACH(i, n) {
        float gi = __fmul_rn(g[i], grad_scale);
        float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(c1, gi));
        float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(c2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float x = w[i];
        x = __fsub_rn(x, __fmul_rn(lr_decay, x));
        float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bias2_sqrt), eps);
        x = __fsub_rn(x, __fdiv_rn(__fmul_rn(step, mi), den));
        w[i] = x;
        g[i] = 0.0f;
    }
}
