// ReID CMC / mAP / mINP without sorting rows and without the full distance
// matrix: per query, the true matches (same pid, other camera) are found
// through a pid index of the gallery, their exact distances sorted, and one
// pass over the query's row of fp32 similarities counts, for each hit, the
// kept gallery items ranked before it. That gives every hit's rank, hence
// CMC, AP and INP exactly (see eval/nn_internal.h for the precision).
#include "eval/reid.h"
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
    double d;      // exact distance
    int idx;       // gallery index
    float lo, hi;  // screen: s < lo -> the item ranks after this hit, s > hi -> before it
} hit_t;

static int cmp_hit(const void *a, const void *b) {
    const hit_t *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

// Number of hits ranked before gallery item (d, j): smaller distance, or equal and smaller index.
static int count_before(const hit_t *h, int R, double d, int j) {
    int lo = 0, hi = R;
    while (lo < hi) {
        int m = lo + (hi - lo) / 2;
        if (h[m].d < d || (h[m].d == d && h[m].idx < j)) lo = m + 1;
        else hi = m;
    }
    return lo;
}

typedef struct {
    const float *gn;
    const int *gcam;
    const ufo_nn_groups *groups;
    int ng, D;
    double eps;
} reid_ctx;

// Counts gallery item j (screened similarity s, not a hit, not junk) into
// cnt[number of hits ranked before it]. Hits sorted by distance have
// descending lo / hi: hits [0, a) rank before the item for sure (s < lo);
// when s > hi of hit a the item ranks before hits [a, R) for sure, otherwise
// it is too close to call in fp32 and its distance is recomputed in double.
static inline void place(const reid_ctx *c, const hit_t *hits, int R, const float *qn, float s, int j, int *cnt) {
    int a = 0, b = R;
    while (a < b) {   // a = #{p : s < lo_p}
        int m = (a + b) >> 1;
        if (s < hits[m].lo) a = m + 1;
        else b = m;
    }
    int pos = a;
    if (a < R && !(s > hits[a].hi)) {
        double d = 1.0 - ufo_nn_dot_f64(qn, c->gn + (size_t)j * c->D, c->D);
        pos = count_before(hits, R, d, j);
    }
    cnt[pos]++;
}

// Scores one query against its row of similarities (modified: the query's
// pid's items are masked). Returns 0 when the query has no true match.
static int score_query(const reid_ctx *c, const float *qn, int qpid, int qcam, float *row, hit_t *hits, int *cnt,
                       int *first, double *ap, double *inp) {
    int lo, hi, R = 0, D = c->D;
    ufo_nn_groups_find(c->groups, qpid, &lo, &hi);
    for (int k = lo; k < hi; k++) {
        int j = c->groups->order[k];
        row[j] = -INFINITY;   // junk or hit: never counted in the pass below
        if (c->gcam[j] == qcam) continue;
        hits[R].d = 1.0 - ufo_nn_dot_f64(qn, c->gn + (size_t)j * D, D);
        hits[R].idx = j;
        R++;
    }
    if (R == 0) return 0;
    qsort(hits, (size_t)R, sizeof *hits, cmp_hit);
    memset(cnt, 0, sizeof(int) * ((size_t)R + 1));
    for (int p = 0; p < R; p++) {
        hits[p].lo = ufo_nn_float_down(1.0 - hits[p].d - c->eps);
        hits[p].hi = ufo_nn_float_up(1.0 - hits[p].d + c->eps);
    }
    const float skip = hits[R - 1].lo;   // s < skip: after every hit, irrelevant
    int j = 0;
#ifdef __AVX2__
    const __m256 vskip = _mm256_set1_ps(skip);
    for (; j + 8 <= c->ng; j += 8) {
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(row + j), vskip, _CMP_GE_OQ));
        while (m) {
            int k = __builtin_ctz(m);
            m &= m - 1;
            place(c, hits, R, qn, row[j + k], j + k, cnt);
        }
    }
#endif
    for (; j < c->ng; j++)
        if (!(row[j] < skip)) place(c, hits, R, qn, row[j], j, cnt);
    double sum = 0;
    int before = 0, rank = 0;
    for (int p = 0; p < R; p++) {
        before += cnt[p];
        rank = p + before;   // 0-based rank of hit p among the kept items
        if (p == 0) *first = rank;
        sum += (double)(p + 1) / (rank + 1);
    }
    *ap = sum / R;
    *inp = (double)R / (rank + 1);
    return 1;
}

void ufo_reid_result_free(ufo_reid_result *r) {
    if (!r) return;
    free(r->cmc);
    memset(r, 0, sizeof *r);
}

