// CUDA backend, device side: the element-wise and row-wise ops of the ViT.
// Each kernel is the plain loop of its twin in kernels/ref, one thread per
// output value or one warp per row; they are a small share of the forward
// next to the GEMMs, so they stay simple. Reductions accumulate in fp32.
#include "kernels/cuda/gpu_internal.h"
#include "kernels/cuda/gpu_gelu.cuh"
#include "kernels/cuda/gpu_vec.cuh"
#include <cuda_bf16.h>
#include <math.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void store(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__nv_bfloat16 *p, size_t i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ float load(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16 *p, size_t i) { return __bfloat162float(p[i]); }

unsigned blocks_for(size_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__global__ void to_bf16_kernel(__nv_bfloat16 *y, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16_rn(x[i]);
}

template <typename T, typename TI>
__global__ void gelu_kernel(T *y, const TI *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = load(x, i);
        store(y, i, gelu_of(v));  // exact GELU, as ref_gelu
    }
}

// One warp per row: mean, then the biased variance around it (two passes,
// as ref_layernorm, so large means do not cancel), then normalise.
template <typename T>
__global__ void layernorm_kernel(T *y, const float *x, const float *g, const float *b, int rows, int c,
                                 size_t x_stride, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float *xr = x + (size_t)row * x_stride;
    float s = 0;
    for (int i = lane; i < c; i += 32) s += xr[i];
    float mean = warp_sum(s) / c;
    float v = 0;
    for (int i = lane; i < c; i += 32) {
        float d = xr[i] - mean;
        v += d * d;
    }
    float rstd = rsqrtf(warp_sum(v) / c + eps);
    size_t o = (size_t)row * c;
    for (int i = lane; i < c; i += 32) store(y, o + i, (xr[i] - mean) * rstd * g[i] + b[i]);
}

__global__ void batchnorm_kernel(float *y, const float *x, const float *g, const float *b, const float *mean,
                                 const float *var, int n, int c, float eps) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * c) return;
    int j = (int)(i % c);
    y[i] = (x[i] - mean[j]) * rsqrtf(var[j] + eps) * g[j] + b[j];
}

// cols[b*P + py*G + px, ch*p*p + ky*p + kx] = img[b, ch, py*p + ky, px*p + kx]
template <typename T>
__global__ void im2col_kernel(T *cols, const float *img, int B, int H, int W, int p) {
    int gw = W / p, gh = H / p, K = 3 * p * p;
    size_t n = (size_t)B * gh * gw * K;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int col = (int)(i % K);
    size_t tok = i / K;
    int px = (int)(tok % gw), py = (int)(tok / gw % gh), bi = (int)(tok / ((size_t)gw * gh));
    int ch = col / (p * p), ky = col / p % p, kx = col % p;
    store(cols, i, img[(((size_t)bi * 3 + ch) * H + py * p + ky) * W + px * p + kx]);
}

__global__ void assemble_kernel(float *x, const float *patches, const float *cls, const float *pos, int B, int T,
                                int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * D) return;
    int d = (int)(i % D), t = (int)(i / D % T);
    size_t bi = i / ((size_t)T * D);
    float v = t == 0 ? cls[d] : patches[(bi * (T - 1) + t - 1) * D + d];
    x[i] = v + pos[(size_t)t * D + d];
}

// qkv [B, T, 3, H, hd] -> q/k/v [B, H, T, hd]
template <typename T, typename TI>
__global__ void split_qkv_kernel(T *q, T *k, T *v, const TI *qkv, int B, int Tn, int H, int hd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t n = (size_t)B * Tn * 3 * H * hd;
    if (i >= n) return;
    int e = (int)(i % hd), h = (int)(i / hd % H), s = (int)(i / ((size_t)hd * H) % 3);
    size_t t = i / ((size_t)hd * H * 3) % Tn, bi = i / ((size_t)hd * H * 3 * Tn);
    T *dst = s == 0 ? q : s == 1 ? k : v;
    store(dst, ((bi * H + h) * Tn + t) * hd + e, load(qkv, i));
}

