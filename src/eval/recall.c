// SOP Recall@K by counting, for each query, the items ranked before its best
// same-label match (higher similarity, or equal and a smaller index), capped
// at max K. Row block I x columns [i0, n) of the fp32 similarity screen serves
// both the rows of I (pass A) and, transposed, the later rows (pass B), so
// only half of the N x N products are computed.
#include "eval/recall.h"
#include "eval/metrics.h"
#include "eval/nn_internal.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

typedef struct {
    const float *xn;
    int n, D;
    const double *sbest;   // query's best-match similarity (exact)
    const int *jbest;      // its index; -1: no match
    const float *hi, *lo;  // s_f > hi: before for sure; s_f < lo: not before for sure
    int kmax;
} sop_ctx;

// Is item j ranked before query i's best match? Decided in double.
static int refine_before(const sop_ctx *c, int i, int j) {
    double s = ufo_nn_dot_f64(c->xn + (size_t)i * c->D, c->xn + (size_t)j * c->D, c->D);
    return s > c->sbest[i] || (s == c->sbest[i] && j < c->jbest[i]);
}

// The same from the screened similarity s_f, refining only when s_f cannot tell.
static inline int before_best(const sop_ctx *c, int i, int j, float s_f) {
    if (s_f > c->hi[i]) return 1;
    if (s_f < c->lo[i]) return 0;
    return refine_before(c, i, j);
}

int ufo_recall_eval(const float *feats, const int *labels, int n, int D, const int *ks, int nk, ufo_recall_result *r) {
    static const int def_ks[4] = {1, 10, 100, 1000};
    memset(r, 0, sizeof *r);
    if (n < 1) return ufo_errorf("recall@K: need at least one item (got %d)", n);
    if (D < 1) return ufo_errorf("recall@K: feature dimension must be >= 1 (got %d)", D);
    if (!ks || nk == 0) {
        ks = def_ks;
        nk = 4;
    }
    if (nk < 0 || nk > UFO_RECALL_MAXK) return ufo_errorf("recall@K: %d values of K (at most %d)", nk, UFO_RECALL_MAXK);
    int kmax = 0;
    for (int t = 0; t < nk; t++) {
        if (ks[t] < 1) return ufo_errorf("recall@K: K must be >= 1 (got %d)", ks[t]);
        if (ks[t] > kmax) kmax = ks[t];
    }

    int rc = -1;
    float *xn = NULL, *S = NULL, *hi = NULL, *lo = NULL;
    double *sbest = NULL;
    int *jbest = NULL, *cnt = NULL;
    ufo_nn_groups groups = {0};
    ufo_nn_screen scr = {0};
    xn = ufo_alloc(sizeof(float) * (size_t)n * D);
    sbest = ufo_alloc(sizeof(double) * (size_t)n);
    jbest = ufo_alloc(sizeof(int) * (size_t)n);
    cnt = ufo_calloc(sizeof(int) * (size_t)n);
    hi = ufo_alloc(sizeof(float) * (size_t)n);
    lo = ufo_alloc(sizeof(float) * (size_t)n);
    if (!xn || !sbest || !jbest || !cnt || !hi || !lo) goto done;
    if (ufo_nn_normalize_f32(feats, n, D, xn, "recall@K:")) goto done;
    if (ufo_nn_groups_build(labels, n, &groups)) goto done;

    // Each query's best match: highest exact similarity, smallest index on ties.
    const double eps = ufo_nn_eps(D);
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < n; i++) {
        int a, b;
        ufo_nn_groups_find(&groups, labels[i], &a, &b);
        double best = -INFINITY;
        int bj = -1;
        for (int k = a; k < b; k++) {   // order is ascending in index: first max wins
            int j = groups.order[k];
            if (j == i) continue;
            double s = ufo_nn_dot_f64(xn + (size_t)i * D, xn + (size_t)j * D, D);
            if (bj < 0 || s > best) {
                best = s;
                bj = j;
            }
        }
        sbest[i] = best;
        jbest[i] = bj;
        if (bj < 0) {   // always a miss: nothing to count (capped, so skipped)
            hi[i] = INFINITY;
            lo[i] = INFINITY;
            cnt[i] = kmax;
        } else {
            hi[i] = ufo_nn_float_up(best + eps);
            lo[i] = ufo_nn_float_down(best - eps);
        }
    }
    sop_ctx c = {xn, n, D, sbest, jbest, hi, lo, kmax};
    int B = ufo_nn_block_rows(n, n);
    S = ufo_alloc(sizeof(float) * (size_t)B * n);
    if (!S) goto done;
    // Every item is a column; the upper triangle's products are half of n * n * D.
    if (ufo_nn_screen_begin(&scr, xn, n, D, 0.5 * n * n * D)) goto done;
    for (int i0 = 0; i0 < n; i0 += B) {
        int nb = n - i0 < B ? n - i0 : B, i1 = i0 + nb;
        int64_t w = n - i0;   // columns [i0, n), row stride w
        if (ufo_nn_screen_block(&scr, xn + (size_t)i0 * D, nb, i0, S)) goto done;
        // Pass A: rows of the block against every column >= i0 but themselves.
#pragma omp parallel for schedule(dynamic, 4)
        for (int i = i0; i < i1; i++) {
            float *row = S + (size_t)(i - i0) * w;   // row[cc] = s(i, i0 + cc)
            row[i - i0] = -INFINITY;                  // itself: excluded by index
            int cn = cnt[i];
            int64_t cc = 0;
#ifdef __AVX2__
            const __m256 vhi = _mm256_set1_ps(hi[i]), vlo = _mm256_set1_ps(lo[i]);
            for (; cc + 8 <= w && cn < kmax; cc += 8) {
                __m256 v = _mm256_loadu_ps(row + cc);
                unsigned mh = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vhi, _CMP_GT_OQ));
                unsigned mw = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ)) & ~mh;
                cn += __builtin_popcount(mh);
                for (; mw; mw &= mw - 1) cn += refine_before(&c, i, (int)(i0 + cc + __builtin_ctz(mw)));
            }
