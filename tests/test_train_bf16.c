// The bf16 training kernels that keep activations and gradients in bf16
// (cpu_train.h, "bf16 training with activations kept in bf16"). Each one
// fuses a rounding (and a bias-gradient column sum) into a pass that existed
// before, so each must give EXACTLY what the unfused sequence gives: the fp32
// cpu kernel, then rounding with the scalar ufo_f32_to_bf16, then
// cpu_colsum_acc / cpu_linear_backward on the materialised arrays. They are
// also checked against the plain-C references with bf16 tolerances, on odd
// shapes, rows wider than the kernels' stack buffers, and the accumulate /
// NULL semantics.
#include "base/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_train.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ref/ref.h"
#include "tensor/dtype.h"
#include "check.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RNG_SEED 0x13198a2e03707344ull
#include "rand_buf.h"
static uint16_t *round_buf(const float *a, size_t n) {   // scalar rounding, independent of the cpu kernels
    uint16_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = ufo_f32_to_bf16(a[i]);
    return p;
}
static float *widen(const uint16_t *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = ufo_bf16_to_f32(a[i]);
    return p;
}
// max |a - ref| / max |ref|
static double rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

static void test_layernorm_bf16(void) {
    const int shapes[][2] = {{1, 45}, {37, 384}, {300, 130}, {5, 3001}};   // 3001 > the 2048-float stack row
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t nx = (size_t)n * c;
        float *x = rand_buf(nx, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 0.3f, 0);
        float *y = zeros(nx), *ry = zeros(nx);
        uint16_t *yb = malloc(nx * sizeof *yb);
        cpu_layernorm(y, x, g, b, n, c, 1e-6f);
        uint16_t *want = round_buf(y, nx);
        CHECK(cpu_layernorm_bf16(yb, x, g, b, n, c, 1e-6f) == 0, "cpu_layernorm_bf16: %s", ufo_error());
        CHECK(!memcmp(yb, want, nx * sizeof *yb), "cpu_layernorm_bf16 n=%d c=%d != bf16(cpu_layernorm)", n, c);
        ref_layernorm(ry, x, g, b, n, c, 1e-6f);
        float *got = widen(yb, nx);
        double e = rel_err(got, ry, nx);
        CHECK(e <= 8e-3, "cpu_layernorm_bf16 n=%d c=%d vs ref: rel %.3g", n, c, e);
        free(x), free(g), free(b), free(y), free(ry), free(yb), free(want), free(got);
    }
}

static void test_gelu_bf16(void) {
    const size_t ns[] = {1, 17, 2049, 70001};
    for (size_t si = 0; si < sizeof ns / sizeof *ns; si++) {
        size_t n = ns[si];
        float *x = rand_buf(n, 6, 0), *y = zeros(n), *ry = zeros(n), *ones = rand_buf(n, 0, 1), *d = zeros(n);
        uint16_t *yb = malloc(n * sizeof *yb), *yb2 = malloc(n * sizeof *yb2), *db = malloc(n * sizeof *db);
        cpu_gelu(y, x, n);
        cpu_gelu_backward(d, ones, x, n);   // 1 * gelu'(x)
        uint16_t *want = round_buf(y, n), *want_d = round_buf(d, n);
        cpu_gelu_bf16(yb, db, x, n);
        cpu_gelu_bf16(yb2, NULL, x, n);
        CHECK(!memcmp(yb, want, n * sizeof *yb), "cpu_gelu_bf16 n=%zu != bf16(cpu_gelu)", n);
        CHECK(!memcmp(yb2, want, n * sizeof *yb), "cpu_gelu_bf16 n=%zu without derivative differs", n);
        CHECK(!memcmp(db, want_d, n * sizeof *db), "cpu_gelu_bf16 n=%zu derivative != bf16(cpu_gelu_backward)", n);
        ref_gelu(ry, x, n);
        float *got = widen(yb, n);
        double e = rel_err(got, ry, n);
        CHECK(e <= 8e-3, "cpu_gelu_bf16 n=%zu vs ref: rel %.3g", n, e);
        ref_gelu_backward(ry, ones, x, n);
        float *gotd = widen(db, n);
        e = rel_err(gotd, ry, n);
        CHECK(e <= 8e-3, "cpu_gelu_bf16 n=%zu derivative vs ref: rel %.3g", n, e);
        free(x), free(y), free(ry), free(yb), free(want), free(got), free(ones), free(d), free(yb2), free(db),
            free(want_d), free(gotd);
    }
}