// The same, one block per token row (b, t) and four values per thread (hd % 4
// == 0): the per-element 64-bit index divisions made the one above compute-bound
// at a sixth of the memory bandwidth.
template <typename T, typename TI>
__global__ void split_qkv_rows_kernel(T *q, T *k, T *v, const TI *qkv, int Tn, int H, int hd) {
    size_t row = blockIdx.x;
    int b = (int)(row / Tn), t = (int)(row % Tn), D = H * hd;
    const TI *src = qkv + row * 3 * D;
    for (int c = 4 * threadIdx.x; c < 3 * D; c += 4 * blockDim.x) {
        int s = c / D, r = c - s * D, h = r / hd, e = r - h * hd;
        float x[4];
        load4(x, src + c);
        T *dst = s == 0 ? q : s == 1 ? k : v;
        store4(dst + (((size_t)b * H + h) * Tn + t) * hd + e, x);
    }
}

// One warp per row of T scores: max, sum of exp, normalise (fp32 throughout).
template <typename T>
__global__ void softmax_kernel(T *p, const float *s, size_t rows, int Tn) {
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= rows) return;
    const float *sr = s + row * Tn;
    float m = -INFINITY;
    for (int j = lane; j < Tn; j += 32) m = fmaxf(m, sr[j]);
    m = warp_max(m);
    float sum = 0;
    for (int j = lane; j < Tn; j += 32) sum += expf(sr[j] - m);
    float inv = 1.0f / warp_sum(sum);
    // In place for fp32: each lane rereads only the values it then overwrites.
    for (int j = lane; j < Tn; j += 32) store(p, row * Tn + j, expf(sr[j] - m) * inv);
}

// o [B, H, T, hd] -> out [B, T, H*hd]
template <typename T>
__global__ void merge_heads_kernel(T *out, const float *o, int B, int Tn, int H, int hd) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t n = (size_t)B * Tn * H * hd;
    if (i >= n) return;
    int e = (int)(i % hd), h = (int)(i / hd % H);
    size_t t = i / ((size_t)hd * H) % Tn, bi = i / ((size_t)hd * H * Tn);
    store(out, i, o[((bi * H + h) * Tn + t) * hd + e]);
}

template <typename T>
__global__ void add_bias_kernel(T *y, const T *b, int rows, int c) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)rows * c) store(y, i, load(y, i) + load(b, i % c));
}

}  // namespace

// --- C interface -----------------------------------------------------------

extern "C" int gpu_to_bf16(gpu_ctx *g, void *dst, const float *src, size_t n) {
    if (n == 0) return 0;
    to_bf16_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((__nv_bfloat16 *)dst, src, n);
    return gpu_check_launch("to_bf16");
}

extern "C" int gpu_gelu_from(gpu_ctx *g, void *y, const void *x, gpu_dtype x_dt, size_t n, gpu_dtype dt) {
    if (n == 0) return 0;
    typedef __nv_bfloat16 bf;
    if (x_dt == GPU_BF16) {
        if (dt == GPU_BF16) gelu_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((bf *)y, (const bf *)x, n);
        else gelu_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((float *)y, (const bf *)x, n);
    } else if (dt == GPU_BF16) gelu_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((bf *)y, (const float *)x, n);
    else gelu_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((float *)y, (const float *)x, n);
    return gpu_check_launch("gelu");
}

extern "C" int gpu_gelu(gpu_ctx *g, void *y, const float *x, size_t n, gpu_dtype dt) {
    return gpu_gelu_from(g, y, x, GPU_F32, n, dt);
}

extern "C" int gpu_layernorm(gpu_ctx *g, void *y, const float *x, const float *gamma, const float *beta, int rows,
                             int c, size_t x_stride, float eps, gpu_dtype dt) {
    if (rows <= 0) return 0;
    unsigned nb = (unsigned)((rows + kThreads / 32 - 1) / (kThreads / 32));
    if (dt == GPU_BF16)
        layernorm_kernel<<<nb, kThreads, 0, g->stream>>>((__nv_bfloat16 *)y, x, gamma, beta, rows, c, x_stride, eps);
    else layernorm_kernel<<<nb, kThreads, 0, g->stream>>>((float *)y, x, gamma, beta, rows, c, x_stride, eps);
    return gpu_check_launch("layernorm");
}

extern "C" int gpu_batchnorm(gpu_ctx *g, float *y, const float *x, const float *gamma, const float *beta,
                             const float *mean, const float *var, int n, int c, float eps) {
    size_t total = (size_t)n * c;
    if (total == 0) return 0;
    batchnorm_kernel<<<blocks_for(total), kThreads, 0, g->stream>>>(y, x, gamma, beta, mean, var, n, c, eps);
    return gpu_check_launch("batchnorm");
}

