// CUDA backend for training: a general matmul and the backward of every op of
// the model, with the contracts of kernels/ref/ref.h (and kernels/cpu/cpu_train.h):
// parameter gradients ACCUMULATE (+=), input gradients are WRITTEN (=), a NULL
// gradient pointer skips that gradient. All arrays are fp32 device buffers;
// bf16 rounds the matmul operands into scratch first (fp32 master weights),
// accumulates in fp32, and keeps every element-wise op and reduction in fp32.
// Column reductions (dgamma, dbias) run in two fixed passes: each block of rows
// writes its partial sums into the context's scratch (colsum_partial_kernel, or
// the producer of the gradient itself: grad_rows_bf16_kernel,
// layernorm_backward_fused), then colsum_final_kernel adds the partials in a
// fixed order: deterministic, no atomics, and enough threads to fill the GPU
// when the columns are few and the rows many (a ViT-L bias gradient: 1024
// columns, 18k rows at batch 32).
#include "kernels/cuda/gpu_internal.h"
#include "kernels/cuda/gpu_gelu.cuh"
#include "kernels/cuda/gpu_vec.cuh"
#include <cuda_bf16.h>
#include <math.h>

namespace {

constexpr int kThreads = 256;
unsigned blocks_for(size_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Also writes v, rounded, into the bf16 copy y16[i] when there is one: a
// producer of a gradient that feeds bf16 GEMMs hands them their operand,
// saving the consumer a pass over it (the same bits as gpu_to_bf16).
__device__ __forceinline__ void put16(void *y16, size_t i, float v) {
    if (y16) static_cast<__nv_bfloat16 *>(y16)[i] = __float2bfloat16_rn(v);
}

constexpr int kRowBlock = 128;
size_t row_blocks(size_t n) { return (n + kRowBlock - 1) / kRowBlock; }

// part[r, k] = sum of dy[i, k] over the rows i of row block r (grid.y = r).
__global__ void colsum_partial_kernel(float *part, const float *dy, size_t n, int c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= c) return;
    size_t lo = (size_t)blockIdx.y * kRowBlock, hi = lo + kRowBlock < n ? lo + kRowBlock : n;
    float s = 0;
    for (size_t i = lo; i < hi; i++) s += dy[i * c + k];
    part[(size_t)blockIdx.y * c + k] = s;
}

// db[k] += sum over r < nr of part[r, k] (db NULL: nothing). A block takes 32
// columns with 8 row groups: group y sums rows y, y + 8, ... in order, then
// group 0 adds the 8 sums in order (fixed: deterministic). One thread per
// column walking all nr rows was latency-bound: 4 blocks for a ViT-L bias,
// hundreds of dependent loads each, several times per block's backward.
constexpr int kFinalGroups = 8;
__global__ void colsum_final_kernel(float *db, const float *part, size_t nr, int c) {
    __shared__ float sums[kFinalGroups * 32];
    int k = blockIdx.x * 32 + threadIdx.x, y = threadIdx.y;
    float s = 0;
    if (k < c)
        for (size_t r = y; r < nr; r += kFinalGroups) s += part[r * c + k];
    sums[y * 32 + threadIdx.x] = s;
    __syncthreads();
    if (y != 0 || k >= c || !db) return;
    float t = 0;
    for (int j = 0; j < kFinalGroups; j++) t += sums[j * 32 + threadIdx.x];
    db[k] += t;
}
void launch_colsum_final(cudaStream_t st, float *db, const float *part, size_t nr, int c) {
    if (db) colsum_final_kernel<<<(unsigned)((c + 31) / 32), dim3(32, kFinalGroups), 0, st>>>(db, part, nr, c);
}

__global__ void gelu_backward_kernel(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = gelu_grad_of(x[i]);
    dx[i] = dy[i] * d;
}

// The bf16 training's GELU (cpu_gelu_bf16's arithmetic): y = bf16(gelu(x)) and
// dgelu = bf16(gelu'(x)), both saved for the backward, so the fp32 pre-activation
// is read once here and never again. Four values per thread (n % 4 == 0) or one.
__global__ void gelu_bf16_kernel(__nv_bfloat16 *y, __nv_bfloat16 *dgelu, const float *x, size_t n) {
    size_t i = 4 * ((size_t)blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= n) return;
    if (n % 4 == 0) {
        float v[4], a[4], d[4];
        load4(v, x + i);
        for (int k = 0; k < 4; k++) a[k] = gelu_of(v[k]), d[k] = gelu_grad_of(v[k]);
        store4(y + i, a);
        store4(dgelu + i, d);
        return;
    }
    for (size_t k = i; k < i + 4 && k < n; k++) {
        y[k] = __float2bfloat16_rn(gelu_of(x[k]));
        dgelu[k] = __float2bfloat16_rn(gelu_grad_of(x[k]));
    }
}

// The bf16 training's output gradients (cpu_train.h's grad_rows_bf16): g =
// dy * s[i / per] * mul (s, mul optional: the drop-path scale of row i's sample, GELU's saved
// derivative), written rounded into dst [n, c] bf16, and its column sums over
// row block blockIdx.y into part (the bias gradient's partials): the fp32 g
// never reaches memory. Four columns per thread (c % 4 == 0) or one.
constexpr int kGradRows = 32;   // 577 row blocks at ViT-L batch 32: fills the GPU
__global__ void grad_rows_bf16_kernel(__nv_bfloat16 *dst, float *part, const float *dy, const __nv_bfloat16 *mul,
                                      const float *rowscale, size_t per, int n, int c) {
    int v4 = c % 4 == 0, w = v4 ? 4 : 1, k = w * (blockIdx.x * blockDim.x + threadIdx.x);
    if (k >= c) return;
    int lo = blockIdx.y * kGradRows, hi = lo + kGradRows < n ? lo + kGradRows : n;
    float acc[4] = {0, 0, 0, 0};
    for (int i = lo; i < hi; i++) {
        size_t o = (size_t)i * c + k;
        float s = rowscale ? rowscale[i / per] : 1.0f, g[4] = {0, 0, 0, 0}, m[4] = {1, 1, 1, 1};
        if (v4) {
            load4(g, dy + o);
            if (mul) load4(m, mul + o);
        } else {
            g[0] = dy[o];
            if (mul) m[0] = __bfloat162float(mul[o]);
        }
        // __fmul_rn: the sums add the very products that are rounded (no FMA contraction).
        for (int j = 0; j < w; j++) g[j] = __fmul_rn(__fmul_rn(s, g[j]), m[j]), acc[j] += g[j];
        if (v4) store4(dst + o, g);
        else dst[o] = __float2bfloat16_rn(g[0]);
    }
    for (int j = 0; j < w; j++) part[(size_t)blockIdx.y * c + k + j] = acc[j];
}

// One warp per row: mean/rstd (saved for the column pass), then dx (written,
// or with acc added to it: a residual's gradient, saving a pass over it).
__global__ void layernorm_backward_rows(float *dx, float *stats, const float *dy, const float *x,
                                        const float *g, int n, int c, float eps, int acc) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n) return;
    const float *xr = x + (size_t)row * c, *dyr = dy + (size_t)row * c;
    float s = 0;
    for (int k = lane; k < c; k += 32) s += xr[k];
    float mean = warp_sum(s) / c, v = 0;
    for (int k = lane; k < c; k += 32) v += (xr[k] - mean) * (xr[k] - mean);
    float rstd = rsqrtf(warp_sum(v) / c + eps);
    if (lane == 0) stats[2 * row] = mean, stats[2 * row + 1] = rstd;
    if (!dx) return;
    float s1 = 0, s2 = 0;
    for (int k = lane; k < c; k += 32) {
        float xh = (xr[k] - mean) * rstd, dxh = dyr[k] * g[k];
        s1 += dxh;
        s2 += dxh * xh;
    }
    s1 = warp_sum(s1) / c;
    s2 = warp_sum(s2) / c;
    for (int k = lane; k < c; k += 32) {
        float xh = (xr[k] - mean) * rstd;
        // __fmul_rn: never contracted with the add, so acc gives the bits of a
        // write followed by a separate addition.
        float v = __fmul_rn(rstd, dyr[k] * g[k] - s1 - xh * s2);
        size_t o = (size_t)row * c + k;
        dx[o] = acc ? dx[o] + v : v;
    }
}

