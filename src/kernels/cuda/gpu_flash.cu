// Flash-style attention for bf16 with head dim 64 (the ViT's): the scores
// never leave the chip. One block = 4 warps = 64 query rows of one (image,
// head); it walks the keys in tiles of 64, computing S = q k^T on tensor cores
// (WMMA bf16, fp32 accumulation), an online softmax in fp32 (running max and
// sum per row, FlashAttention's rescaling), and O += P v with P rounded to
// bf16 as the unfused path's second GEMM sees it. Same contract as the GEMM
// path in gpu_ctx.cu (q, k, v [B*H, T, 64] bf16 -> out [B, T, H*64]).
#include "kernels/cuda/gpu_internal.h"
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

using namespace nvcuda;

namespace {

constexpr int HD = 64;        // head dim
constexpr int QT = 64;        // query rows per block (16 per warp)
constexpr int KT = 64;        // keys per tile
constexpr int LDH = HD + 8;   // bf16 row stride in shared memory (multiple of 8; breaks bank conflicts)
constexpr int LDS = KT + 4;   // fp32 row stride

template <typename T>
__device__ __forceinline__ void store_out(T *p, float v);
template <>
__device__ __forceinline__ void store_out<float>(float *p, float v) { *p = v; }
template <>
__device__ __forceinline__ void store_out<__nv_bfloat16>(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// Copies rows [r0, r0 + n) of a [T, 64] bf16 matrix into smem (ld LDH), zeros past T.
__device__ __forceinline__ void load_tile(__nv_bfloat16 *dst, const __nv_bfloat16 *src, int r0, int n, int T,
                                          int tid, int nthreads) {
    // 8 bf16 = 16 bytes per vector; a row of 64 is 8 vectors.
    for (int i = tid; i < n * (HD / 8); i += nthreads) {
        int r = i / (HD / 8), c = (i % (HD / 8)) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r0 + r < T) v = *reinterpret_cast<const uint4 *>(src + (size_t)(r0 + r) * HD + c);
        *reinterpret_cast<uint4 *>(dst + r * LDH + c) = v;
    }
}

template <typename TO>
__global__ void __launch_bounds__(128) flash_kernel(TO *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                    const __nv_bfloat16 *v, int T, int H, float scale) {
    __shared__ __align__(32) __nv_bfloat16 Ks[KT * LDH];
    __shared__ __align__(32) __nv_bfloat16 Vs[KT * LDH];
    __shared__ __align__(32) float Ss[4][16 * LDS];           // per warp: scores, then P v
    __shared__ __align__(32) __nv_bfloat16 Ps[4][16 * LDH];   // per warp: q rows, then P
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.y;
    int q0 = blockIdx.x * QT + warp * 16;
    const __nv_bfloat16 *qb = q + (size_t)bh * T * HD, *kb = k + (size_t)bh * T * HD, *vb = v + (size_t)bh * T * HD;
    float *S = Ss[warp];
    __nv_bfloat16 *P = Ps[warp];

    // This warp's 16 query rows -> 4 fragments (dims 0-15, ..., 48-63), kept in registers.
    load_tile(P, qb, q0, 16, T, lane, 32);
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qf[HD / 16];
    for (int d = 0; d < HD / 16; d++) wmma::load_matrix_sync(qf[d], P + d * 16, LDH);

    // Lane owns row r = lane / 2, columns [half * 32, half * 32 + 32) of S and of O.
    int r = lane / 2, half = lane % 2;
    float o[32], m = -INFINITY, l = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; j++) o[j] = 0.0f;

    for (int k0 = 0; k0 < T; k0 += KT) {
        __syncthreads();  // everyone is done with the previous K/V tile
        load_tile(Ks, kb, k0, KT, T, threadIdx.x, blockDim.x);
        load_tile(Vs, vb, k0, KT, T, threadIdx.x, blockDim.x);
        __syncthreads();

        // S (16 x 64) = q (16 x 64) k^T: k^T as matrix_b is k's rows read column-major.
        for (int n = 0; n < KT / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int d = 0; d < HD / 16; d++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + n * 16 * LDH + d * 16, LDH);
                wmma::mma_sync(acc, qf[d], kf, acc);
            }
            wmma::store_matrix_sync(S + n * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax on this lane's 32 scores (keys past T masked out).
        float s[32], mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int key = k0 + half * 32 + j;
            s[j] = key < T ? S[r * LDS + half * 32 + j] * scale : -INFINITY;
            mx = fmaxf(mx, s[j]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float m_new = fmaxf(m, mx);  // finite: every tile has at least one key < T
        float alpha = expf(m - m_new), sum = 0.0f;
#pragma unroll
        for (int j = 0; j < 32; j++) {
            float p = expf(s[j] - m_new);
            __nv_bfloat16 pb = __float2bfloat16_rn(p);
            P[r * LDH + half * 32 + j] = pb;
            sum += __bfloat162float(pb);  // the denominator of the P that is multiplied
            o[j] *= alpha;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = m_new;
        __syncwarp();

        // P v (16 x 64) into S, then added to this lane's O.
        for (int n = 0; n < HD / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < KT / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, P + kk * 16, LDH);
                wmma::load_matrix_sync(vf, Vs + kk * 16 * LDH + n * 16, LDH);
                wmma::mma_sync(acc, pf, vf, acc);
            }
            wmma::store_matrix_sync(S + n * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();
#pragma unroll
        for (int j = 0; j < 32; j++) o[j] += S[r * LDS + half * 32 + j];
        __syncwarp();
    }

    int t = q0 + r;
    if (t >= T) return;
    int b = bh / H, h = bh % H;
    TO *dst = out + ((size_t)b * T + t) * H * HD + h * HD + half * 32;
    float inv = 1.0f / l;
#pragma unroll
    for (int j = 0; j < 32; j++) store_out(dst + j, o[j] * inv);
}

}  // namespace

int gpu_launch_flash(cudaStream_t s, void *out, const void *q, const void *k, const void *v, int B, int T, int H,
                     int hd, gpu_dtype out_dt) {
    if (hd != HD) return -1;
    dim3 grid((T + QT - 1) / QT, B * H);
    float scale = 1.0f / sqrtf((float)hd);
    const __nv_bfloat16 *qb = (const __nv_bfloat16 *)q, *kb = (const __nv_bfloat16 *)k, *vb = (const __nv_bfloat16 *)v;
    if (out_dt == GPU_BF16) flash_kernel<<<grid, 128, 0, s>>>((__nv_bfloat16 *)out, qb, kb, vb, T, H, scale);
    else flash_kernel<<<grid, 128, 0, s>>>((float *)out, qb, kb, vb, T, H, scale);
    return 0;
}
