// Flash-style attention for bf16 with head dim 64 (the ViT's), forward and
// backward: the scores never leave the chip. Forward: one block = 4 warps = 64
// query rows of one (image, head); it walks the keys in tiles of 64, computing
// S = q k^T on tensor cores (PTX mma.sync bf16, fp32 accumulation), an online
// softmax in fp32 on the accumulators (running max and sum per row,
// FlashAttention's rescaling), and O += P v with P rounded to bf16 as the
// unfused path's second GEMM sees it.
// Same contract as the GEMM path in gpu_ctx.cu (q, k, v [B*H, T, 64] bf16 ->
// out [B, T, H*64]). The backward (flash_backward_kernel) is described there.
#include "kernels/cuda/gpu_internal.h"
#include <cuda_bf16.h>
#include <math.h>
#include "kernels/cuda/gpu_mma.cuh"

namespace {

constexpr int HD = 64;        // head dim
constexpr int QT = 64;        // query rows per block (16 per warp)
constexpr int KT = 64;        // keys per tile
constexpr int LDH = HD + 8;   // bf16 row stride in shared memory (multiple of 8; breaks bank conflicts)

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
//
// FlashAttention-2's forward on PTX mma.sync (gpu_mma.cuh): one block = 4
// warps = 64 query rows of one (image, head), each warp 16 rows whose q stays
// in registers as A fragments. Per tile of 64 keys: S = q k^T (16 x 64) lands in
// the accumulators, the online softmax runs on them in registers (each lane
// holds 2 rows x 16 keys; a row's 4 lanes combine by shuffles), P is rounded
// to bf16 and repacked as the A fragments of O += P v, and O stays in
// registers to the end. Shared memory holds only K (row-major) and V
// transposed (so both B fragments are single 32-bit loads, without bank
// conflicts); the next tile's K and V are fetched into registers while this
// one is computed. Warps whose 16 rows are all past T skip the arithmetic, and
// the 8-key column groups past T are skipped, so T = 577 wastes 2% of the work
// instead of 19%.
constexpr int LDV = KT + 8;   // Vt's row stride (bf16): 36 words, conflict-free fragment loads
constexpr int KV_VECS = KT * HD / 8 / 128;   // 16-byte vectors of K (and of V) per thread per tile

template <typename TO>
__global__ void __launch_bounds__(128) flash_kernel(TO *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                    const __nv_bfloat16 *v, gpu_qkv_strides st, int T, int H,
                                                    float scale, float *stat_m, float *stat_l) {
    __shared__ __align__(16) __nv_bfloat16 Ks[KT * LDH];   // [key][dim]
    __shared__ __align__(16) __nv_bfloat16 Vt[HD * LDV];   // [dim][key]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4, bh = blockIdx.y;
    int q0 = blockIdx.x * QT + warp * 16;
    bool active = q0 < T;
    size_t off = (size_t)(bh / H) * st.img + (size_t)(bh % H) * st.head;
    const __nv_bfloat16 *qb = q + off, *kb = k + off, *vb = v + off;

    // q rows q0 + g and q0 + g + 8 as the A fragments of the 4 k-steps (dims 16 d ..).
    uint32_t qa[HD / 16][4];
#pragma unroll
    for (int d = 0; d < HD / 16; d++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int row = q0 + g + (i % 2) * 8, col = d * 16 + 2 * t4 + (i / 2) * 8;
            qa[d][i] = row < T ? *reinterpret_cast<const uint32_t *>(qb + (size_t)row * st.row + col) : 0u;
        }

    // The K/V tile fetch: thread i takes vector (key i % 64, dims 8 (i / 64) ..)
    // of each: a warp's 32 lanes cover 32 keys, so the transposed stores into Vt
    // hit 16 distinct words.
    uint4 kr[KV_VECS], vr[KV_VECS];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int j = 0; j < KV_VECS; j++) {
            int i = threadIdx.x + j * 128, key = i % KT, c = i / KT * 8;
            bool in = k0 + key < T;
            size_t o = (size_t)(k0 + key) * st.row + c;
            kr[j] = in ? *reinterpret_cast<const uint4 *>(kb + o) : make_uint4(0, 0, 0, 0);
            vr[j] = in ? *reinterpret_cast<const uint4 *>(vb + o) : make_uint4(0, 0, 0, 0);
        }
    };
    fetch(0);

    float o[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};   // rows g, g + 8
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) o[n][i] = 0.0f;

    for (int k0 = 0; k0 < T; k0 += KT) {
        __syncthreads();   // every warp is done with the previous tile
#pragma unroll
        for (int j = 0; j < KV_VECS; j++) {
            int i = threadIdx.x + j * 128, key = i % KT, c = i / KT * 8;
            *reinterpret_cast<uint4 *>(Ks + key * LDH + c) = kr[j];
            const __nv_bfloat16 *e = reinterpret_cast<const __nv_bfloat16 *>(&vr[j]);
#pragma unroll
            for (int x = 0; x < 8; x++) Vt[(c + x) * LDV + key] = e[x];
        }
        __syncthreads();
        if (k0 + KT < T) fetch(k0 + KT);   // in flight while this tile is computed
        if (!active) continue;
        int nk = T - k0 < KT ? T - k0 : KT;   // keys of this tile

        // S = q k^T: 8 column groups of 8 keys; b = K[key 8 n + g][dims 16 d + 2 t4 ..].
        float s[KT / 8][4];
#pragma unroll
        for (int n = 0; n < KT / 8; n++) {
#pragma unroll
            for (int i = 0; i < 4; i++) s[n][i] = 0.0f;
            if (n * 8 >= nk) continue;
#pragma unroll
            for (int d = 0; d < HD / 16; d++) {
                uint32_t b[2];
                frag_b_kmajor(b, Ks + (n * 8 + g) * LDH + d * 16 + 2 * t4);
                mma_bf16_16816(s[n], qa[d], b, s[n]);
            }
        }

        // Online softmax of rows g (s[n][0..1]) and g + 8 (s[n][2..3]); keys past T masked.
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int n = 0; n < KT / 8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int key = n * 8 + 2 * t4 + i % 2;
                s[n][i] = key < nk ? s[n][i] * scale : -INFINITY;
                mx[i / 2] = fmaxf(mx[i / 2], s[n][i]);
            }
        float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float m_new = fmaxf(m[r], mx[r]);   // finite: the tile has a key < T
            alpha[r] = expf(m[r] - m_new);
            m[r] = m_new;
        }
        // P (bf16) as the A fragments of the 4 k-steps of P v (keys 16 j ..): step j
        // is column groups 2 j and 2 j + 1, the accumulator layout read as A's.
        uint32_t pa[KT / 16][4];
