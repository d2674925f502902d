// Fused fp32 attention on AVX-512 FMA: softmax(q k^T / sqrt(hd)) v per
// (batch, head), 14 queries at a time, the scores never leaving L1.
//
// Why: the per-head sgemm path (cpu_attention.c) writes the T x T scores
// (1.3 MB at T = 577) and reads them three times for the softmax and once
// for P v; at ViT-L/16-384 its two sgemms ran at 71-76% of the FMA peak and
// the three softmax passes cost another 22% of a head
// (docs/performance.md, "fp32 attention").
//
// Per (batch, head), on one thread:
//   - k is packed transposed into 32-key panels [hd][32] (zero keys past T),
//     v into 32-column panels [T][32]: both then sit in L2.
//   - For each strip of 14 queries: q is packed [hd][14]; one 14 x 32 block
//     of scores per key panel is summed in 28 zmm registers (two vectors of
//     k^T and 14 broadcasts of q per step, as in a 14 x 32 sgemm kernel) and
//     stored to a 14-row score buffer, while a running row maximum is kept.
//   - One pass per row: e = exp(scale s - max) in place, summed.
//   - P v: the 14 x hd output block, 32 columns at a time, broadcasting e
//     straight from the score rows (a fixed row stride, so the 14 addresses
//     are one register plus constants) against the packed v rows; the
//     rows are scaled by 1 / sum on the way out (the normalisation pass the
//     unfused softmax needs is folded in here).
// The sums run in a fixed order per element, independent of the thread count.
#include "kernels/cpu/cpu_attention_fma.h"
#include "kernels/cpu/cpu_amx.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_simd.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <omp.h>
#include <string.h>

#define MR 14      // queries per strip
#define NR 32      // keys per score block, output columns per P v block
#define T_MAX 1024
// Score row stride in floats: 65 cache lines, odd, so that the 14 rows fall
// in different L1 sets (a multiple of 4 KB would put them all in one).
#define SLD 1040

int fma_attention_ok(int T, int hd) { return cpu_has_avx512() && hd % 32 == 0 && T <= T_MAX; }

typedef struct {
    int T, hd, np;
    float *kt, *vp, *qp, *s, *rmax;   // this thread's buffers
} head_bufs;

static size_t bufs_floats(int T, int hd) {
    int np = (T + NR - 1) / NR;
    return (size_t)np * hd * NR + (size_t)T * hd + (size_t)hd * MR + (size_t)MR * SLD + (size_t)MR * 16;
}

static void bufs_init(head_bufs *hb, float *base, int T, int hd) {
    hb->T = T;
    hb->hd = hd;
    hb->np = (T + NR - 1) / NR;
    hb->kt = base;
    hb->vp = hb->kt + (size_t)hb->np * hd * NR;
    hb->qp = hb->vp + (size_t)T * hd;
    hb->s = hb->qp + (size_t)hd * MR;
    hb->rmax = hb->s + (size_t)MR * SLD;
}

// 16 rows of 16 floats from rows[i] + c0 (rows i >= n, and columns past
// ncol, as zeros), transposed: r[c] holds column c0 + c of the 16 rows.
__attribute__((target("avx512f"))) static inline void load_t16(__m512i r[16], const float *base, long ld, int n,
                                                               int c0, int ncol) {
    __mmask16 m = ncol - c0 >= 16 ? 0xffff : (__mmask16)((1u << (ncol - c0)) - 1u);
    for (int i = 0; i < 16; i++)
        r[i] = i < n ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, base + (size_t)i * ld + c0)) : _mm512_setzero_si512();
    transpose16x16(r);
}

