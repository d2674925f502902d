// Unit tests of src/train: CosFace and triplet gradients against central finite
// differences of independent double-precision references, CosFace blocking,
// SGD by hand, the LR schedule's values. Small sizes (also run under ASan).
#include "base/error.h"
#include "base/rng.h"
#include "check.h"
#include "train/cosface.h"
#include "train/fexp.h"
#include "train/lr_schedule.h"
#include "train/sgd.h"
#include "train/triplet.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { N = 6, D = 5, NC = 7 };

// ------------------------------------------------------------ CosFace reference

// Plain double CosFace + cross-entropy; den 0 = n, else the given divisor.
static double ref_cosface(const double *f, const double *W, const int32_t *y, int n, int d, int nc, double s,
                          double m, double den) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double nf = 0;
        for (int k = 0; k < d; k++) nf += f[i * d + k] * f[i * d + k];
        nf = fmax(sqrt(nf), 1e-12);
        double z[64], mx = -INFINITY;
        for (int j = 0; j < nc; j++) {
            double nw = 0, dot = 0;
            for (int k = 0; k < d; k++) nw += W[j * d + k] * W[j * d + k], dot += f[i * d + k] * W[j * d + k];
            nw = fmax(sqrt(nw), 1e-12);
            z[j] = s * (dot / (nf * nw) - (j == y[i] ? m : 0));
            mx = fmax(mx, z[j]);
        }
        double se = 0;
        for (int j = 0; j < nc; j++) se += exp(z[j] - mx);
        total += mx + log(se) - z[y[i]];
    }
    return total / (den > 0 ? den : n);
}

static void to_double(double *o, const float *a, int n) {
    for (int i = 0; i < n; i++) o[i] = a[i];
}

// Central differences of ref_cosface w.r.t. f (which = 0) or W (which = 1).
static void fd_cosface(double *g, const float *f, const float *W, const int32_t *y, double s, double m, double den,
                       int which) {
    double fd[N * D], Wd[NC * D];
    to_double(fd, f, N * D);
    to_double(Wd, W, NC * D);
    double *v = which ? Wd : fd;
    int cnt = which ? NC * D : N * D;
    const double h = 1e-6;
    for (int k = 0; k < cnt; k++) {
        double keep = v[k];
        v[k] = keep + h;
        double lp = ref_cosface(fd, Wd, y, N, D, NC, s, m, den);
        v[k] = keep - h;
        double lm = ref_cosface(fd, Wd, y, N, D, NC, s, m, den);
        v[k] = keep;
        g[k] = (lp - lm) / (2 * h);
    }
}