#pragma unroll
        for (int n = 0; n < KT / 8; n++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                __nv_bfloat16 p0 = __float2bfloat16_rn(expf(s[n][2 * r] - m[r]));
                __nv_bfloat16 p1 = __float2bfloat16_rn(expf(s[n][2 * r + 1] - m[r]));
                sum[r] += __bfloat162float(p0) + __bfloat162float(p1);   // the P that is multiplied
                pa[n / 2][(n % 2) * 2 + r] =
                    (uint32_t)__bfloat16_as_ushort(p0) | (uint32_t)__bfloat16_as_ushort(p1) << 16;
            }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
            sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
            l[r] = l[r] * alpha[r] + sum[r];
        }
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) o[n][i] *= alpha[i / 2];

        // O += P v: 8 column groups of 8 dims; b = Vt[dim 8 n + g][keys 16 j + 2 t4 ..].
#pragma unroll
        for (int j = 0; j < KT / 16; j++) {
            if (j * 16 >= nk) continue;
#pragma unroll
            for (int n = 0; n < HD / 8; n++) {
                uint32_t b[2];
                frag_b_kmajor(b, Vt + (n * 8 + g) * LDV + j * 16 + 2 * t4);
                mma_bf16_16816(o[n], pa[j], b, o[n]);
            }
        }
    }
    if (!active) return;

    int b = bh / H, h = bh % H;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = q0 + g + r * 8;
        if (row >= T) continue;
        if (stat_m && t4 == 0) stat_m[(size_t)bh * T + row] = m[r], stat_l[(size_t)bh * T + row] = l[r];
        TO *dst = out + ((size_t)b * T + row) * H * HD + h * HD + 2 * t4;
        float inv = 1.0f / l[r];
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            store_out(dst + n * 8, o[n][2 * r] * inv);
            store_out(dst + n * 8 + 1, o[n][2 * r + 1] * inv);
        }
    }
}