// LayerNorm backward with its column sums in the same pass, for c % 32 == 0 and
// c <= 32 * kLnMaxPerLane (ViT-S/B/L's 384, 768, 1024): layernorm_backward_rows'
// arithmetic for dx, and lane l of each warp keeps columns l,
// l + 32, ... of the row in registers (one read of x and dy, where the row
// kernel and then layernorm_backward_cols read them twice from memory) and
// sums dy * x_hat and dy over the warp's rows; the block's warps then add
// their sums in order (shared memory) into pg, pb [gridDim.x, c]: the column
// partials of kLnRows rows. Rows of a warp: w, w + kLnWarps, ... of the block's.
constexpr int kLnMaxPerLane = 32, kLnWarps = 4, kLnRows = 32;
__global__ void __launch_bounds__(32 * kLnWarps) layernorm_backward_fused(float *dx, float *pg, float *pb,
                                                                         const float *dy, const float *x,
                                                                         const float *g, int n, int c, float eps,
                                                                         int acc) {
    __shared__ float sg_all[kLnWarps * kLnMaxPerLane * 32];
    __shared__ float sb_all[kLnWarps * kLnMaxPerLane * 32];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, per = c / 32;
    float ag[kLnMaxPerLane], ab[kLnMaxPerLane];
#pragma unroll
    for (int j = 0; j < kLnMaxPerLane; j++) ag[j] = 0, ab[j] = 0;
    int lo = blockIdx.x * kLnRows, hi = lo + kLnRows < n ? lo + kLnRows : n;
    for (int row = lo + warp; row < hi; row += kLnWarps) {
        const float *xr = x + (size_t)row * c, *dyr = dy + (size_t)row * c;
        float xv[kLnMaxPerLane], dv[kLnMaxPerLane], s = 0;
#pragma unroll
        for (int j = 0; j < kLnMaxPerLane; j++)
            if (j < per) xv[j] = xr[lane + 32 * j], dv[j] = dyr[lane + 32 * j];
#pragma unroll
        for (int j = 0; j < kLnMaxPerLane; j++)
            if (j < per) s += xv[j];
        float mean = warp_sum(s) / c, v = 0;
#pragma unroll
        for (int j = 0; j < kLnMaxPerLane; j++)
            if (j < per) v += (xv[j] - mean) * (xv[j] - mean);
        float rstd = rsqrtf(warp_sum(v) / c + eps), s1 = 0, s2 = 0;
#pragma unroll
        for (int j = 0; j < kLnMaxPerLane; j++)
            if (j < per) {
                float xh = (xv[j] - mean) * rstd, dxh = dv[j] * g[lane + 32 * j];
                s1 += dxh;
                s2 += dxh * xh;
                ag[j] += dv[j] * (xv[j] - mean) * rstd;
                ab[j] += dv[j];
            }
        s1 = warp_sum(s1) / c;
        s2 = warp_sum(s2) / c;
        if (!dx) continue;
#pragma unroll
        for (int j = 0; j < kLnMaxPerLane; j++)
            if (j < per) {
                int k = lane + 32 * j;
                float xh = (xv[j] - mean) * rstd;
                float r = __fmul_rn(rstd, dv[j] * g[k] - s1 - xh * s2);   // as layernorm_backward_rows
                size_t o = (size_t)row * c + k;
                dx[o] = acc ? dx[o] + r : r;
            }
    }
    if (!pg) return;
#pragma unroll
    for (int j = 0; j < kLnMaxPerLane; j++)
        if (j < per) sg_all[(warp * kLnMaxPerLane + j) * 32 + lane] = ag[j], sb_all[(warp * kLnMaxPerLane + j) * 32 + lane] = ab[j];
    __syncthreads();
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
        int j = k / 32, l = k % 32;
        float tg = 0, tb = 0;
        for (int w = 0; w < kLnWarps; w++)
            tg += sg_all[(w * kLnMaxPerLane + j) * 32 + l], tb += sb_all[(w * kLnMaxPerLane + j) * 32 + l];
        pg[(size_t)blockIdx.x * c + k] = tg;
        pb[(size_t)blockIdx.x * c + k] = tb;
    }
}

// Partial column sums of dy * x_hat (pg) and dy (pb) over row block blockIdx.y.
__global__ void layernorm_backward_cols(float *pg, float *pb, const float *dy, const float *x, const float *stats,
                                        int n, int c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= c) return;
    int lo = blockIdx.y * kRowBlock, hi = lo + kRowBlock < n ? lo + kRowBlock : n;
    float sg = 0, sb = 0;
    for (int i = lo; i < hi; i++) {
        float d = dy[(size_t)i * c + k];
        sg += d * (x[(size_t)i * c + k] - stats[2 * i]) * stats[2 * i + 1];
        sb += d;
    }
    pg[(size_t)blockIdx.y * c + k] = sg;
    pb[(size_t)blockIdx.y * c + k] = sb;
}