static double max_rel_d(const float *a, const double *ref, int n) {
    double md = 0, mr = 1e-30;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

static void test_cosface(void) {
    ufo_rng r;
    ufo_rng_seed(&r, 11);
    float f[N * D], W[NC * D];
    for (int k = 0; k < N * D; k++) f[k] = (float)ufo_rng_normal(&r);
    for (int k = 0; k < NC * D; k++) W[k] = (float)ufo_rng_normal(&r);
    const int32_t y[N] = {0, 3, 3, 6, 2, 5};
    const double sm[3][2] = {{4, 0.3}, {16, 0.2}, {1, 0}};
    for (int c = 0; c < 3; c++) {
        ufo_cosface_opts o = {.s = (float)sm[c][0], .m = (float)sm[c][1], .block = 0};
        float df[N * D], dW[NC * D];
        for (int k = 0; k < NC * D; k++) dW[k] = 1.0f;   // accumulates
        ufo_cosface_result res;
        CHECK(ufo_cosface(f, W, y, N, D, NC, &o, df, dW, &res) == 0, "%s", ufo_error());
        double fd[N * D], Wd[NC * D];
        to_double(fd, f, N * D);
        to_double(Wd, W, NC * D);
        double ref = ref_cosface(fd, Wd, y, N, D, NC, sm[c][0], sm[c][1], 0);
        CHECK(fabs(res.loss - ref) <= 1e-5 * fabs(ref), "s=%g loss %.9g vs %.9g", sm[c][0], res.loss, ref);
        double gf[N * D], gW[NC * D];
        fd_cosface(gf, f, W, y, sm[c][0], sm[c][1], 0, 0);
        fd_cosface(gW, f, W, y, sm[c][0], sm[c][1], 0, 1);
        for (int k = 0; k < NC * D; k++) dW[k] -= 1.0f;
        double ef = max_rel_d(df, gf, N * D), ew = max_rel_d(dW, gW, NC * D);
        CHECK(ef < 1e-4, "s=%g df vs finite differences: rel %.3g", sm[c][0], ef);
        CHECK(ew < 1e-4, "s=%g dW vs finite differences: rel %.3g", sm[c][0], ew);

        // Blocks of 3 classes (3 blocks, the last one short) == one block.
        ufo_cosface_opts ob = o;
        ob.block = 3;
        float df3[N * D], dW3[NC * D];
        memset(dW3, 0, sizeof dW3);
        ufo_cosface_result r3;
        CHECK(ufo_cosface(f, W, y, N, D, NC, &ob, df3, dW3, &r3) == 0, "%s", ufo_error());
        CHECK(fabs(r3.loss - res.loss) <= 1e-6 * res.loss, "block 3 loss %.9g vs %.9g", r3.loss, res.loss);
        CHECK(check_max_rel_err(df3, df, N * D) < 1e-5, "block 3 df");
        CHECK(check_max_rel_err(dW3, dW, NC * D) < 1e-5, "block 3 dW");
        CHECK(r3.accuracy == res.accuracy, "block 3 accuracy");
        // Block of 1 class: every block holds at most the label column.
        ob.block = 1;
        CHECK(ufo_cosface(f, W, y, N, D, NC, &ob, df3, NULL, &r3) == 0, "%s", ufo_error());
        CHECK(fabs(r3.loss - res.loss) <= 1e-6 * res.loss, "block 1 loss %.9g vs %.9g", r3.loss, res.loss);
        CHECK(check_max_rel_err(df3, df, N * D) < 1e-5, "block 1 df");
        // Forward only.
        ufo_cosface_result r0;
        CHECK(ufo_cosface(f, W, y, N, D, NC, &o, NULL, NULL, &r0) == 0 && r0.loss == res.loss, "forward only");
    }

    // Accuracy: argmax of cos (before the margin) against the label.
    {
        float fa[2 * D] = {1, 0, 0, 0, 0, 0, 1, 0, 0, 0};
        float Wa[3 * D] = {1, 0, 0, 0, 0, 0.9f, 0.1f, 0, 0, 0, 0, 1, 0, 0, 0};
        int32_t ya[2] = {0, 2};   // row 0 right (class 0), row 1 right (class 2 = e1)
        ufo_cosface_opts o = {.s = 30, .m = 0.9f};
        ufo_cosface_result ra;
        CHECK(ufo_cosface(fa, Wa, ya, 2, D, 3, &o, NULL, NULL, &ra) == 0 && ra.accuracy == 1.0, "accuracy 1");
        ya[1] = 1;
        CHECK(ufo_cosface(fa, Wa, ya, 2, D, 3, &o, NULL, NULL, &ra) == 0 && ra.accuracy == 0.5, "accuracy 0.5");
    }

    // fast-reid's divisor: the count of non-zero per-sample losses. Row 0 is
    // classified with cos margin 0.7 at s = 64 (T ~ 1e-13: an fp32 loss of 0).
    {
        float fz[N * D], Wz[NC * D];
        memcpy(fz, f, sizeof fz);
        memcpy(Wz, W, sizeof Wz);
        for (int k = 0; k < D; k++) Wz[0 * D + k] = k == 0 ? 1.0f : 0.0f;
        for (int j = 1; j < NC; j++) Wz[j * D + 0] = 0;   // every other class orthogonal to e0
        for (int k = 0; k < D; k++) fz[k] = k == 0 ? 2.0f : 0.0f;
        const int32_t yz[N] = {0, 3, 3, 6, 2, 5};
        ufo_cosface_opts o = {.s = 64, .m = 0.3f, .nonzero_mean = 1};
        float df[N * D], dW[NC * D];
        memset(dW, 0, sizeof dW);
        ufo_cosface_result rz;
        CHECK(ufo_cosface(fz, Wz, yz, N, D, NC, &o, df, dW, &rz) == 0, "%s", ufo_error());
        CHECK(rz.nonzero == N - 1, "nonzero %d", rz.nonzero);
        double fd[N * D], Wd[NC * D];
        to_double(fd, fz, N * D);
        to_double(Wd, Wz, NC * D);
        double ref = ref_cosface(fd, Wd, yz, N, D, NC, 64, 0.3, N - 1);
        CHECK(fabs(rz.loss - ref) <= 1e-5 * fabs(ref), "nonzero loss %.9g vs %.9g", rz.loss, ref);
        double gf[N * D];
        fd_cosface(gf, fz, Wz, yz, 64, 0.3, N - 1, 0);
        CHECK(max_rel_d(df, gf, N * D) < 1e-4, "nonzero df rel %.3g", max_rel_d(df, gf, N * D));
    }

    // Errors.
    {
        int32_t bad[N] = {0, 1, 2, 7, 0, 0};
        ufo_cosface_opts o = {.s = 30, .m = 0.2f};
        ufo_cosface_result rb;
        CHECK(ufo_cosface(f, W, bad, N, D, NC, &o, NULL, NULL, &rb) == -1 && strstr(ufo_error(), "label 7"),
              "bad label refused: %s", ufo_error());
    }

    // Init: N(0, 0.001^2).
    {
        static float Wi[1000 * 64];
        ufo_rng ri;
        ufo_rng_seed(&ri, 5);
        ufo_cosface_init(Wi, 1000, 64, &ri);
        double s1 = 0, s2 = 0;
        for (int k = 0; k < 64000; k++) s1 += Wi[k], s2 += (double)Wi[k] * Wi[k];
        double sd = sqrt(s2 / 64000 - (s1 / 64000) * (s1 / 64000));
        CHECK(fabs(sd - 0.001) < 2e-5 && fabs(s1 / 64000) < 2e-5, "init std %.6g mean %.3g", sd, s1 / 64000);
    }
}

// ------------------------------------------------------------ triplet reference

// fast-reid semantics in double; pos/neg (if given) fix the mined indices instead.
static double ref_triplet(const double *x, const int32_t *y, int n, int d, double margin, const int *fix_p,
                          const int *fix_n, int *out_p, int *out_n) {
    double ap[64], an[64];
    for (int i = 0; i < n; i++) {
        double bp = 0, bn = 0;
        int ip = -1, in = -1;
        for (int j = 0; j < n; j++) {
            double sq = 0;
            for (int k = 0; k < d; k++) sq += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
            double dd = sqrt(fmax(sq, 1e-12));
            int pos = y[i] == y[j];
            double vp = pos ? dd : 0, vn = pos ? 1e9 : dd;
            if (ip < 0 || vp > bp) bp = vp, ip = j;
            if (in < 0 || vn < bn) bn = vn, in = j;
        }
        if (fix_p) {
            int j = fix_p[i];
            double sq = 0;
            for (int k = 0; k < d; k++) sq += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
            bp = sqrt(fmax(sq, 1e-12));
            j = fix_n[i];
            sq = 0;
            for (int k = 0; k < d; k++) sq += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
            bn = y[i] == y[j] ? 1e9 : sqrt(fmax(sq, 1e-12));
        }
        ap[i] = bp;
        an[i] = bn;
        if (out_p) out_p[i] = ip;
        if (out_n) out_n[i] = in;
    }
    int inf = 0;
    for (int i = 0; i < n; i++) inf |= isinf(expf((float)(ap[i] - an[i])));
    double total = 0;
    for (int i = 0; i < n; i++) {
        double xi = an[i] - ap[i];
        if (margin == 0 && !inf) total += xi > 0 ? log1p(exp(-xi)) : -xi + log1p(exp(xi));
        else total += fmax(0, ap[i] - an[i] + (margin > 0 ? margin : 0.3));
    }
    return total / n;
}

static void fd_triplet(double *g, const float *x, const int32_t *y, double margin, const int *fp, const int *fn_) {
    double xd[N * D];
    to_double(xd, x, N * D);
    const double h = 1e-6;
    for (int k = 0; k < N * D; k++) {
        double keep = xd[k];
        xd[k] = keep + h;
        double lp = ref_triplet(xd, y, N, D, margin, fp, fn_, NULL, NULL);
        xd[k] = keep - h;
        double lm = ref_triplet(xd, y, N, D, margin, fp, fn_, NULL, NULL);
        xd[k] = keep;
        g[k] = (lp - lm) / (2 * h);
    }
}

static void test_triplet(void) {
    ufo_rng r;
    ufo_rng_seed(&r, 21);
    float x[N * D];
    for (int k = 0; k < N * D; k++) x[k] = (float)ufo_rng_normal(&r);
    // Label 2 appears once (anchor 5's only positive is itself).
    const int32_t y[N] = {0, 0, 0, 1, 1, 2};
    const double margins[2] = {0, 0.3};
    for (int c = 0; c < 2; c++) {
        float dx[N * D];
        int p[N], q[N], rp[N], rq[N];
        ufo_triplet_result res;
        CHECK(ufo_triplet(x, y, N, D, (float)margins[c], dx, p, q, &res) == 0, "%s", ufo_error());
        double xd[N * D];
        to_double(xd, x, N * D);
        double ref = ref_triplet(xd, y, N, D, margins[c], NULL, NULL, rp, rq);
        CHECK(fabs(res.loss - ref) <= 1e-5 * fabs(ref), "margin %g loss %.9g vs %.9g", margins[c], res.loss, ref);
        CHECK(memcmp(p, rp, sizeof p) == 0 && memcmp(q, rq, sizeof q) == 0, "mined indices");
        CHECK(p[5] == 5, "singleton anchor is its own positive (%d)", p[5]);
        double g[N * D];
        fd_triplet(g, x, y, margins[c], NULL, NULL);
        double e = max_rel_d(dx, g, N * D);
        CHECK(e < 1e-4, "margin %g dx vs finite differences: rel %.3g", margins[c], e);
        CHECK(!res.fallback, "no fallback");
    }

    // Ties: integer features, x1 == x2 (label 0): anchor 0's hardest positive
    // ties between 1 and 2 (first index: 1), anchor 3's hardest negative ties
    // too. Gradients checked against differences with the mined indices fixed.
    {
        float xt[N * D] = {0, 0, 0, 0, 0, 2, 1, 0, -1, 0, 2, 1, 0, -1, 0, 3, 0, 1, 0, 1, 3, 1, 1, 0, 2, -1, 2, 0, 1, 0};
        float dx[N * D];
        int p[N], q[N], rp[N], rq[N];
        ufo_triplet_result res;
        CHECK(ufo_triplet(xt, y, N, D, 0, dx, p, q, &res) == 0, "%s", ufo_error());
        double xd[N * D];
        to_double(xd, xt, N * D);
        double ref = ref_triplet(xd, y, N, D, 0, NULL, NULL, rp, rq);
        CHECK(fabs(res.loss - ref) <= 1e-5 * fabs(ref), "tie loss %.9g vs %.9g", res.loss, ref);
        CHECK(p[0] == 1 && rp[0] == 1, "tie: first hardest positive (%d)", p[0]);
        CHECK(memcmp(p, rp, sizeof p) == 0 && memcmp(q, rq, sizeof q) == 0, "tie: mined indices");
        int tie_n = 0;   // some anchor's hardest negative is 1 or 2, tied: must be 1
        for (int i = 3; i < N; i++) tie_n += q[i] == 1;
        CHECK(tie_n > 0, "a negative tie between duplicates 1 and 2 resolved to 1");
        double g[N * D];
        fd_triplet(g, xt, y, 0, p, q);
        CHECK(max_rel_d(dx, g, N * D) < 1e-4, "tie dx rel %.3g", max_rel_d(dx, g, N * D));
        // Row 2 (the later duplicate) only gets gradient as an anchor / as row 1's partner.
    }

    // No negatives at all: an = 1e9, loss 0, no gradient.
    {
        const int32_t ys[N] = {4, 4, 4, 4, 4, 4};
        float dx[N * D];
        ufo_triplet_result res;
        CHECK(ufo_triplet(x, ys, N, D, 0, dx, NULL, NULL, &res) == 0, "%s", ufo_error());
        int zero = 1;
        for (int k = 0; k < N * D; k++) zero &= dx[k] == 0;
        CHECK(res.loss == 0 && zero, "no negatives: loss %g", res.loss);
    }

    // Soft margin overflow (ap - an > 88.7 in fp32): margin ranking with 0.3.
    {
        float xb[N * D];
        for (int k = 0; k < N * D; k++) xb[k] = x[k] * 40.0f;
        float dx[N * D];
        ufo_triplet_result res;
        CHECK(ufo_triplet(xb, y, N, D, 0, dx, NULL, NULL, &res) == 0, "%s", ufo_error());
        double xd[N * D];
        to_double(xd, xb, N * D);
        double ref = ref_triplet(xd, y, N, D, 0, NULL, NULL, NULL, NULL);
        CHECK(res.fallback == 1, "fallback taken");
        CHECK(fabs(res.loss - ref) <= 1e-5 * fabs(ref), "fallback loss %.9g vs %.9g", res.loss, ref);
        double g[N * D];
        fd_triplet(g, xb, y, 0, NULL, NULL);
        CHECK(max_rel_d(dx, g, N * D) < 1e-4, "fallback dx rel %.3g", max_rel_d(dx, g, N * D));
    }
}

// ------------------------------------------------------------ SGD, LR

static void test_sgd(void) {
    // Three parameters: segment A = {p0, p1} (wd 0.1), segment B = {p2} (wd 0, lr x 0.5).
    float p[3] = {1.0f, -2.0f, 0.5f}, b[3] = {0, 0, 0};
    const float g1[3] = {3.0f, 4.0f, 0.25f};    // |gA| = 5: at the limit of clip 2.5 -> scale 0.5
    const float g2[3] = {-1.0f, 0.5f, 1.0f};
    ufo_sgd_segment seg[2] = {{0, 2, 0.1f, 1.0f}, {2, 1, 0.0f, 0.5f}};
    ufo_sgd_opts o = {.momentum = 0.9f, .clip_norm = 2.5f, .clip = UFO_CLIP_PADDLE};
    double norms[2];
    CHECK(ufo_sgd_step(p, g1, b, 3, seg, 2, 0.1f, &o, norms) == 0, "%s", ufo_error());
    CHECK(fabs(norms[0] - 5.0) < 1e-12 && fabs(norms[1] - 0.25) < 1e-12, "norms");
    // Step 1 by hand: A: g = g1 * 0.5 = (1.5, 2), d = g + 0.1 p = (1.6, 1.8), buf = d, p -= 0.1 d
    double e0 = 1.0 - 0.1 * 1.6, e1 = -2.0 - 0.1 * 1.8, e2 = 0.5 - 0.05 * 0.25;
    CHECK(fabs(b[0] - 1.6) < 1e-6 && fabs(b[1] - 1.8) < 1e-6 && fabs(b[2] - 0.25) < 1e-7, "first buf = d");
    CHECK(fabs(p[0] - e0) < 1e-6 && fabs(p[1] - e1) < 1e-6 && fabs(p[2] - e2) < 1e-7, "first step");
    // Step 2: |gA| = 1.118 < 2.5 (no clip); buf = 0.9 buf + g + wd p; p -= lr buf.
    CHECK(ufo_sgd_step(p, g2, b, 3, seg, 2, 0.2f, &o, NULL) == 0, "%s", ufo_error());
    double b0 = 0.9 * 1.6 + (-1.0 + 0.1 * e0), b1 = 0.9 * 1.8 + (0.5 + 0.1 * e1), b2 = 0.9 * 0.25 + 1.0;
    CHECK(fabs(b[0] - b0) < 1e-6 && fabs(b[1] - b1) < 1e-6 && fabs(b[2] - b2) < 1e-6, "momentum buffer");
    CHECK(fabs(p[0] - (e0 - 0.2 * b0)) < 1e-6 && fabs(p[1] - (e1 - 0.2 * b1)) < 1e-6 &&
              fabs(p[2] - (e2 - 0.1 * b2)) < 1e-6,
          "momentum step");
    // Torch-style clip: scale = c / (norm + 1e-6).
    float q[2] = {0, 0}, bq[2] = {0, 0};
    const float gq[2] = {30.0f, 40.0f};
    ufo_sgd_segment s1 = {0, 2, 0.0f, 1.0f};
    ufo_sgd_opts ot = {.momentum = 0.9f, .clip_norm = 5.0f, .clip = UFO_CLIP_TORCH};
    CHECK(ufo_sgd_step(q, gq, bq, 2, &s1, 1, 1.0f, &ot, NULL) == 0, "%s", ufo_error());
    CHECK(fabs(bq[0] - 30.0 * 5.0 / (50.0 + 1e-6)) < 1e-6 && fabs(q[1] + 40.0 * 5.0 / (50.0 + 1e-6)) < 1e-6,
          "torch clip");
    ufo_sgd_opts on = {.momentum = 0.9f, .clip_norm = 5.0f, .clip = UFO_CLIP_NONE};
    q[0] = q[1] = bq[0] = bq[1] = 0;
    CHECK(ufo_sgd_step(q, gq, bq, 2, &s1, 1, 1.0f, &on, NULL) == 0 && q[0] == -30.0f, "no clip");
    // Errors: out-of-range segment; non-finite gradient leaves everything alone.
    ufo_sgd_segment bad = {1, 2, 0, 1};
    CHECK(ufo_sgd_step(q, gq, bq, 2, &bad, 1, 1.0f, &o, NULL) == -1, "segment outside refused");
    const float gn[2] = {NAN, 1};
    float q0 = q[0];
    CHECK(ufo_sgd_step(q, gn, bq, 2, &s1, 1, 1.0f, &o, NULL) == -1 && q[0] == q0, "NaN gradient refused");
    ufo_sgd_opts od;
    ufo_sgd_defaults(&od);
    CHECK(od.momentum == 0.9f && od.clip_norm == 5.0f && od.clip == UFO_CLIP_PADDLE, "defaults");
}

static void test_lr(void) {
    ufo_lr_schedule s;
    ufo_lr_schedule_default(&s, 0.2, 101);   // W = 10, T = 90
    CHECK(s.warmup_steps == 10 && fabs(s.min_lr - 0.004) < 1e-15, "defaults");
    CHECK(ufo_lr_at(&s, 0) == 0.0, "lr(0) = 0");
    CHECK(fabs(ufo_lr_at(&s, 5) - 0.1) < 1e-15, "lr(5)");
    CHECK(fabs(ufo_lr_at(&s, 9) - 0.18) < 1e-15, "lr(9) = base * 9/10");
    CHECK(fabs(ufo_lr_at(&s, 10) - 0.2) < 1e-15, "lr(10) = base (warmup end)");
    CHECK(fabs(ufo_lr_at(&s, 55) - 0.102) < 1e-15, "lr(middle) = (base + min) / 2: %.17g", ufo_lr_at(&s, 55));
    CHECK(fabs(ufo_lr_at(&s, 100) - 0.004) < 1e-15, "lr(last) = min: %.17g", ufo_lr_at(&s, 100));
    CHECK(fabs(ufo_lr_at(&s, 1000) - 0.004) < 1e-15, "past the end");
    double prev = 1;
    int mono = 1;
    for (long k = 10; k < 101; k++) mono &= ufo_lr_at(&s, k) <= prev, prev = ufo_lr_at(&s, k);
    CHECK(mono, "cosine part non-increasing");
    // UFO's own T_max = total: ends above min.
    s.cosine_steps = 101;
    double last = ufo_lr_at(&s, 100), want = 0.004 + 0.196 * (1 + cos(M_PI * 90.0 / 101.0)) / 2;
    CHECK(fabs(last - want) < 1e-15, "cosine_steps = total: %.17g", last);
}

static void test_fexp(void) {
    const float lo = train_fexp_lo();
    double worst = 0;
    for (int k = 0; k < 175000; k++) {   // x in [-87, 88)
        float x = -87.0f + 0.001f * (float)k;
        double e = fabs(train_fexp(x, lo) - exp((double)x)) / exp((double)x);
        if (e > worst) worst = e;
    }
    CHECK(worst < 4e-7, "fexp max rel err %.3g on [-87, 88]", worst);
    CHECK(train_fexp(-87.5f, lo) == 0 && train_fexp(-INFINITY, lo) == 0 && train_fexp(NAN, lo) == 0, "fexp below");
    CHECK(train_fexp(INFINITY, lo) == train_fexp(88.0f, lo) && isfinite(train_fexp(INFINITY, lo)), "fexp above");
    CHECK(train_fexp(0, lo) == 1.0f, "fexp(0) = 1");
}

int main(void) {
    test_fexp();
    test_cosface();
    test_triplet();
    test_sgd();
    test_lr();
    return check_summary("losses");
}
