// cpu_attention_amx_bwd: fused bf16 attention backward on AMX tiles.
//
// Why: the oneDNN path (cpu_backward.c) materialises S, P, dP and dS for a
// whole image as [H, T, T] arrays (about 60 MB at T = 577, H = 16) and walks
// them six times; at ViT-L/16-384 batch 4 it took 42 ms a layer, a fifth of a
// bf16 training step. Here one work item is one head of one image, and
// nothing of size T x T leaves the thread's L2.
//
// Math (per head; q, k, v, dO rounded to bf16, sums in fp32, as the oneDNN path):
//   S = q k^T, P = softmax(scale S)                        (recomputed: exact two-pass softmax per row)
//   dP = dO v^T, dS = P (dP - rowsum(P dP)) scale
//   dQ = dS k, dK = dS^T q, dV = P^T dO
// Phase 1 walks the query blocks of 32 rows: S and dP [32, Tp] fp32, then P
// and dS for the whole block, dQ for the block (tiles_pv), and P and dS kept
// for the whole head in bf16 VNNI form (pairs of consecutive query rows,
// interleaved: the B operand of a matmul that sums over queries). Phase 2 is
// two matmuls over all queries: dK^T [hd, Tp] = q^T dS and dV^T = dO^T P,
// whose A operands (q^T, dO^T: rows of one dimension, pairs of consecutive
// tokens) come from the pre-pass. dK^T and dV^T are then transposed out.
//
// Layouts per head (bf16; Tp = T rounded up to 32, padded tokens zero):
//   qb, dob  [Tp][hd]                  rows: A of S = q k^T and dP = dO v^T
//   kp, vkp  [Tp/16][hd/2][16] pairs   k, v transposed: B of S and of dP
//   kvp      [hd/16][Tp/2][16] pairs   k, pairs of tokens: B of dQ = dS k
//   qt, dot  [hd][Tp/2] pairs          q^T, dO^T: A of dK^T and dV^T
// The pre-pass makes all of them from a token-major walk of an image's qkv
// and dout rows (see cpu_attention_amx.c: reading one head's rows instead
// costs a TLB miss per row). Per thread: S, dP, dS rows of a query block, and
// P, dS in VNNI form for the whole head (2 x 740 KB at T = 577).
//
// Results: dqkv fp32, or bf16 with the column sums added to db (the qkv bias
// gradient). The sums are kept per (image, head) and added in image order,
// so the result does not depend on the thread count or the schedule.
#include "kernels/cpu/cpu_attention_amx.h"
#include "kernels/cpu/cpu_attention_amx_tiles.h"
#include "kernels/cpu/cpu_amx.h"
#include "base/mem.h"
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#define QB 32   // query rows per block

typedef struct {
    uint16_t *qb, *dob, *kvp;
    uint32_t *kp, *vkp, *qt, *dot;
} bwd_image;

typedef struct {
    float *dqkv;          // fp32 result, or NULL
    uint16_t *dqkvb;      // bf16 result (with part), or NULL
    double *part;         // [B][3 * H * hd] column sums of the result, or NULL
    const float *dout;
    const void *qkv;      // fp32, or bf16 when qkv_bf16 (rounded by the qkv matmul: the same values)
    int qkv_bf16;
    int B, T, H, hd, Tp;
    float scale;
    bwd_image im[2];      // image b in im[b % 2]
    char *scratch;        // per-thread buffers, per_thread bytes each
    size_t per_thread;
} bwd_job;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

// Lanes 0-31 of a and 32-63 of b interleaved pairwise: lo takes elements
// 0-15 of each, hi 16-31 ((a0, b0, a1, b1, ...)).
#define PAIR_LO                                                                                                   \
    _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, \
                     3, 34, 2, 33, 1, 32, 0)

// ---------------------------------------------------------------- pre-pass