#endif
            for (; cc < w && cn < kmax; cc++) cn += before_best(&c, i, (int)(i0 + cc), row[cc]);
            cnt[i] = cn;   // may pass kmax: only compared with K <= kmax
        }
        // Pass B: later rows j >= i1 against the block's rows (S transposed).
        const int64_t CH = 512;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t j0 = i1; j0 < n; j0 += CH) {
            int64_t j1 = j0 + CH < n ? j0 + CH : n;
            for (int i = i0; i < i1; i++) {
                const float *row = S + (size_t)(i - i0) * w;   // row[j - i0] = s(i, j)
                int64_t j = j0;
#ifdef __AVX2__
                for (; j + 8 <= j1; j += 8) {
                    __m256 v = _mm256_loadu_ps(row + (j - i0));
                    __m256 gt = _mm256_cmp_ps(v, _mm256_loadu_ps(hi + j), _CMP_GT_OQ);
                    __m256i cv = _mm256_loadu_si256((const __m256i *)(cnt + j));
                    _mm256_storeu_si256((__m256i *)(cnt + j), _mm256_sub_epi32(cv, _mm256_castps_si256(gt)));
                    unsigned mw = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_loadu_ps(lo + j), _CMP_GE_OQ)) &
                                  ~(unsigned)_mm256_movemask_ps(gt);
                    for (; mw; mw &= mw - 1) {
                        int64_t jj = j + __builtin_ctz(mw);
                        if (cnt[jj] < kmax) cnt[jj] += refine_before(&c, (int)jj, i);
                    }
                }
#endif
                for (; j < j1; j++)
                    if (cnt[j] < kmax) cnt[j] += before_best(&c, (int)j, i, row[j - i0]);
            }
        }
    }

    r->n = n;
    r->nk = nk;
    int64_t hitk[UFO_RECALL_MAXK] = {0};
    for (int i = 0; i < n; i++) {
        if (jbest[i] < 0) {
            r->num_no_match++;
            continue;
        }
        for (int t = 0; t < nk; t++)
            if (cnt[i] < ks[t]) hitk[t]++;
    }
    for (int t = 0; t < nk; t++) {
        r->k[t] = ks[t];
        r->recall[t] = 100.0 * (double)hitk[t] / n;
    }
    rc = 0;
done:
    ufo_nn_screen_end(&scr);
    ufo_free(xn);
    ufo_free(S);
    ufo_free(hi);
    ufo_free(lo);
    ufo_free(sbest);
    ufo_free(jbest);
    ufo_free(cnt);
    ufo_nn_groups_free(&groups);
    return rc;
}