// One thread per channel (n is the batch: small).
__global__ void batchnorm_train_kernel(float *y, float *mean, float *rstd, const float *x, const float *g,
                                       const float *b, float *rmean, float *rvar, int n, int c, float eps,
                                       float momentum) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= c) return;
    float m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[(size_t)i * c + k];
    m /= n;
    for (int i = 0; i < n; i++) {
        float d = x[(size_t)i * c + k] - m;
        v += d * d;
    }
    float var = v / n, r = rsqrtf(var + eps);
    for (int i = 0; i < n; i++) y[(size_t)i * c + k] = (x[(size_t)i * c + k] - m) * r * g[k] + b[k];
    if (mean) mean[k] = m;
    if (rstd) rstd[k] = r;
    float unbiased = n > 1 ? v / (n - 1) : var;
    if (rmean) rmean[k] = (1.0f - momentum) * rmean[k] + momentum * m;
    if (rvar) rvar[k] = (1.0f - momentum) * rvar[k] + momentum * unbiased;
}

__global__ void batchnorm_backward_kernel(float *dx, float *dg, float *db, const float *dy, const float *x,
                                          const float *mean, const float *rstd, const float *g, int n, int c) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= c) return;
    float s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * c + k;
        s1 += dy[o];
        s2 += dy[o] * (x[o] - mean[k]) * rstd[k];
    }
    if (dg) dg[k] += s2;
    if (db) db[k] += s1;
    if (!dx) return;
    float a = s1 / n, bb = s2 / n, gr = g[k] * rstd[k];
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * c + k;
        dx[o] = gr * (dy[o] - a - (x[o] - mean[k]) * rstd[k] * bb);
    }
}

template <typename T>
__device__ __forceinline__ void put(T *p, size_t i, float v);
template <>
__device__ __forceinline__ void put<float>(float *p, size_t i, float v) { p[i] = v; }
template <>
__device__ __forceinline__ void put<__nv_bfloat16>(__nv_bfloat16 *p, size_t i, float v) {
    p[i] = __float2bfloat16_rn(v);
}

// x [B, T, H*hd] -> [B, H, T, hd] in T (dout's heads, as q/k/v are split)
template <typename T>
__global__ void split_heads_kernel(T *dst, const float *x, int B, int Tn, int H, int hd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Tn * H * hd) return;
    int e = (int)(i % hd), h = (int)(i / hd % H);
    size_t t = i / ((size_t)hd * H) % Tn, b = i / ((size_t)hd * H * Tn);
    put(dst, ((b * H + h) * Tn + t) * hd + e, x[i]);
}

// dq, dk, dv [B, H, T, hd] -> dqkv [B, T, 3, H, hd]
__global__ void merge_qkv_kernel(float *dqkv, void *dqkv16, const float *dq, const float *dk, const float *dv, int B,
                                 int Tn, int H, int hd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * Tn * 3 * H * hd) return;
    int e = (int)(i % hd), h = (int)(i / hd % H), s = (int)(i / ((size_t)hd * H) % 3);
    size_t t = i / ((size_t)hd * H * 3) % Tn, b = i / ((size_t)hd * H * 3 * Tn);
    const float *src = s == 0 ? dq : s == 1 ? dk : dv;
    float r = src[((b * H + h) * Tn + t) * hd + e];
    dqkv[i] = r;
    put16(dqkv16, i, r);
}

// The two above, one block per token row (b, t), four values per thread
// (hd % 4 == 0; see gpu_vec.cuh): the per-element 64-bit index divisions made
// them compute-bound at a sixth of the memory bandwidth.
template <typename T>
__global__ void split_heads_rows_kernel(T *dst, const float *x, int Tn, int H, int hd) {
    size_t row = blockIdx.x;
    int b = (int)(row / Tn), t = (int)(row % Tn), D = H * hd;
    for (int c = 4 * threadIdx.x; c < D; c += 4 * blockDim.x) {
        int h = c / hd, e = c - h * hd;
        float v[4];
        load4(v, x + row * D + c);
        store4(dst + (((size_t)b * H + h) * Tn + t) * hd + e, v);
    }
}

__global__ void merge_qkv_rows_kernel(float *dqkv, __nv_bfloat16 *dqkv16, const float *dq, const float *dk,
                                      const float *dv, int Tn, int H, int hd) {
    size_t row = blockIdx.x;
    int b = (int)(row / Tn), t = (int)(row % Tn), D = H * hd;
    for (int c = 4 * threadIdx.x; c < 3 * D; c += 4 * blockDim.x) {
        int s = c / D, r = c - s * D, h = r / hd, e = r - h * hd;
        const float *src = s == 0 ? dq : s == 1 ? dk : dv;
        float v[4];
        load4(v, src + (((size_t)b * H + h) * Tn + t) * hd + e);
        store4(dqkv + row * 3 * D + c, v);
        if (dqkv16) store4(dqkv16 + row * 3 * D + c, v);
    }
}

// The flash backward's preparation, one block per token row (b, t), hd % 4 == 0:
// the row of dout [B, T, H*hd] fp32 into dO [B, H, T, hd] bf16 (the kernel's
// operand), delta[(b H + h) T + t] = rowsum(dout * o) over head h (o fp32, or
// bf16 as the training saved it; one warp per head, the row still in cache),
// and the row's dq zeroed in dqkv [B, T, 3, H, hd] (the kernel adds dq with
// atomics and stores dk, dv): one pass over dout, and a third of dqkv's
// clearing, where a heads split, a delta pass and a memset of dqkv were three.
template <typename TO>
__global__ void flash_backward_prep_rows_kernel(__nv_bfloat16 *dO, float *delta, float *dqkv, const float *dout,
                                                const TO *o, int Tn, int H, int hd) {
    size_t row = blockIdx.x;
    int b = (int)(row / Tn), t = (int)(row % Tn), D = H * hd, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float zero[4] = {0, 0, 0, 0};
    for (int c = 4 * threadIdx.x; c < D; c += 4 * blockDim.x) {
        int h = c / hd, e = c - h * hd;
        float v[4];
        load4(v, dout + row * D + c);
        store4(dO + (((size_t)b * H + h) * Tn + t) * hd + e, v);
        store4(dqkv + row * 3 * D + c, zero);
    }
    for (int h = warp; h < H; h += blockDim.x / 32) {
        float sum = 0.0f;
        for (int e = 4 * lane; e < hd; e += 128) {
            float a[4], c[4];
            load4(a, dout + row * D + h * hd + e);
            load4(c, o + row * D + h * hd + e);
            sum += a[0] * c[0] + a[1] * c[1] + a[2] * c[2] + a[3] * c[3];
        }
        sum = warp_sum(sum);
        if (lane == 0) delta[((size_t)b * H + h) * Tn + t] = sum;
    }
}

