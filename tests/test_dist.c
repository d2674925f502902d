// src/dist and the pieces of the data-parallel step that need no mpirun:
//   - ufo_comm_split: contiguous, disjoint, covering, in rank order, sizes within 1;
//   - the size-1 group a binary gets outside mpirun: every collective is a no-op
//     or a copy, no transport is touched;
//   - Partial-FC CosFace (cosface.h): 3 "ranks" as threads over a small
//     in-process test transport (shared memory + a barrier; test-only, the
//     product uses MPI) each holding a shard of the classes give the loss,
//     accuracy, d features and d W rows of the unsharded call, for several
//     class-block sizes and labels in every shard;
//   - Partial-FC with class sampling (pfc.h): the same 3 thread ranks over a
//     kept set that leaves the last shard no class at all give the loss,
//     d features and d W of the one-process sampled call, and d W rows of
//     classes not kept stay 0;
//   - ufo_comm_reduce_scatter_sum_f32 over a transport without one (the
//     all-reduce fallback): each rank gets the sum of its block, a zero-size
//     block included;
//   - CosFace's `den` override (the data-parallel global divisor) and `correct`;
//   - ufo_sgd_step_ex: given norms equal to the computed ones change nothing; a
//     larger given norm clips harder; ufo_sgd_sumsq is the squared norm.
#include "check.h"
#include "base/error.h"
#include "dist/comm.h"
#include "train/cosface.h"
#include "train/pfc.h"
#include "train/sgd.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---- a test-only transport: R threads, shared slots, a barrier -------------

#define R 3
typedef struct {
    pthread_barrier_t bar;
    const void *slot[R];
} shared;

static int t_allreduce(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what) {
    shared *s = c->impl;
    size_t esz = t == UFO_COMM_F32 ? 4 : 8;
    double *acc = malloc(n * sizeof(double));
    s->slot[c->rank] = buf;
    pthread_barrier_wait(&s->bar);
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < c->size; r++) {
            double v = t == UFO_COMM_F32 ? ((const float *)s->slot[r])[i] : ((const double *)s->slot[r])[i];
            acc[i] = r == 0 ? v : op == UFO_COMM_SUM ? acc[i] + v : (v > acc[i] ? v : acc[i]);
        }
    pthread_barrier_wait(&s->bar);   // everyone has read every slot
    for (size_t i = 0; i < n; i++) {
        if (t == UFO_COMM_F32) ((float *)buf)[i] = (float)acc[i];
        else ((double *)buf)[i] = acc[i];
    }
    (void)esz;
    free(acc);
    pthread_barrier_wait(&s->bar);
    return 0;
}

static int t_allgatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what) {
    shared *s = c->impl;
    s->slot[c->rank] = send;
    pthread_barrier_wait(&s->bar);
    size_t off = 0;
    for (int r = 0; r < c->size; r++) {   // in place: this rank's block is there already
        if ((char *)recv + off != s->slot[r]) memcpy((char *)recv + off, s->slot[r], counts[r]);
        off += counts[r];
    }
    pthread_barrier_wait(&s->bar);
    return 0;
}