// Tokens [j0, j0+32) of one image into every per-head layout. stage: per
// thread [4][32][C] bf16 (q, k, v, dO rows of these tokens).
__attribute__((target(AMX_TARGET), noinline)) static void pack_block(const bwd_job *jb, const bwd_image *im, int b,
                                                                      int j0, uint16_t *stage) {
    const int T = jb->T, Tp = jb->Tp, H = jb->H, hd = jb->hd, C = H * hd, hp = hd / 2;
    const size_t head = (size_t)Tp * hd;   // one head's array, in bf16 elements
    uint16_t *sq = stage, *sk = sq + (size_t)32 * C, *sv = sk + (size_t)32 * C, *sd = sv + (size_t)32 * C;
    for (int t = 0; t < 32; t++) {
        const int j = j0 + t;
        const size_t r = ((size_t)b * T + j) * 3 * C;
        const float *row = (const float *)jb->qkv + r, *drow = jb->dout + ((size_t)b * T + j) * C;
        const uint16_t *rowb = (const uint16_t *)jb->qkv + r;
        for (int c = 0; c < C; c += 32) {
            __m512i q = _mm512_setzero_si512(), k = q, v = q, d = q;
            if (j < T && jb->qkv_bf16) {
                q = _mm512_loadu_si512(rowb + c);
                k = _mm512_loadu_si512(rowb + C + c);
                v = _mm512_loadu_si512(rowb + 2 * C + c);
                d = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(drow + c + 16), _mm512_loadu_ps(drow + c));
            } else if (j < T) {
                q = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(row + c));
                k = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + C + c + 16), _mm512_loadu_ps(row + C + c));
                v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * C + c + 16),
                                                 _mm512_loadu_ps(row + 2 * C + c));
                d = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(drow + c + 16), _mm512_loadu_ps(drow + c));
            }
            const size_t at = (size_t)(c / hd) * head + (size_t)j * hd + c % hd;
            _mm512_storeu_si512(im->qb + at, q);
            _mm512_storeu_si512(im->dob + at, d);
            _mm512_storeu_si512(sq + (size_t)t * C + c, q);
            _mm512_storeu_si512(sk + (size_t)t * C + c, k);
            _mm512_storeu_si512(sv + (size_t)t * C + c, v);
            _mm512_storeu_si512(sd + (size_t)t * C + c, d);
        }
    }
    const __m512i lo = PAIR_LO, hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    const size_t blk = (size_t)Tp / 2 * 32;   // one 16-dim block of kvp, in bf16 elements
    for (int h = 0; h < H; h++) {
        for (int d = 0; d < hd; d += 32) {
            const size_t col = (size_t)h * hd + d;
            // k and v transposed (32-bit pairs of dims, 16 tokens a row): kp, vkp
            for (int half = 0; half < 32; half += 16) {
                __m512i rk[16], rv[16];
                for (int t = 0; t < 16; t++) {
                    rk[t] = _mm512_loadu_si512(sk + (size_t)(half + t) * C + col);
                    rv[t] = _mm512_loadu_si512(sv + (size_t)(half + t) * C + col);
                }
                transpose16x16(rk);
                transpose16x16(rv);
                const size_t o = (size_t)h * head / 2 + ((size_t)((j0 + half) / 16) * hp + d / 2) * 16;
                for (int c = 0; c < 16; c++) {
                    _mm512_storeu_si512(im->kp + o + c * 16, rk[c]);
                    _mm512_storeu_si512(im->vkp + o + c * 16, rv[c]);
                }
            }
            // Pairs of consecutive tokens, 16 dims a vector: k as kvp; q and dO
            // transposed into rows of one dim (qt, dot).
            __m512i ql[16], qh[16], dl[16], dh[16];
            uint16_t *kd = im->kvp + (size_t)h * head + (size_t)(d / 16) * blk + (size_t)(j0 / 2) * 32;
            for (int t = 0; t < 32; t += 2) {
                __m512i a = _mm512_loadu_si512(sk + (size_t)t * C + col), bb = _mm512_loadu_si512(sk + (size_t)(t + 1) * C + col);
                _mm512_storeu_si512(kd + t / 2 * 32, _mm512_permutex2var_epi16(a, lo, bb));
                _mm512_storeu_si512(kd + blk + t / 2 * 32, _mm512_permutex2var_epi16(a, hi, bb));
                a = _mm512_loadu_si512(sq + (size_t)t * C + col);
                bb = _mm512_loadu_si512(sq + (size_t)(t + 1) * C + col);
                ql[t / 2] = _mm512_permutex2var_epi16(a, lo, bb);
                qh[t / 2] = _mm512_permutex2var_epi16(a, hi, bb);
                a = _mm512_loadu_si512(sd + (size_t)t * C + col);
                bb = _mm512_loadu_si512(sd + (size_t)(t + 1) * C + col);
                dl[t / 2] = _mm512_permutex2var_epi16(a, lo, bb);
                dh[t / 2] = _mm512_permutex2var_epi16(a, hi, bb);
            }
            transpose16x16(ql);
            transpose16x16(qh);
            transpose16x16(dl);
            transpose16x16(dh);
            const size_t rw = (size_t)Tp / 2;   // 32-bit words per row of qt, dot
            uint32_t *qt = im->qt + (size_t)h * head / 2 + (size_t)d * rw + j0 / 2;
            uint32_t *dt = im->dot + (size_t)h * head / 2 + (size_t)d * rw + j0 / 2;
            for (int c = 0; c < 16; c++) {
                _mm512_storeu_si512(qt + c * rw, ql[c]);
                _mm512_storeu_si512(qt + (16 + c) * rw, qh[c]);
                _mm512_storeu_si512(dt + c * rw, dl[c]);
                _mm512_storeu_si512(dt + (16 + c) * rw, dh[c]);
            }
        }
    }
}

