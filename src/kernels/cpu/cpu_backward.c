// Fast CPU backward of every op of the ViT: linear and patch embedding on
// cpu_gemm, LayerNorm / BatchNorm / GELU vectorised with OpenMP, attention on
// oneDNN (per-head sgemms in fp32, batched bf16 matmuls in bf16).
//
// Reductions over rows (dg, db of LayerNorm, bias sums) go through per-thread
// partial sums over fixed row ranges, added in thread order: the result
// depends on the thread count, never on scheduling.
#include "kernels/cpu/cpu_train.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_gemm_amx.h"
#include "kernels/cpu/cpu_attention_amx.h"
#include "base/error.h"
#include "base/mem.h"
#include "tensor/dtype.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <string.h>
#include "kernels/cpu/cpu_simd.h"

// Below this many elements OpenMP's fork/join costs more than it saves.
#define PAR_MIN 32768

static int threads_for(size_t work) { return work > PAR_MIN ? omp_get_max_threads() : 1; }

// Rows [lo, hi) of n for thread t of nt (contiguous, in order).
static void row_range(long n, int t, int nt, long *lo, long *hi) {
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

// ---------------------------------------------------------------- column sums

int cpu_colsum_acc(float *db, const float *dy, long n, int c) {
    if (n <= 0 || c <= 0) return 0;
    int nthr = threads_for((size_t)n * c);
    double *part = ufo_calloc((size_t)nthr * c * sizeof(double));
    if (!part) return -1;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        long lo, hi;
        row_range(n, t, nt, &lo, &hi);
        double *acc = part + (size_t)t * c;
        for (long i = lo; i < hi; i++) {
            const float *r = dy + (size_t)i * c;
#pragma omp simd
            for (int k = 0; k < c; k++) acc[k] += r[k];
        }
    }
    for (int k = 0; k < c; k++) {
        double s = 0;
        for (int t = 0; t < nthr; t++) s += part[(size_t)t * c + k];
        db[k] = (float)(db[k] + s);
    }
    ufo_free(part);
    return 0;
}

// ---------------------------------------------------------------- linear

// bf16 copy of n floats in scratch slot `slot`.
static const uint16_t *to_bf16(int slot, const float *src, size_t n) {
    uint16_t *dst = cpu_train_scratch(slot, n * sizeof(uint16_t));
    if (dst) cpu_f32_to_bf16(dst, src, n);
    return dst;
}

// dst[c, r] = bf16(src[r, c]) for src [rows, cols]: the transpose, rounded, in
// 32 x 32 tiles.
static const uint16_t *to_bf16_transposed(int slot, const float *src, int rows, int cols) {
    uint16_t *dst = cpu_train_scratch(slot, (size_t)rows * cols * sizeof(uint16_t));
    if (!dst) return NULL;
    const int TB = 32;
    int tr = (rows + TB - 1) / TB, tc = (cols + TB - 1) / TB;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * cols > PAR_MIN)
    for (int bi = 0; bi < tr; bi++)
        for (int bj = 0; bj < tc; bj++) {
            int r1 = bi * TB + TB < rows ? bi * TB + TB : rows, c1 = bj * TB + TB < cols ? bj * TB + TB : cols;
            for (int c = bj * TB; c < c1; c++)
                for (int r = bi * TB; r < r1; r++)
                    dst[(size_t)c * rows + r] = ufo_f32_to_bf16(src[(size_t)r * cols + c]);
        }
    return dst;
}

int cpu_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                        int in, int out, ufo_precision prec) {
    if (n < 0 || in < 0 || out < 0)
        return ufo_errorf("cpu_linear_backward: bad shape n=%d in=%d out=%d", n, in, out);
    if (prec != UFO_PREC_FP32 && prec != UFO_PREC_BF16)
        return ufo_errorf("cpu_linear_backward: bad precision %d", (int)prec);
    if (prec == UFO_PREC_BF16 && dx && cpu_gemm_amx_enabled()) {   // operands rounded while packing
        // dx[n, in] = dy[n, out] W[out, in]; the weight gradient below (oneDNN's, see cpu_gemm.c)
        if (amx_gemm_simple(dx, dy, 0, 0, w, 0, 0, NULL, n, in, out, 0.0f, 0)) return -1;
        dx = NULL;
    }
    const void *dyp = dy, *xp = x, *wp = w;
    int wt = 0;   // wp holds W^T [in, out]
    if (prec == UFO_PREC_BF16 && (dx || dw) && (long)n * in * out > 0) {
        dyp = to_bf16(2, dy, (size_t)n * out);
        if (!dyp) return -1;
        // bf16 dx runs faster with the weights as B^T ([N, K] = W^T) than as
        // B ([K, N] = W): up to 1.3x on the ViT MLP shapes, for a small transpose.
        if (dx && !(wp = to_bf16_transposed(3, w, out, in))) return -1;
        wt = 1;
        if (dw && !(xp = to_bf16(4, x, (size_t)n * in))) return -1;
    }
    // dx[n, in] = dy[n, out] W[out, in]
    if (dx && cpu_gemm_ex(dx, dyp, wp, NULL, n, in, out, 0, wt, 0.0f, 0, prec)) return -1;
    // dw[out, in] += dy^T x   (dy stored [n, out] = A^T)
    if (dw && cpu_gemm_ex(dw, dyp, xp, NULL, out, in, n, 1, 0, 1.0f, 0, prec)) return -1;
    if (db && cpu_colsum_acc(db, dy, n, out)) return -1;
    return 0;
}