static void test_gelu_backward_bf16(void) {
    const int shapes[][2] = {{1, 7}, {37, 200}, {197, 1536}, {3, 2500}};   // 2500: several 1024-float pieces
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t nx = (size_t)n * c;
        float *x = rand_buf(nx, 5, 0), *dy = rand_buf(nx, 1, 0), *dx = zeros(nx), *rdx = zeros(nx);
        float *db0 = rand_buf(c, 1, 0), *want_db = copy_buf(db0, c), *db = copy_buf(db0, c);
        uint16_t *yb = malloc(nx * sizeof *yb), *dg = malloc(nx * sizeof *dg);
        cpu_gelu_bf16(yb, dg, x, nx);   // the saved derivative (checked above)
        float *dgf = widen(dg, nx);
        for (size_t i = 0; i < nx; i++) dx[i] = dy[i] * dgf[i];
        uint16_t *want = round_buf(dx, nx), *got = malloc(nx * sizeof *got);
        CHECK(cpu_colsum_acc(want_db, dx, n, c) == 0, "cpu_colsum_acc: %s", ufo_error());
        CHECK(cpu_gelu_backward_bf16(got, db, dy, dg, n, c) == 0, "cpu_gelu_backward_bf16: %s", ufo_error());
        CHECK(!memcmp(got, want, nx * sizeof *got), "cpu_gelu_backward_bf16 n=%d c=%d dx != bf16(dy * dgelu)", n, c);
        CHECK(!memcmp(db, want_db, c * sizeof *db), "cpu_gelu_backward_bf16 n=%d c=%d db != cpu_colsum_acc (+=)", n,
              c);
        // against the reference: dx within two bf16 roundings, db (+= on random) within one
        ref_gelu_backward(rdx, dy, x, nx);
        float *rdb = copy_buf(db0, c), *gw = widen(got, nx);
        for (size_t i = 0; i < nx; i++) rdb[i % c] += rdx[i];
        double e = rel_err(gw, rdx, nx), eb = rel_err(db, rdb, c);
        CHECK(e <= 1.6e-2, "cpu_gelu_backward_bf16 n=%d c=%d dx vs ref: rel %.3g", n, c, e);
        CHECK(eb <= 8e-3, "cpu_gelu_backward_bf16 n=%d c=%d db vs ref: rel %.3g", n, c, eb);
        // NULL db: only the rounded gradient
        uint16_t *got2 = malloc(nx * sizeof *got2);
        CHECK(cpu_gelu_backward_bf16(got2, NULL, dy, dg, n, c) == 0 && !memcmp(got2, want, nx * sizeof *got2),
              "cpu_gelu_backward_bf16 with NULL db differs");
        free(x), free(dy), free(dx), free(rdx), free(db0), free(want_db), free(db), free(want), free(got), free(rdb),
            free(gw), free(got2), free(yb), free(dg), free(dgf);
    }
}

