// 10-fold face verification (insightface's calculate_roc / calculate_accuracy).
#include "eval/verify.h"
#include "base/error.h"
#include "base/mem.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NT UFO_VERIFY_NTHRESH

void ufo_verify_result_free(ufo_verify_result *r) {
    if (!r) return;
    ufo_free(r->fold_accuracy);   // one allocation holds every array
    memset(r, 0, sizeof *r);
}

// sklearn.preprocessing.normalize in float64: the divisor is the L2 norm,
// and a norm below 10 * eps(float64) counts as 1 (a zero row stays zero).
// Returns 0 for a non-finite row.
static double norm_of(const float *x, int D) {
    double ss = 0;
    for (int k = 0; k < D; k++) ss += (double)x[k] * x[k];
    if (!isfinite(ss)) return 0;
    double n = sqrt(ss);
    return n < 10 * DBL_EPSILON ? 1.0 : n;
}

int ufo_verify_eval(const float *feats, const uint8_t *issame, int P, int D, int nfolds, ufo_verify_result *r) {
    memset(r, 0, sizeof *r);
    if (P < 1) return ufo_errorf("face verification: need at least one pair (got %d)", P);
    if (D < 1) return ufo_errorf("face verification: feature dimension must be >= 1 (got %d)", D);
    if (nfolds < 1 || nfolds > P)
        return ufo_errorf("face verification: %d folds for %d pairs (need 1 <= folds <= pairs)", nfolds, P);

    // First threshold index at which each pair is predicted "same":
    // kmin = #{k : t_k <= d}, i.e. d < t_k iff k >= kmin (t_k increasing).
    double thr[NT];
    for (int k = 0; k < NT; k++) thr[k] = (double)k * 0.01;
    int *kmin = ufo_alloc(sizeof(int) * (size_t)P);
    if (!kmin) return -1;
    int bad = -1;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < P; i++) {
        const float *x = feats + (size_t)2 * i * D, *y = x + D;
        double na = norm_of(x, D), nb = norm_of(y, D);
        if (na == 0 || nb == 0) {
#pragma omp critical(ufo_verify_bad)
            if (bad < 0 || i < bad) bad = i;
            continue;
        }
        double d = 0;
        for (int k = 0; k < D; k++) {
            double t = (double)x[k] / na - (double)y[k] / nb;
            d += t * t;
        }
        int lo = 0, hi = NT;   // first k with d < thr[k]
        while (lo < hi) {
            int m = (lo + hi) / 2;
            if (d < thr[m]) hi = m;
            else lo = m + 1;
        }
        kmin[i] = lo;
    }
    if (bad >= 0) {
        ufo_free(kmin);
        return ufo_errorf("face verification: pair %d has a non-finite feature", bad);
    }

    // Per fold histograms of kmin (0..NT) for same / different pairs.
    size_t hs = (size_t)nfolds * (NT + 1);
    int *hsame = calloc(2 * hs + (size_t)nfolds, sizeof(int));
    double *arr = ufo_alloc(sizeof(double) * (2 * (size_t)nfolds + 3 * NT));
    if (!hsame || !arr) {
        free(hsame);
        ufo_free(arr);
        ufo_free(kmin);
        return ufo_errorf("face verification: out of memory");
    }
    int *hdiff = hsame + hs, *fold_n = hdiff + hs;
    int base = P / nfolds, extra = P % nfolds, start = 0;
    for (int f = 0; f < nfolds; f++) {
        int sz = base + (f < extra);
        fold_n[f] = sz;
        for (int i = start; i < start + sz; i++) {
            if (issame[i]) hsame[(size_t)f * (NT + 1) + kmin[i]]++;
            else hdiff[(size_t)f * (NT + 1) + kmin[i]]++;
        }
        start += sz;
    }
    ufo_free(kmin);

    r->nfolds = nfolds;
    r->num_pairs = P;
    r->nthresholds = NT;
    r->fold_accuracy = arr;
    r->fold_threshold = arr + nfolds;
    r->thresholds = arr + 2 * nfolds;
    r->tpr = r->thresholds + NT;
    r->fpr = r->tpr + NT;
    memcpy(r->thresholds, thr, sizeof thr);

    // correct(k) over a set of pairs = #same with kmin <= k + #diff with kmin > k.
    // tp(k) = prefix sum of same up to k; tn(k) = total diff - prefix sum of diff up to k.
    int ts[NT + 1], td[NT + 1];
    for (int f = 0; f < nfolds; f++) {
        // training set: all folds but f (all folds when nfolds == 1)
        memset(ts, 0, sizeof ts);
        memset(td, 0, sizeof td);
        for (int g = 0; g < nfolds; g++) {
            if (g == f && nfolds > 1) continue;
            for (int k = 0; k <= NT; k++) {
                ts[k] += hsame[(size_t)g * (NT + 1) + k];
                td[k] += hdiff[(size_t)g * (NT + 1) + k];
            }
        }
        int ndiff = 0;
        for (int k = 0; k <= NT; k++) ndiff += td[k];
        int best = 0, best_k = 0, cs = 0, cd = 0;
        for (int k = 0; k < NT; k++) {
            cs += ts[k];
            cd += td[k];
            int correct = cs + (ndiff - cd);
            if (k == 0 || correct > best) {
                best = correct;
                best_k = k;
            }
        }
        // held-out fold at best_k
        const int *fs = hsame + (size_t)f * (NT + 1), *fd = hdiff + (size_t)f * (NT + 1);
        int tp = 0, fdn = 0, fdiff = 0;
        for (int k = 0; k <= NT; k++) {
            if (k <= best_k) {
                tp += fs[k];
                fdn += fd[k];
            }
            fdiff += fd[k];
        }
        int correct = tp + (fdiff - fdn);
        r->fold_accuracy[f] = (double)correct / fold_n[f] * 100.0;
        r->fold_threshold[f] = thr[best_k];
    }

    // ROC over all pairs.
    int S = 0, Dn = 0, cs = 0, cd = 0;
    for (size_t k = 0; k < hs; k++) {
        S += hsame[k];
        Dn += hdiff[k];
    }
    for (int k = 0; k < NT; k++) {
        for (int f = 0; f < nfolds; f++) {
            cs += hsame[(size_t)f * (NT + 1) + k];
            cd += hdiff[(size_t)f * (NT + 1) + k];
        }
        r->tpr[k] = S ? (double)cs / S : 0.0;
        r->fpr[k] = Dn ? (double)cd / Dn : 0.0;
    }
    r->num_same = S;

    double sa = 0, st = 0;
    for (int f = 0; f < nfolds; f++) {
        sa += r->fold_accuracy[f];
        st += r->fold_threshold[f];
    }
    r->accuracy = sa / nfolds;
    r->threshold = st / nfolds;
    double v = 0;
    for (int f = 0; f < nfolds; f++) v += (r->fold_accuracy[f] - r->accuracy) * (r->fold_accuracy[f] - r->accuracy);
    r->accuracy_std = sqrt(v / nfolds);
    free(hsame);
    return 0;
}