// ---------------------------------------------------------------- rows

// s[0..Tp) <- softmax(scale s) over [0, T), zeros in [T, Tp).
__attribute__((target(AMX_TARGET))) static void softmax_row_f32(float *s, int T, int Tp, float scale) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= T; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
    const __mmask16 tail = (__mmask16)((1u << (T - j)) - 1u);
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + j));
    const float c = scale * 1.44269504088896341f;
    const __m512 vs = _mm512_set1_ps(c), vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx) * c);
    __m512 sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= T; j += 16) {
        __m512 e = exp2_nonpos(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vs, vmax));
        sum = _mm512_add_ps(sum, e);
        _mm512_storeu_ps(s + j, e);
    }
    if (tail) {
        __m512 e = exp2_nonpos(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, s + j), vs, vmax));
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
        _mm512_storeu_ps(s + j, _mm512_maskz_mov_ps(tail, e));
        j += 16;
    }
    for (; j < Tp; j += 16) _mm512_storeu_ps(s + j, _mm512_setzero_ps());
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (j = 0; j < Tp; j += 16) _mm512_storeu_ps(s + j, _mm512_mul_ps(inv, _mm512_loadu_ps(s + j)));
}

// Query rows 2r, 2r+1 of the block (P in s, dP in dp, fp32 [32][Tp]): dS rows
// to dsr (bf16 [32][Tp]), and P, dS as pairs of the two rows into row r of
// pv, dsv (32-bit [Tp/2 + ...][Tp]). Rows past `rows` are zeros.
__attribute__((target(AMX_TARGET))) static void ds_pair(const float *s, const float *dp, uint16_t *dsr, uint32_t *pv,
                                                        uint32_t *dsv, int r, int rows, int Tp, float scale) {
    const int i0 = 2 * r, i1 = 2 * r + 1;
    const float *p0 = s + (size_t)i0 * Tp, *p1 = s + (size_t)i1 * Tp;
    const float *d0 = dp + (size_t)i0 * Tp, *d1 = dp + (size_t)i1 * Tp;
    const int v0 = i0 < rows, v1 = i1 < rows;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int j = 0; j < Tp; j += 16) {   // padded keys have P = 0
        if (v0) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p0 + j), _mm512_loadu_ps(d0 + j), a0);
        if (v1) a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p1 + j), _mm512_loadu_ps(d1 + j), a1);
    }
    const __m512 dot0 = _mm512_set1_ps(_mm512_reduce_add_ps(a0)), dot1 = _mm512_set1_ps(_mm512_reduce_add_ps(a1));
    const __m512 vs = _mm512_set1_ps(scale), z = _mm512_setzero_ps();
    const __m512i lo = PAIR_LO, hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int j = 0; j < Tp; j += 32) {
        __m512 pa0 = v0 ? _mm512_loadu_ps(p0 + j) : z, pb0 = v0 ? _mm512_loadu_ps(p0 + j + 16) : z;
        __m512 pa1 = v1 ? _mm512_loadu_ps(p1 + j) : z, pb1 = v1 ? _mm512_loadu_ps(p1 + j + 16) : z;
        __m512 sa0 = _mm512_mul_ps(_mm512_mul_ps(pa0, v0 ? _mm512_sub_ps(_mm512_loadu_ps(d0 + j), dot0) : z), vs);
        __m512 sb0 = _mm512_mul_ps(_mm512_mul_ps(pb0, v0 ? _mm512_sub_ps(_mm512_loadu_ps(d0 + j + 16), dot0) : z), vs);
        __m512 sa1 = _mm512_mul_ps(_mm512_mul_ps(pa1, v1 ? _mm512_sub_ps(_mm512_loadu_ps(d1 + j), dot1) : z), vs);
        __m512 sb1 = _mm512_mul_ps(_mm512_mul_ps(pb1, v1 ? _mm512_sub_ps(_mm512_loadu_ps(d1 + j + 16), dot1) : z), vs);
        __m512i P0 = (__m512i)_mm512_cvtne2ps_pbh(pb0, pa0), P1 = (__m512i)_mm512_cvtne2ps_pbh(pb1, pa1);
        __m512i S0 = (__m512i)_mm512_cvtne2ps_pbh(sb0, sa0), S1 = (__m512i)_mm512_cvtne2ps_pbh(sb1, sa1);
        _mm512_storeu_si512(dsr + (size_t)i0 * Tp + j, S0);
        _mm512_storeu_si512(dsr + (size_t)i1 * Tp + j, S1);
        _mm512_storeu_si512(pv + j, _mm512_permutex2var_epi16(P0, lo, P1));
        _mm512_storeu_si512(pv + j + 16, _mm512_permutex2var_epi16(P0, hi, P1));
        _mm512_storeu_si512(dsv + j, _mm512_permutex2var_epi16(S0, lo, S1));
        _mm512_storeu_si512(dsv + j + 16, _mm512_permutex2var_epi16(S0, hi, S1));
    }
}