extern "C" int gpu_im2col(gpu_ctx *g, void *cols, const float *img, int B, int H, int W, int p, gpu_dtype dt) {
    size_t n = (size_t)B * (H / p) * (W / p) * 3 * p * p;
    if (n == 0) return 0;
    if (dt == GPU_BF16)
        im2col_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((__nv_bfloat16 *)cols, img, B, H, W, p);
    else im2col_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>((float *)cols, img, B, H, W, p);
    return gpu_check_launch("im2col");
}

extern "C" int gpu_assemble_tokens(gpu_ctx *g, float *x, const float *patches, const float *cls, const float *pos,
                                   int B, int T, int D) {
    size_t n = (size_t)B * T * D;
    if (n == 0) return 0;
    assemble_kernel<<<blocks_for(n), kThreads, 0, g->stream>>>(x, patches, cls, pos, B, T, D);
    return gpu_check_launch("assemble_tokens");
}

void gpu_launch_split_qkv(cudaStream_t s, void *q, void *k, void *v, const void *qkv, gpu_dtype qkv_dt, int B, int T,
                          int H, int hd, gpu_dtype dt) {
    size_t n = (size_t)B * T * 3 * H * hd;
    typedef __nv_bfloat16 bf;
    if (hd % 4 == 0 && B > 0 && T > 0) {
        unsigned rows = (unsigned)((size_t)B * T);
        if (qkv_dt == GPU_BF16)
            split_qkv_rows_kernel<<<rows, kThreads, 0, s>>>((bf *)q, (bf *)k, (bf *)v, (const bf *)qkv, T, H, hd);
        else if (dt == GPU_BF16)
            split_qkv_rows_kernel<<<rows, kThreads, 0, s>>>((bf *)q, (bf *)k, (bf *)v, (const float *)qkv, T, H, hd);
        else
            split_qkv_rows_kernel<<<rows, kThreads, 0, s>>>((float *)q, (float *)k, (float *)v, (const float *)qkv, T,
                                                            H, hd);
    } else if (qkv_dt == GPU_BF16) {  // only with bf16 out: the inference forward's bf16 qkv linear
        split_qkv_kernel<<<blocks_for(n), kThreads, 0, s>>>((bf *)q, (bf *)k, (bf *)v, (const bf *)qkv, B, T, H, hd);
    } else if (dt == GPU_BF16) {
        split_qkv_kernel<<<blocks_for(n), kThreads, 0, s>>>((bf *)q, (bf *)k, (bf *)v, (const float *)qkv, B, T, H,
                                                            hd);
    } else {
        split_qkv_kernel<<<blocks_for(n), kThreads, 0, s>>>((float *)q, (float *)k, (float *)v, (const float *)qkv, B,
                                                            T, H, hd);
    }
}

void gpu_launch_softmax(cudaStream_t s, void *p, const float *scores, size_t rows, int T, gpu_dtype dt) {
    unsigned nb = (unsigned)((rows + kThreads / 32 - 1) / (kThreads / 32));
    if (dt == GPU_BF16) softmax_kernel<<<nb, kThreads, 0, s>>>((__nv_bfloat16 *)p, scores, rows, T);
    else softmax_kernel<<<nb, kThreads, 0, s>>>((float *)p, scores, rows, T);
}

void gpu_launch_merge_heads(cudaStream_t s, void *out, const float *o, int B, int T, int H, int hd, gpu_dtype dt) {
    size_t n = (size_t)B * T * H * hd;
    if (dt == GPU_BF16) merge_heads_kernel<<<blocks_for(n), kThreads, 0, s>>>((__nv_bfloat16 *)out, o, B, T, H, hd);
    else merge_heads_kernel<<<blocks_for(n), kThreads, 0, s>>>((float *)out, o, B, T, H, hd);
}

void gpu_launch_add_bias(cudaStream_t s, void *y, const void *b, gpu_dtype dt, int rows, int c) {
    size_t n = (size_t)rows * c;
    if (dt == GPU_BF16)
        add_bias_kernel<<<blocks_for(n), kThreads, 0, s>>>((__nv_bfloat16 *)y, (const __nv_bfloat16 *)b, rows, c);
    else add_bias_kernel<<<blocks_for(n), kThreads, 0, s>>>((float *)y, (const float *)b, rows, c);
}