static const ufo_comm_ops test_ops = {"threads", t_allreduce, t_allgatherv, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

// ---- Partial-FC vs one call holding every class -----------------------------

enum { N = 12, D = 16, NC = 10 };
static float f[N * D], W[NC * D], df_ref[N * D], dW_ref[NC * D];
static int32_t y[N];
static ufo_cosface_result ref_res;
static int block;

typedef struct {
    ufo_comm comm;
    float df[N * D], dW[NC * D];
    ufo_cosface_result res;
    int rc, lo, hi;
} rank_out;

// Runs fn on R threads, one rank each, over the shared in-process transport.
// outs: R structs of `each` bytes whose first member is the rank's ufo_comm
// (zeroed, then the comm filled in, before fn gets the struct).
static void run_ranks(void *outs, size_t each, void *(*fn)(void *)) {
    shared sh;
    pthread_barrier_init(&sh.bar, NULL, R);
    pthread_t th[R];
    for (int r = 0; r < R; r++) {
        char *o = (char *)outs + (size_t)r * each;
        memset(o, 0, each);
        *(ufo_comm *)o = (ufo_comm){.rank = r, .size = R, .timeout_s = 60, .ops = &test_ops, .impl = &sh};
        pthread_create(&th[r], NULL, fn, o);
    }
    for (int r = 0; r < R; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&sh.bar);
}

static void *rank_main(void *arg) {
    rank_out *o = arg;
    ufo_comm_split(NC, R, o->comm.rank, &o->lo, &o->hi);
    ufo_cosface_opts opt = {.s = 50, .m = 0.3f, .block = block, .shard = &o->comm, .class_lo = o->lo,
                            .total_classes = NC};
    memset(o->dW, 0, sizeof o->dW);
    o->rc = ufo_cosface(f, W + o->lo * D, y, N, D, o->hi - o->lo, &opt, o->df, o->dW, &o->res);
    return NULL;
}

static void partial_fc(void) {
    unsigned s = 12345;
    for (int i = 0; i < N * D; i++) f[i] = (float)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5f;
    for (int i = 0; i < NC * D; i++)
        W[i] = ((float)((s = s * 1103515245u + 12345u) >> 8) / (1 << 24) - 0.5f) * (1 + i / D % 3);
    for (int i = 0; i < N; i++) y[i] = (i * 7) % NC;   // labels in every shard
    // Make two rows confidently right so accuracy is not trivially 0.
    for (int k = 0; k < D; k++) f[k] = W[y[0] * D + k], f[D + k] = W[y[1] * D + k];
    int blocks[] = {0, 1, 2};
    for (int b = 0; b < 3; b++) {
        block = blocks[b];
        ufo_cosface_opts o = {.s = 50, .m = 0.3f, .block = block};
        memset(dW_ref, 0, sizeof dW_ref);
        CHECK(ufo_cosface(f, W, y, N, D, NC, &o, df_ref, dW_ref, &ref_res) == 0, "%s", ufo_error());
        static rank_out out[R];
        run_ranks(out, sizeof *out, rank_main);
        for (int r = 0; r < R; r++) {
            rank_out *q = &out[r];
            CHECK(q->rc == 0, "rank %d: %s", r, ufo_error());
            CHECK(fabs(q->res.loss - ref_res.loss) <= 1e-6 * fabs(ref_res.loss), "block %d rank %d loss %.9g vs %.9g",
                  block, r, q->res.loss, ref_res.loss);
            CHECK(q->res.correct == ref_res.correct && q->res.correct > 0, "rank %d correct %d vs %d", r,
                  q->res.correct, ref_res.correct);
            double edf = check_max_rel_err(q->df, df_ref, N * D);
            double edw = check_max_rel_err(q->dW, dW_ref + q->lo * D, (long)(q->hi - q->lo) * D);
            CHECK(edf < 1e-5, "block %d rank %d: d features rel err %.3g", block, r, edf);
            CHECK(edw < 1e-5, "block %d rank %d: d W shard rel err %.3g", block, r, edw);
        }
    }
}

// ---- Partial-FC with sampling: a shard may keep no class ---------------------------

static const int kept_s[] = {0, 1, 3, 4, 5};   // shards [0,3) [3,6) [6,10): the last keeps none
static int32_t ys[N];

static void *rank_sampled(void *arg) {
    rank_out *o = arg;
    ufo_comm_split(NC, R, o->comm.rank, &o->lo, &o->hi);
    ufo_cosface_opts opt = {.s = 50, .m = 0.3f, .shard = &o->comm, .class_lo = o->lo, .total_classes = NC};
    memset(o->dW, 0, sizeof o->dW);
    o->rc = ufo_pfc_cosface(f, W + o->lo * D, ys, N, D, o->hi - o->lo, &opt, kept_s, 5, o->df, o->dW, &o->res);
    return NULL;
}

static void partial_fc_sampled(void) {
    static const int32_t lab[3] = {0, 1, 4};   // 3 and 5 are kept as negatives only
    for (int i = 0; i < N; i++) ys[i] = lab[i % 3];
    ufo_cosface_opts o = {.s = 50, .m = 0.3f};
    ufo_cosface_result ref;
    memset(dW_ref, 0, sizeof dW_ref);
    CHECK(ufo_pfc_cosface(f, W, ys, N, D, NC, &o, kept_s, 5, df_ref, dW_ref, &ref) == 0, "%s", ufo_error());
    static rank_out out[R];
    run_ranks(out, sizeof *out, rank_sampled);
    for (int r = 0; r < R; r++) {
        rank_out *q = &out[r];
        CHECK(q->rc == 0, "sampled rank %d: %s", r, ufo_error());
        CHECK(fabs(q->res.loss - ref.loss) <= 1e-6 * fabs(ref.loss), "sampled rank %d loss %.9g vs %.9g", r,
              q->res.loss, ref.loss);
        double edf = check_max_rel_err(q->df, df_ref, N * D);
        double edw = check_max_rel_err(q->dW, dW_ref + q->lo * D, (long)(q->hi - q->lo) * D);
        CHECK(edf < 1e-5 && edw < 1e-5, "sampled rank %d: d features rel err %.3g, d W %.3g", r, edf, edw);
    }
    int zero = 1;
    for (int c = 0; c < NC; c++)
        for (int k = 0; k < D; k++)
            if (c == 2 || c >= 6) zero &= dW_ref[c * D + k] == 0 && out[c < 3 ? 0 : 2].dW[(c - (c < 3 ? 0 : 6)) * D + k] == 0;
    CHECK(zero, "d W of the classes not kept (2, 6..9) stays 0, the shard without a kept class included");
}

typedef struct {
    ufo_comm comm;
    float got[4];
} rs_out;

static void *rank_rs(void *arg) {
    rs_out *o = arg;
    float send[6];
    for (int i = 0; i < 6; i++) send[i] = (float)(i + 1) * (o->comm.rank + 1);
    static const size_t counts[R] = {2, 0, 4};
    ufo_comm_reduce_scatter_sum_f32(&o->comm, send, o->got, counts, "test");
    return NULL;
}

static void reduce_scatter(void) {
    static rs_out out[R];
    run_ranks(out, sizeof *out, rank_rs);
    // sum over ranks of (i + 1) (r + 1) = 6 (i + 1); rank 0 gets i = 0, 1; rank 2 i = 2..5.
    CHECK(out[0].got[0] == 6 && out[0].got[1] == 12 && out[2].got[0] == 18 && out[2].got[3] == 36 &&
              out[1].got[0] == 0,
          "reduce-scatter (all-reduce fallback): %g %g | %g | %g %g", out[0].got[0], out[0].got[1], out[1].got[0],
          out[2].got[0], out[2].got[3]);
}

// ---- the rest ------------------------------------------------------------------

static void split(void) {
    for (int n = 0; n <= 40; n++)
        for (int size = 1; size <= 7; size++) {
            int prev = 0, ok = 1, mn = n, mx = 0;
            for (int r = 0; r < size; r++) {
                int lo, hi;
                ufo_comm_split(n, size, r, &lo, &hi);
                ok &= lo == prev && hi >= lo;
                prev = hi;
                mn = hi - lo < mn ? hi - lo : mn;
                mx = hi - lo > mx ? hi - lo : mx;
            }
            CHECK(ok && prev == n && mx - mn <= 1, "split n=%d size=%d", n, size);
        }
}

static void self_group(void) {
    ufo_comm *c = ufo_comm_world();
    CHECK(c && c->size == 1 && c->rank == 0 && !c->ops, "outside mpirun: a size-1 group without transport");
    if (!c) return;
    float a[3] = {1, 2, 3};
    double b[2] = {4, 5};
    char src[5] = "abcd", dst[5] = "";
    size_t cnt[1] = {5};
    ufo_comm_allreduce_sum_f32(c, a, 3, "t");
    ufo_comm_allreduce_max_f64(c, b, 2, "t");
    ufo_comm_allgatherv(c, src, dst, cnt, "t");
    CHECK(a[0] == 1 && a[2] == 3 && b[1] == 5 && !strcmp(dst, "abcd"), "size-1 collectives: no-op / copy");
    memset(dst, 0, sizeof dst);
    ufo_comm_gatherv(c, src, dst, cnt, 0, "t");
    CHECK(!strcmp(dst, "abcd") && ufo_comm_bcast(c, a, 12, 0, "t") == 0 && ufo_comm_barrier(c, "t") == 0, "gatherv, bcast");
    CHECK(c->calls == 0, "no transport call in a size-1 group");
    ufo_comm_finalize();
}

static void den_and_sgd(void) {
    float g[2 * 8], dfa[N * D], dfb[N * D];
    ufo_cosface_opts o = {.s = 30, .m = 0.2f};
    ufo_cosface_result a, b;
    CHECK(ufo_cosface(f, W, y, N, D, NC, &o, dfa, NULL, &a) == 0, "%s", ufo_error());
    o.den = 3.0 * N;   // this call is a third of a global batch
    CHECK(ufo_cosface(f, W, y, N, D, NC, &o, dfb, NULL, &b) == 0, "%s", ufo_error());
    CHECK(fabs(b.loss * 3 - a.loss) < 1e-9 * a.loss, "den: loss %.9g x 3 vs %.9g", b.loss, a.loss);
    double e = 0;
    for (int i = 0; i < N * D; i++) e = fmax(e, fabs(dfb[i] * 3 - dfa[i]));
    CHECK(e < 1e-6, "den: gradient scales by n / den (%.3g)", e);
    for (int i = 0; i < 16; i++) g[i] = (float)(i - 7) * 0.9f;
    ufo_sgd_segment seg[2] = {{0, 8, 1e-4f, 1}, {8, 8, 1e-4f, 1}};
    ufo_sgd_opts so = {.momentum = 0.9f, .clip_norm = 5.0f, .clip = UFO_CLIP_PADDLE};
    float p1[16], p2[16], p3[16], m1[16] = {0}, m2[16] = {0}, m3[16] = {0};
    for (int i = 0; i < 16; i++) p1[i] = p2[i] = p3[i] = 0.1f * i;
    double norms[2];
    CHECK(ufo_sgd_step(p1, g, m1, 16, seg, 2, 0.1f, &so, norms) == 0, "%s", ufo_error());
    CHECK(fabs(ufo_sgd_sumsq(g, 8) - norms[0] * norms[0]) < 1e-9 * norms[0] * norms[0], "sumsq = norm^2");
    double given[2] = {norms[0], -1};
    CHECK(ufo_sgd_step_ex(p2, g, m2, 16, seg, 2, 0.1f, &so, NULL, given) == 0, "%s", ufo_error());
    CHECK(!memcmp(p1, p2, sizeof p1), "given norm = computed norm: the same step, bit for bit");
    given[0] = 4 * norms[0];   // the whole tensor's norm is larger: a shard clips harder
    CHECK(ufo_sgd_step_ex(p3, g, m3, 16, seg, 2, 0.1f, &so, NULL, given) == 0, "%s", ufo_error());
    CHECK(fabs(m3[1] - 1e-4f * 0.1f - (m1[1] - 1e-4f * 0.1f) / 4) < 1e-6 && !memcmp(p1 + 8, p3 + 8, 32),
          "a larger given norm scales the clipped gradient; the other segment is untouched");
}

int main(void) {
    split();
    self_group();
    partial_fc();
    partial_fc_sampled();
    reduce_scatter();
    den_and_sgd();
    return check_summary("dist");
}