// ---------------------------------------------------------------- tiles

// ct [hd][Tp] fp32 = at [hd][Tp] (A: rows of one dim, pairs of tokens) x bv
// [Tp/2][Tp] (B: pairs of query rows, one key a column), summed over all Tp queries.
__attribute__((target(AMX_TARGET))) static void tiles_t(float *ct, const uint32_t *at, const uint32_t *bv, int Tp,
                                                        int hd) {
    const size_t rw = (size_t)Tp / 2;   // 32-bit words per row of at
    for (int d = 0; d < hd; d += 32) {
        for (int j = 0; j < Tp; j += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int q = 0; q < Tp; q += 32) {
                _tile_loadd(4, at + (size_t)d * rw + q / 2, (long)Tp * 2);
                _tile_loadd(6, bv + (size_t)q / 2 * Tp + j, (long)Tp * 4);
                _tile_loadd(7, bv + (size_t)q / 2 * Tp + j + 16, (long)Tp * 4);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, at + (size_t)(d + 16) * rw + q / 2, (long)Tp * 2);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, ct + (size_t)d * Tp + j, Tp * 4);
            _tile_stored(1, ct + (size_t)d * Tp + j + 16, Tp * 4);
            _tile_stored(2, ct + (size_t)(d + 16) * Tp + j, Tp * 4);
            _tile_stored(3, ct + (size_t)(d + 16) * Tp + j + 16, Tp * 4);
        }
    }
}

// ---------------------------------------------------------------- output

// hd values of token j's gradient (for part w of qkv: 0 q, 1 k, 2 v) to the
// result; the column sums into psum (double [hd]).
__attribute__((target(AMX_TARGET))) static inline void put_row(const bwd_job *jb, int b, int h, int w, int j,
                                                               const float *g, double *psum) {
    const int H = jb->H, hd = jb->hd;
    const size_t at = ((size_t)b * jb->T + j) * 3 * H * hd + (size_t)w * H * hd + (size_t)h * hd;
    for (int d = 0; d < hd; d += 16) {
        __m512 v = _mm512_loadu_ps(g + d);
        if (jb->dqkv) _mm512_storeu_ps(jb->dqkv + at + d, v);
        else _mm256_storeu_si256((__m256i *)(jb->dqkvb + at + d), (__m256i)_mm512_cvtneps_pbh(v));
        if (psum) {
            _mm512_storeu_pd(psum + d, _mm512_add_pd(_mm512_loadu_pd(psum + d), _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
            _mm512_storeu_pd(psum + d + 8,
                             _mm512_add_pd(_mm512_loadu_pd(psum + d + 8), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))));
        }
    }
}

