#include "eval/search.h"
#include "eval/nn_internal.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double s;
    int64_t j;
} cand;

// Best first: higher similarity, then the smaller gallery index.
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

// The k-th largest of row[0..n) except row[skip] (skip < 0: none), with a
// min-heap of the k largest seen so far. heap holds k floats.
static float kth_largest(const float *row, int64_t n, int64_t skip, int k, float *heap) {
    int h = 0;
    for (int64_t j = 0; j < n; j++) {
        float v = row[j];
        if (j == skip || (h == k && v <= heap[0])) continue;
        int i;
        if (h < k) {   // sift up
            i = h++;
            while (i > 0 && heap[(i - 1) / 2] > v) {
                heap[i] = heap[(i - 1) / 2];
                i = (i - 1) / 2;
            }
        } else {   // replace the root, sift down
            i = 0;
            for (;;) {
                int c = 2 * i + 1;
                if (c >= k) break;
                if (c + 1 < k && heap[c + 1] < heap[c]) c++;
                if (heap[c] >= v) break;
                heap[i] = heap[c];
                i = c;
            }
        }
        heap[i] = v;
    }
    return heap[0];
}

typedef struct {
    float *heap;
    cand *c;
    int64_t cap;
} row_scratch;

// One query's top k from its screened row (row[j] = fp32 similarity to
// gallery j). Returns 0, or -1 when the candidate buffer cannot grow.
static int search_row(const float *qn, const float *gn, const float *row, int64_t ng, int d, int k, int64_t skip,
                      double eps, row_scratch *w, int64_t *idx, float *sim) {
    float t = kth_largest(row, ng, skip, k, w->heap);
    // Anything in the exact top k screens at >= t - 2 eps: the k items screened at
    // >= t are exactly >= t - eps, so the exact k-th best is too, and a screened
    // value is within eps of its exact one.
    float thr = ufo_nn_float_down((double)t - 2.0 * eps);
    int64_t nc = 0;
    for (int64_t j = 0; j < ng; j++) {
        if (row[j] < thr || j == skip) continue;
        if (nc == w->cap) {
            int64_t cap = w->cap ? 2 * w->cap : 256;
            cand *c = realloc(w->c, sizeof *c * (size_t)cap);
            if (!c) return -1;
            w->c = c;
            w->cap = cap;
        }
        w->c[nc].s = ufo_nn_dot_f64(qn, gn + (size_t)j * d, d);
        w->c[nc++].j = j;
    }
    qsort(w->c, (size_t)nc, sizeof *w->c, cand_cmp);   // nc >= k: the k screened at >= t are in
    for (int r = 0; r < k; r++) {
        idx[r] = w->c[r].j;
        sim[r] = (float)w->c[r].s;
    }
    return 0;
}

int ufo_knn_search(const float *query, int64_t nq, const float *gallery, int64_t ng, int d, int k, int self,
                   int progress, int64_t *idx, float *sim) {
    if (d < 1) return ufo_errorf("search: feature dimension must be >= 1 (got %d)", d);
    if (ng < 1) return ufo_errorf("search: the gallery is empty");
    if (self && nq != ng) return ufo_errorf("search: a self-search needs as many queries as gallery rows");
    if (k < 1 || k > ng - (self ? 1 : 0))
        return ufo_errorf("search: k = %d, but the gallery has %lld row%s%s", k, (long long)ng, ng == 1 ? "" : "s",
                          self ? " and each item's own row is left out" : "");
    if (nq == 0) return 0;
    int rc = -1, failed = 0;
    float *gn = ufo_alloc(sizeof(float) * (size_t)ng * d), *qn = gn, *S = NULL;
    if (!gn || ufo_nn_normalize_f32(gallery, ng, d, gn, "search: gallery")) goto done;
    if (!self) {
        if (!(qn = ufo_alloc(sizeof(float) * (size_t)nq * d))) goto done;
        if (ufo_nn_normalize_f32(query, nq, d, qn, "search: query")) goto done;
    }
    const double eps = ufo_nn_eps(d);
    int B = ufo_nn_block_rows(ng, nq);
    if (!(S = ufo_alloc(sizeof(float) * (size_t)B * ng))) goto done;
    ufo_nn_screen scr = {0};
    if (ufo_nn_screen_begin(&scr, gn, ng, d, (double)nq * ng * d)) goto done;
    ufo_progress pg;
    ufo_progress_begin(&pg, "search", "query", nq, !progress || nq <= B);
    for (int64_t i0 = 0; i0 < nq && !failed; i0 += B) {
        int64_t nb = nq - i0 < B ? nq - i0 : B;
        if (ufo_nn_screen_block(&scr, qn + (size_t)i0 * d, nb, 0, S)) {
            failed = 1;
            break;
        }
#pragma omp parallel
        {
            row_scratch w = {malloc(sizeof(float) * (size_t)k), NULL, 0};
            int bad = !w.heap;
#pragma omp for schedule(dynamic, 4)
            for (int64_t i = i0; i < i0 + nb; i++) {
                if (bad) continue;
                bad = search_row(qn + (size_t)i * d, gn, S + (size_t)(i - i0) * ng, ng, d, k, self ? i : -1, eps,
                                 &w, idx + (size_t)i * k, sim + (size_t)i * k);
            }
            if (bad) {
#pragma omp atomic write
                failed = 1;
            }
            free(w.heap);
            free(w.c);
        }
        if (failed) ufo_errorf("search: out of memory");
        else ufo_progress_update(&pg, i0 + nb);
    }
    if (!failed) ufo_progress_end(&pg, nq);
    ufo_nn_screen_end(&scr);
    rc = failed ? -1 : 0;
done:
    if (qn != gn) ufo_free(qn);
    ufo_free(gn);
    ufo_free(S);
    return rc;
}