// cpu_linear_backward_bf16 against cpu_linear_backward (prec BF16) given the
// fp32 arrays (x rounded to bf16 first, dy scaled per row first): bit-identical.
static void test_linear_backward_bf16(void) {
    const int shapes[][4] = {{1, 45, 70, 1}, {37, 96, 33, 1}, {197 * 3, 64, 200, 197}, {300, 17, 5, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2], per = shapes[si][3];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = rand_buf(nx, 1, 0), *w = rand_buf(nw, 0.2f, 0), *dy = rand_buf(ny, 1, 0);
        uint16_t *xb = round_buf(x, nx);
        float *xr = widen(xb, nx);   // the fp32 values xb stands for
        int nscale = (n + per - 1) / per;
        float *scale = rand_buf(nscale, 1, 1);
        scale[0] = 0;   // a dropped sample
        float *dys = zeros(ny);
        for (size_t i = 0; i < ny; i++) dys[i] = scale[i / out / per] * dy[i];
        for (int scaled = 0; scaled < 2; scaled++) {
            const float *d = scaled ? dys : dy;
            float *wdx = zeros(nx), *wdw = rand_buf(nw, 1, 0), *wdb = rand_buf(out, 1, 0);
            float *dx = zeros(nx), *dw = copy_buf(wdw, nw), *db = copy_buf(wdb, out);
            CHECK(cpu_linear_backward(wdx, wdw, wdb, d, xr, w, n, in, out, UFO_PREC_BF16) == 0,
                  "cpu_linear_backward: %s", ufo_error());
            CHECK(cpu_linear_backward_bf16(dx, dw, db, dy, scaled ? scale : NULL, per, NULL, xb, w, n, in, out) == 0,
                  "cpu_linear_backward_bf16: %s", ufo_error());
            CHECK(!memcmp(dx, wdx, nx * sizeof *dx) && !memcmp(dw, wdw, nw * sizeof *dw) &&
                      !memcmp(db, wdb, out * sizeof *db),
                  "cpu_linear_backward_bf16 n=%d %d->%d scaled=%d != cpu_linear_backward bf16", n, in, out, scaled);
            // the rounded-dy form, bias gradient left to the caller
            uint16_t *dyb = round_buf(d, ny);
            float *dx2 = zeros(nx), *dw2 = copy_buf(wdw, nw);
            CHECK(cpu_linear_backward_bf16(dx2, dw2, NULL, NULL, NULL, 0, dyb, xb, w, n, in, out) == 0,
                  "cpu_linear_backward_bf16 (dyb): %s", ufo_error());
            float *want_w2 = zeros(nw);   // dw2 = wdw + 2 grad; compare with the reference grad
            float *rdw = zeros(nw);
            ref_linear_backward(NULL, rdw, NULL, d, xr, w, n, in, out);
            for (size_t i = 0; i < nw; i++) want_w2[i] = dw[i] + rdw[i];
            CHECK(!memcmp(dx2, wdx, nx * sizeof *dx2), "cpu_linear_backward_bf16 (dyb) dx differs");
            double e = rel_err(dw2, want_w2, nw);
            CHECK(e <= 2e-2, "cpu_linear_backward_bf16 (dyb) n=%d %d->%d dw twice vs ref: rel %.3g", n, in, out, e);
            // dx against the reference
            float *rdx = zeros(nx);
            ref_linear_backward(rdx, NULL, NULL, d, xr, w, n, in, out);
            e = rel_err(dx, rdx, nx);
            CHECK(e <= 2e-2, "cpu_linear_backward_bf16 n=%d %d->%d dx vs ref: rel %.3g", n, in, out, e);
            free(wdx), free(wdw), free(wdb), free(dx), free(dw), free(db), free(dyb), free(dx2), free(dw2),
                free(want_w2), free(rdw), free(rdx);
        }
        // the forward with x already rounded: identical to rounding inside
        float *b = rand_buf(out, 1, 0), *y1 = rand_buf(ny, 1, 0), *y2 = copy_buf(y1, ny);
        for (int post = 0; post < 3; post++) {
            CHECK(cpu_linear_train_forward(y1, xr, w, b, n, in, out, post, UFO_PREC_BF16) == 0 &&
                      cpu_linear_train_forward_bf16(y2, xb, w, b, n, in, out, post) == 0,
                  "linear train forward: %s", ufo_error());
            CHECK(!memcmp(y1, y2, ny * sizeof *y1), "cpu_linear_train_forward_bf16 n=%d %d->%d post=%d differs", n,
                  in, out, post);
        }
        // the bf16-output form (the qkv linear before the AMX attention): the fp32 result rounded,
        // on our AMX matmul and on oneDNN's (through the caller's scratch)
        for (int path = 0; path < 2; path++) {
            cpu_debug_gemm_path(path ? "dnnl" : NULL);
            float *y3 = zeros(ny), *scr = zeros(ny);
            uint16_t *yb = malloc(ny * sizeof *yb);
            CHECK(cpu_linear_train_forward_bf16(y3, xb, w, b, n, in, out, CPU_POST_NONE) == 0 &&
                      cpu_linear_train_forward_bf16_out(yb, xb, w, b, n, in, out, scr) == 0,
                  "linear train forward (bf16 out): %s", ufo_error());
            uint16_t *want = round_buf(y3, ny);
            CHECK(!memcmp(yb, want, ny * sizeof *yb), "cpu_linear_train_forward_bf16_out n=%d %d->%d%s != bf16(fp32 out)",
                  n, in, out, path ? " (oneDNN)" : "");
            free(y3), free(scr), free(yb), free(want);
        }
        cpu_debug_gemm_path(NULL);
        free(b), free(y1), free(y2);
        free(x), free(w), free(dy), free(xb), free(xr), free(scale), free(dys);
    }
    float f = 0;
    uint16_t h = 0;
    CHECK(cpu_linear_backward_bf16(&f, &f, &f, &f, NULL, 1, &h, &h, &f, 1, 1, 1) == -1, "dy and dyb both accepted");
    CHECK(cpu_linear_backward_bf16(&f, &f, NULL, NULL, NULL, 1, NULL, &h, &f, 1, 1, 1) == -1, "no dy accepted");
    CHECK(cpu_linear_backward_bf16(&f, &f, &f, &f, &f, 0, NULL, &h, &f, 1, 1, 1) == -1, "0 rows per scale accepted");
    CHECK(cpu_linear_train_forward_bf16(&f, &h, &f, NULL, 1, 1, 1, (cpu_post_op)7) == -1, "bad post-op accepted");
}

