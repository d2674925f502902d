// Metric benchmark at full benchmark scale on synthetic 1024-d features
// (not a test; bench/bench_metrics.sh runs it beside bench/bench_metrics.py):
//   bench_metrics [--scale F] [--dim D] [--sigma S] DATASET...
// DATASET: veriwild (10,000 x 128,517, 10,000 identities, 174 cameras),
//          msmt17 (11,659 x 82,161, 3,060 identities, 15 cameras),
//          sop (60,502 leave-one-out, 11,316 classes).
// Features: identity centres in a random 32-d subspace of R^D plus isotropic
// noise (bench/bench_metrics.py draws from the same recipe). Prints one JSON
// line per dataset: generation and metric seconds and the metrics.
#include "base/progress.h"
#include "eval/metrics.h"
#include "base/error.h"
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RANK = 32 };
static float SIGMA = 2.0f;   // --sigma

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float u01(uint64_t *s) { return ((float)(splitmix(s) >> 40) + 0.5f) * 0x1.0p-24f; }

// n standard normals into out (Box-Muller), from a per-call seed.
static void normals(float *out, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i += 2) {
        float r = sqrtf(-2.0f * logf(u01(&s))), t = 6.2831853f * u01(&s);
        out[i] = r * cosf(t);
        if (i + 1 < n) out[i + 1] = r * sinf(t);
    }
}

// centres [nid, D] = Z [nid, RANK] x A [RANK, D] / sqrt(RANK)
static float *make_centres(int nid, int D, uint64_t seed) {
    float *z = malloc(sizeof(float) * (size_t)nid * RANK), *a = malloc(sizeof(float) * RANK * (size_t)D);
    float *c = malloc(sizeof(float) * (size_t)nid * D);
    normals(z, (int64_t)nid * RANK, seed);
    normals(a, (int64_t)RANK * D, seed ^ 0xabcdefull);
    dnnl_sgemm('N', 'N', nid, D, RANK, 1.0f / sqrtf(RANK), z, RANK, a, D, 0.0f, c, D);
    free(z);
    free(a);
    return c;
}

// rows[i] = centre[id[i]] + SIGMA * noise
static float *make_rows(const float *centres, const int *id, int n, int D, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)n * D);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * D;
        normals(r, D, seed * 1000003ull + (uint64_t)i);
        const float *c = centres + (size_t)id[i] * D;
        for (int k = 0; k < D; k++) r[k] = c[k] + SIGMA * r[k];
    }
    return x;
}

static int bench_reid(const char *name, int nq, int ng, int nid, int ncam, int D) {
    double t0 = ufo_now();
    uint64_t s = 12345;
    int *qp = malloc(sizeof(int) * nq), *qc = malloc(sizeof(int) * nq);
    int *gp = malloc(sizeof(int) * ng), *gc = malloc(sizeof(int) * ng);
    for (int i = 0; i < ng; i++) {   // every identity in the gallery, the rest at random
        gp[i] = i < nid ? i : (int)(splitmix(&s) % (uint64_t)nid);
        gc[i] = (int)(splitmix(&s) % (uint64_t)ncam);
    }
    for (int i = 0; i < nq; i++) {
        qp[i] = i < nid ? i : (int)(splitmix(&s) % (uint64_t)nid);
        qc[i] = (int)(splitmix(&s) % (uint64_t)ncam);
    }
    float *cen = make_centres(nid, D, 7);
    float *gf = make_rows(cen, gp, ng, D, 1), *qf = make_rows(cen, qp, nq, D, 2);
    free(cen);
    double t1 = ufo_now();
    ufo_reid_result r;
    if (ufo_reid_eval(qf, qp, qc, nq, gf, gp, gc, ng, D, 50, &r)) {
        fprintf(stderr, "%s: %s\n", name, ufo_error());
        return -1;
    }
    double t2 = ufo_now();
    printf("{\"dataset\": \"%s\", \"num_query\": %d, \"num_gallery\": %d, \"dim\": %d, \"threads\": %d, "
           "\"gen_s\": %.3f, \"metric_s\": %.3f, \"rank1\": %.4f, \"rank5\": %.4f, \"rank10\": %.4f, "
           "\"mAP\": %.4f, \"mINP\": %.4f, \"num_valid\": %d}\n",
           name, nq, ng, D, omp_get_max_threads(), t1 - t0, t2 - t1, r.rank1, r.rank5, r.rank10, r.mAP, r.mINP,
           r.num_valid);
    fflush(stdout);
    ufo_reid_result_free(&r);
    free(qf), free(gf), free(qp), free(qc), free(gp), free(gc);
    return 0;
}

static int bench_sop(int n, int ncls, int D) {
    double t0 = ufo_now();
    uint64_t s = 777;
    int *lab = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) lab[i] = i < 2 * ncls ? i / 2 : (int)(splitmix(&s) % (uint64_t)ncls);
    float *cen = make_centres(ncls, D, 9);
    float *x = make_rows(cen, lab, n, D, 3);
    free(cen);
    double t1 = ufo_now();
    ufo_recall_result r;
    if (ufo_recall_eval(x, lab, n, D, NULL, 0, &r)) {
        fprintf(stderr, "sop: %s\n", ufo_error());
        return -1;
    }
    double t2 = ufo_now();
    printf("{\"dataset\": \"sop\", \"n\": %d, \"dim\": %d, \"threads\": %d, \"gen_s\": %.3f, \"metric_s\": %.3f, "
           "\"recall@1\": %.4f, \"recall@10\": %.4f, \"recall@100\": %.4f, \"recall@1000\": %.4f}\n",
           n, D, omp_get_max_threads(), t1 - t0, t2 - t1, r.recall[0], r.recall[1], r.recall[2], r.recall[3]);
    fflush(stdout);
    free(x);
    free(lab);
    return 0;
}

int main(int argc, char **argv) {
    double scale = 1.0;
    int D = 1024, rc = 0, any = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--scale") && a + 1 < argc) {
            scale = atof(argv[++a]);
            continue;
        }
        if (!strcmp(argv[a], "--sigma") && a + 1 < argc) {
            SIGMA = (float)atof(argv[++a]);
            continue;
        }
        if (!strcmp(argv[a], "--dim") && a + 1 < argc) {
            D = atoi(argv[++a]);
            continue;
        }
        any = 1;
#define S(x) ((int)((x) * scale) > 1 ? (int)((x) * scale) : 2)
        if (!strcmp(argv[a], "veriwild")) rc |= bench_reid("veriwild", S(10000), S(128517), S(10000), 174, D);
        else if (!strcmp(argv[a], "msmt17")) rc |= bench_reid("msmt17", S(11659), S(82161), S(3060), 15, D);
        else if (!strcmp(argv[a], "sop")) rc |= bench_sop(S(60502), S(11316), D);
        else {
            fprintf(stderr, "unknown dataset %s (veriwild, msmt17, sop)\n", argv[a]);
            return 2;
        }
    }
    if (!any) {
        fprintf(stderr, "usage: bench_metrics [--scale F] [--dim D] [--sigma S] veriwild|msmt17|sop...\n");
        return 2;
    }
    return rc ? 1 : 0;
}