// The backward, FlashAttention-2's way, for bf16 with head dim 64, on PTX
// mma.sync (gpu_mma.cuh): the scores are rebuilt tile by tile and never
// stored. One block = 4 warps = 64 keys of one (image, head); warp w owns keys
// [16 w, 16 w + 16) of the tile and keeps their K and V rows as A fragments
// and their dK, dV as accumulators, in registers, while the block walks the
// query tiles of 64. Per query tile, each warp:
//   S^T = K_w q^T, dP^T = V_w dO^T (16 keys x 64 queries, in the accumulators),
//   P^T = exp(S^T scale - m) / l, dS^T = P^T (dP^T - delta)   (fp32, in registers),
//   dV_w += P^T dO, dK_w += dS^T q (P^T and dS^T repacked as A fragments),
// and writes dS^T into the block's dS [64 queries, 64 keys]; then warp w
// computes rows [16 w, 16 w + 16) of dS K (all 64 keys) and adds them, times
// scale, to dq with atomics (every key block adds to dq). P and dS are rounded
// to bf16 for their products, as the GEMM path rounds them. m, l are the
// forward's row statistics, delta = rowsum(dO * O). Queries past T have dO = 0
// and delta = 0, keys past T have K = V = 0: both then add nothing to what is
// written (P is set to 0 for keys past T, whose exp(0 - m) could overflow);
// whole 8- and 16-wide groups past T are skipped. Shared memory: K,
// the query tile's q and dO, and dS (9 KB each), and the row statistics.
__global__ void __launch_bounds__(128) flash_backward_kernel(float *dq, float *dk, float *dv, const __nv_bfloat16 *q,
                                                             const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                                                             const __nv_bfloat16 *dout, const float *stat_m,
                                                             const float *stat_l, const float *delta, int T,
                                                             float scale) {
    __shared__ __align__(16) __nv_bfloat16 Ks[KT * LDH];    // this block's keys [key][dim] (V's pass first)
    __shared__ __align__(16) __nv_bfloat16 Qs[QT * LDH];    // the query tile's q [query][dim]
    __shared__ __align__(16) __nv_bfloat16 Os[QT * LDH];    // and its dO
    __shared__ __align__(16) __nv_bfloat16 dSs[QT * LDH];   // dS [query][key]
    __shared__ float Sm[QT];   // the query tile's m, l and delta
    __shared__ float Sl[QT];
    __shared__ float Sd[QT];
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t4 = lane % 4, bh = blockIdx.y;
    int k0 = blockIdx.x * KT;
    bool keys_in = k0 + warp * 16 < T;   // the warp has a key < T
    size_t base = (size_t)bh * T;
    const __nv_bfloat16 *qb = q + base * HD, *kb = k + base * HD, *vb = v + base * HD, *ob = dout + base * HD;

    // The warp's 16 keys' V, then K, rows as A fragments (4 k-steps over the
    // dims), through Ks; K then stays there for dS K.
    uint32_t ka[HD / 16][4], va[HD / 16][4];
    auto rows_as_a = [&](uint32_t (&f)[HD / 16][4]) {
#pragma unroll
        for (int d = 0; d < HD / 16; d++) frag_a(f[d], Ks + (warp * 16 + g) * LDH + d * 16 + 2 * t4, LDH);
    };
    load_tile(Ks, vb, k0, KT, T, threadIdx.x, blockDim.x);
    __syncthreads();
    rows_as_a(va);
    __syncthreads();
    load_tile(Ks, kb, k0, KT, T, threadIdx.x, blockDim.x);
    __syncthreads();
    rows_as_a(ka);

    float dka[HD / 8][4], dva[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int i = 0; i < 4; i++) dka[n][i] = dva[n][i] = 0.0f;

    for (int q0 = 0; q0 < T; q0 += QT) {
        __syncthreads();   // every warp is done with the previous tile (Qs, Os, dSs)
        load_tile(Qs, qb, q0, QT, T, threadIdx.x, blockDim.x);
        load_tile(Os, ob, q0, QT, T, threadIdx.x, blockDim.x);
        for (int i = threadIdx.x; i < QT; i += blockDim.x) {
            bool in = q0 + i < T;
            Sm[i] = in ? stat_m[base + q0 + i] : 0.0f;
            Sl[i] = in ? stat_l[base + q0 + i] : 1.0f;
            Sd[i] = in ? delta[base + q0 + i] : 0.0f;
        }
        __syncthreads();
        int nq = T - q0 < QT ? T - q0 : QT;   // queries of this tile

        if (keys_in) {
            // S^T and dP^T: 8 column groups of 8 queries; b = q (dO) [query 8 n + g][dims 16 d + 2 t4 ..].
            float s[QT / 8][4], dp[QT / 8][4];
#pragma unroll
            for (int n = 0; n < QT / 8; n++) {
#pragma unroll
                for (int i = 0; i < 4; i++) s[n][i] = dp[n][i] = 0.0f;
                if (n * 8 >= nq) continue;   // queries past T: dO = 0, so dS = 0 and P dO = 0
#pragma unroll
                for (int d = 0; d < HD / 16; d++) {
                    uint32_t bq[2], bo[2];
                    frag_b_kmajor(bq, Qs + (n * 8 + g) * LDH + d * 16 + 2 * t4);
                    frag_b_kmajor(bo, Os + (n * 8 + g) * LDH + d * 16 + 2 * t4);
                    mma_bf16_16816(s[n], ka[d], bq, s[n]);
                    mma_bf16_16816(dp[n], va[d], bo, dp[n]);
                }
            }
            // P^T, dS^T (bf16) as A fragments over the queries (step j = groups 2 j, 2 j + 1),
            // and dS into the block's dS [query][key].
            uint32_t pa[QT / 16][4], da[QT / 16][4];
#pragma unroll
            for (int n = 0; n < QT / 8; n++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    unsigned short pw[2], dw[2];
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int c = n * 8 + 2 * t4 + e;
                        // A key past T has S = 0, whose exp(-m) may overflow: P = 0 there.
                        float p = k0 + warp * 16 + g + r * 8 < T ? expf(s[n][2 * r + e] * scale - Sm[c]) / Sl[c] : 0.0f;
                        __nv_bfloat16 pb = __float2bfloat16_rn(p);
                        __nv_bfloat16 db = __float2bfloat16_rn(__bfloat162float(pb) * (dp[n][2 * r + e] - Sd[c]));
                        pw[e] = __bfloat16_as_ushort(pb);
                        dw[e] = __bfloat16_as_ushort(db);
                        dSs[c * LDH + warp * 16 + g + r * 8] = db;
                    }
                    pa[n / 2][(n % 2) * 2 + r] = (uint32_t)pw[0] | (uint32_t)pw[1] << 16;
                    da[n / 2][(n % 2) * 2 + r] = (uint32_t)dw[0] | (uint32_t)dw[1] << 16;
                }
            // dV_w += P^T dO, dK_w += dS^T q: 8 column groups of 8 dims; b = dO (q) [queries 16 j + 2 t4 ..][dim 8 n + g].
#pragma unroll
            for (int j = 0; j < QT / 16; j++) {
                if (j * 16 >= nq) continue;
#pragma unroll
                for (int n = 0; n < HD / 8; n++) {
                    uint32_t bo[2], bq[2];
                    frag_b_nmajor(bo, Os + (j * 16 + 2 * t4) * LDH + n * 8 + g, LDH);
                    frag_b_nmajor(bq, Qs + (j * 16 + 2 * t4) * LDH + n * 8 + g, LDH);
                    mma_bf16_16816(dva[n], pa[j], bo, dva[n]);
                    mma_bf16_16816(dka[n], da[j], bq, dka[n]);
                }
            }
        } else {   // no key < T: dS = 0 (K = 0 rows would add nothing to dq anyway)
#pragma unroll
            for (int n = 0; n < QT / 8; n++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                    dSs[(n * 8 + 2 * t4 + i % 2) * LDH + warp * 16 + g + (i / 2) * 8] = __float2bfloat16_rn(0.0f);
        }
        __syncthreads();   // dS is complete

        // dq rows [16 w, 16 w + 16) of the tile += (dS K) scale: a = dS [query][keys 16 j + 2 t4 ..],
        // b = K [keys 16 j + 2 t4 ..][dim 8 n + g].
        if (warp * 16 >= nq) continue;
        float acc[HD / 8][4];
#pragma unroll
        for (int n = 0; n < HD / 8; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[n][i] = 0.0f;
#pragma unroll
        for (int j = 0; j < KT / 16; j++) {
            if (k0 + j * 16 >= T) continue;   // keys past T: K = 0
            uint32_t a[4];
            frag_a(a, dSs + (warp * 16 + g) * LDH + j * 16 + 2 * t4, LDH);
#pragma unroll
            for (int n = 0; n < HD / 8; n++) {
                uint32_t b[2];
                frag_b_nmajor(b, Ks + (j * 16 + 2 * t4) * LDH + n * 8 + g, LDH);
                mma_bf16_16816(acc[n], a, b, acc[n]);
            }
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int t = q0 + warp * 16 + g + (i / 2) * 8;
            if (t >= T) continue;
#pragma unroll
            for (int n = 0; n < HD / 8; n++) atomicAdd(dq + (base + t) * HD + n * 8 + 2 * t4 + i % 2, acc[n][i] * scale);
        }
    }

    // This warp's 16 rows of dK (scaled) and dV.
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int t = k0 + warp * 16 + g + (i / 2) * 8;
        if (t >= T) continue;
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            size_t o = (base + t) * HD + n * 8 + 2 * t4 + i % 2;
            dk[o] = dka[n][i] * scale;
            dv[o] = dva[n][i];
        }
    }
}
}  // namespace