int ufo_reid_eval(const float *qf, const int *qpid, const int *qcam, int nq,
                  const float *gf, const int *gpid, const int *gcam, int ng,
                  int D, int max_rank, ufo_reid_result *r) {
    memset(r, 0, sizeof *r);
    if (nq < 1) return ufo_errorf("reid: need at least one query (got %d)", nq);
    if (ng < 1) return ufo_errorf("reid: need at least one gallery item (got %d)", ng);
    if (D < 1) return ufo_errorf("reid: feature dimension must be >= 1 (got %d)", D);
    if (max_rank < 1) return ufo_errorf("reid: max_rank must be >= 1 (got %d)", max_rank);

    int rc = -1, nth = omp_get_max_threads();
    int H = max_rank > 10 ? max_rank : 10;
    float *gn = NULL, *qn = NULL, *S = NULL;
    hit_t *hits = NULL;
    int *cnt = NULL, *first = NULL;
    double *ap = NULL, *inp = NULL;
    int64_t *hist = NULL;
    ufo_nn_groups groups = {0};
    ufo_nn_screen scr = {0};

    gn = ufo_alloc(sizeof(float) * (size_t)ng * D);
    qn = ufo_alloc(sizeof(float) * (size_t)nq * D);
    first = ufo_alloc(sizeof(int) * (size_t)nq);
    ap = ufo_alloc(sizeof(double) * (size_t)nq);
    inp = ufo_alloc(sizeof(double) * (size_t)nq);
    hist = ufo_calloc(sizeof(int64_t) * (size_t)H);
    if (!gn || !qn || !first || !ap || !inp || !hist) goto done;
    if (ufo_nn_normalize_f32(gf, ng, D, gn, "reid: gallery")) goto done;
    if (ufo_nn_normalize_f32(qf, nq, D, qn, "reid: query")) goto done;
    if (ufo_nn_groups_build(gpid, ng, &groups)) goto done;
    int maxg = ufo_nn_groups_max(&groups);
    hits = ufo_alloc(sizeof(hit_t) * (size_t)nth * (maxg + 1));
    cnt = ufo_alloc(sizeof(int) * (size_t)nth * (maxg + 2));
    int B = ufo_nn_block_rows(ng, nq);
    S = ufo_alloc(sizeof(float) * (size_t)B * ng);
    if (!hits || !cnt || !S) goto done;

    reid_ctx c = {gn, gcam, &groups, ng, D, ufo_nn_eps(D)};
    if (ufo_nn_screen_begin(&scr, gn, ng, D, (double)nq * ng * D)) goto done;   // the gallery stays put
    for (int b0 = 0; b0 < nq; b0 += B) {
        int nb = nq - b0 < B ? nq - b0 : B;
        if (ufo_nn_screen_block(&scr, qn + (size_t)b0 * D, nb, 0, S)) goto done;
#pragma omp parallel for schedule(dynamic, 4)
        for (int i = 0; i < nb; i++) {
            int t = omp_get_thread_num(), q = b0 + i;
            first[q] = -1;
            if (!score_query(&c, qn + (size_t)q * D, qpid[q], qcam[q], S + (size_t)i * ng,
                             hits + (size_t)t * (maxg + 1), cnt + (size_t)t * (maxg + 2), &first[q], &ap[q], &inp[q]))
                first[q] = -1;
        }
    }

    int valid = 0;
    double sap = 0, sinp = 0;
    for (int q = 0; q < nq; q++) {
        if (first[q] < 0) continue;
        valid++;
        sap += ap[q];
        sinp += inp[q];
        if (first[q] < H) hist[first[q]]++;
    }
    if (valid == 0) {
        ufo_errorf("reid: no query has a true match in the gallery (same pid, other camera)");
        goto done;
    }
    r->cmc = malloc(sizeof(double) * (size_t)max_rank);
    if (!r->cmc) {
        ufo_errorf("reid: out of memory");
        goto done;
    }
    int64_t acc = 0;
    double at[3] = {0, 0, 0};
    for (int k = 1; k <= H; k++) {
        acc += hist[k - 1];
        double v = 100.0 * (double)acc / valid;
        if (k <= max_rank) r->cmc[k - 1] = v;
        if (k == 1) at[0] = v;
        if (k == 5) at[1] = v;
        if (k == 10) at[2] = v;
    }
    r->rank1 = at[0];
    r->rank5 = at[1];
    r->rank10 = at[2];
    r->mAP = 100.0 * sap / valid;
    r->mINP = 100.0 * sinp / valid;
    r->num_query = nq;
    r->num_gallery = ng;
    r->num_valid = valid;
    r->max_rank = max_rank;
    rc = 0;
done:
    ufo_nn_screen_end(&scr);
    ufo_free(gn);
    ufo_free(qn);
    ufo_free(S);
    ufo_free(hits);
    ufo_free(cnt);
    ufo_free(first);
    ufo_free(ap);
    ufo_free(inp);
    ufo_free(hist);
    ufo_nn_groups_free(&groups);
    return rc;
}