// Launchers: the row kernels where hd % 4 == 0, else the element ones.
static void launch_split_heads(cudaStream_t s, void *dst, int bf, const float *x, int B, int T, int H, int hd) {
    size_t n = (size_t)B * T * H * hd;
    if (n == 0) return;
    if (hd % 4 == 0) {
        if (bf) split_heads_rows_kernel<<<(unsigned)((size_t)B * T), kThreads, 0, s>>>((__nv_bfloat16 *)dst, x, T, H, hd);
        else split_heads_rows_kernel<<<(unsigned)((size_t)B * T), kThreads, 0, s>>>((float *)dst, x, T, H, hd);
    } else if (bf) split_heads_kernel<<<blocks_for(n), kThreads, 0, s>>>((__nv_bfloat16 *)dst, x, B, T, H, hd);
    else split_heads_kernel<<<blocks_for(n), kThreads, 0, s>>>((float *)dst, x, B, T, H, hd);
}

static void launch_merge_qkv(cudaStream_t s, float *dqkv, void *dqkv16, const float *dq, const float *dk,
                             const float *dv, int B, int T, int H, int hd) {
    size_t n = (size_t)B * T * 3 * H * hd;
    if (n == 0) return;
    if (hd % 4 == 0)
        merge_qkv_rows_kernel<<<(unsigned)((size_t)B * T), kThreads, 0, s>>>(dqkv, (__nv_bfloat16 *)dqkv16, dq, dk, dv,
                                                                             T, H, hd);
    else merge_qkv_kernel<<<blocks_for(n), kThreads, 0, s>>>(dqkv, dqkv16, dq, dk, dv, B, T, H, hd);
}

// Rows of T scores -> P = softmax in place (fp32), and a bf16 copy when pb.
__global__ void softmax_rows_kernel(float *s, __nv_bfloat16 *pb, size_t rows, int Tn) {
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    float *sr = s + row * Tn;
    float m = -INFINITY;
    for (int j = lane; j < Tn; j += 32) m = fmaxf(m, sr[j]);
    m = warp_max(m);
    float sum = 0;
    for (int j = lane; j < Tn; j += 32) sum += expf(sr[j] - m);
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < Tn; j += 32) {
        float p = expf(sr[j] - m) * inv;
        sr[j] = p;
        if (pb) pb[row * Tn + j] = __float2bfloat16_rn(p);
    }
}

// dS = P * (dP - sum_j P dP), in place over dP, and a bf16 copy when db16.
__global__ void softmax_backward_kernel(float *dp, __nv_bfloat16 *db16, const float *p, size_t rows, int Tn) {
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    float *d = dp + row * Tn;
    const float *pr = p + row * Tn;
    float dot = 0;
    for (int j = lane; j < Tn; j += 32) dot += pr[j] * d[j];
    dot = warp_sum(dot);
    for (int j = lane; j < Tn; j += 32) {
        float v = pr[j] * (d[j] - dot);
        d[j] = v;
        if (db16) db16[row * Tn + j] = __float2bfloat16_rn(v);
    }
}

}  // namespace