// ---------------------------------------------------------------- patch embedding

int cpu_patch_embed_backward(float *dw, float *db, const float *dy, const float *img, int B, int H, int W, int p,
                             int C, ufo_precision prec) {
    if (B < 0 || C < 0 || p <= 0 || H < 0 || W < 0 || H % p || W % p)
        return ufo_errorf("cpu_patch_embed_backward: image %dx%d is not a whole number of %dx%d patches", H, W, p,
                          p);
    int gh = H / p, gw = W / p, k = 3 * p * p;
    long ntok = (long)B * gh * gw;
    if (ntok == 0 || C == 0) return 0;
    if (dw) {
        float *col = cpu_train_scratch(5, (size_t)ntok * k * sizeof(float));
        if (!col) return -1;
        // im2col: tokens in raster order, each patch vector ordered (channel, ky, kx) like w [C, 3, p, p].
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)ntok * k > PAR_MIN)
        for (int bi = 0; bi < B; bi++)
            for (int py = 0; py < gh; py++)
                for (int px = 0; px < gw; px++) {
                    float *dst = col + (((size_t)bi * gh + py) * gw + px) * k;
                    for (int ch = 0; ch < 3; ch++)
                        for (int ky = 0; ky < p; ky++) {
                            const float *src =
                                img + (((size_t)bi * 3 + ch) * H + (size_t)py * p + ky) * W + (size_t)px * p;
                            memcpy(dst + ((size_t)ch * p + ky) * p, src, (size_t)p * sizeof(float));
                        }
                }
        // dw[C, k] += dy^T col   (dy stored [ntok, C])
        if (ntok > 0x7fffffffL) return ufo_errorf("cpu_patch_embed_backward: %ld tokens is too many", ntok);
        if (cpu_gemm(dw, dy, col, C, k, (int)ntok, 1, 0, 1.0f, prec)) return -1;
    }
    if (db && cpu_colsum_acc(db, dy, ntok, C)) return -1;
    return 0;
}

// ---------------------------------------------------------------- LayerNorm

static int layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g,
                              const float *res, int n, int c, float eps) {
    if (n < 0 || c < 0) return ufo_errorf("cpu_layernorm_backward: bad shape n=%d c=%d", n, c);
    if (n == 0 || c == 0) return 0;
    int nthr = threads_for((size_t)n * c);
    float *part = NULL;
    if (dg || db) {
        part = ufo_calloc((size_t)nthr * 2 * c * sizeof(float));
        if (!part) return -1;
    }
    const float inv_c = 1.0f / (float)c;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        long lo, hi;
        row_range(n, t, nt, &lo, &hi);
        float *pg = part ? part + (size_t)t * 2 * c : NULL, *pb = pg ? pg + c : NULL;
        for (long i = lo; i < hi; i++) {
            const float *xr = x + (size_t)i * c, *dyr = dy + (size_t)i * c;
            float sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
            for (int k = 0; k < c; k++) sum += xr[k];
            const float mean = sum * inv_c;
#pragma omp simd reduction(+ : sq)
            for (int k = 0; k < c; k++) sq += (xr[k] - mean) * (xr[k] - mean);
            const float rstd = 1.0f / sqrtf(sq * inv_c + eps);
            float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
            for (int k = 0; k < c; k++) {
                float xh = (xr[k] - mean) * rstd, dxh = dyr[k] * g[k];
                s1 += dxh;
                s2 += dxh * xh;
            }
            s1 *= inv_c;
            s2 *= inv_c;
            if (pg) {
#pragma omp simd
                for (int k = 0; k < c; k++) {
                    pg[k] += dyr[k] * ((xr[k] - mean) * rstd);
                    pb[k] += dyr[k];
                }
            }
            if (dx && res) {
                float *dxr = dx + (size_t)i * c;
                const float *rr = res + (size_t)i * c;
#pragma omp simd
                for (int k = 0; k < c; k++) {
                    float xh = (xr[k] - mean) * rstd;
                    dxr[k] = rstd * (dyr[k] * g[k] - s1 - xh * s2) + rr[k];
                }
            } else if (dx) {
                float *dxr = dx + (size_t)i * c;
#pragma omp simd
                for (int k = 0; k < c; k++) {
                    float xh = (xr[k] - mean) * rstd;
                    dxr[k] = rstd * (dyr[k] * g[k] - s1 - xh * s2);
                }
            }
        }
    }
    if (part) {
        for (int k = 0; k < c; k++) {
            float sg = 0, sb = 0;
            for (int t = 0; t < nthr; t++) {
                sg += part[(size_t)t * 2 * c + k];
                sb += part[(size_t)t * 2 * c + c + k];
            }
            if (dg) dg[k] += sg;
            if (db) db[k] += sb;
        }
        ufo_free(part);
    }
    return 0;
}

