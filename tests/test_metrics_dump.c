// Metrics (src/eval): with no arguments, self-checks on hand-computed cases
// and a brute-force comparison; with arguments, computes one metric from .npy
// files and prints it as JSON (%.10g) for tests/py/test_metrics_numpy.py:
//   test_metrics_dump verify FEATS.npy ISSAME.npy [NFOLDS]
//   test_metrics_dump reid QF.npy QPID.npy QCAM.npy GF.npy GPID.npy GCAM.npy [MAX_RANK]
//   test_metrics_dump sop FEATS.npy LABELS.npy [K,K,...]
// UFO_METRICS_BLOCK=<rows> sets the query block size (results must not change).
#include "check.h"
#include "base/error.h"
#include "eval/metrics.h"
#include "eval/nn_internal.h"
#include "formats/npy.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- helpers

static void unit2(float *v, double deg) {
    v[0] = (float)cos(deg * M_PI / 180);
    v[1] = (float)sin(deg * M_PI / 180);
}

static uint64_t g_rng = 88172645463325252ull;
static double urand(void) {   // xorshift64*, [0, 1)
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}
static double nrand(void) {
    double u = urand(), v = urand();
    return sqrt(-2 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

// ---------------------------------------------------------------- brute force

typedef struct {
    double d;
    int j;
} dj;
static int cmp_dj(const void *a, const void *b) {
    const dj *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

// Full sort of every row by (distance, index); fast-reid's eval_func.
static void brute_reid(const float *qf, const int *qpid, const int *qcam, int nq, const float *gf, const int *gpid,
                       const int *gcam, int ng, int D, double *out /* r1 r5 r10 mAP mINP valid */) {
    float *qn = malloc(sizeof(float) * nq * D), *gn = malloc(sizeof(float) * ng * D);
    ufo_nn_normalize_f32(qf, nq, D, qn, "q");
    ufo_nn_normalize_f32(gf, ng, D, gn, "g");
    dj *row = malloc(sizeof(dj) * ng);
    double c1 = 0, c5 = 0, c10 = 0, sap = 0, sinp = 0;
    int valid = 0;
    for (int q = 0; q < nq; q++) {
        for (int j = 0; j < ng; j++) row[j] = (dj){1.0 - ufo_nn_dot_f64(qn + q * D, gn + j * D, D), j};
        qsort(row, ng, sizeof(dj), cmp_dj);
        int kept = 0, hits = 0, first = -1, last = -1;
        double ap = 0;
        for (int t = 0; t < ng; t++) {
            int j = row[t].j;
            if (gpid[j] == qpid[q] && gcam[j] == qcam[q]) continue;
            if (gpid[j] == qpid[q]) {
                hits++;
                if (first < 0) first = kept;
                last = kept;
                ap += (double)hits / (kept + 1);
            }
            kept++;
        }
        if (!hits) continue;
        valid++;
        c1 += first < 1;
        c5 += first < 5;
        c10 += first < 10;
        sap += ap / hits;
        sinp += (double)hits / (last + 1);
    }
    out[0] = 100 * c1 / valid;
    out[1] = 100 * c5 / valid;
    out[2] = 100 * c10 / valid;
    out[3] = 100 * sap / valid;
    out[4] = 100 * sinp / valid;
    out[5] = valid;
    free(qn);
    free(gn);
    free(row);
}

static void brute_sop(const float *x, const int *lab, int n, int D, const int *ks, int nk, double *rec) {
    float *xn = malloc(sizeof(float) * n * D);
    ufo_nn_normalize_f32(x, n, D, xn, "x");
    dj *row = malloc(sizeof(dj) * n);
    int hit[8] = {0};
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) row[j] = (dj){-ufo_nn_dot_f64(xn + i * D, xn + j * D, D), j};
        qsort(row, n, sizeof(dj), cmp_dj);
        int rank = -1, pos = 0;
        for (int t = 0; t < n; t++) {
            if (row[t].j == i) continue;
            if (lab[row[t].j] == lab[i]) {
                rank = pos;
                break;
            }
            pos++;
        }
        for (int k = 0; k < nk; k++) hit[k] += rank >= 0 && rank < ks[k];
    }
    for (int k = 0; k < nk; k++) rec[k] = 100.0 * hit[k] / n;
    free(xn);
    free(row);
}

// ---------------------------------------------------------------- self-checks

static void check_verify(void) {
    // Perfectly separable: same pairs identical (d = 0), different pairs orthogonal (d = 2).
    enum { P = 23, D = 4 };
    float f[2 * P * D];
    uint8_t same[P];
    memset(f, 0, sizeof f);
    for (int i = 0; i < P; i++) {
        same[i] = (uint8_t)(i % 3 != 0);
        f[(2 * i) * D + i % D] = 1.0f + (float)i;
        f[(2 * i + 1) * D + (same[i] ? i % D : (i + 1) % D)] = 0.5f;
    }
    ufo_verify_result r;
    CHECK(ufo_verify_eval(f, same, P, D, 10, &r) == 0, "%s", ufo_error());
    CHECK(r.accuracy == 100.0 && r.accuracy_std == 0.0, "acc %g std %g", r.accuracy, r.accuracy_std);
    CHECK(near(r.threshold, 0.01), "threshold %g", r.threshold);   // first argmax: t_1
    CHECK(r.nthresholds == 400 && r.thresholds[399] == 399 * 0.01 && r.thresholds[0] == 0.0);
    CHECK(r.tpr[0] == 0.0 && r.tpr[1] == 1.0 && r.fpr[200] == 0.0 && r.fpr[201] == 1.0,
          "roc %g %g %g %g", r.tpr[0], r.tpr[1], r.fpr[200], r.fpr[201]);
    CHECK(r.num_pairs == P && r.num_same == 15);
    ufo_verify_result_free(&r);

    // Three pairs, three folds, by hand: d = 0.505 (same), 0.305 (diff), 1.005 (same).
    // fold 0 trains on {diff .305, same 1.005}: best first k = 0 (1/2), tests same .505 -> wrong
    // fold 1 trains on {same .505, same 1.005}: best k = 101 (t = 1.01), tests diff .305 -> wrong
    // fold 2 trains on {same .505, diff .305}: best k = 0, tests same 1.005 -> wrong
    float g[6 * 2];
    double dd[3] = {0.505, 0.305, 1.005};
    uint8_t s3[3] = {1, 0, 1};
    for (int i = 0; i < 3; i++) {
        unit2(g + 4 * i, 0);
        unit2(g + 4 * i + 2, acos(1 - dd[i] / 2) * 180 / M_PI);
    }
    CHECK(ufo_verify_eval(g, s3, 3, 2, 3, &r) == 0, "%s", ufo_error());
    CHECK(r.accuracy == 0.0 && near(r.threshold, 1.01 / 3), "acc %g thr %g", r.accuracy, r.threshold);
    CHECK(r.fold_threshold[0] == 0.0 && near(r.fold_threshold[1], 1.01) && r.fold_threshold[2] == 0.0);
    CHECK(r.tpr[60] == 0.5 && r.fpr[60] == 1.0 && r.tpr[30] == 0.0 && r.fpr[30] == 0.0 && r.fpr[31] == 1.0);
    ufo_verify_result_free(&r);
    // Unequal folds: 13 pairs in 10 folds = 2,2,2,1,...; nfolds = 1 = train and test on all.
    CHECK(ufo_verify_eval(f, same, 13, D, 10, &r) == 0 && r.accuracy == 100.0);
    ufo_verify_result_free(&r);
    CHECK(ufo_verify_eval(g, s3, 3, 2, 1, &r) == 0 && near(r.accuracy, 200.0 / 3), "acc %g", r.accuracy);
    ufo_verify_result_free(&r);

    // Errors.
    CHECK(ufo_verify_eval(f, same, 0, D, 10, &r) == -1 && strstr(ufo_error(), "pair"));
    CHECK(ufo_verify_eval(f, same, 5, D, 10, &r) == -1 && strstr(ufo_error(), "folds"));
    CHECK(ufo_verify_eval(f, same, 5, 0, 1, &r) == -1 && strstr(ufo_error(), "dimension"));
    f[5] = NAN;
    CHECK(ufo_verify_eval(f, same, P, D, 10, &r) == -1 && strstr(ufo_error(), "pair 0"), "%s", ufo_error());
}

static void check_reid_hand(void) {
    // Query 0 (pid 1, cam 0) at 0 deg. Gallery: g0 pid 2 @10, g1 pid 1 cam 1 @20 (hit),
    // g2 pid 1 cam 0 @5 (same-camera junk, dropped), g3 pid 1 cam 2 @40 (hit).
    // Kept order g0, g1, g3: hits at ranks 1, 2 -> AP = (1/2 + 2/3) / 2 = 7/12, INP = 2/3.
    // Query 1 (pid 3): no such gallery pid -> skipped. Query 2 (pid 2, cam 0): its only
    // gallery item g0 has cam 0 -> junk -> skipped.
    float q[3 * 2], g[4 * 2];
    int qp[3] = {1, 3, 2}, qc[3] = {0, 0, 0}, gp[4] = {2, 1, 1, 1}, gc[4] = {0, 1, 0, 2};
    unit2(q, 0);
    unit2(q + 2, 30);
    unit2(q + 4, 60);
    unit2(g, 10);
    unit2(g + 2, 20);
    unit2(g + 4, 5);
    unit2(g + 6, 40);
    ufo_reid_result r;
    CHECK(ufo_reid_eval(q, qp, qc, 3, g, gp, gc, 4, 2, 50, &r) == 0, "%s", ufo_error());
    CHECK(r.num_valid == 1 && r.num_query == 3 && r.num_gallery == 4);
    CHECK(r.rank1 == 0.0 && r.rank5 == 100.0 && r.rank10 == 100.0);
    CHECK(near(r.mAP, 100.0 * 7 / 12) && near(r.mINP, 100.0 * 2 / 3), "mAP %g mINP %g", r.mAP, r.mINP);
    CHECK(r.max_rank == 50 && r.cmc[0] == 0.0 && r.cmc[1] == 100.0 && r.cmc[49] == 100.0);
    ufo_reid_result_free(&r);

    // Exact tie between a hit and a distractor: the smaller gallery index ranks first.
    float g2[2 * 2];
    unit2(g2, 53);
    unit2(g2 + 2, 53);
    int gpa[2] = {5, 1}, gpb[2] = {1, 5}, gc2[2] = {1, 1};
    CHECK(ufo_reid_eval(q, qp, qc, 1, g2, gpa, gc2, 2, 2, 5, &r) == 0);
    CHECK(near(r.mAP, 50.0) && r.rank1 == 0.0 && r.cmc[1] == 100.0, "mAP %g", r.mAP);
    ufo_reid_result_free(&r);
    CHECK(ufo_reid_eval(q, qp, qc, 1, g2, gpb, gc2, 2, 2, 5, &r) == 0);
    CHECK(near(r.mAP, 100.0) && r.rank1 == 100.0 && near(r.mINP, 100.0));
    ufo_reid_result_free(&r);

    // Errors: nothing valid, bad sizes, NaN.
    CHECK(ufo_reid_eval(q + 2, qp + 1, qc, 2, g, gp, gc, 4, 2, 50, &r) == -1 && strstr(ufo_error(), "no query"));
    CHECK(ufo_reid_eval(q, qp, qc, 0, g, gp, gc, 4, 2, 50, &r) == -1 && strstr(ufo_error(), "query"));
    CHECK(ufo_reid_eval(q, qp, qc, 1, g, gp, gc, 0, 2, 50, &r) == -1 && strstr(ufo_error(), "gallery"));
    CHECK(ufo_reid_eval(q, qp, qc, 1, g, gp, gc, 4, 2, 0, &r) == -1 && strstr(ufo_error(), "max_rank"));
    g[3] = NAN;
    CHECK(ufo_reid_eval(q, qp, qc, 1, g, gp, gc, 4, 2, 50, &r) == -1 && strstr(ufo_error(), "gallery feature 1"),
          "%s", ufo_error());
}

static void check_sop_hand(void) {
    // x0 (1,0) A, x1 (.8,.6) B, x2 (.6,.8) A, x3 (0,1) C.
    // q0: x1 .8, x2 .6 -> best A at rank 1. q2: x1 .96, x3 .8, x0 .6 -> rank 2.
    // q1, q3: labels without another item -> misses.
    float x[8] = {1, 0, .8f, .6f, .6f, .8f, 0, 1};
    int lab[4] = {7, 8, 7, 9}, ks[3] = {1, 2, 3};
    ufo_recall_result r;
    CHECK(ufo_recall_eval(x, lab, 4, 2, ks, 3, &r) == 0, "%s", ufo_error());
    CHECK(r.recall[0] == 0.0 && r.recall[1] == 25.0 && r.recall[2] == 50.0, "%g %g %g", r.recall[0], r.recall[1],
          r.recall[2]);
    CHECK(r.n == 4 && r.num_no_match == 2 && r.nk == 3 && r.k[2] == 3);
    // Ties by index: y0 (1,0); y1 = y2 = (0,1); y3 (1,0) a label of its own.
    // la: q0's match y2 ties with y1 at similarity 0 and comes after it (rank 2);
    //     q2's match y0 is behind y1 (rank 1). lb: q0's match is y1 (rank 1), q1's y0 (rank 1).
    float y[8] = {1, 0, 0, 1, 0, 1, 1, 0};
    int la[4] = {1, 2, 1, 4}, lb[4] = {1, 1, 2, 4};
    CHECK(ufo_recall_eval(y, la, 4, 2, ks, 3, &r) == 0 && r.recall[0] == 0.0 && r.recall[1] == 25.0 &&
              r.recall[2] == 50.0, "%g %g %g", r.recall[0], r.recall[1], r.recall[2]);
    CHECK(ufo_recall_eval(y, lb, 4, 2, ks, 3, &r) == 0 && r.recall[0] == 0.0 && r.recall[1] == 50.0, "%g", r.recall[1]);
    // default Ks
    CHECK(ufo_recall_eval(x, lab, 4, 2, NULL, 0, &r) == 0 && r.nk == 4 && r.k[3] == 1000 && r.recall[3] == 50.0);
    int bad[1] = {0};
    CHECK(ufo_recall_eval(x, lab, 4, 2, bad, 1, &r) == -1 && strstr(ufo_error(), "K must"));
    CHECK(ufo_recall_eval(x, lab, 0, 2, NULL, 0, &r) == -1);
}

// Random clustered data with duplicates and low-precision features (many
// near-ties for the fp32 screen): metrics equal a brute-force full sort in
// double, for several block sizes.
static void check_random(void) {
    enum { NQ = 37, NG = 150, D = 24, NID = 12 };
    static float qf[NQ * D], gf[NG * D], ctr[NID * D];
    int qp[NQ], qc[NQ], gp[NG], gc[NG];
    for (int i = 0; i < NID * D; i++) ctr[i] = (float)nrand();
    for (int i = 0; i < NG; i++) {
        gp[i] = (int)(urand() * NID);
        gc[i] = (int)(urand() * 4);
        for (int k = 0; k < D; k++) gf[i * D + k] = roundf((ctr[gp[i] * D + k] + 1.5f * (float)nrand()) * 4) / 4;
        if (i % 7 == 3) memcpy(gf + i * D, gf + (i - 2) * D, sizeof(float) * D);   // exact duplicate, maybe other pid
    }
    for (int i = 0; i < NQ; i++) {
        qp[i] = (int)(urand() * (NID + 2));   // some pids absent from the gallery
        qc[i] = (int)(urand() * 4);
        for (int k = 0; k < D; k++)
            qf[i * D + k] = roundf((ctr[(qp[i] % NID) * D + k] + 1.5f * (float)nrand()) * 4) / 4;
        if (i % 5 == 0) memcpy(qf + i * D, gf + (i * 3) * D, sizeof(float) * D);
    }
    double ref[6];
    brute_reid(qf, qp, qc, NQ, gf, gp, gc, NG, D, ref);
    int blocks[3] = {1, 7, 0};
    for (int b = 0; b < 3; b++) {
        ufo_metrics_set_block_rows(blocks[b]);
        ufo_reid_result r;
        CHECK(ufo_reid_eval(qf, qp, qc, NQ, gf, gp, gc, NG, D, 50, &r) == 0, "%s", ufo_error());
        CHECK(near(r.rank1, ref[0]) && near(r.rank5, ref[1]) && near(r.rank10, ref[2]) && near(r.mAP, ref[3]) &&
                  near(r.mINP, ref[4]) && r.num_valid == (int)ref[5],
              "block %d: %g %g %g %g %g %d vs %g %g %g %g %g %g", blocks[b], r.rank1, r.rank5, r.rank10, r.mAP, r.mINP,
              r.num_valid, ref[0], ref[1], ref[2], ref[3], ref[4], ref[5]);
        ufo_reid_result_free(&r);

        int ks[5] = {1, 2, 5, 10, 100};
        double rec[5];
        brute_sop(gf, gp, NG, D, ks, 5, rec);
        ufo_recall_result s;
        CHECK(ufo_recall_eval(gf, gp, NG, D, ks, 5, &s) == 0, "%s", ufo_error());
        for (int k = 0; k < 5; k++) CHECK(near(s.recall[k], rec[k]), "block %d R@%d %g vs %g", blocks[b], ks[k], s.recall[k], rec[k]);
    }
    ufo_metrics_set_block_rows(0);
}

// ---------------------------------------------------------------- .npy dump mode

static int read_f32(const char *path, int64_t *rows, int64_t *cols, float **out) {
    ufo_tensor_entry e;
    if (ufo_npy_read(path, &e)) return -1;
    int rc = 0;
    if (e.ndim != 2 || !ufo_dtype_is_float(e.dtype)) {
        rc = ufo_errorf("%s: expected a 2-D float array", path);
    } else {
        *rows = e.shape[0];
        *cols = e.shape[1];
        size_t n = (size_t)(*rows * *cols);
        *out = malloc(sizeof(float) * (n ? n : 1));
        ufo_convert_to_f32(*out, e.data, e.dtype, n);
    }
    free(e.owned);
    free(e.name);
    return rc;
}

static int read_int(const char *path, int64_t *n, int **out) {
    ufo_tensor_entry e;
    if (ufo_npy_read(path, &e)) return -1;
    int rc = 0;
    if (e.ndim != 1) {
        rc = ufo_errorf("%s: expected a 1-D array", path);
    } else {
        *n = e.shape[0];
        *out = malloc(sizeof(int) * (size_t)(*n ? *n : 1));
        for (int64_t i = 0; i < *n && rc == 0; i++) {
            int64_t v;
            switch (e.dtype) {
            case UFO_I64: v = ((const int64_t *)e.data)[i]; break;
            case UFO_I32: v = ((const int32_t *)e.data)[i]; break;
            case UFO_I16: v = ((const int16_t *)e.data)[i]; break;
            case UFO_I8: v = ((const int8_t *)e.data)[i]; break;
            case UFO_U8:
            case UFO_BOOL: v = ((const uint8_t *)e.data)[i]; break;
            default: rc = ufo_errorf("%s: expected an integer or bool array", path); v = 0;
            }
            if (v < INT32_MIN || v > INT32_MAX) rc = ufo_errorf("%s: value %lld out of int range", path, (long long)v);
            (*out)[i] = (int)v;
        }
    }
    free(e.owned);
    free(e.name);
    return rc;
}

static void print_arr(const char *key, const double *a, int n, int last) {
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%.10g", i ? ", " : "", a[i]);
    printf("]%s\n", last ? "" : ",");
}

static int dump(int argc, char **argv) {
    const char *what = argv[1];
    if (!strcmp(what, "verify") && (argc == 4 || argc == 5)) {
        int64_t n, d, p;
        float *f = NULL;
        int *s = NULL;
        if (read_f32(argv[2], &n, &d, &f) || read_int(argv[3], &p, &s)) return -1;
        if (n != 2 * p) return ufo_errorf("verify: %lld features for %lld pairs", (long long)n, (long long)p);
        uint8_t *same = malloc((size_t)p + 1);
        for (int64_t i = 0; i < p; i++) same[i] = (uint8_t)(s[i] != 0);
        ufo_verify_result r;
        if (ufo_verify_eval(f, same, (int)p, (int)d, argc == 5 ? atoi(argv[4]) : 10, &r)) return -1;
        printf("{\"accuracy\": %.10g, \"accuracy_std\": %.10g, \"threshold\": %.10g,\n", r.accuracy, r.accuracy_std,
               r.threshold);
        print_arr("fold_accuracy", r.fold_accuracy, r.nfolds, 0);
        print_arr("fold_threshold", r.fold_threshold, r.nfolds, 0);
        print_arr("tpr", r.tpr, r.nthresholds, 0);
        print_arr("fpr", r.fpr, r.nthresholds, 1);
        printf("}\n");
        ufo_verify_result_free(&r);
        free(f);
        free(s);
        free(same);
        return 0;
    }
    if (!strcmp(what, "reid") && (argc == 8 || argc == 9)) {
        int64_t nq, d, ng, d2, n1, n2, n3, n4;
        float *qf = NULL, *gf = NULL;
        int *qp = NULL, *qc = NULL, *gp = NULL, *gc = NULL;
        if (read_f32(argv[2], &nq, &d, &qf) || read_int(argv[3], &n1, &qp) || read_int(argv[4], &n2, &qc) ||
            read_f32(argv[5], &ng, &d2, &gf) || read_int(argv[6], &n3, &gp) || read_int(argv[7], &n4, &gc))
            return -1;
        if (d != d2 || n1 != nq || n2 != nq || n3 != ng || n4 != ng) return ufo_errorf("reid: inconsistent shapes");
        ufo_reid_result r;
        if (ufo_reid_eval(qf, qp, qc, (int)nq, gf, gp, gc, (int)ng, (int)d, argc == 9 ? atoi(argv[8]) : 50, &r))
            return -1;
        printf("{\"rank1\": %.10g, \"rank5\": %.10g, \"rank10\": %.10g, \"mAP\": %.10g, \"mINP\": %.10g,\n", r.rank1,
               r.rank5, r.rank10, r.mAP, r.mINP);
        printf("\"num_valid\": %d, \"num_query\": %d, \"num_gallery\": %d,\n", r.num_valid, r.num_query, r.num_gallery);
        print_arr("cmc", r.cmc, r.max_rank, 1);
        printf("}\n");
        ufo_reid_result_free(&r);
        free(qf), free(gf), free(qp), free(qc), free(gp), free(gc);
        return 0;
    }
    if (!strcmp(what, "sop") && (argc == 4 || argc == 5)) {
        int64_t n, d, n1;
        float *f = NULL;
        int *lab = NULL, ks[UFO_RECALL_MAXK], nk = 0;
        if (read_f32(argv[2], &n, &d, &f) || read_int(argv[3], &n1, &lab)) return -1;
        if (n1 != n) return ufo_errorf("sop: %lld features, %lld labels", (long long)n, (long long)n1);
        if (argc == 5)
            for (char *p = argv[4]; *p && nk < UFO_RECALL_MAXK;) {
                ks[nk++] = (int)strtol(p, &p, 10);
                if (*p == ',') p++;
            }
        ufo_recall_result r;
        if (ufo_recall_eval(f, lab, (int)n, (int)d, nk ? ks : NULL, nk, &r)) return -1;
        printf("{");
        for (int t = 0; t < r.nk; t++) printf("\"recall@%d\": %.10g, ", r.k[t], r.recall[t]);
        printf("\"num_no_match\": %d, \"n\": %d}\n", r.num_no_match, r.n);
        free(f);
        free(lab);
        return 0;
    }
    return ufo_errorf("usage: test_metrics_dump [verify F I [NFOLDS] | reid QF QP QC GF GP GC [MAXRANK] | sop F L [K,..]]");
}

int main(int argc, char **argv) {
    if (argc > 1) {
        if (dump(argc, argv)) {
            fprintf(stderr, "test_metrics_dump: %s\n", ufo_error());
            return 1;
        }
        return 0;
    }
    check_verify();
    check_reid_hand();
    check_sop_hand();
    check_random();
    return check_summary("metrics");
}