static int blas_ok(cublasStatus_t st, const char *what) {
    return st == CUBLAS_STATUS_SUCCESS ? 0 : gpu_fail("cuBLAS error in %s: %s", what, cublasGetStatusString(st));
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

// Row-major C (fp32) = op(A) op(B) (+ beta C) on operands already in type t.
static int gemm_typed(gpu_ctx *g, float *C, const void *a, const void *b, int M, int N, int K, int transA, int transB,
                      float beta, cudaDataType_t t) {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    float alpha = 1.0f;
    return blas_ok(cublasGemmEx(g->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                K, &alpha, b, t, transB ? K : N, a, t, transA ? M : K, &beta, C, CUDA_R_32F, N,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "gpu_gemm");
}

extern "C" int gpu_gemm(gpu_ctx *g, float *C, const float *A, const float *B, int M, int N, int K, int transA,
                        int transB, float beta, gpu_dtype dt) {
    if (M <= 0 || N <= 0) return 0;
    if (dt != GPU_BF16) return gemm_typed(g, C, A, B, M, N, K, transA, transB, beta, CUDA_R_32F);
    // Operands rounded into scratch; C stays fp32.
    size_t na = (size_t)M * K, nb = (size_t)K * N;
    if (gpu_ensure_scratch(g, align256(na * 2) + align256(nb * 2))) return -1;
    void *ab = g->scratch, *bb = (char *)g->scratch + align256(na * 2);
    if (gpu_to_bf16(g, ab, A, na) || gpu_to_bf16(g, bb, B, nb)) return -1;
    return gemm_typed(g, C, ab, bb, M, N, K, transA, transB, beta, CUDA_R_16BF);
}

// The partials live in the context's scratch: every other user of it (gpu_gemm's
// bf16 copies, the attention) has been queued before on the same stream.
extern "C" int gpu_colsum_acc(gpu_ctx *g, float *db, const float *dy, size_t n, int c) {
    if (n == 0 || c <= 0) return 0;
    size_t nr = row_blocks(n);
    if (nr > 65535) return gpu_fail("colsum: %zu rows is too many", n);
    if (gpu_ensure_scratch(g, nr * c * sizeof(float))) return -1;
    float *part = (float *)g->scratch;
    colsum_partial_kernel<<<dim3(blocks_for(c), (unsigned)nr), kThreads, 0, g->stream>>>(part, dy, n, c);
    launch_colsum_final(g->stream, db, part, nr, c);
    return gpu_check_launch("colsum");
}

extern "C" int gpu_linear_backward(gpu_ctx *g, float *dx, float *dw, float *db, const float *dy, const void *dy16,
                                   const void *x, gpu_dtype x_dt, const void *w, gpu_dtype w_dt, int n, int in,
                                   int out, gpu_dtype dt) {
    if ((x_dt == GPU_BF16 || w_dt == GPU_BF16) && dt != GPU_BF16)
        return gpu_fail("gpu_linear_backward: a bf16 x or w needs bf16 matmuls");
    if (dt == GPU_BF16 && n > 0 && (dx || dw)) {
        // dy rounded once for both GEMMs (unless its producer wrote dy16), x and
        // w only if they are not in bf16 already (these copies are memory-bound passes).
        int cvt_x = dw && x_dt != GPU_BF16, cvt_w = dx && w_dt != GPU_BF16, cvt_y = !dy16;
        size_t ny = cvt_y ? (size_t)n * out : 0, nw = cvt_w ? (size_t)out * in : 0, nx = cvt_x ? (size_t)n * in : 0;
        if (gpu_ensure_scratch(g, align256(ny * 2) + align256(nw * 2) + align256(nx * 2))) return -1;
        char *yb = (char *)g->scratch, *wb = yb + align256(ny * 2), *xb = wb + align256(nw * 2);
        if ((cvt_y && gpu_to_bf16(g, yb, dy, ny)) || (cvt_w && gpu_to_bf16(g, wb, (const float *)w, nw)) ||
            (cvt_x && gpu_to_bf16(g, xb, (const float *)x, nx)))
            return -1;
        const void *xo = cvt_x ? (const void *)xb : x, *wo = cvt_w ? (const void *)wb : w;
        const void *yo = cvt_y ? (const void *)yb : dy16;
        if (dx && gemm_typed(g, dx, yo, wo, n, in, out, 0, 0, 0.0f, CUDA_R_16BF)) return -1;  // dy [n,out] W [out,in]
        if (dw && gemm_typed(g, dw, yo, xo, out, in, n, 1, 0, 1.0f, CUDA_R_16BF)) return -1;  // dy^T x, accumulated
    } else {
        if (dx && gpu_gemm(g, dx, dy, (const float *)w, n, in, out, 0, 0, 0.0f, dt)) return -1;
        if (dw && gpu_gemm(g, dw, dy, (const float *)x, out, in, n, 1, 0, 1.0f, dt)) return -1;
    }
    // After the GEMMs: the column sums' partials take the same scratch (stream order).
    if (db && gpu_colsum_acc(g, db, dy, (size_t)n, out)) return -1;
    return 0;
}

extern "C" int gpu_gelu_bf16(gpu_ctx *g, void *y, void *dgelu, const float *x, size_t n) {
    if (n == 0) return 0;
    gelu_bf16_kernel<<<blocks_for((n + 3) / 4), kThreads, 0, g->stream>>>((__nv_bfloat16 *)y, (__nv_bfloat16 *)dgelu,
                                                                         x, n);
    return gpu_check_launch("gelu_bf16");
}

extern "C" int gpu_grad_rows_bf16(gpu_ctx *g, void *dst, float *db, const float *dy, const void *mul,
                                  const float *rowscale, size_t per, int n, int c) {
    if (n <= 0 || c <= 0) return 0;
    if (rowscale && per == 0) return gpu_fail("grad_rows_bf16: 0 values per row scale");
    size_t nr = ((size_t)n + kGradRows - 1) / kGradRows;
    if (nr > 65535) return gpu_fail("grad_rows_bf16: %d rows is too many", n);
    if (gpu_ensure_scratch(g, nr * c * sizeof(float))) return -1;
    float *part = (float *)g->scratch;   // stream order: free of any earlier user
    unsigned cols = blocks_for(c % 4 == 0 ? (size_t)c / 4 : (size_t)c);
    grad_rows_bf16_kernel<<<dim3(cols, (unsigned)nr), kThreads, 0, g->stream>>>(
        (__nv_bfloat16 *)dst, part, dy, (const __nv_bfloat16 *)mul, rowscale, per, n, c);
    launch_colsum_final(g->stream, db, part, nr, c);
    return gpu_check_launch("grad_rows_bf16");
}

extern "C" int gpu_layernorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy,
                                      const float *x, const float *gamma, int n, int c, float eps, int dx_accumulate) {
    if (n <= 0) return 0;
    if (c % 32 == 0 && c <= 32 * kLnMaxPerLane) {   // one pass (layernorm_backward_fused)
        size_t nr = ((size_t)n + kLnRows - 1) / kLnRows, p_b = align256(nr * c * sizeof(float));
        if (gpu_ensure_scratch(g, 2 * p_b)) return -1;
        float *pg = dg || db ? (float *)g->scratch : nullptr, *pb = (float *)((char *)g->scratch + p_b);
        layernorm_backward_fused<<<(unsigned)nr, 32 * kLnWarps, 0, g->stream>>>(dx, pg, pb, dy, x, gamma, n, c,
                                                                                eps, dx_accumulate);
        if (pg) launch_colsum_final(g->stream, dg, pg, nr, c), launch_colsum_final(g->stream, db, pb, nr, c);
        return gpu_check_launch("layernorm_backward (fused)");
    }
    // Scratch: the per-row statistics, then the two sets of column partials.
    size_t nr = row_blocks((size_t)n), st_b = align256((size_t)n * 2 * sizeof(float));
    size_t p_b = align256(nr * c * sizeof(float));
    if (nr > 65535) return gpu_fail("layernorm_backward: %d rows is too many", n);
    if (gpu_ensure_scratch(g, st_b + 2 * p_b)) return -1;
    float *stats = (float *)g->scratch, *pg = (float *)((char *)g->scratch + st_b);
    float *pb = (float *)((char *)g->scratch + st_b + p_b);
    unsigned nb = (unsigned)((n + kThreads / 32 - 1) / (kThreads / 32));
    layernorm_backward_rows<<<nb, kThreads, 0, g->stream>>>(dx, stats, dy, x, gamma, n, c, eps, dx_accumulate);
    int rc = gpu_check_launch("layernorm_backward");
    if (rc == 0 && (dg || db)) {
        layernorm_backward_cols<<<dim3(blocks_for(c), (unsigned)nr), kThreads, 0, g->stream>>>(pg, pb, dy, x, stats,
                                                                                            n, c);
        launch_colsum_final(g->stream, dg, pg, nr, c);
        launch_colsum_final(g->stream, db, pb, nr, c);
        rc = gpu_check_launch("layernorm_backward (columns)");
    }
    return rc;
}

extern "C" int gpu_gelu_backward(gpu_ctx *g, float *dx, const float *dy, const float *x, size_t n) {
    if (n == 0) return 0;
    gelu_backward_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(dx, dy, x, n);
    return gpu_check_launch("gelu_backward");
}

extern "C" int gpu_batchnorm_train(gpu_ctx *g, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                                   const float *beta, float *running_mean, float *running_var, int n, int c, float eps,
                                   float momentum) {
    batchnorm_train_kernel<<<blocks_for(c), kThreads, 0, g->stream>>>(y, mean, rstd, x, gamma, beta, running_mean,
                                                                      running_var, n, c, eps, momentum);
    return gpu_check_launch("batchnorm_train");
}

extern "C" int gpu_batchnorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy, const float *x,
                                      const float *mean, const float *rstd, const float *gamma, int n, int c) {
    batchnorm_backward_kernel<<<blocks_for(c), kThreads, 0, g->stream>>>(dx, dg, db, dy, x, mean, rstd, gamma, n, c);
    return gpu_check_launch("batchnorm_backward");
}