int cpu_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g, int n,
                           int c, float eps) {
    return layernorm_backward(dx, dg, db, dy, x, g, NULL, n, c, eps);
}

int cpu_layernorm_backward_add(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g,
                               const float *res, int n, int c, float eps) {
    return layernorm_backward(dx, dg, db, dy, x, g, res, n, c, eps);
}

// ---------------------------------------------------------------- GELU

// dx = dy * gelu'(x), gelu' from cpu_simd.h.
__attribute__((target("avx512f"))) static void gelu_bwd_avx512(float *dx, const float *dy, const float *x,
                                                               size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512 d = gelu_grad512(_mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), d));
    }
}

void cpu_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
    int avx512 = cpu_has_avx512();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        if (avx512) gelu_bwd_avx512(dx + lo, dy + lo, x + lo, len);
        else
            for (size_t i = lo; i < lo + len; i++) {
                float v = x[i];
                float d = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) +
                          v * 0.39894228040143268f * expf(-0.5f * v * v);
                dx[i] = dy[i] * d;
            }
    }
}

// ---------------------------------------------------------------- bf16 gradient rows

// dx[i] = dy[i] * float(m[i]) for bf16 m.
__attribute__((target("avx512f"))) static void mul_bf16_avx512(float *dx, const float *dy, const uint16_t *m,
                                                               size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(m + i)));
        __m512 f = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), f));
    }
    for (; i < n; i++) dx[i] = dy[i] * ufo_bf16_to_f32(m[i]);
}

static void mul_bf16(float *dx, const float *dy, const uint16_t *m, size_t n, int avx512) {
    if (avx512) {
        mul_bf16_avx512(dx, dy, m, n);
        return;
    }
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * ufo_bf16_to_f32(m[i]);
}

// One pass over a gradient g [n, c] that is only ever needed in bf16 (as a
// matmul operand) plus its column sums (a bias gradient): row i of g is
//   dy[i] * rowscale[i / per_scale]   (mul == NULL; rowscale may be NULL), or
//   dy[i] * mul[i]                    (element-wise, mul bf16: GELU's derivative),
// computed in L1-sized pieces, rounded into dst and (db != NULL) summed into
// db like cpu_colsum_acc: same row ranges, double partials, thread order. So
// dst and db equal what materialising g in fp32, rounding it and summing it
// would give, without g ever reaching memory.
static int grad_rows_bf16(uint16_t *dst, float *db, const float *dy, const uint16_t *mul, const float *rowscale,
                          long per_scale, long n, int c) {
    if (n <= 0 || c <= 0) return 0;
    int nthr = threads_for((size_t)n * c), avx512 = cpu_has_avx512();
    double *part = NULL;
    if (db && !(part = ufo_calloc((size_t)nthr * c * sizeof(double)))) return -1;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        enum { PIECE = 1024 };
        float buf[PIECE];
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        long lo, hi;
        row_range(n, t, nt, &lo, &hi);
        double *acc = part ? part + (size_t)t * c : NULL;
        for (long i = lo; i < hi; i++) {
            const float *r = dy + (size_t)i * c;
            float s = rowscale ? rowscale[i / per_scale] : 1.0f;
            for (int k0 = 0; k0 < c; k0 += PIECE) {
                int len = c - k0 < PIECE ? c - k0 : PIECE;
                if (mul) mul_bf16(buf, r + k0, mul + (size_t)i * c + k0, (size_t)len, avx512);
                else if (rowscale) {
#pragma omp simd
                    for (int k = 0; k < len; k++) buf[k] = s * r[k0 + k];
                } else memcpy(buf, r + k0, (size_t)len * sizeof(float));
                if (acc) {
                    double *a = acc + k0;
#pragma omp simd
                    for (int k = 0; k < len; k++) a[k] += buf[k];
                }
                cpu_f32_to_bf16_serial(dst + (size_t)i * c + k0, buf, (size_t)len);
            }
        }
    }
    if (part) {
        for (int k = 0; k < c; k++) {
            double sum = 0;
            for (int t = 0; t < nthr; t++) sum += part[(size_t)t * c + k];
            db[k] = (float)(db[k] + sum);
        }
        ufo_free(part);
    }
    return 0;
}

