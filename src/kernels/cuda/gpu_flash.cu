// Flash-style attention for bf16 with head dim 64 (the ViT's), forward and
// backward: the scores never leave the chip. Forward: one block = 4 warps = 64
// query rows of one (image, head); it walks the keys in tiles of 64, computing
// S = q k^T on tensor cores (WMMA bf16, fp32 accumulation), an online softmax
// in fp32 (running max and sum per row, FlashAttention's rescaling), and
// O += P v with P rounded to bf16 as the unfused path's second GEMM sees it.
// Same contract as the GEMM path in gpu_ctx.cu (q, k, v [B*H, T, 64] bf16 ->
// out [B, T, H*64]). The backward (flash_backward_kernel) is described there.
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

// stat_m, stat_l (NULL at inference): each row's final running max (of the
// scaled scores) and sum, [B*H, T], so the backward can rebuild P without the
// scores: P = exp(s - m) / l.
template <typename TO>
__global__ void __launch_bounds__(128) flash_kernel(TO *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                    const __nv_bfloat16 *v, int T, int H, float scale, float *stat_m,
                                                    float *stat_l) {
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
    if (stat_m && half == 0) stat_m[(size_t)bh * T + t] = m, stat_l[(size_t)bh * T + t] = l;
    int b = bh / H, h = bh % H;
    TO *dst = out + ((size_t)b * T + t) * H * HD + h * HD + half * 32;
    float inv = 1.0f / l;
#pragma unroll
    for (int j = 0; j < 32; j++) store_out(dst + j, o[j] * inv);
}


// The backward, FlashAttention-2's way, for bf16 with head dim 64: the scores
// are rebuilt tile by tile and never stored. One block = 4 warps = 64 keys of
// one (image, head); warp w owns keys [16 w, 16 w + 16) of the tile and keeps
// their K, V rows as fragments and their dK, dV as accumulators while the
// block walks the query tiles. Per query tile, each warp:
//   dP^T = V_w dO^T, S^T = K_w q^T (16 keys x 64 queries, WMMA),
//   P^T = exp(S^T scale - m) / l, dS^T = P^T (dP^T - delta)   (fp32, lane-wise),
//   dV_w += P^T dO, dK_w += dS^T q, dq += dS K_w * scale (atomicAdd: every key tile adds to it),
// with P and dS rounded to bf16 for their products, as the GEMM path rounds
// them. m, l are the forward's row statistics, delta = rowsum(dO * O).
// Queries past T have dO = 0 and delta = 0, keys past T have K = V = 0: both
// then add nothing to what is written. Shared memory: 18 KB of tiles + 26 KB
// of per-warp scratch + 768 B of row statistics.
__global__ void __launch_bounds__(128) flash_backward_kernel(float *dq, float *dk, float *dv, const __nv_bfloat16 *q,
                                                             const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                                                             const __nv_bfloat16 *dout, const float *stat_m,
                                                             const float *stat_l, const float *delta, int T,
                                                             float scale) {
    __shared__ __align__(32) __nv_bfloat16 Ta[KT * LDH];       // K, then each query tile's q
    __shared__ __align__(32) __nv_bfloat16 Tb[KT * LDH];       // V, then each query tile's dO
    __shared__ __align__(32) float Ws[4][16 * LDS];            // per warp: dP^T, S^T, then dS^T (bf16)
    __shared__ __align__(32) __nv_bfloat16 Wp[4][16 * LDH];    // per warp: P^T, then one fp32 16 x 16 tile
    __shared__ float Sm[QT];  // this query tile's m, l and delta
    __shared__ float Sl[QT];
    __shared__ float Sd[QT];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.y, k0 = blockIdx.x * KT;
    size_t base = (size_t)bh * T;
    const __nv_bfloat16 *qb = q + base * HD, *kb = k + base * HD, *vb = v + base * HD, *ob = dout + base * HD;
    float *A = Ws[warp];
    __nv_bfloat16 *A16 = reinterpret_cast<__nv_bfloat16 *>(A), *Pt = Wp[warp];
    float *F = reinterpret_cast<float *>(Pt);  // 16 x 16 fp32 staging tile (1 KB of Pt's 2.3 KB)

    load_tile(Ta, kb, k0, KT, T, threadIdx.x, blockDim.x);
    load_tile(Tb, vb, k0, KT, T, threadIdx.x, blockDim.x);
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ka[HD / 16], va[HD / 16];
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> kb_frag[HD / 16];
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[HD / 16], dv_acc[HD / 16];
    for (int d = 0; d < HD / 16; d++) {
        wmma::load_matrix_sync(ka[d], Ta + warp * 16 * LDH + d * 16, LDH);
        wmma::load_matrix_sync(va[d], Tb + warp * 16 * LDH + d * 16, LDH);
        wmma::load_matrix_sync(kb_frag[d], Ta + warp * 16 * LDH + d * 16, LDH);
        wmma::fill_fragment(dk_acc[d], 0.0f);
        wmma::fill_fragment(dv_acc[d], 0.0f);
    }
    int r = lane / 2, half = lane % 2;  // lane's row (key) and half of the 64 queries in the warp's tiles

    for (int q0 = 0; q0 < T; q0 += QT) {
        __syncthreads();  // every warp is done with the previous tiles (and with K, V)
        load_tile(Ta, qb, q0, QT, T, threadIdx.x, blockDim.x);
        load_tile(Tb, ob, q0, QT, T, threadIdx.x, blockDim.x);
        for (int i = threadIdx.x; i < QT; i += blockDim.x) {
            bool in = q0 + i < T;
            Sm[i] = in ? stat_m[base + q0 + i] : 0.0f;
            Sl[i] = in ? stat_l[base + q0 + i] : 1.0f;
            Sd[i] = in ? delta[base + q0 + i] : 0.0f;
        }
        __syncthreads();

        // dP^T (16 keys x 64 queries) = V_w dO^T; dO^T as matrix_b is dO's rows read column-major.
        float dp[32], s[32];
        for (int pass = 0; pass < 2; pass++) {
            for (int n = 0; n < QT / 16; n++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
                wmma::fill_fragment(acc, 0.0f);
                for (int d = 0; d < HD / 16; d++) {
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bt;
                    wmma::load_matrix_sync(bt, (pass ? Ta : Tb) + n * 16 * LDH + d * 16, LDH);
                    wmma::mma_sync(acc, pass ? ka[d] : va[d], bt, acc);
                }
                wmma::store_matrix_sync(A + n * 16, acc, LDS, wmma::mem_row_major);
            }
            __syncwarp();
            float *dst = pass ? s : dp;  // pass 1: S^T = K_w q^T
#pragma unroll
            for (int j = 0; j < 32; j++) dst[j] = A[r * LDS + half * 32 + j];
            __syncwarp();
        }
#pragma unroll
        for (int j = 0; j < 32; j++) {
            int c = half * 32 + j;
            float p = expf(s[j] * scale - Sm[c]) / Sl[c];
            __nv_bfloat16 pb = __float2bfloat16_rn(p);
            Pt[r * LDH + c] = pb;
            A16[r * LDH + c] = __float2bfloat16_rn(__bfloat162float(pb) * (dp[j] - Sd[c]));
        }
        __syncwarp();

        // dV_w += P^T dO and dK_w += dS^T q (scaled at the end): 16 keys x 64 dims each.
        for (int n = 0; n < HD / 16; n++)
            for (int kk = 0; kk < QT / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> pa, da;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> ob_frag, qb_frag;
                wmma::load_matrix_sync(pa, Pt + kk * 16, LDH);
                wmma::load_matrix_sync(ob_frag, Tb + kk * 16 * LDH + n * 16, LDH);
                wmma::mma_sync(dv_acc[n], pa, ob_frag, dv_acc[n]);
                wmma::load_matrix_sync(da, A16 + kk * 16, LDH);
                wmma::load_matrix_sync(qb_frag, Ta + kk * 16 * LDH + n * 16, LDH);
                wmma::mma_sync(dk_acc[n], da, qb_frag, dk_acc[n]);
            }
        __syncwarp();  // Pt is free: it stages dq's tiles now

        // dq (64 queries x 64 dims) += dS K_w * scale; dS = (dS^T)^T is A16 read column-major.
        for (int qt = 0; qt < QT / 16; qt++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> dsa;
            wmma::load_matrix_sync(dsa, A16 + qt * 16, LDH);
            for (int n = 0; n < HD / 16; n++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
                wmma::fill_fragment(acc, 0.0f);
                wmma::mma_sync(acc, dsa, kb_frag[n], acc);
                wmma::store_matrix_sync(F, acc, 16, wmma::mem_row_major);
                __syncwarp();
                for (int i = lane; i < 256; i += 32) {
                    int t = q0 + qt * 16 + i / 16;
                    if (t < T) atomicAdd(dq + (base + t) * HD + n * 16 + i % 16, F[i] * scale);
                }
                __syncwarp();
            }
        }
    }

    // This warp's 16 rows of dK (scaled) and dV, through the staging tile.
    for (int which = 0; which < 2; which++)
        for (int n = 0; n < HD / 16; n++) {
            wmma::store_matrix_sync(F, which ? dv_acc[n] : dk_acc[n], 16, wmma::mem_row_major);
            __syncwarp();
            float *dst = which ? dv : dk, f = which ? 1.0f : scale;
            for (int i = lane; i < 256; i += 32) {
                int t = k0 + warp * 16 + i / 16;
                if (t < T) dst[(base + t) * HD + n * 16 + i % 16] = F[i] * f;
            }
            __syncwarp();
        }
}
}  // namespace