extern "C" int gpu_patch_embed_backward(gpu_ctx *g, float *dw, float *db, const float *dy, const float *img, int B,
                                        int H, int W, int p, int C, gpu_dtype dt) {
    int P = (H / p) * (W / p), K = 3 * p * p;
    size_t rows = (size_t)B * P;
    if (dw) {   // the buffer is kept: a cudaMalloc/cudaFree per step would stall the stream
        size_t bytes = rows * K * sizeof(float);
        if (bytes > g->cols_bytes) {
            gpu_free(g, g->cols);
            g->cols_bytes = 0;
            if (!(g->cols = (float *)gpu_malloc(g, bytes))) return -1;
            g->cols_bytes = bytes;
        }
        if (gpu_im2col(g, g->cols, img, B, H, W, p, GPU_F32) ||
            gpu_gemm(g, dw, dy, g->cols, C, K, (int)rows, 1, 0, 1.0f, dt))   // dy^T cols
            return -1;
    }
    if (db && gpu_colsum_acc(g, db, dy, rows, C)) return -1;
    return 0;
}

// dqkv16's dq columns = dqkv's rounded (one block per token row; D % 4 == 0):
// the flash backward adds dq up with atomics, so its bf16 twin is written after.
__global__ void dq_twin_rows_kernel(__nv_bfloat16 *dqkv16, const float *dqkv, int D) {
    size_t row = blockIdx.x;
    for (int c = 4 * threadIdx.x; c < D; c += 4 * blockDim.x) {
        float v[4];
        load4(v, dqkv + row * 3 * D + c);
        store4(dqkv16 + row * 3 * D + c, v);
    }
}

// The flash backward (bf16, hd 64, UFO_CUDA_ATTENTION=flash; gpu_flash.cu):
// each row's softmax max and sum and O come from the forward (saved_o, stats:
// gpu_attention_train's), or else the flash forward runs again for them (O in
// fp32); delta = rowsum(dO * O), then one kernel reads q, k, v where they are
// in a bf16 qkv (an fp32 one is split into bf16 first), writes dk, dv straight
// into dqkv (and its bf16 twin) and adds dq up there; dq's twin is rounded
// after. Scratch O(B T D), no chunks: the scores are never stored.
static int attention_backward_flash(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                    gpu_dtype qkv_dt, const __nv_bfloat16 *saved_o, const float *stats, int B, int T,
                                    int H, int hd) {
    size_t D = (size_t)H * hd, n = (size_t)B * T * D, rows = (size_t)B * H * T;
    int saved = saved_o && stats, split = qkv_dt != GPU_BF16;
    size_t in_b = align256(n * 2), f_b = saved ? 0 : align256(n * 4), r_b = align256(rows * 4);
    if (gpu_ensure_scratch(g, (split ? 4 : 1) * in_b + f_b + 3 * r_b)) return -1;
    char *p = (char *)g->scratch;
    void *dO = p;
    p += in_b;
    const void *q = qkv, *k = (const __nv_bfloat16 *)qkv + D, *v = (const __nv_bfloat16 *)qkv + 2 * D;
    gpu_qkv_strides st = {(size_t)T * 3 * D, (size_t)hd, 3 * D};
    if (split) {   // an fp32 qkv (the op tests'): bf16 q, k, v [B*H, T, hd] in scratch
        gpu_launch_split_qkv(g->stream, p, p + in_b, p + 2 * in_b, qkv, qkv_dt, B, T, H, hd, GPU_BF16);
        q = p, k = p + in_b, v = p + 2 * in_b, st = gpu_split_strides(T, H, hd);
        p += 3 * in_b;
    }
    float *o = (float *)p;
    p += f_b;
    float *m = (float *)p, *l = (float *)(p + r_b), *delta = (float *)(p + 2 * r_b);
    unsigned nrow = (unsigned)((size_t)B * T);   // flash: hd == 64, so hd % 4 == 0
    if (saved) {
        m = (float *)stats, l = (float *)stats + rows;
        flash_backward_prep_rows_kernel<<<nrow, kThreads, 0, g->stream>>>((__nv_bfloat16 *)dO, delta, dqkv, dout,
                                                                          saved_o, T, H, hd);
    } else {
        if (gpu_launch_flash(g->stream, o, q, k, v, st, B, T, H, hd, GPU_F32, m, l) ||
            gpu_check_launch("flash backward O"))
            return -1;
        flash_backward_prep_rows_kernel<<<nrow, kThreads, 0, g->stream>>>((__nv_bfloat16 *)dO, delta, dqkv, dout,
                                                                          (const float *)o, T, H, hd);
    }
    if (gpu_check_launch("flash backward prep") ||
        gpu_launch_flash_backward(g->stream, dqkv, dqkv16, q, k, v, st, dO, m, l, delta, B, T, H, hd) ||
        gpu_check_launch("flash backward"))
        return -1;
    if (dqkv16) dq_twin_rows_kernel<<<(unsigned)((size_t)B * T), kThreads, 0, g->stream>>>(
        (__nv_bfloat16 *)dqkv16, dqkv, (int)D);
    return gpu_check_launch("flash backward dq twin");
}

extern "C" int gpu_attention_backward_saved(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                            gpu_dtype qkv_dt, const void *o, const float *stats, int B, int T, int H,
                                            int hd, gpu_dtype dt) {
    if (B > 0 && o && stats && gpu_uses_flash(g, dt, hd))
        return attention_backward_flash(g, dqkv, dqkv16, dout, qkv, qkv_dt, (const __nv_bfloat16 *)o, stats, B, T,
                                        H, hd);
    return gpu_attention_backward_from(g, dqkv, dqkv16, dout, qkv, qkv_dt, B, T, H, hd, dt);
}