// cpu_attention_backward_bf16: the gradient of cpu_attention_backward (bf16),
// rounded, bit for bit; db its column sums (another summation order: 1e-5).
static void test_attention_backward_bf16(void) {
    const int shapes[][4] = {{1, 1, 1, 8}, {2, 37, 3, 24}, {3, 197, 6, 64}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], T = shapes[si][1], H = shapes[si][2], hd = shapes[si][3];
        size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd, row = (size_t)3 * H * hd;
        float *qkv = rand_buf(nq, 2, 0), *dout = rand_buf(no, 1, 0), *d = zeros(nq);
        float *db0 = rand_buf(row, 1, 0), *want_db = copy_buf(db0, row), *db = copy_buf(db0, row);
        CHECK(cpu_attention_backward(d, dout, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "cpu_attention_backward: %s",
              ufo_error());
        CHECK(cpu_colsum_acc(want_db, d, (long)B * T, (int)row) == 0, "cpu_colsum_acc: %s", ufo_error());
        uint16_t *want = round_buf(d, nq), *got = malloc(nq * sizeof *got);
        for (size_t i = 0; i < nq; i++) got[i] = 0xffff;   // written, never read
        CHECK(cpu_attention_backward_bf16(got, db, dout, qkv, B, T, H, hd) == 0, "cpu_attention_backward_bf16: %s",
              ufo_error());
        CHECK(!memcmp(got, want, nq * sizeof *got), "cpu_attention_backward_bf16 B=%d T=%d H=%d hd=%d != bf16(fp32 out)",
              B, T, H, hd);
        double e = rel_err(db, want_db, row);
        CHECK(e <= 1e-5, "cpu_attention_backward_bf16 B=%d T=%d H=%d hd=%d db (+=) rel %.3g", B, T, H, hd, e);
        uint16_t *got2 = malloc(nq * sizeof *got2);
        CHECK(cpu_attention_backward_bf16(got2, NULL, dout, qkv, B, T, H, hd) == 0 &&
                  !memcmp(got2, want, nq * sizeof *got2),
              "cpu_attention_backward_bf16 with NULL db differs");
        // from a bf16 qkv (as the qkv matmul writes it before the AMX attention): the same bits
        uint16_t *qkvb = round_buf(qkv, nq), *got3 = malloc(nq * sizeof *got3);
        float *db3 = copy_buf(db0, row);
        int rc = cpu_attention_backward_bf16_qkvb(got3, db3, dout, qkvb, B, T, H, hd);
        if (cpu_attention_io_ok(T, hd)) {
            CHECK(rc == 0, "cpu_attention_backward_bf16_qkvb: %s", ufo_error());
            CHECK(!memcmp(got3, want, nq * sizeof *got3) && !memcmp(db3, db, row * sizeof *db3),
                  "cpu_attention_backward_bf16_qkvb B=%d T=%d H=%d hd=%d != from the fp32 qkv", B, T, H, hd);
        } else {
            CHECK(rc == -1 && strstr(ufo_error(), "AMX"), "cpu_attention_backward_bf16_qkvb hd=%d off the AMX path: %s",
                  hd, rc ? ufo_error() : "accepted");
        }
        free(qkvb), free(got3), free(db3);
        free(qkv), free(dout), free(d), free(db0), free(want_db), free(db), free(want), free(got), free(got2);
    }
}