int gpu_launch_flash(cudaStream_t s, void *out, const void *q, const void *k, const void *v, int B, int T, int H,
                     int hd, gpu_dtype out_dt, float *stat_m, float *stat_l) {
    if (hd != HD) return -1;
    dim3 grid((T + QT - 1) / QT, B * H);
    float scale = 1.0f / sqrtf((float)hd);
    const __nv_bfloat16 *qb = (const __nv_bfloat16 *)q, *kb = (const __nv_bfloat16 *)k, *vb = (const __nv_bfloat16 *)v;
    if (out_dt == GPU_BF16)
        flash_kernel<<<grid, 128, 0, s>>>((__nv_bfloat16 *)out, qb, kb, vb, T, H, scale, stat_m, stat_l);
    else flash_kernel<<<grid, 128, 0, s>>>((float *)out, qb, kb, vb, T, H, scale, stat_m, stat_l);
    return 0;
}

int gpu_launch_flash_backward(cudaStream_t s, float *dq, float *dk, float *dv, const void *q, const void *k,
                              const void *v, const void *dout, const float *stat_m, const float *stat_l,
                              const float *delta, int B, int T, int H, int hd) {
    if (hd != HD) return -1;
    dim3 grid((T + KT - 1) / KT, B * H);
    float scale = 1.0f / sqrtf((float)hd);
    flash_backward_kernel<<<grid, 128, 0, s>>>(dq, dk, dv, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                                               (const __nv_bfloat16 *)v, (const __nv_bfloat16 *)dout, stat_m, stat_l,
                                               delta, T, scale);
    return 0;
}