int cpu_gelu_backward_bf16(uint16_t *dxb, float *db, const float *dy, const uint16_t *dgelu, int n, int c) {
    if (n < 0 || c < 0) return ufo_errorf("cpu_gelu_backward_bf16: bad shape n=%d c=%d", n, c);
    return grad_rows_bf16(dxb, db, dy, dgelu, NULL, 1, n, c);
}

int cpu_linear_backward_bf16(float *dx, float *dw, float *db, const float *dy, const float *rowscale, long per_scale,
                             const uint16_t *dyb, const uint16_t *xb, const float *w, int n, int in, int out) {
    if (n < 0 || in < 0 || out < 0)
        return ufo_errorf("cpu_linear_backward_bf16: bad shape n=%d in=%d out=%d", n, in, out);
    if (dyb ? dy || db || rowscale : !dy)
        return ufo_errorf("cpu_linear_backward_bf16: give either dy (with db, rowscale) or dyb");
    if (rowscale && per_scale <= 0) return ufo_errorf("cpu_linear_backward_bf16: bad rows per scale %ld", per_scale);
    if (!dyb) {
        uint16_t *d = cpu_train_scratch(2, (size_t)n * out * sizeof(uint16_t));
        if (!d || grad_rows_bf16(d, db, dy, NULL, rowscale, per_scale, n, out)) return -1;
        dyb = d;
    }
    if (dx && cpu_gemm_amx_enabled()) {   // W rounded while packing, no transposed copy
        if (amx_gemm_simple(dx, dyb, 1, 0, w, 0, 0, NULL, n, in, out, 0.0f, 0)) return -1;
    } else if (dx) {   // dx[n, in] = dy[n, out] W[out, in], W as B^T (see cpu_linear_backward)
        const uint16_t *wt = to_bf16_transposed(3, w, out, in);
        if (!wt || cpu_gemm_ex(dx, dyb, wt, NULL, n, in, out, 0, 1, 0.0f, 0, UFO_PREC_BF16)) return -1;
    }
    // dw[out, in] += dy^T x   (dy stored [n, out] = A^T)
    if (dw && cpu_gemm_ex(dw, dyb, xb, NULL, out, in, n, 1, 0, 1.0f, 0, UFO_PREC_BF16)) return -1;
    return 0;
}

// ---------------------------------------------------------------- BatchNorm (training)

// Columns go in blocks of BN_BLK per OpenMP iteration; each block walks all
// rows, with double accumulators (n is a batch, c the feature width: small).
#define BN_BLK 64

void cpu_batchnorm_train(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b,
                         float *running_mean, float *running_var, int n, int c, float eps, float momentum) {
    if (n <= 0 || c <= 0) return;
    int nblk = (c + BN_BLK - 1) / BN_BLK;
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
    for (int bk = 0; bk < nblk; bk++) {
        int k0 = bk * BN_BLK, kn = c - k0 < BN_BLK ? c - k0 : BN_BLK;
        double m[BN_BLK], v[BN_BLK];
        float mf[BN_BLK], rf[BN_BLK];
        for (int k = 0; k < kn; k++) m[k] = v[k] = 0;
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * c + k0;
#pragma omp simd
            for (int k = 0; k < kn; k++) m[k] += xr[k];
        }
        for (int k = 0; k < kn; k++) m[k] /= n;
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * c + k0;
#pragma omp simd
            for (int k = 0; k < kn; k++) v[k] += (xr[k] - m[k]) * (xr[k] - m[k]);
        }
        for (int k = 0; k < kn; k++) {
            double var = v[k] / n, r = 1.0 / sqrt(var + (double)eps), unbiased = n > 1 ? v[k] / (n - 1) : var;
            mf[k] = (float)m[k];
            rf[k] = (float)r;
            if (mean) mean[k0 + k] = mf[k];
            if (rstd) rstd[k0 + k] = rf[k];
            if (running_mean)
                running_mean[k0 + k] = (float)((1.0 - momentum) * running_mean[k0 + k] + (double)momentum * m[k]);
            if (running_var)
                running_var[k0 + k] =
                    (float)((1.0 - momentum) * running_var[k0 + k] + (double)momentum * unbiased);
            rf[k] *= g[k0 + k];   // now the scale
        }
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * c + k0;
            float *yr = y + (size_t)i * c + k0;