// cpu_layernorm_backward_add = cpu_layernorm_backward, then + res.
static void test_layernorm_backward_add(void) {
    const int shapes[][2] = {{1, 45}, {33, 768}, {300, 130}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t nx = (size_t)n * c;
        float *x = rand_buf(nx, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *dy = rand_buf(nx, 1, 0), *res = rand_buf(nx, 1, 0);
        float *want = zeros(nx), *got = zeros(nx), *wg = rand_buf(c, 1, 0), *wb = rand_buf(c, 1, 0);
        float *dg = copy_buf(wg, c), *dbb = copy_buf(wb, c);
        CHECK(cpu_layernorm_backward(want, wg, wb, dy, x, g, n, c, 1e-6f) == 0, "cpu_layernorm_backward: %s",
              ufo_error());
        for (size_t i = 0; i < nx; i++) want[i] += res[i];
        CHECK(cpu_layernorm_backward_add(got, dg, dbb, dy, x, g, res, n, c, 1e-6f) == 0,
              "cpu_layernorm_backward_add: %s", ufo_error());
        double e = rel_err(got, want, nx);
        CHECK(e <= 1e-6, "cpu_layernorm_backward_add n=%d c=%d dx rel %.3g", n, c, e);
        CHECK(!memcmp(dg, wg, c * sizeof *dg) && !memcmp(dbb, wb, c * sizeof *dbb),
              "cpu_layernorm_backward_add n=%d c=%d dg/db differ", n, c);
        free(x), free(g), free(dy), free(res), free(want), free(got), free(wg), free(wb), free(dg), free(dbb);
    }
}

int main(void) {
    if (!cpu_has_bf16()) {
        printf("no native bf16 on this CPU: the bf16 kernels still run (oneDNN emulates), checking anyway\n");
    }
    test_layernorm_bf16();
    test_gelu_bf16();
    test_gelu_backward_bf16();
    test_linear_backward_bf16();
    test_attention_backward_bf16();
    test_layernorm_backward_add();
    return check_summary("train_bf16");
}