// k^T in 32-key panels [np][hd][32] (16 x 16 transposes in registers: a
// scalar transpose took 12% of the whole call), v in 32-column panels [hd/32][T][32].
__attribute__((target("avx512f"))) static void pack_kv(const head_bufs *hb, const float *k, const float *v, long ld) {
    const int T = hb->T, hd = hb->hd;
    for (int p = 0; p < hb->np; p++)
        for (int g = 0; g < 2; g++) {
            int t0 = p * NR + g * 16;
            float *dst = hb->kt + (size_t)p * hd * NR + g * 16;
            for (int d0 = 0; d0 < hd; d0 += 16) {
                __m512i r[16];
                load_t16(r, k + (size_t)t0 * ld, ld, T - t0, d0, hd);
                for (int c = 0; c < 16; c++) _mm512_store_si512(dst + (size_t)(d0 + c) * NR, r[c]);
            }
        }
    for (int dp = 0; dp < hd / NR; dp++)
        for (int t = 0; t < T; t++)
            memcpy(hb->vp + ((size_t)dp * T + t) * NR, v + (size_t)t * ld + (size_t)dp * NR, NR * sizeof(float));
}

// acc[i][:] = sum_k a(i, k) b[k][0..32) for i < 14, k < kc: a(i, k) at
// a[k * a_k + i * a_i], b rows 32 floats apart. Always inlined with constant
// strides, so the 14 broadcasts address a from one register.
__attribute__((target("avx512f"), always_inline)) static inline void block_14x32(__m512 acc[MR][2], const float *a,
                                                                                 long a_k, long a_i, const float *b,
                                                                                 int kc) {
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b + (size_t)k * NR), b1 = _mm512_load_ps(b + (size_t)k * NR + 16);
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) {
            __m512 x = _mm512_set1_ps(a[k * a_k + i * a_i]);
            acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
        }
    }
}

// Scores of the strip against key panel p: S[i][32p ..] = q_i . k_j, and the
// running row maxima over the keys that exist (mask m0/m1 on the last panel).
__attribute__((target("avx512f"))) static void qk_block(const head_bufs *hb, int p) {
    __m512 acc[MR][2];
    block_14x32(acc, hb->qp, MR, 1, hb->kt + (size_t)p * hb->hd * NR, hb->hd);
    int nk = hb->T - p * NR < NR ? hb->T - p * NR : NR;
    __mmask16 m0 = nk >= 16 ? 0xffff : (__mmask16)((1u << nk) - 1u);
    __mmask16 m1 = nk >= 32 ? 0xffff : nk <= 16 ? 0 : (__mmask16)((1u << (nk - 16)) - 1u);
    float *s = hb->s + (size_t)p * NR;
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        _mm512_store_ps(s + (size_t)i * SLD, acc[i][0]);
        _mm512_store_ps(s + (size_t)i * SLD + 16, acc[i][1]);
        __m512 mx = _mm512_load_ps(hb->rmax + i * 16);
        mx = _mm512_mask_max_ps(mx, m0, mx, acc[i][0]);
        mx = _mm512_mask_max_ps(mx, m1, mx, acc[i][1]);
        _mm512_store_ps(hb->rmax + i * 16, mx);
    }
}

// Row i of the strip: e = exp(scale s - scale max) in place over the T keys;
// returns 1 / sum(e).
__attribute__((target("avx512f"))) static float softmax_exp_row(const head_bufs *hb, int i, float scale) {
    float *row = hb->s + (size_t)i * SLD;
    const __m512 vs = _mm512_set1_ps(scale);
    const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_load_ps(hb->rmax + i * 16)) * scale);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    int t = 0;
    for (; t + 32 <= hb->T; t += 32) {   // two chains: the sum's add latency would bound one
        __m512 e0 = exp512(_mm512_fmsub_ps(_mm512_load_ps(row + t), vs, vmax));
        __m512 e1 = exp512(_mm512_fmsub_ps(_mm512_load_ps(row + t + 16), vs, vmax));
        _mm512_store_ps(row + t, e0);
        _mm512_store_ps(row + t + 16, e1);
        sum0 = _mm512_add_ps(sum0, e0);
        sum1 = _mm512_add_ps(sum1, e1);
    }
    for (; t < hb->T; t += 16) {
        __mmask16 m = hb->T - t >= 16 ? 0xffff : (__mmask16)((1u << (hb->T - t)) - 1u);
        __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_load_ps(m, row + t), vs, vmax));
        _mm512_mask_store_ps(row + t, m, e);
        sum0 = _mm512_mask_add_ps(sum0, m, sum0, e);
    }
    return 1.0f / _mm512_reduce_add_ps(_mm512_add_ps(sum0, sum1));
}

