// Partial-FC class sampling and the CosFace over the kept classes (see pfc.h).
#include "train/pfc.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ufo_pfc_keep_count(int C, double rate, int positives) {
    if (!(rate < 1.0)) return C;
    double want = ceil(rate * (double)C * (1.0 - 1e-9));
    int k = want >= C ? C : (int)want;
    if (k < positives) k = positives;
    return k < C ? k : C;
}

// First position in kept[0..n) holding a class >= c.
static int lower_bound(const int *kept, int n, int c) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (kept[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void ufo_pfc_range(const int *kept, int nkept, int c_lo, int c_hi, int *lo, int *hi) {
    *lo = lower_bound(kept, nkept, c_lo);
    *hi = lower_bound(kept, nkept, c_hi);
}

int ufo_pfc_sample(int C, double rate, const int32_t *labels, int n, uint64_t seed, long step, int task, int *kept) {
    unsigned char *in = calloc((size_t)(C > 0 ? C : 1), 1);
    int *neg = malloc(sizeof(int) * (size_t)(C > 0 ? C : 1));
    if (!in || !neg) {
        free(in);
        free(neg);
        return ufo_errorf("Partial-FC sampling: out of memory (%d classes)", C);
    }
    int pos = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= C) {
            free(in);
            free(neg);
            return ufo_errorf("Partial-FC sampling: label %d outside [0, %d)", (int)labels[i], C);
        }
        pos += !in[labels[i]];
        in[labels[i]] = 1;
    }
    int m = 0;   // the negatives, ascending
    for (int c = 0; c < C; c++)
        if (!in[c]) neg[m++] = c;
    int need = ufo_pfc_keep_count(C, rate, pos) - pos;
    // The stream of this (seed, step, task): splitmix64 (inside ufo_rng_seed)
    // spreads the mixed words, so neighbouring steps draw unrelated sets.
    ufo_rng r;
    ufo_rng_seed(&r, seed ^ 0x7066632d73616d70ull ^ ((uint64_t)step * 0x9e3779b97f4a7c15ull) ^
                         ((uint64_t)(task + 1) << 56));
    // Partial Fisher-Yates: the first `need` of a uniform shuffle of the negatives.
    for (int i = 0; i < need; i++) {
        int j = i + (int)(ufo_rng_uniform(&r) * (m - i));
        int tmp = neg[i];
        neg[i] = neg[j], neg[j] = tmp;
        in[neg[i]] = 1;
    }
    int k = 0;
    for (int c = 0; c < C; c++)
        if (in[c]) kept[k++] = c;
    free(in);
    free(neg);
    return k;
}

int ufo_pfc_cosface(const float *f, const float *W, const int32_t *labels, int n, int D, int classes,
                    const ufo_cosface_opts *opts, const int *kept, int nkept, float *df, float *dW,
                    ufo_cosface_result *res) {
    int sharded = opts->shard && opts->shard->size > 1;
    int c_lo = sharded ? opts->class_lo : 0;
    int klo, khi;
    ufo_pfc_range(kept, nkept, c_lo, c_lo + classes, &klo, &khi);
    int nk = khi - klo;
    float *Wc = ufo_alloc((size_t)(nk ? nk : 1) * D * sizeof(float));
    float *dWc = dW ? ufo_calloc((size_t)(nk ? nk : 1) * D * sizeof(float)) : NULL;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    int rc = -1;
    if (!Wc || (dW && !dWc) || !lab) {
        ufo_error_wrap("Partial-FC sampled CosFace (%d kept rows)", nk);
        goto done;
    }
    for (int j = 0; j < nk; j++)
        memcpy(Wc + (size_t)j * D, W + (size_t)(kept[klo + j] - c_lo) * D, (size_t)D * sizeof(float));
    // Labels become positions among the kept classes of every shard.
    for (int i = 0; i < n; i++) {
        int p = lower_bound(kept, nkept, labels[i]);
        if (p == nkept || kept[p] != labels[i]) {
            ufo_errorf("Partial-FC: label %d of sample %d is not among the kept classes", (int)labels[i], i);
            goto done;
        }
        lab[i] = p;
    }
    ufo_cosface_opts o = *opts;
    if (sharded) o.class_lo = klo, o.total_classes = nkept;
    if (ufo_cosface(f, Wc, lab, n, D, sharded ? nk : nkept, &o, df, dWc, res)) goto done;
    if (dW)
        for (int j = 0; j < nk; j++) {
            float *dst = dW + (size_t)(kept[klo + j] - c_lo) * D;
            const float *src = dWc + (size_t)j * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
    rc = 0;
done:
    ufo_free(Wc);
    ufo_free(dWc);
    free(lab);
    return rc;
}