#pragma omp simd
            for (int k = 0; k < kn; k++) yr[k] = (xr[k] - mf[k]) * rf[k] + b[k0 + k];
        }
    }
}

void cpu_batchnorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                            const float *rstd, const float *g, int n, int c) {
    if (n <= 0 || c <= 0) return;
    int nblk = (c + BN_BLK - 1) / BN_BLK;
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
    for (int bk = 0; bk < nblk; bk++) {
        int k0 = bk * BN_BLK, kn = c - k0 < BN_BLK ? c - k0 : BN_BLK;
        const float *mu = mean + k0, *rs = rstd + k0;
        double s1[BN_BLK], s2[BN_BLK];
        float a[BN_BLK], bb[BN_BLK], gr[BN_BLK];
        for (int k = 0; k < kn; k++) s1[k] = s2[k] = 0;
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * c + k0, *dyr = dy + (size_t)i * c + k0;
#pragma omp simd
            for (int k = 0; k < kn; k++) {
                s1[k] += dyr[k];
                s2[k] += dyr[k] * ((xr[k] - mu[k]) * rs[k]);
            }
        }
        for (int k = 0; k < kn; k++) {
            if (dg) dg[k0 + k] = (float)(dg[k0 + k] + s2[k]);
            if (db) db[k0 + k] = (float)(db[k0 + k] + s1[k]);
            a[k] = (float)(s1[k] / n);
            bb[k] = (float)(s2[k] / n);
            gr[k] = g[k0 + k] * rs[k];
        }
        if (!dx) continue;
        for (int i = 0; i < n; i++) {
            const float *xr = x + (size_t)i * c + k0, *dyr = dy + (size_t)i * c + k0;
            float *dxr = dx + (size_t)i * c + k0;
#pragma omp simd
            for (int k = 0; k < kn; k++) dxr[k] = gr[k] * (dyr[k] - a[k] - (xr[k] - mu[k]) * rs[k] * bb[k]);
        }
    }
}

// ---------------------------------------------------------------- attention, fp32

// Per (batch, head), single-threaded sgemms inside one OpenMP loop; P and dP
// (T x T each) live in per-thread buffers. Each head's dq, dk, dv are written
// in place into dqkv's rows (leading dimension 3*H*hd).
static int attention_bwd_f32(float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd) {
    const long row = 3L * H * hd, orow = (long)H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int BH = B * H;
    const size_t tt = (size_t)T * T;
    int nthr = BH > 1 ? omp_get_max_threads() : 1;
    if (nthr > BH) nthr = BH;
    float *buf = ufo_alloc((size_t)nthr * 2 * tt * sizeof(float));
    if (!buf) return -1;
    dnnl_status_t err = dnnl_success;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        float *P = buf + (size_t)omp_get_thread_num() * 2 * tt, *dP = P + tt;
#pragma omp for schedule(static)
        for (int bh = 0; bh < BH; bh++) {
            int b = bh / H, h = bh % H;
            const float *q = qkv + (size_t)b * T * row + (size_t)h * hd;
            const float *k = q + (size_t)H * hd, *v = q + (size_t)2 * H * hd;
            const float *dO = dout + (size_t)b * T * orow + (size_t)h * hd;
            float *dq = dqkv + (size_t)b * T * row + (size_t)h * hd;
            float *dk = dq + (size_t)H * hd, *dv = dq + (size_t)2 * H * hd;
            // P = softmax(scale q k^T)
            dnnl_status_t st = cpu_head_probs_f32(P, q, k, T, hd, row, scale);
            // dV = P^T dO
            if (st == dnnl_success) st = dnnl_sgemm('T', 'N', T, hd, T, 1.0f, P, T, dO, orow, 0.0f, dv, row);
            // dP = dO V^T
            if (st == dnnl_success) st = dnnl_sgemm('N', 'T', T, T, hd, 1.0f, dO, orow, v, row, 0.0f, dP, T);
            if (st == dnnl_success) {
                // dS = P * (dP - rowsum(P * dP)) * scale, into dP
                for (int i = 0; i < T; i++) {
                    const float *pr = P + (size_t)i * T;
                    float *dr = dP + (size_t)i * T, dot = 0;
#pragma omp simd reduction(+ : dot)
                    for (int j = 0; j < T; j++) dot += pr[j] * dr[j];
#pragma omp simd
                    for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
                }
                // dQ = dS K,  dK = dS^T Q
                st = dnnl_sgemm('N', 'N', T, hd, T, 1.0f, dP, T, k, row, 0.0f, dq, row);
            }
            if (st == dnnl_success) st = dnnl_sgemm('T', 'N', T, hd, T, 1.0f, dP, T, q, row, 0.0f, dk, row);
            if (st != dnnl_success) {
#pragma omp critical(ufo_attention_bwd_err)
                err = st;
            }
        }
    }
    ufo_free(buf);
    if (err != dnnl_success) return cpu_dnnl_error("cpu_attention_backward: sgemm", err);
    return 0;
}