// ct [hd][Tp] transposed out as tokens [0, T) of part w.
__attribute__((target(AMX_TARGET))) static void put_transposed(const bwd_job *jb, int b, int h, int w,
                                                               const float *ct, double *psum) {
    const int T = jb->T, Tp = jb->Tp, hd = jb->hd;
    _Alignas(64) float g[16][256];   // 16 tokens x hd (hd <= 256)
    for (int j0 = 0; j0 < T; j0 += 16) {
        for (int d = 0; d < hd; d += 16) {
            __m512i r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(ct + (size_t)(d + i) * Tp + j0);
            transpose16x16(r);
            for (int t = 0; t < 16; t++) _mm512_store_si512(&g[t][d], r[t]);
        }
        for (int t = 0; t < 16 && j0 + t < T; t++) put_row(jb, b, h, w, j0 + t, g[t], psum);
    }
}

// ---------------------------------------------------------------- one head

typedef struct {
    float *s, *dp, *o, *ct;
    uint16_t *dsr;
    uint32_t *pv, *dsv;
} bwd_scratch;

static size_t scratch_bytes(int hd, int Tp) {
    return 2 * round64((size_t)QB * Tp * 4) + round64((size_t)QB * hd * 4) + round64((size_t)hd * Tp * 4) +
           round64((size_t)QB * Tp * 2) + 2 * round64((size_t)Tp / 2 * Tp * 4);
}

static bwd_scratch scratch_at(char *p, int hd, int Tp) {
    bwd_scratch w;
    w.s = (float *)p, p += round64((size_t)QB * Tp * 4);
    w.dp = (float *)p, p += round64((size_t)QB * Tp * 4);
    w.o = (float *)p, p += round64((size_t)QB * hd * 4);
    w.ct = (float *)p, p += round64((size_t)hd * Tp * 4);
    w.dsr = (uint16_t *)p, p += round64((size_t)QB * Tp * 2);
    w.pv = (uint32_t *)p, p += round64((size_t)Tp / 2 * Tp * 4);
    w.dsv = (uint32_t *)p;
    return w;
}

__attribute__((target(AMX_TARGET))) static void run_head(const bwd_job *jb, int b, int h, const bwd_scratch *w,
                                                         double *psum) {
    const bwd_image *im = &jb->im[b % 2];
    const int T = jb->T, Tp = jb->Tp, hd = jb->hd;
    const size_t head = (size_t)Tp * hd;
    const uint16_t *qb = im->qb + (size_t)h * head, *dob = im->dob + (size_t)h * head;
    const uint32_t *kp = im->kp + (size_t)h * head / 2, *vkp = im->vkp + (size_t)h * head / 2;
    // phase 1: per query block, P and dS; dQ
    for (int i0 = 0; i0 < Tp; i0 += QB) {
        const int rows = T - i0 < QB ? T - i0 : QB, two = rows > 16;
        tiles_qk(w->s, qb + (size_t)i0 * hd, kp, Tp, hd, two);
        tiles_qk(w->dp, dob + (size_t)i0 * hd, vkp, Tp, hd, two);
        for (int i = 0; i < rows; i++) softmax_row_f32(w->s + (size_t)i * Tp, T, Tp, jb->scale);
        for (int r = 0; r < QB / 2; r++)
            ds_pair(w->s, w->dp, w->dsr, w->pv + (size_t)(i0 / 2 + r) * Tp, w->dsv + (size_t)(i0 / 2 + r) * Tp, r,
                    rows, Tp, jb->scale);
        tiles_pv(w->o, w->dsr, im->kvp + (size_t)h * head, Tp, hd, two);
        for (int i = 0; i < rows; i++) put_row(jb, b, h, 0, i0 + i, w->o + (size_t)i * hd, psum);
    }
    // phase 2: dK^T = q^T dS, dV^T = dO^T P, over all queries
    tiles_t(w->ct, im->qt + (size_t)h * head / 2, w->dsv, Tp, hd);
    put_transposed(jb, b, h, 1, w->ct, psum ? psum + (size_t)jb->H * hd : NULL);
    tiles_t(w->ct, im->dot + (size_t)h * head / 2, w->pv, Tp, hd);
    put_transposed(jb, b, h, 2, w->ct, psum ? psum + (size_t)2 * jb->H * hd : NULL);
}