// Output columns [32 dp, 32 dp + 32) of the strip's mr rows: o_i = inv_i sum_t e_it v_t.
__attribute__((target("avx512f"))) static void pv_block(const head_bufs *hb, int dp, float *o, long orow,
                                                          const float *inv, int mr) {
    __m512 acc[MR][2];
    block_14x32(acc, hb->s, 1, SLD, hb->vp + (size_t)dp * hb->T * NR, hb->T);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        __m512 sc = _mm512_set1_ps(inv[i]);
        float *dst = o + (size_t)i * orow + (size_t)dp * NR;
        _mm512_storeu_ps(dst, _mm512_mul_ps(acc[i][0], sc));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(acc[i][1], sc));
    }
}

// q rows r0 .. r0 + mr - 1 into [hd][14], zero rows past mr.
__attribute__((target("avx512f"))) static void pack_q(const head_bufs *hb, const float *q, long ld, int mr) {
    for (int d0 = 0; d0 < hb->hd; d0 += 16) {
        __m512i r[16];
        load_t16(r, q, ld, mr, d0, hb->hd);
        for (int c = 0; c < 16; c++) _mm512_mask_storeu_epi32(hb->qp + (size_t)(d0 + c) * MR, 0x3fff, r[c]);
    }
}

// One (batch, head): q rows ld floats apart, k and v kv_off and 2 kv_off after q.
// (Software prefetching of the next strip's q and the next head's k and v
// was tried: the packing then waited less, but the prefetches cost as much.)
__attribute__((target("avx512f"))) static void one_head(const head_bufs *hb, const float *q, long ld, long kv_off,
                                                          float *o, long orow, float scale) {
    pack_kv(hb, q + kv_off, q + 2 * kv_off, ld);
    for (int r0 = 0; r0 < hb->T; r0 += MR) {
        int mr = hb->T - r0 < MR ? hb->T - r0 : MR;
        pack_q(hb, q + (size_t)r0 * ld, ld, mr);
        for (int i = 0; i < MR; i++) _mm512_store_ps(hb->rmax + i * 16, _mm512_set1_ps(-INFINITY));
        for (int p = 0; p < hb->np; p++) qk_block(hb, p);
        float inv[MR];
        for (int i = 0; i < mr; i++) inv[i] = softmax_exp_row(hb, i, scale);
        for (int dp = 0; dp < hb->hd / NR; dp++) pv_block(hb, dp, o + (size_t)r0 * orow, orow, inv, mr);
    }
}

int fma_attention(float *out, const float *qkv, int B, int T, int H, int hd) {
    if (!fma_attention_ok(T, hd)) return ufo_errorf("fma_attention: needs AVX-512, hd %% 32 == 0 and T <= %d", T_MAX);
    const long row = 3L * H * hd, orow = (long)H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const long BH = (long)B * H;
    int nthr = omp_get_max_threads();
    if (nthr > BH) nthr = (int)BH;
    const size_t per = (bufs_floats(T, hd) + 15) / 16 * 16;   // whole cache lines per thread
    float *buf = ufo_alloc((size_t)nthr * per * sizeof(float));
    if (!buf) return -1;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        head_bufs hb;
        bufs_init(&hb, buf + (size_t)omp_get_thread_num() * per, T, hd);
#pragma omp for schedule(static)
        for (long bh = 0; bh < BH; bh++) {
            long b = bh / H, h = bh % H;
            one_head(&hb, qkv + (size_t)b * T * row + (size_t)h * hd, row, (long)H * hd,
                     out + (size_t)b * T * orow + (size_t)h * hd, orow, scale);
        }
    }
    ufo_free(buf);
    return 0;
}
