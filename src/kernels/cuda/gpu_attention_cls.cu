// Attention for the class token's query only, forward and backward: the
// training's last block (see model/vit_train_cuda.c), whose other rows feed
// nothing. kernels/cpu/cpu_attention_cls.c is its CPU twin, with the same
// roundings: with bf16, q, k, v and dO are rounded to bf16, products summed in
// fp32, the softmax in fp32, P and dS rounded where they are multiplied (P
// unnormalised in the forward, the row sum applied to the output).
//
// One thread block per (image, head): the T scores are one thread per key,
// kept in the context's scratch ([B H, T] fp32, twice for the backward), and
// the hd outputs one thread per dimension. A few dozen microseconds for a
// ViT-L batch: the block's other work is 576 rows of MLP.
#include "kernels/cuda/gpu_internal.h"
#include <cuda_bf16.h>
#include <math.h>

namespace {

constexpr int kThreads = 128;
constexpr int kMaxHd = 256;
size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

__device__ __forceinline__ float rnd(float v, int bf) { return bf ? __bfloat162float(__float2bfloat16_rn(v)) : v; }

// qkv element i as the precision sees it: stored bf16 (already rounded), or fp32 rounded when bf.
struct qkv_in {
    const void *p;
    int bf16;
    __device__ __forceinline__ float at(size_t i, int bf) const {
        return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]) : rnd(static_cast<const float *>(p)[i], bf);
    }
};

__device__ float block_reduce(float v, int is_max) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : is_max ? -INFINITY : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    return v;
}

// out [B, H*hd] in `out_bf16` ? bf16 : fp32; p: scratch [B H, T].
__global__ void attention_cls_kernel(void *out, int out_bf16, float *p, qkv_in x, int T, int H, int hd, float scale,
                                     int bf) {
    __shared__ float q[kMaxHd];
    const int bh = blockIdx.x, b = bh / H, h = bh % H, C = H * hd;
    const size_t base = (size_t)b * T * 3 * C + (size_t)h * hd;
    float *pr = p + (size_t)bh * T;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) q[d] = x.at(base + d, bf);
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        const size_t k = base + (size_t)j * 3 * C + C;
        float s = 0;
        for (int d = 0; d < hd; d++) s += q[d] * x.at(k + d, bf);
        pr[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce(mx, 1);
    float sum = 0;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        float e = expf(scale * (pr[j] - mx));
        sum += e;
        pr[j] = rnd(e, bf);
    }
    sum = block_reduce(sum, 0);   // its barriers also publish pr
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0;
        for (int j = 0; j < T; j++) o += pr[j] * x.at(base + (size_t)j * 3 * C + 2 * C + d, bf);
        size_t at = (size_t)b * C + (size_t)h * hd + d;
        if (out_bf16) static_cast<__nv_bfloat16 *>(out)[at] = __float2bfloat16_rn(o / sum);
        else static_cast<float *>(out)[at] = o / sum;
    }
}