// ---------------------------------------------------------------- attention, bf16

// Heads go in groups of G (one image's H heads when their buffers fit, see
// bwd_group_size). Per group, with q, k, v, dO gathered to bf16 [G, T, hd]:
//   S  = q k^T             (batched matmul "nt": src abc, weights acb)
//   P  = softmax(scale S)  fp32, and a bf16 copy
//   dV = P^T dO            ("tn": src acb, weights abc)
//   dP = dO V^T            ("nt")
//   dS = P (dP - rowsum(P dP)) scale, fp32, rounded to bf16 (over P's copy)
//   dQ = dS K              ("nn"),   dK = dS^T Q   ("tn")
// then dq, dk, dv are scattered into dqkv. Primitives and the workspace are
// kept between calls, under a mutex.
typedef struct {
    int G, T, hd;
    dnnl_primitive_t nt, tn, nn;
    dnnl_memory_t nt_s, nt_w, nt_d, tn_s, tn_w, tn_d, nn_s, nn_w, nn_d;
} bwd_prims;

#define BWD_CACHE 4
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static bwd_prims g_prims[BWD_CACHE];
static int g_prims_next;
static void *g_ws;
static size_t g_ws_size;

static void bwd_prims_clear(bwd_prims *a) {
    dnnl_primitive_t *p[] = {&a->nt, &a->tn, &a->nn};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++)
        if (*p[i]) dnnl_primitive_destroy(*p[i]);
    dnnl_memory_t *m[] = {&a->nt_s, &a->nt_w, &a->nt_d, &a->tn_s, &a->tn_w, &a->tn_d, &a->nn_s, &a->nn_w, &a->nn_d};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    memset(a, 0, sizeof *a);
}

static bwd_prims *bwd_get_prims(int G, int T, int hd) {
    for (int i = 0; i < BWD_CACHE; i++)
        if (g_prims[i].G == G && g_prims[i].T == T && g_prims[i].hd == hd) return &g_prims[i];
    bwd_prims *a = &g_prims[g_prims_next];
    g_prims_next = (g_prims_next + 1) % BWD_CACHE;
    bwd_prims_clear(a);
    if (!cpu_engine()) return NULL;
    dnnl_memory_desc_t thd_b, hdt_b, tt_f, tt_b, ttT_b, thd_f;
    dnnl_dims_t d_thd = {G, T, hd}, d_hdt = {G, hd, T}, d_tt = {G, T, T};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&thd_b, 3, d_thd, dnnl_bf16, dnnl_abc);
    // x stored [G, T, hd] read as x^T [G, hd, T]: "acb"
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&hdt_b, 3, d_hdt, dnnl_bf16, dnnl_acb);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&tt_f, 3, d_tt, dnnl_f32, dnnl_abc);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&tt_b, 3, d_tt, dnnl_bf16, dnnl_abc);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&ttT_b, 3, d_tt, dnnl_bf16, dnnl_acb);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&thd_f, 3, d_thd, dnnl_f32, dnnl_abc);
    if (st == dnnl_success) st = cpu_make_matmul(&a->nt, &a->nt_s, &a->nt_w, &a->nt_d, &thd_b, &hdt_b, &tt_f);
    if (st == dnnl_success) st = cpu_make_matmul(&a->tn, &a->tn_s, &a->tn_w, &a->tn_d, &ttT_b, &thd_b, &thd_f);
    if (st == dnnl_success) st = cpu_make_matmul(&a->nn, &a->nn_s, &a->nn_w, &a->nn_d, &tt_b, &thd_b, &thd_f);
    if (st != dnnl_success) {
        bwd_prims_clear(a);
        ufo_errorf("cpu_attention_backward: bf16 matmul G=%d T=%d hd=%d: oneDNN error %s", G, T, hd,
                   dnnl_status2str(st));
        return NULL;
    }
    a->G = G;
    a->T = T;
    a->hd = hd;
    return a;
}