// Attention backward from the GEMMs, per chunk of images (scores recomputed):
//   S = q k^T * scale, P = softmax(S)       dP = dO v^T
//   dS = P * (dP - rowsum(P * dP))          dq = dS k * scale, dk = dS^T q * scale, dv = P^T dO
extern "C" int gpu_attention_backward(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const float *qkv,
                                      int B, int T, int H, int hd, gpu_dtype dt) {
    return gpu_attention_backward_from(g, dqkv, dqkv16, dout, qkv, GPU_F32, B, T, H, hd, dt);
}

extern "C" int gpu_attention_backward_from(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                           gpu_dtype qkv_dt, int B, int T, int H, int hd, gpu_dtype dt) {
    if (B <= 0) return 0;
    if (qkv_dt == GPU_BF16 && dt != GPU_BF16) return gpu_fail("gpu_attention_backward_from: a bf16 qkv goes with bf16");
    if (gpu_uses_flash(g, dt, hd))
        return attention_backward_flash(g, dqkv, dqkv16, dout, qkv, qkv_dt, nullptr, nullptr, B, T, H, hd);
    int bf = dt == GPU_BF16;
    const size_t qkv_es = qkv_dt == GPU_BF16 ? 2 : 4;
    size_t es = bf ? 2 : 4, D = (size_t)H * hd, tt = (size_t)T * T;
    size_t per_img = (size_t)H * tt * (2 * sizeof(float) + (bf ? 4 : 0));
    int chunk = (int)(g->chunk_bytes / per_img);  // score-sized buffers under chunk_bytes
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    size_t nh = (size_t)chunk * T * D;  // values per [chunk, H, T, hd] buffer
    size_t in_b = align256(nh * es), f_b = align256(nh * 4), s_b = align256((size_t)chunk * H * tt * 4);
    size_t s16_b = bf ? align256((size_t)chunk * H * tt * 2) : 0;
    if (gpu_ensure_scratch(g, 4 * in_b + 3 * f_b + 2 * s_b + 2 * s16_b)) return -1;
    char *p0 = (char *)g->scratch;
    void *q = p0, *k = p0 + in_b, *v = p0 + 2 * in_b, *dO = p0 + 3 * in_b;
    float *dq = (float *)(p0 + 4 * in_b), *dk = (float *)(p0 + 4 * in_b + f_b), *dv = (float *)(p0 + 4 * in_b + 2 * f_b);
    char *p1 = p0 + 4 * in_b + 3 * f_b;
    float *S = (float *)p1, *dP = (float *)(p1 + s_b);
    void *Pb = bf ? (void *)(p1 + 2 * s_b) : (void *)S, *dSb = bf ? (void *)(p1 + 2 * s_b + s16_b) : (void *)dP;
    cudaDataType_t t = bf ? CUDA_R_16BF : CUDA_R_32F;
    float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    long long str_h = (long long)T * hd, str_s = (long long)tt;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int nb = B - b0 < chunk ? B - b0 : chunk, batches = nb * H;
        gpu_launch_split_qkv(g->stream, q, k, v, (const char *)qkv + (size_t)b0 * T * 3 * D * qkv_es, qkv_dt, nb, T,
                             H, hd, dt);
        launch_split_heads(g->stream, dO, bf, dout + (size_t)b0 * T * D, nb, T, H, hd);
        if (gpu_check_launch("attention_backward split")) return -1;
        unsigned rb = (unsigned)(((size_t)batches * T + kThreads / 32 - 1) / (kThreads / 32));
        // S^T(j, i) = sum_e K(j, e) Q(i, e)  (the forward's scores GEMM), then P in place.
        if (blas_ok(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, k, t, hd, str_h, q,
                                               t, hd, str_h, &zero, S, CUDA_R_32F, T, str_s, batches,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "attention_backward scores"))
            return -1;
        softmax_rows_kernel<<<rb, kThreads, 0, g->stream>>>(S, bf ? (__nv_bfloat16 *)Pb : nullptr, (size_t)batches * T,
                                                             T);
        // dP^T(j, i) = sum_e V(j, e) dO(i, e)
        if (blas_ok(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &one, v, t, hd, str_h, dO,
                                               t, hd, str_h, &zero, dP, CUDA_R_32F, T, str_s, batches,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "attention_backward dP"))
            return -1;
        softmax_backward_kernel<<<rb, kThreads, 0, g->stream>>>(dP, bf ? (__nv_bfloat16 *)dSb : nullptr, S,
                                                                 (size_t)batches * T, T);
        if (gpu_check_launch("attention_backward softmax")) return -1;
        // dv^T(e, j) = sum_i dO(i, e) P(i, j);  dk^T(e, j) = scale sum_i Q(i, e) dS(i, j)
        // dq^T(e, i) = scale sum_j K(j, e) dS(i, j)
        if (blas_ok(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, &one, dO, t, hd, str_h, Pb,
                                               t, T, str_s, &zero, dv, CUDA_R_32F, hd, str_h, batches,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "attention_backward dv") ||
            blas_ok(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, hd, T, T, &scale, q, t, hd, str_h,
                                               dSb, t, T, str_s, &zero, dk, CUDA_R_32F, hd, str_h, batches,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "attention_backward dk") ||
            blas_ok(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &scale, k, t, hd, str_h,
                                               dSb, t, T, str_s, &zero, dq, CUDA_R_32F, hd, str_h, batches,
                                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                    "attention_backward dq"))
            return -1;
        __nv_bfloat16 *d16 = dqkv16 ? (__nv_bfloat16 *)dqkv16 + (size_t)b0 * T * 3 * D : nullptr;
        launch_merge_qkv(g->stream, dqkv + (size_t)b0 * T * 3 * D, d16, dq, dk, dv, nb, T, H, hd);
        if (gpu_check_launch("attention_backward merge")) return -1;
    }
    return 0;
}

// ---- glue of the training pass (model/vit_train_cuda.c) and the optimiser ----------

namespace {

__global__ void from_bf16_kernel(float *dst, const __nv_bfloat16 *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __bfloat162float(src[i]);
}

template <typename T>
__global__ void copy_rows_kernel(T *dst, size_t dst_stride, const T *src, size_t src_stride, size_t rows,
                                 size_t cols) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    size_t r = i / cols, c = i % cols;
    dst[r * dst_stride + c] = src[r * src_stride + c];
}