// ---------------------------------------------------------------- driver

__attribute__((target(AMX_TARGET))) static void bwd_worker(const bwd_job *jb) {
    const int Tp = jb->Tp, H = jb->H, hd = jb->hd;
    char *mine = jb->scratch + (size_t)omp_get_thread_num() * jb->per_thread;
    uint16_t *stage = (uint16_t *)mine;
    bwd_scratch w = scratch_at(mine + round64((size_t)4 * 32 * H * hd * 2), hd, Tp);
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    for (int b = 0; b < jb->B; b++) {
#pragma omp for schedule(dynamic)
        for (int j0 = 0; j0 < Tp; j0 += 32) pack_block(jb, &jb->im[b % 2], b, j0, stage);
        // (implicit barrier: image b is packed.) No barrier after the heads:
        // early finishers pack image b+1 into the other buffer; the barrier
        // after that packing ends every use of image b-1's, which b+2 reuses.
#pragma omp for schedule(dynamic) nowait
        for (int h = 0; h < H; h++)
            run_head(jb, b, h, &w, jb->part ? jb->part + (size_t)b * 3 * H * hd + (size_t)h * hd : NULL);
    }
    _tile_release();
}

static cpu_kept g_kept = CPU_KEPT_INIT;

int amx_attention_backward(float *dqkv, uint16_t *dqkvb, float *db, const float *dout, const void *qkv, int qkv_bf16,
                           int B, int T, int H, int hd) {
    const int Tp = (T + 31) / 32 * 32;
    bwd_job jb = {.dqkv = dqkv, .dqkvb = dqkvb, .dout = dout, .qkv = qkv, .qkv_bf16 = qkv_bf16, .B = B, .T = T, .H = H, .hd = hd,
                  .Tp = Tp, .scale = (float)(1.0 / sqrt((double)hd))};
    int nthr = omp_get_max_threads();
    if (nthr > H) nthr = H;
    const size_t head = round64((size_t)Tp * hd * 2), part = db ? round64((size_t)B * 3 * H * hd * 8) : 0;
    jb.per_thread = round64((size_t)4 * 32 * H * hd * 2) + scratch_bytes(hd, Tp);
    const int nimg = B > 1 ? 2 : 1;
    const size_t need = 7 * (size_t)nimg * H * head + (size_t)nthr * jb.per_thread + part;
    int kept;
    char *base = cpu_kept_get(&g_kept, need, &kept);
    if (!base) return -1;
    for (int i = 0; i < nimg; i++) {
        char *ib = base + (size_t)i * 7 * H * head;
        bwd_image *m = &jb.im[i];
        m->qb = (uint16_t *)ib, m->dob = (uint16_t *)(ib + (size_t)H * head);
        m->kvp = (uint16_t *)(ib + 2 * (size_t)H * head);
        m->kp = (uint32_t *)(ib + 3 * (size_t)H * head), m->vkp = (uint32_t *)(ib + 4 * (size_t)H * head);
        m->qt = (uint32_t *)(ib + 5 * (size_t)H * head), m->dot = (uint32_t *)(ib + 6 * (size_t)H * head);
    }
    jb.scratch = base + 7 * (size_t)nimg * H * head;
    if (db) {
        jb.part = (double *)(jb.scratch + (size_t)nthr * jb.per_thread);
        memset(jb.part, 0, (size_t)B * 3 * H * hd * sizeof(double));
    }
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    bwd_worker(&jb);
    if (db) {
        const long C3 = 3L * H * hd;
        for (long k = 0; k < C3; k++) {
            double sum = 0;
            for (int b = 0; b < B; b++) sum += jb.part[(size_t)b * C3 + k];
            db[k] = (float)(db[k] + sum);
        }
    }
    cpu_kept_put(&g_kept, base, kept);
    return 0;
}