// dqkv [B, T, 3, H, hd] for every row (the other tokens' queries get zeros),
// its bf16 copy in dqkv16 when not NULL; p, ds: scratch [B H, T].
__global__ void attention_cls_backward_kernel(float *dqkv, __nv_bfloat16 *dqkv16, float *p, float *ds,
                                              const float *dout, qkv_in x, int T, int H, int hd, float scale,
                                              int bf) {
    __shared__ float q[kMaxHd];
    __shared__ float go[kMaxHd];
    const int bh = blockIdx.x, b = bh / H, h = bh % H, C = H * hd;
    const size_t C3 = (size_t)3 * C, row0 = (size_t)b * T * C3 + (size_t)h * hd;
    float *pr = p + (size_t)bh * T, *dr = ds + (size_t)bh * T;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        q[d] = x.at(row0 + d, bf);
        go[d] = rnd(dout[(size_t)b * C + (size_t)h * hd + d], bf);
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {   // scores and dP = dO v_j
        const size_t r = row0 + (size_t)j * C3;
        float s = 0, g = 0;
        for (int d = 0; d < hd; d++) {
            s += q[d] * x.at(r + C + d, bf);
            g += go[d] * x.at(r + 2 * C + d, bf);
        }
        pr[j] = s;
        dr[j] = g;
        mx = fmaxf(mx, s);
    }
    mx = block_reduce(mx, 1);
    float sum = 0;
    for (int j = threadIdx.x; j < T; j += blockDim.x) sum += pr[j] = expf(scale * (pr[j] - mx));
    sum = block_reduce(sum, 0);
    float dot = 0;
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        pr[j] /= sum;
        dot += pr[j] * dr[j];
    }
    dot = block_reduce(dot, 0);
    for (int j = threadIdx.x; j < T; j += blockDim.x) {
        dr[j] = rnd(pr[j] * (dr[j] - dot) * scale, bf);
        pr[j] = rnd(pr[j], bf);
    }
    __syncthreads();
    // dk_j = dS_j q, dv_j = P_j dO, and zeros for the queries of tokens > 0
    for (size_t i = threadIdx.x; i < (size_t)T * hd; i += blockDim.x) {
        const int j = (int)(i / hd), d = (int)(i % hd);
        const size_t r = row0 + (size_t)j * C3 + d;
        const float dk = dr[j] * q[d], dv = pr[j] * go[d];
        dqkv[r + C] = dk;
        dqkv[r + 2 * C] = dv;
        if (j > 0) dqkv[r] = 0;
        if (dqkv16) {
            dqkv16[r + C] = __float2bfloat16_rn(dk);
            dqkv16[r + 2 * C] = __float2bfloat16_rn(dv);
            if (j > 0) dqkv16[r] = __float2bfloat16_rn(0.0f);
        }
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {   // dq = sum_j dS_j k_j
        float a = 0;
        for (int j = 0; j < T; j++) a += dr[j] * x.at(row0 + (size_t)j * C3 + C + d, bf);
        dqkv[row0 + d] = a;
        if (dqkv16) dqkv16[row0 + d] = __float2bfloat16_rn(a);
    }
}

int check_args(const char *fn, int B, int T, int H, int hd, gpu_dtype qkv_dt, gpu_dtype dt) {
    if (B < 0 || T < 1 || H < 1 || hd < 1 || hd > kMaxHd)
        return gpu_fail("%s: bad shape B=%d T=%d H=%d hd=%d (head dim up to %d)", fn, B, T, H, hd, kMaxHd);
    if (qkv_dt == GPU_BF16 && dt != GPU_BF16) return gpu_fail("%s: a bf16 qkv goes with bf16", fn);
    return 0;
}

}  // namespace

extern "C" int gpu_attention_cls(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                                 gpu_dtype dt) {
    if (check_args("gpu_attention_cls", B, T, H, hd, qkv_dt, dt)) return -1;
    if (B == 0) return 0;
    if (gpu_ensure_scratch(g, (size_t)B * H * T * sizeof(float))) return -1;
    int bf = dt == GPU_BF16;
    attention_cls_kernel<<<B * H, kThreads, 0, g->stream>>>(out, bf, (float *)g->scratch,
                                                            qkv_in{qkv, qkv_dt == GPU_BF16}, T, H, hd,
                                                            1.0f / sqrtf((float)hd), bf);
    return gpu_check_launch("gpu_attention_cls");
}

extern "C" int gpu_attention_cls_backward(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                          gpu_dtype qkv_dt, int B, int T, int H, int hd, gpu_dtype dt) {
    if (check_args("gpu_attention_cls_backward", B, T, H, hd, qkv_dt, dt)) return -1;
    if (B == 0) return 0;
    size_t sb = align256((size_t)B * H * T * sizeof(float));
    if (gpu_ensure_scratch(g, 2 * sb)) return -1;
    float *p = (float *)g->scratch, *ds = (float *)((char *)g->scratch + sb);
    attention_cls_backward_kernel<<<B * H, kThreads, 0, g->stream>>>(
        dqkv, (__nv_bfloat16 *)dqkv16, p, ds, dout, qkv_in{qkv, qkv_dt == GPU_BF16}, T, H, hd,
        1.0f / sqrtf((float)hd), dt == GPU_BF16);
    return gpu_check_launch("gpu_attention_cls_backward");
}