// One thread per value of the n * D gathered (scattered) ones.
__global__ void gather_rows_kernel(float *dst, const float *src, const int *rows, size_t n, size_t D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * D) return;
    size_t j = i / D, d = i % D;
    dst[i] = src[(size_t)rows[j] * D + d];
}

__global__ void scatter_add_rows_kernel(float *dst, const float *src, const int *rows, size_t n, size_t D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * D) return;
    size_t j = i / D, d = i % D;
    dst[(size_t)rows[j] * D + d] += src[i];   // rows distinct: no two threads add to one value
}

// dst[i] = base[i] + v (base NULL: v), v = s[i / per] * src[i] (s NULL: src[i]);
// base == dst accumulates.
__global__ void scale_rows_kernel(float *dst, const float *base, const float *src, const float *s,
                                  size_t per, size_t total) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    float v = s ? __fmul_rn(s[i / per], src[i]) : src[i];
    dst[i] = base ? base[i] + v : v;
}

// One block per chunk: the chunk's sum of squares in double, reduced in a fixed tree.
__global__ void sumsq_kernel(double *part, const float *x, size_t n, size_t chunk) {
    __shared__ double sh[kThreads];
    size_t lo = (size_t)blockIdx.x * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0;
    for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

// src/train/sgd.c's update, element for element.
__global__ void sgd_kernel(float *p, const float *g, float *b, size_t n, float sc, float wd, float mu, float step) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float d = g[i] * sc + wd * p[i];
    float m = mu * b[i] + d;
    b[i] = m;
    p[i] = p[i] - step * m;
}

// sgd_kernel's update on the rows rows[r] of [*, cols] buffers, one thread per value.
__global__ void sgd_rows_kernel(float *p, const float *g, float *b, const int *rows, size_t n, int cols, float sc,
                                float wd, float mu, float step) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    size_t i = (size_t)rows[e / cols] * cols + e % cols;
    float d = g[i] * sc + wd * p[i];
    float m = mu * b[i] + d;
    b[i] = m;
    p[i] = p[i] - step * m;
}

}  // namespace

extern "C" int gpu_from_bf16(gpu_ctx *g, float *dst, const void *src, size_t n) {
    if (n == 0) return 0;
    from_bf16_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(dst, (const __nv_bfloat16 *)src, n);
    return gpu_check_launch("from_bf16");
}

extern "C" int gpu_copy(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src) return 0;
    return gpu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream), "device copy");
}

extern "C" int gpu_zero(gpu_ctx *g, void *p, size_t bytes) {
    if (bytes == 0) return 0;
    return gpu_check(cudaMemsetAsync(p, 0, bytes, g->stream), "device memset");
}

extern "C" int gpu_copy_rows_dt(gpu_ctx *g, void *dst, size_t dst_stride, const void *src, size_t src_stride,
                                size_t rows, size_t cols, gpu_dtype dt) {
    size_t n = rows * cols;
    if (n == 0) return 0;
    if (dt == GPU_BF16)
        copy_rows_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(
            (__nv_bfloat16 *)dst, dst_stride, (const __nv_bfloat16 *)src, src_stride, rows, cols);
    else
        copy_rows_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((float *)dst, dst_stride, (const float *)src,
                                                                    src_stride, rows, cols);
    return gpu_check_launch("copy_rows");
}

extern "C" int gpu_copy_rows(gpu_ctx *g, float *dst, size_t dst_stride, const float *src, size_t src_stride,
                             size_t rows, size_t cols) {
    return gpu_copy_rows_dt(g, dst, dst_stride, src, src_stride, rows, cols, GPU_F32);
}

extern "C" int gpu_gather_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D) {
    if (n < 0 || D < 0) return gpu_fail("gather_rows: bad sizes n=%d D=%d", n, D);
    size_t total = (size_t)n * D;
    if (total == 0) return 0;
    gather_rows_kernel<<<blocks_for(total), kThreads, 0, g->stream>>>(dst, src, rows, (size_t)n, (size_t)D);
    return gpu_check_launch("gather_rows");
}

extern "C" int gpu_scatter_add_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D) {
    if (n < 0 || D < 0) return gpu_fail("scatter_add_rows: bad sizes n=%d D=%d", n, D);
    size_t total = (size_t)n * D;
    if (total == 0) return 0;
    scatter_add_rows_kernel<<<blocks_for(total), kThreads, 0, g->stream>>>(dst, src, rows, (size_t)n, (size_t)D);
    return gpu_check_launch("scatter_add_rows");
}

extern "C" int gpu_add_scaled_rows(gpu_ctx *g, float *dst, const float *base, const float *src,
                                   const float *s, size_t n, size_t per) {
    size_t total = n * per;
    if (total == 0) return 0;
    scale_rows_kernel<<<blocks_for(total), kThreads, 0, g->stream>>>(dst, base, src, s, per, total);
    return gpu_check_launch("scale_rows");
}

extern "C" int gpu_scale_rows(gpu_ctx *g, float *dst, const float *src, const float *s, size_t n, size_t per,
                              int accumulate) {
    return gpu_add_scaled_rows(g, dst, accumulate ? dst : NULL, src, s, n, per);
}

extern "C" int gpu_sumsq_chunks(gpu_ctx *g, double *part, const float *x, size_t n, size_t chunk) {
    if (n == 0) return 0;
    unsigned nc = (unsigned)((n + chunk - 1) / chunk);
    sumsq_kernel<<<nc, kThreads, 0, g->stream>>>(part, x, n, chunk);
    return gpu_check_launch("sumsq");
}

extern "C" int gpu_sgd_update(gpu_ctx *g, float *param, const float *grad, float *mom, size_t n, float scale,
                              float weight_decay, float momentum, float step) {
    if (n == 0) return 0;
    sgd_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(param, grad, mom, n, scale, weight_decay, momentum, step);
    return gpu_check_launch("sgd");
}

extern "C" int gpu_sgd_update_rows(gpu_ctx *g, float *param, const float *grad, float *mom, const int *rows, int nrows,
                                   int cols, float scale, float weight_decay, float momentum, float step) {
    if (nrows < 0 || cols < 0) return gpu_fail("sgd_update_rows: bad sizes nrows=%d cols=%d", nrows, cols);
    size_t n = (size_t)nrows * cols;
    if (n == 0) return 0;
    sgd_rows_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(param, grad, mom, rows, n, cols, scale, weight_decay,
                                                               momentum, step);
    return gpu_check_launch("sgd_rows");
}