// Heads per group: one image's H heads when their T x T buffers (fp32 P, fp32
// dP, bf16 P/dS: 10 bytes an entry) fit in 64 MB, else as many as fit, >= 1.
static int bwd_group_size(int BH, int H, int T) {
    size_t per = (size_t)T * T * 10, budget = (size_t)64 << 20;
    size_t g = (size_t)H * per <= budget ? (size_t)H : budget / per;
    if (g < 1) g = 1;
    if (g > (size_t)BH) g = (size_t)BH;
    return (int)g;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

// dqkv fp32, or (dqkv NULL) dqkvb bf16 with db += its column sums (per-thread
// double partials, added in thread order after the last group).
static int attention_bwd_bf16_locked(float *dqkv, uint16_t *dqkvb, float *db, const float *dout, const float *qkv,
                                     int B, int T, int H, int hd) {
    const long row = 3L * H * hd, orow = (long)H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int BH = B * H, G = bwd_group_size(BH, H, T);
    const size_t thd = (size_t)T * hd, tt = (size_t)T * T;
    // Workspace: q, k, v, dO bf16 [G, T, hd]; P, dP fp32 [G, T, T]; Pb bf16 [G, T, T]; dq, dk, dv fp32 [G, T, hd];
    // the per-thread column sums for db, double [nthr, row].
    const int nthr = omp_get_max_threads();
    size_t off[11], at = 0;
    const size_t sz[11] = {G * thd * 2, G * thd * 2, G * thd * 2, G * thd * 2, G * tt * 4, G * tt * 4,
                           G * tt * 2,  G * thd * 4, G * thd * 4, G * thd * 4, db ? (size_t)nthr * row * 8 : 0};
    for (int i = 0; i < 11; i++) {
        off[i] = at;
        at = align64(at + sz[i]);
    }
    if (at > g_ws_size) {
        ufo_free(g_ws);
        g_ws_size = 0;
        g_ws = ufo_alloc(at);
        if (!g_ws) return -1;
        g_ws_size = at;
    }
    char *ws = g_ws;
    uint16_t *qb = (uint16_t *)(ws + off[0]), *kb = (uint16_t *)(ws + off[1]), *vb = (uint16_t *)(ws + off[2]);
    uint16_t *dob = (uint16_t *)(ws + off[3]), *pb = (uint16_t *)(ws + off[6]);
    float *P = (float *)(ws + off[4]), *dP = (float *)(ws + off[5]);
    float *dq = (float *)(ws + off[7]), *dk = (float *)(ws + off[8]), *dv = (float *)(ws + off[9]);
    double *part = db ? (double *)(ws + off[10]) : NULL;
    if (part) memset(part, 0, (size_t)nthr * row * sizeof(double));

    for (int c0 = 0; c0 < BH; c0 += G) {
        int g = BH - c0 < G ? BH - c0 : G;
        bwd_prims *a = bwd_get_prims(g, T, hd);
        if (!a) return -1;
#pragma omp parallel for schedule(static) if ((size_t)g * thd > PAR_MIN)
        for (long i = 0; i < (long)g * T; i++) {   // token-major: neighbouring heads are adjacent
            int t = (int)(i / g), gi = (int)(i % g), bh = c0 + gi, b = bh / H, h = bh % H;
            const float *src = qkv + ((size_t)b * T + t) * row + (size_t)h * hd;
            size_t dst = ((size_t)gi * T + t) * hd;
            cpu_f32_to_bf16_serial(qb + dst, src, hd);
            cpu_f32_to_bf16_serial(kb + dst, src + (size_t)H * hd, hd);
            cpu_f32_to_bf16_serial(vb + dst, src + (size_t)2 * H * hd, hd);
            cpu_f32_to_bf16_serial(dob + dst, dout + ((size_t)b * T + t) * orow + (size_t)h * hd, hd);
        }
        dnnl_status_t st = cpu_exec_matmul(a->nt, a->nt_s, qb, a->nt_w, kb, a->nt_d, P);
        if (st != dnnl_success) return cpu_dnnl_error("cpu_attention_backward: q k^T matmul", st);
#pragma omp parallel for schedule(static) if ((size_t)g * tt > PAR_MIN)
        for (long r = 0; r < (long)g * T; r++) {
            cpu_softmax_row(P + (size_t)r * T, T, scale);
            cpu_f32_to_bf16_serial(pb + (size_t)r * T, P + (size_t)r * T, T);
        }
        st = cpu_exec_matmul(a->tn, a->tn_s, pb, a->tn_w, dob, a->tn_d, dv);
        if (st == dnnl_success) st = cpu_exec_matmul(a->nt, a->nt_s, dob, a->nt_w, vb, a->nt_d, dP);
        if (st != dnnl_success) return cpu_dnnl_error("cpu_attention_backward: dV / dP matmul", st);
#pragma omp parallel for schedule(static) if ((size_t)g * tt > PAR_MIN)
        for (long r = 0; r < (long)g * T; r++) {
            const float *pr = P + (size_t)r * T;
            float *dr = dP + (size_t)r * T, dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int j = 0; j < T; j++) dot += pr[j] * dr[j];
#pragma omp simd
            for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
            cpu_f32_to_bf16_serial(pb + (size_t)r * T, dr, T);
        }
        st = cpu_exec_matmul(a->nn, a->nn_s, pb, a->nn_w, kb, a->nn_d, dq);
        if (st == dnnl_success) st = cpu_exec_matmul(a->tn, a->tn_s, pb, a->tn_w, qb, a->tn_d, dk);
        if (st != dnnl_success) return cpu_dnnl_error("cpu_attention_backward: dQ / dK matmul", st);
#pragma omp parallel for schedule(static) if ((size_t)g * thd > PAR_MIN)
        for (long i = 0; i < (long)g * T; i++) {
            int t = (int)(i / g), gi = (int)(i % g), bh = c0 + gi, b = bh / H, h = bh % H;
            size_t s = ((size_t)gi * T + t) * hd, o = ((size_t)b * T + t) * row + (size_t)h * hd;
            const float *src[3] = {dq + s, dk + s, dv + s};
            for (int w = 0; w < 3; w++) {
                size_t ow = o + (size_t)w * H * hd;
                if (dqkv) {
                    memcpy(dqkv + ow, src[w], (size_t)hd * sizeof(float));
                    continue;
                }
                cpu_f32_to_bf16_serial(dqkvb + ow, src[w], (size_t)hd);
                if (part) {
                    double *acc = part + (size_t)omp_get_thread_num() * row + (size_t)w * H * hd + (size_t)h * hd;
#pragma omp simd
                    for (int j = 0; j < hd; j++) acc[j] += src[w][j];
                }
            }
        }
    }
    if (part) {
        for (long k = 0; k < row; k++) {
            double sum = 0;
            for (int t = 0; t < nthr; t++) sum += part[(size_t)t * row + k];
            db[k] = (float)(db[k] + sum);
        }
    }
    return 0;
}

int cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd,
                           ufo_precision prec) {
    if (B < 0 || T < 0 || H < 0 || hd <= 0)
        return ufo_errorf("cpu_attention_backward: bad shape B=%d T=%d H=%d hd=%d", B, T, H, hd);
    if (prec != UFO_PREC_FP32 && prec != UFO_PREC_BF16)
        return ufo_errorf("cpu_attention_backward: bad precision %d", (int)prec);
    if ((long)B * T * H == 0) return 0;
    if (prec == UFO_PREC_FP32) return attention_bwd_f32(dqkv, dout, qkv, B, T, H, hd);
    // The fused AMX kernel wherever the forward takes the AMX path (UFO_ATTN=dnnl: both oneDNN).
    if (cpu_attention_io_ok(T, hd)) return amx_attention_backward(dqkv, NULL, NULL, dout, qkv, 0, B, T, H, hd);
    pthread_mutex_lock(&g_mu);
    int rc = attention_bwd_bf16_locked(dqkv, NULL, NULL, dout, qkv, B, T, H, hd);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int cpu_attention_backward_bf16(uint16_t *dqkvb, float *db, const float *dout, const float *qkv, int B, int T, int H,
                                int hd) {
    if (B < 0 || T < 0 || H < 0 || hd <= 0)
        return ufo_errorf("cpu_attention_backward_bf16: bad shape B=%d T=%d H=%d hd=%d", B, T, H, hd);
    if ((long)B * T * H == 0) return 0;
    if (cpu_attention_io_ok(T, hd)) return amx_attention_backward(NULL, dqkvb, db, dout, qkv, 0, B, T, H, hd);
    pthread_mutex_lock(&g_mu);
    int rc = attention_bwd_bf16_locked(NULL, dqkvb, db, dout, qkv, B, T, H, hd);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int cpu_attention_backward_bf16_qkvb(uint16_t *dqkvb, float *db, const float *dout, const uint16_t *qkvb, int B, int T,
                                     int H, int hd) {
    if (B < 0 || T < 0 || H < 0 || hd <= 0)
        return ufo_errorf("cpu_attention_backward_bf16_qkvb: bad shape B=%d T=%d H=%d hd=%d", B, T, H, hd);
    if (!cpu_attention_io_ok(T, hd))
        return ufo_errorf("cpu_attention_backward_bf16_qkvb: a bf16 qkv needs the AMX attention path (T=%d hd=%d)", T,
                          hd);
    if ((long)B * T * H == 0) return 0;
    return amx_attention_backward(NULL, dqkvb, db, dout, qkvb, 1, B, T, H, hd);
}