// Both launchers take the images in chunks of at most 65535 / H: grid.y (one
// block row per (image, head)) is limited to 65535.
int gpu_launch_flash(cudaStream_t s, void *out, const void *q, const void *k, const void *v, gpu_qkv_strides st,
                     int B, int T, int H, int hd, gpu_dtype out_dt, float *stat_m, float *stat_l) {
    if (hd != HD || H > 65535) return -1;
    float scale = 1.0f / sqrtf((float)hd);
    int per = 65535 / H;
    size_t es = out_dt == GPU_BF16 ? 2 : 4;
    for (int b0 = 0; b0 < B; b0 += per) {
        int nb = B - b0 < per ? B - b0 : per;
        dim3 grid((T + QT - 1) / QT, nb * H);
        size_t off = (size_t)b0 * st.img, so = (size_t)b0 * H * T;
        const __nv_bfloat16 *qb = (const __nv_bfloat16 *)q + off, *kb = (const __nv_bfloat16 *)k + off;
        const __nv_bfloat16 *vb = (const __nv_bfloat16 *)v + off;
        char *ob = (char *)out + (size_t)b0 * T * H * HD * es;
        float *sm = stat_m ? stat_m + so : nullptr, *sl = stat_l ? stat_l + so : nullptr;
        if (out_dt == GPU_BF16)
            flash_kernel<<<grid, 128, 0, s>>>((__nv_bfloat16 *)ob, qb, kb, vb, st, T, H, scale, sm, sl);
        else flash_kernel<<<grid, 128, 0, s>>>((float *)ob, qb, kb, vb, st, T, H, scale, sm, sl);
    }
    return 0;
}

int gpu_launch_flash_backward(cudaStream_t s, float *dq, float *dk, float *dv, const void *q, const void *k,
                              const void *v, const void *dout, const float *stat_m, const float *stat_l,
                              const float *delta, int B, int T, int H, int hd) {
    if (hd != HD || H > 65535) return -1;
    float scale = 1.0f / sqrtf((float)hd);
    int per = 65535 / H;
    for (int b0 = 0; b0 < B; b0 += per) {
        int nb = B - b0 < per ? B - b0 : per;
        dim3 grid((T + KT - 1) / KT, nb * H);
        size_t off = (size_t)b0 * H * T * HD, so = (size_t)b0 * H * T;
        flash_backward_kernel<<<grid, 128, 0, s>>>(
            dq + off, dk + off, dv + off, (const __nv_bfloat16 *)q + off, (const __nv_bfloat16 *)k + off,
            (const __nv_bfloat16 *)v + off, (const __nv_bfloat16 *)dout + off, stat_m + so, stat_l + so, delta + so,
            T, scale);
    }
    return 0;
}
