// Backward kernels: every ref_*_backward against central finite differences
// of a double-precision re-implementation of its forward (itself checked
// against the ref forward), then every cpu twin (cpu_train.h) against its ref
// on odd shapes, fp32 and bf16, with the accumulate / write / NULL semantics.
// UFO_TEST_VERBOSE=1 prints every measured error.
#include "base/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_train.h"
#include "kernels/cpu/cpu_internal.h"
#include "tensor/dtype.h"
#include "kernels/ref/ref.h"
#include "check.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FD 1e-5        // ref backward vs finite differences (double forward)
#define TOL_F32 1e-4       // cpu fp32 vs ref
#define TOL_BF16_REL 2e-2  // cpu bf16 vs ref
#define TOL_BF16_COS 0.999

#define TEST_RNG_SEED 0x243f6a8885a308d3ull
#include "rand_buf.h"
static double *to_double(const float *a, size_t n) {
    double *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = a[i];
    return p;
}
static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb);
}
// max |a - ref| / max(|ref|), NaN-aware
static double rel_err_d(const float *a, const double *ref, size_t n) {
    double md = 0, mr = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}
static int verbose(void) { return getenv("UFO_TEST_VERBOSE") != NULL; }

static double worst_fd, worst_f32, worst_bf16_rel, worst_bf16_cos = 1;

static void compare_fd(const char *what, const float *got, const double *fd, size_t n) {
    double rel = rel_err_d(got, fd, n);
    if (rel > worst_fd) worst_fd = rel;
    if (verbose()) printf("%-52s FD   rel %.3g\n", what, rel);
    CHECK(rel <= TOL_FD, "%s vs finite differences: max rel err %.3g", what, rel);
}

// A fast result against the reference with the precision's tolerance.
static void compare(const char *what, const float *got, const float *ref, size_t n, ufo_precision prec) {
    double rel = check_max_rel_err(got, ref, (long)n), cs = cosine(got, ref, n);
    if (verbose()) printf("%-52s %s rel %.3g cos %.7f\n", what, prec ? "bf16" : "fp32", rel, cs);
    if (prec == UFO_PREC_FP32) {
        if (rel > worst_f32) worst_f32 = rel;
        CHECK(rel <= TOL_F32, "%s fp32: max rel err %.3g", what, rel);
    } else {
        if (rel > worst_bf16_rel) worst_bf16_rel = rel;
        if (cs < worst_bf16_cos) worst_bf16_cos = cs;
        CHECK(rel <= TOL_BF16_REL, "%s bf16: max rel err %.3g", what, rel);
        CHECK(cs >= TOL_BF16_COS, "%s bf16: cosine %.6f", what, cs);
    }
}

static const char *pname(ufo_precision p) { return p == UFO_PREC_BF16 ? "bf16" : "fp32"; }

// ------------------------------------------------------------ double forwards + finite differences

typedef double (*loss_fn)(void *ctx);

// g[i] = dL/dp[i] by central differences; p lives inside ctx.
static void fd_grad(double *g, double *p, size_t n, loss_fn f, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        double save = p[i], h = 1e-5 * fmax(1.0, fabs(save));
        p[i] = save + h;
        double lp = f(ctx);
        p[i] = save - h;
        double lm = f(ctx);
        p[i] = save;
        g[i] = (lp - lm) / (2 * h);
    }
}

static double dot_r(const double *y, const double *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += y[i] * r[i];
    return s;
}

// ---- linear
typedef struct {
    int n, in, out;
    double *x, *w, *b, *r, *y;
} lin_ctx;
static void d_linear(const lin_ctx *c) {
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->out; j++) {
            double s = c->b[j];
            for (int k = 0; k < c->in; k++) s += c->x[i * c->in + k] * c->w[j * c->in + k];
            c->y[i * c->out + j] = s;
        }
}
static double lin_loss(void *v) {
    lin_ctx *c = v;
    d_linear(c);
    return dot_r(c->y, c->r, (size_t)c->n * c->out);
}

static void fd_linear(void) {
    int n = 3, in = 5, out = 4;
    float *x = rand_buf(n * in, 1, 0), *w = rand_buf(out * in, 1, 0), *b = rand_buf(out, 1, 0);
    float *dy = rand_buf(n * out, 1, 0), *y = zeros(n * out);
    lin_ctx c = {n, in, out, to_double(x, n * in), to_double(w, out * in), to_double(b, out), to_double(dy, n * out),
                 malloc(sizeof(double) * n * out)};
    // the double forward is the ref forward
    ref_linear(y, x, w, b, n, in, out);
    d_linear(&c);
    CHECK(rel_err_d(y, c.y, n * out) < 1e-6, "double linear forward != ref_linear");
    float *dx = zeros(n * in), *dw = zeros(out * in), *db = zeros(out);
    ref_linear_backward(dx, dw, db, dy, x, w, n, in, out);
    double *g = malloc(sizeof(double) * out * in);
    fd_grad(g, c.x, n * in, lin_loss, &c);
    compare_fd("ref_linear_backward dx", dx, g, n * in);
    fd_grad(g, c.w, out * in, lin_loss, &c);
    compare_fd("ref_linear_backward dw", dw, g, out * in);
    fd_grad(g, c.b, out, lin_loss, &c);
    compare_fd("ref_linear_backward db", db, g, out);
    free(g);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

// ---- layernorm
typedef struct {
    int n, c;
    double eps;
    double *x, *g, *b, *r, *y;
} ln_ctx;
static void d_layernorm(const ln_ctx *c) {
    for (int i = 0; i < c->n; i++) {
        const double *xr = c->x + (size_t)i * c->c;
        double m = 0, v = 0;
        for (int k = 0; k < c->c; k++) m += xr[k];
        m /= c->c;
        for (int k = 0; k < c->c; k++) v += (xr[k] - m) * (xr[k] - m);
        v /= c->c;
        for (int k = 0; k < c->c; k++) c->y[i * c->c + k] = (xr[k] - m) / sqrt(v + c->eps) * c->g[k] + c->b[k];
    }
}
static double ln_loss(void *v) {
    ln_ctx *c = v;
    d_layernorm(c);
    return dot_r(c->y, c->r, (size_t)c->n * c->c);
}

static void fd_layernorm(void) {
    int n = 3, c = 7;
    float eps = 1e-6f;
    float *x = rand_buf(n * c, 1.5f, 0.3f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 1, 0);
    float *dy = rand_buf(n * c, 1, 0), *y = zeros(n * c);
    ln_ctx cx = {n, c, eps, to_double(x, n * c), to_double(g, c), to_double(b, c), to_double(dy, n * c),
                 malloc(sizeof(double) * n * c)};
    ref_layernorm(y, x, g, b, n, c, eps);
    d_layernorm(&cx);
    CHECK(rel_err_d(y, cx.y, n * c) < 1e-6, "double layernorm forward != ref_layernorm");
    float *dx = zeros(n * c), *dg = zeros(c), *db = zeros(c);
    ref_layernorm_backward(dx, dg, db, dy, x, g, n, c, eps);
    double *gr = malloc(sizeof(double) * n * c);
    fd_grad(gr, cx.x, n * c, ln_loss, &cx);
    compare_fd("ref_layernorm_backward dx", dx, gr, n * c);
    fd_grad(gr, cx.g, c, ln_loss, &cx);
    compare_fd("ref_layernorm_backward dg", dg, gr, c);
    fd_grad(gr, cx.b, c, ln_loss, &cx);
    compare_fd("ref_layernorm_backward db", db, gr, c);
    free(gr);
    free(cx.x), free(cx.g), free(cx.b), free(cx.r), free(cx.y);
    free(x), free(g), free(b), free(dy), free(y), free(dx), free(dg), free(db);
}

// ---- gelu (element-wise: the FD of each element's own function)
static void fd_gelu(void) {
    enum { N = 41 };
    float x[N], dy[N], dx[N], y[N];
    double fd[N];
    for (int i = 0; i < N; i++) {
        x[i] = -6.0f + 12.0f * i / (N - 1) + 0.01f * frand();   // spans both tails and 0
        dy[i] = frand();
    }
    x[N / 2] = 0.0f;
    ref_gelu(y, x, N);
    double fwd_err = 0;
    for (int i = 0; i < N; i++) {
        double v = x[i], h = 1e-5;
#define GELU_D(t) ((t) * 0.5 * (1.0 + erf((t) * M_SQRT1_2)))
        fwd_err = fmax(fwd_err, fabs(y[i] - GELU_D(v)));
        fd[i] = dy[i] * (GELU_D(v + h) - GELU_D(v - h)) / (2 * h);
#undef GELU_D
    }
    CHECK(fwd_err < 1e-6, "double gelu forward != ref_gelu (%.3g)", fwd_err);
    ref_gelu_backward(dx, dy, x, N);
    compare_fd("ref_gelu_backward", dx, fd, N);
}

// ---- attention
typedef struct {
    int B, T, H, hd;
    double *qkv, *r, *out;
} at_ctx;
static void d_attention(const at_ctx *c) {
    int T = c->T, H = c->H, hd = c->hd;
    size_t row = (size_t)3 * H * hd;
    double scale = 1.0 / sqrt((double)hd), *s = malloc(sizeof(double) * T);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < H; h++) {
            const double *q = c->qkv + (size_t)b * T * row + (size_t)h * hd, *k = q + (size_t)H * hd,
                         *v = q + (size_t)2 * H * hd;
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += q[i * row + e] * k[j * row + e];
                    s[j] = d * scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - mx);
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] * v[j * row + e];
                    c->out[((size_t)b * T + i) * H * hd + (size_t)h * hd + e] = o / sum;
                }
            }
        }
    free(s);
}
static double at_loss(void *v) {
    at_ctx *c = v;
    d_attention(c);
    return dot_r(c->out, c->r, (size_t)c->B * c->T * c->H * c->hd);
}

static void fd_attention(void) {
    int B = 2, T = 5, H = 2, hd = 3;
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    float *qkv = rand_buf(nq, 1.5f, 0), *dout = rand_buf(no, 1, 0), *out = zeros(no), *dqkv = zeros(nq);
    at_ctx c = {B, T, H, hd, to_double(qkv, nq), to_double(dout, no), malloc(sizeof(double) * no)};
    ref_attention(out, qkv, B, T, H, hd);
    d_attention(&c);
    CHECK(rel_err_d(out, c.out, no) < 1e-6, "double attention forward != ref_attention");
    ref_attention_backward(dqkv, dout, qkv, B, T, H, hd);
    double *g = malloc(sizeof(double) * nq);
    fd_grad(g, c.qkv, nq, at_loss, &c);
    compare_fd("ref_attention_backward dqkv", dqkv, g, nq);
    free(g);
    free(c.qkv), free(c.r), free(c.out);
    free(qkv), free(dout), free(out), free(dqkv);
}

// ---- patch embedding
typedef struct {
    int B, H, W, p, C;
    double *img, *w, *b, *r, *y;
} pe_ctx;
static void d_patch_embed(const pe_ctx *c) {
    int gh = c->H / c->p, gw = c->W / c->p, p = c->p;
    for (int bi = 0; bi < c->B; bi++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++)
                for (int o = 0; o < c->C; o++) {
                    double s = c->b[o];
                    for (int ch = 0; ch < 3; ch++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++)
                                s += c->img[(((size_t)bi * 3 + ch) * c->H + py * p + ky) * c->W + px * p + kx] *
                                     c->w[(((size_t)o * 3 + ch) * p + ky) * p + kx];
                    c->y[(((size_t)bi * gh + py) * gw + px) * c->C + o] = s;
                }
}
static double pe_loss(void *v) {
    pe_ctx *c = v;
    d_patch_embed(c);
    return dot_r(c->y, c->r, (size_t)c->B * (c->H / c->p) * (c->W / c->p) * c->C);
}

static void fd_patch_embed(void) {
    int B = 2, H = 8, W = 12, p = 4, C = 5;
    size_t ni = (size_t)B * 3 * H * W, nw = (size_t)C * 3 * p * p, ny = (size_t)B * (H / p) * (W / p) * C;
    float *img = rand_buf(ni, 1, 0), *w = rand_buf(nw, 0.2f, 0), *b = rand_buf(C, 1, 0), *dy = rand_buf(ny, 1, 0);
    float *y = zeros(ny), *dw = zeros(nw), *db = zeros(C);
    pe_ctx c = {B, H, W, p, C, to_double(img, ni), to_double(w, nw), to_double(b, C), to_double(dy, ny),
                malloc(sizeof(double) * ny)};
    ref_patch_embed(y, img, w, b, B, H, W, p, C);
    d_patch_embed(&c);
    CHECK(rel_err_d(y, c.y, ny) < 1e-6, "double patch embed forward != ref_patch_embed");
    ref_patch_embed_backward(dw, db, dy, img, B, H, W, p, C);
    double *g = malloc(sizeof(double) * nw);
    fd_grad(g, c.w, nw, pe_loss, &c);
    compare_fd("ref_patch_embed_backward dw", dw, g, nw);
    fd_grad(g, c.b, C, pe_loss, &c);
    compare_fd("ref_patch_embed_backward db", db, g, C);
    free(g);
    free(c.img), free(c.w), free(c.b), free(c.r), free(c.y);
    free(img), free(w), free(b), free(dy), free(y), free(dw), free(db);
}

// ---- batchnorm (training mode)
typedef struct {
    int n, c;
    double eps;
    double *x, *g, *b, *r, *y;
} bn_ctx;
static void d_batchnorm_train(const bn_ctx *c) {
    for (int k = 0; k < c->c; k++) {
        double m = 0, v = 0;
        for (int i = 0; i < c->n; i++) m += c->x[i * c->c + k];
        m /= c->n;
        for (int i = 0; i < c->n; i++) v += (c->x[i * c->c + k] - m) * (c->x[i * c->c + k] - m);
        v /= c->n;
        for (int i = 0; i < c->n; i++)
            c->y[i * c->c + k] = (c->x[i * c->c + k] - m) / sqrt(v + c->eps) * c->g[k] + c->b[k];
    }
}
static double bn_loss(void *v) {
    bn_ctx *c = v;
    d_batchnorm_train(c);
    return dot_r(c->y, c->r, (size_t)c->n * c->c);
}

static void fd_batchnorm(void) {
    int n = 6, c = 5;
    float eps = 1e-5f, mom = 0.1f;
    float *x = rand_buf(n * c, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 1, 0), *dy = rand_buf(n * c, 1, 0);
    float *y = zeros(n * c), *mean = zeros(c), *rstd = zeros(c);
    float *rm = rand_buf(c, 1, 0), *rv = rand_buf(c, 0.5f, 1.5f), *rm0 = copy_buf(rm, c), *rv0 = copy_buf(rv, c);
    bn_ctx cx = {n, c, eps, to_double(x, n * c), to_double(g, c), to_double(b, c), to_double(dy, n * c),
                 malloc(sizeof(double) * n * c)};
    ref_batchnorm_train(y, mean, rstd, x, g, b, rm, rv, n, c, eps, mom);
    d_batchnorm_train(&cx);
    CHECK(rel_err_d(y, cx.y, n * c) < 1e-6, "double batchnorm forward != ref_batchnorm_train");
    // running statistics: momentum update with the unbiased variance; saved mean / rstd
    double rs_err = 0;
    for (int k = 0; k < c; k++) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += cx.x[i * c + k];
        m /= n;
        for (int i = 0; i < n; i++) v += (cx.x[i * c + k] - m) * (cx.x[i * c + k] - m);
        rs_err = fmax(rs_err, fabs(mean[k] - m) / fmax(1, fabs(m)));
        rs_err = fmax(rs_err, fabs(rstd[k] - 1 / sqrt(v / n + eps)) / (1 / sqrt(v / n + eps)));
        rs_err = fmax(rs_err, fabs(rm[k] - (0.9 * rm0[k] + 0.1 * m)));
        rs_err = fmax(rs_err, fabs(rv[k] - (0.9 * rv0[k] + 0.1 * v / (n - 1))));
    }
    CHECK(rs_err < 1e-6, "ref_batchnorm_train statistics: err %.3g", rs_err);
    // ... and with the running-statistics pointers NULL, y is unchanged
    float *y2 = zeros(n * c);
    ref_batchnorm_train(y2, NULL, NULL, x, g, b, NULL, NULL, n, c, eps, mom);
    CHECK(memcmp(y, y2, sizeof(float) * n * c) == 0, "ref_batchnorm_train with NULL statistics differs");
    float *dx = zeros(n * c), *dg = zeros(c), *db = zeros(c);
    ref_batchnorm_backward(dx, dg, db, dy, x, mean, rstd, g, n, c);
    double *gr = malloc(sizeof(double) * n * c);
    fd_grad(gr, cx.x, n * c, bn_loss, &cx);
    compare_fd("ref_batchnorm_backward dx", dx, gr, n * c);
    fd_grad(gr, cx.g, c, bn_loss, &cx);
    compare_fd("ref_batchnorm_backward dg", dg, gr, c);
    fd_grad(gr, cx.b, c, bn_loss, &cx);
    compare_fd("ref_batchnorm_backward db", db, gr, c);
    free(gr);
    free(cx.x), free(cx.g), free(cx.b), free(cx.r), free(cx.y);
    free(x), free(g), free(b), free(dy), free(y), free(y2), free(mean), free(rstd), free(rm), free(rv), free(rm0),
        free(rv0), free(dx), free(dg), free(db);
}

// ------------------------------------------------------------ cpu vs ref

static void test_gemm(void) {
    const int shapes[][3] = {{1, 1, 1}, {1, 37, 45}, {17, 33, 65}, {64, 48, 100}, {70, 5, 300}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *A = rand_buf((size_t)M * K, 1, 0), *B = rand_buf((size_t)K * N, 1, 0), *C0 = rand_buf((size_t)M * N, 1, 0);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                // want = op(A) op(B) (+ C0), in double
                float *want0 = zeros((size_t)M * N), *want1 = zeros((size_t)M * N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += (double)(ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k]) *
                                 (tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
                        want0[(size_t)i * N + j] = (float)s;
                        want1[(size_t)i * N + j] = (float)(s + C0[(size_t)i * N + j]);
                    }
                for (int prec = 0; prec < 2; prec++) {
                    float *C = malloc(sizeof(float) * M * N);
                    for (int i = 0; i < M * N; i++) C[i] = NAN;   // beta 0 must not read C
                    int rc = cpu_gemm(C, A, B, M, N, K, ta, tb, 0.0f, prec);
                    CHECK(rc == 0, "cpu_gemm: %s", ufo_error());
                    snprintf(what, sizeof what, "cpu_gemm %dx%dx%d ta=%d tb=%d beta=0", M, N, K, ta, tb);
                    compare(what, C, want0, (size_t)M * N, prec);
                    memcpy(C, C0, sizeof(float) * M * N);
                    rc = cpu_gemm(C, A, B, M, N, K, ta, tb, 1.0f, prec);
                    CHECK(rc == 0, "cpu_gemm: %s", ufo_error());
                    snprintf(what, sizeof what, "cpu_gemm %dx%dx%d ta=%d tb=%d beta=1", M, N, K, ta, tb);
                    compare(what, C, want1, (size_t)M * N, prec);
                    free(C);
                }
                free(want0), free(want1);
            }
        free(A), free(B), free(C0);
    }
    // K = 0: C = beta C; bad shapes are refused
    float c2[6] = {1, 2, 3, 4, 5, 6}, dummy = 0;
    CHECK(cpu_gemm(c2, &dummy, &dummy, 2, 3, 0, 0, 0, 1.0f, UFO_PREC_FP32) == 0 && c2[5] == 6, "K=0 beta=1");
    CHECK(cpu_gemm(c2, &dummy, &dummy, 2, 3, 0, 0, 0, 0.0f, UFO_PREC_BF16) == 0 && c2[5] == 0 && c2[0] == 0,
          "K=0 beta=0");
    CHECK(cpu_gemm(c2, &dummy, &dummy, -1, 3, 2, 0, 0, 0.0f, UFO_PREC_FP32) == -1, "negative M accepted");
}

static void test_linear_train_forward(void) {
    const int shapes[][3] = {{1, 45, 70}, {37, 96, 33}, {197, 64, 200}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
        float *x = rand_buf((size_t)n * in, 1, 0), *w = rand_buf((size_t)out * in, 0.2f, 0), *b = rand_buf(out, 1, 0);
        float *res = rand_buf((size_t)n * out, 1, 0), *want = zeros((size_t)n * out), *y = zeros((size_t)n * out);
        for (int prec = 0; prec < 2; prec++)
            for (int post = 0; post < 3; post++)
                for (int hasb = 0; hasb < 2; hasb++) {
                    ref_linear(want, x, w, hasb ? b : NULL, n, in, out);
                    if (post == CPU_POST_GELU) ref_gelu(want, want, (size_t)n * out);
                    if (post == CPU_POST_RESIDUAL) ref_add(want, res, (size_t)n * out);
                    memcpy(y, res, sizeof(float) * n * out);
                    int rc = cpu_linear_train_forward(y, x, w, hasb ? b : NULL, n, in, out, post, prec);
                    CHECK(rc == 0, "cpu_linear_train_forward: %s", ufo_error());
                    snprintf(what, sizeof what, "cpu_linear_train_forward n=%d %d->%d post=%d bias=%d", n, in, out,
                             post, hasb);
                    compare(what, y, want, (size_t)n * out, prec);
                }
        free(x), free(w), free(b), free(res), free(want), free(y);
    }
    float y1;
    CHECK(cpu_linear_train_forward(&y1, &y1, &y1, NULL, 1, 1, 1, (cpu_post_op)7, UFO_PREC_FP32) == -1,
          "bad post-op accepted");
}

static void test_linear_backward(void) {
    const int shapes[][3] = {{1, 45, 70}, {37, 96, 33}, {197, 64, 200}, {300, 17, 5}};
    char what[160];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = rand_buf(nx, 1, 0), *w = rand_buf(nw, 0.2f, 0), *dy = rand_buf(ny, 1, 0);
        float *rdx = zeros(nx), *rdw = rand_buf(nw, 1, 0), *rdb = rand_buf(out, 1, 0);
        float *dw0 = copy_buf(rdw, nw), *db0 = copy_buf(rdb, out);
        ref_linear_backward(rdx, rdw, rdb, dy, x, w, n, in, out);   // rdw = dw0 + grad
        for (int prec = 0; prec < 2; prec++) {
            float *dx = zeros(nx), *dw = copy_buf(dw0, nw), *db = copy_buf(db0, out);
            int rc = cpu_linear_backward(dx, dw, db, dy, x, w, n, in, out, prec);
            CHECK(rc == 0, "cpu_linear_backward: %s", ufo_error());
            snprintf(what, sizeof what, "cpu_linear_backward n=%d %d->%d dx", n, in, out);
            compare(what, dx, rdx, nx, prec);
            snprintf(what, sizeof what, "cpu_linear_backward n=%d %d->%d dw (+= on random)", n, in, out);
            compare(what, dw, rdw, nw, prec);
            snprintf(what, sizeof what, "cpu_linear_backward n=%d %d->%d db (+= on random)", n, in, out);
            compare(what, db, rdb, out, prec);
            // twice from zero = 2x the gradient; NULL dx is skipped; deterministic
            float *dw2 = zeros(nw), *db2 = zeros(out), *dw3 = zeros(nw), *db3 = zeros(out);
            float *want_w = zeros(nw), *want_b = zeros(out);
            for (size_t i = 0; i < nw; i++) want_w[i] = 2 * (rdw[i] - dw0[i]);
            for (int i = 0; i < out; i++) want_b[i] = 2 * (rdb[i] - db0[i]);
            rc = cpu_linear_backward(NULL, dw2, db2, dy, x, w, n, in, out, prec);
            rc |= cpu_linear_backward(NULL, dw2, db2, dy, x, w, n, in, out, prec);
            CHECK(rc == 0, "cpu_linear_backward (NULL dx): %s", ufo_error());
            snprintf(what, sizeof what, "cpu_linear_backward n=%d %d->%d dw twice", n, in, out);
            compare(what, dw2, want_w, nw, prec);
            snprintf(what, sizeof what, "cpu_linear_backward n=%d %d->%d db twice", n, in, out);
            compare(what, db2, want_b, out, prec);
            cpu_linear_backward(NULL, dw3, db3, dy, x, w, n, in, out, prec);
            cpu_linear_backward(NULL, dw3, db3, dy, x, w, n, in, out, prec);
            CHECK(!memcmp(dw2, dw3, nw * sizeof(float)) && !memcmp(db2, db3, out * sizeof(float)),
                  "cpu_linear_backward %s is not deterministic", pname(prec));
            // only dx
            float *dx2 = zeros(nx);
            rc = cpu_linear_backward(dx2, NULL, NULL, dy, x, w, n, in, out, prec);
            CHECK(rc == 0 && !memcmp(dx, dx2, nx * sizeof(float)), "cpu_linear_backward dx alone differs");
            free(dx), free(dw), free(db), free(dw2), free(db2), free(dw3), free(db3), free(want_w), free(want_b),
                free(dx2);
        }
        // ref semantics too: twice = 2x
        float *a = zeros(nw), *bb = zeros(out);
        ref_linear_backward(NULL, a, bb, dy, x, w, n, in, out);
        ref_linear_backward(NULL, a, bb, dy, x, w, n, in, out);
        double e = 0;
        for (size_t i = 0; i < nw; i++) e = fmax(e, fabs(a[i] - 2 * (rdw[i] - dw0[i])));
        CHECK(e <= 1e-4, "ref_linear_backward twice != 2x (%.3g)", e);
        free(a), free(bb);
        free(x), free(w), free(dy), free(rdx), free(rdw), free(rdb), free(dw0), free(db0);
    }
}

static void test_layernorm_backward(void) {
    const int shapes[][2] = {{1, 45}, {17, 45}, {33, 768}, {300, 130}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t nx = (size_t)n * c;
        float *x = rand_buf(nx, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *dy = rand_buf(nx, 1, 0);
        float *rdx = zeros(nx), *rdg = rand_buf(c, 1, 0), *rdb = rand_buf(c, 1, 0);
        float *dg0 = copy_buf(rdg, c), *db0 = copy_buf(rdb, c);
        ref_layernorm_backward(rdx, rdg, rdb, dy, x, g, n, c, 1e-6f);
        float *dx = zeros(nx), *dg = copy_buf(dg0, c), *db = copy_buf(db0, c);
        int rc = cpu_layernorm_backward(dx, dg, db, dy, x, g, n, c, 1e-6f);
        CHECK(rc == 0, "cpu_layernorm_backward: %s", ufo_error());
        snprintf(what, sizeof what, "cpu_layernorm_backward n=%d c=%d dx", n, c);
        compare(what, dx, rdx, nx, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_layernorm_backward n=%d c=%d dg (+=)", n, c);
        compare(what, dg, rdg, c, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_layernorm_backward n=%d c=%d db (+=)", n, c);
        compare(what, db, rdb, c, UFO_PREC_FP32);
        // NULL dx: parameter gradients accumulate again
        rc = cpu_layernorm_backward(NULL, dg, db, dy, x, g, n, c, 1e-6f);
        float *want = zeros(c);
        for (int k = 0; k < c; k++) want[k] = 2 * rdg[k] - dg0[k];
        snprintf(what, sizeof what, "cpu_layernorm_backward n=%d c=%d dg twice", n, c);
        compare(what, dg, want, c, UFO_PREC_FP32);
        free(want);
        free(x), free(g), free(dy), free(rdx), free(rdg), free(rdb), free(dg0), free(db0), free(dx), free(dg), free(db);
    }
}

static void test_gelu_backward(void) {
    const size_t ns[] = {1, 17, 1003, 70001};
    char what[128];
    for (size_t si = 0; si < sizeof ns / sizeof *ns; si++) {
        size_t n = ns[si];
        float *x = rand_buf(n, 7, 0), *dy = rand_buf(n, 1, 0), *rdx = zeros(n), *dx = zeros(n);
        ref_gelu_backward(rdx, dy, x, n);
        cpu_gelu_backward(dx, dy, x, n);
        snprintf(what, sizeof what, "cpu_gelu_backward n=%zu", n);
        compare(what, dx, rdx, n, UFO_PREC_FP32);
        float *ip = copy_buf(dy, n);   // in place over dy
        cpu_gelu_backward(ip, ip, x, n);
        CHECK(!memcmp(ip, dx, n * sizeof(float)), "cpu_gelu_backward in place differs");
        free(x), free(dy), free(rdx), free(dx), free(ip);
    }
}

static void test_attention_backward(void) {
    const int shapes[][4] = {{1, 1, 1, 8}, {1, 17, 2, 8}, {2, 37, 3, 24}, {3, 5, 4, 16}, {1, 577, 2, 16}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], T = shapes[si][1], H = shapes[si][2], hd = shapes[si][3];
        size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
        float *qkv = rand_buf(nq, 2, 0), *dout = rand_buf(no, 1, 0), *rd = zeros(nq);
        ref_attention_backward(rd, dout, qkv, B, T, H, hd);
        for (int prec = 0; prec < 2; prec++) {
            float *d = malloc(nq * sizeof(float));
            for (size_t i = 0; i < nq; i++) d[i] = NAN;   // written, never read
            int rc = cpu_attention_backward(d, dout, qkv, B, T, H, hd, prec);
            CHECK(rc == 0, "cpu_attention_backward: %s", ufo_error());
            snprintf(what, sizeof what, "cpu_attention_backward B=%d T=%d H=%d hd=%d", B, T, H, hd);
            compare(what, d, rd, nq, prec);
            free(d);
        }
        free(qkv), free(dout), free(rd);
    }
}

// The fused AMX backward (cpu_attention_amx_bwd.c) where the CPU has AMX:
// against the double reference at the bf16 tolerance, against the oneDNN bf16
// path (the same roundings of q, k, v, dO, so much closer: 2e-3), the bf16
// result and its column sums (the qkv bias gradient) against the reference,
// and the same bits with one thread as with two. Head dims 32..256 and token
// counts that leave partial 16- and 32-row blocks.
static void test_attention_backward_amx(void) {
    if (!cpu_attention_io_ok(64, 64)) {
        printf("attention backward AMX: skipped (no AMX on this CPU/OS)\n");
        return;
    }
    const int shapes[][4] = {{1, 1, 1, 32}, {2, 17, 3, 64}, {3, 37, 2, 96}, {1, 197, 2, 64}, {2, 64, 1, 256},
                             {1, 577, 2, 64}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], T = shapes[si][1], H = shapes[si][2], hd = shapes[si][3];
        size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd, C3 = (size_t)3 * H * hd;
        float *qkv = rand_buf(nq, 2, 0), *dout = rand_buf(no, 1, 0), *rd = zeros(nq), *d = zeros(nq), *dn = zeros(nq);
        ref_attention_backward(rd, dout, qkv, B, T, H, hd);
        CHECK(cpu_attention_backward(d, dout, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "%s", ufo_error());
        snprintf(what, sizeof what, "attention backward AMX B=%d T=%d H=%d hd=%d", B, T, H, hd);
        compare(what, d, rd, nq, UFO_PREC_BF16);
        cpu_debug_attention_path("dnnl");
        CHECK(cpu_attention_backward(dn, dout, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "%s", ufo_error());
        cpu_debug_attention_path(NULL);
        double vs = check_max_rel_err(d, dn, (long)nq);
        if (verbose()) printf("%-52s vs oneDNN rel %.3g\n", what, vs);
        CHECK(vs <= 2e-3, "%s: AMX vs oneDNN bf16 max rel err %.3g", what, vs);

        // bf16 out with db += column sums; db starts non-zero (accumulates)
        uint16_t *g = malloc(nq * sizeof(uint16_t)), *g1 = malloc(nq * sizeof(uint16_t));
        float *db = rand_buf(C3, 1, 0), *db0 = copy_buf(db, C3), *db1 = copy_buf(db, C3), *gf = zeros(nq);
        float *rdb = zeros(C3);
        CHECK(cpu_attention_backward_bf16(g, db, dout, qkv, B, T, H, hd) == 0, "%s", ufo_error());
        for (size_t i = 0; i < nq; i++) gf[i] = ufo_bf16_to_f32(g[i]);
        for (size_t c = 0; c < C3; c++) {
            double sum = 0;
            for (size_t t = 0; t < (size_t)B * T; t++) sum += rd[t * C3 + c];
            rdb[c] = (float)sum;
            db[c] -= db0[c];
        }
        snprintf(what, sizeof what, "attention backward AMX bf16 B=%d T=%d H=%d hd=%d", B, T, H, hd);
        compare(what, gf, rd, nq, UFO_PREC_BF16);
        snprintf(what, sizeof what, "attention backward AMX db B=%d T=%d H=%d hd=%d", B, T, H, hd);
        compare(what, db, rdb, C3, UFO_PREC_BF16);
        int nthr = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK(cpu_attention_backward_bf16(g1, db1, dout, qkv, B, T, H, hd) == 0, "%s", ufo_error());
        omp_set_num_threads(nthr);
        for (size_t c = 0; c < C3; c++) db1[c] -= db0[c];
        CHECK(!memcmp(g, g1, nq * sizeof(uint16_t)) && !memcmp(db, db1, C3 * sizeof(float)),
              "%s: one thread gives other bits than %d", what, nthr);
        free(qkv), free(dout), free(rd), free(d), free(dn), free(g), free(g1), free(db), free(db0), free(db1);
        free(gf), free(rdb);
    }
}

// The class-query attention (the training's last block) against the rows of
// token 0 of ref_attention, and its backward against ref_attention_backward
// with an output gradient on token 0 only; fp32 and bf16, fp32 and bf16 qkv
// (the latter the same bits as the fp32 qkv it was rounded from).
static void test_attention_cls(void) {
    const int shapes[][4] = {{1, 1, 1, 8}, {2, 17, 3, 24}, {3, 37, 2, 64}, {1, 577, 2, 64}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], T = shapes[si][1], H = shapes[si][2], hd = shapes[si][3];
        size_t C = (size_t)H * hd, nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
        float *qkv = rand_buf(nq, 2, 0), *ro = zeros(no), *dcls = rand_buf((size_t)B * C, 1, 0), *dout = zeros(no);
        float *rd = zeros(nq), *rcls = zeros((size_t)B * C), *rdb = zeros(3 * C);
        ref_attention(ro, qkv, B, T, H, hd);
        for (int b = 0; b < B; b++) {
            memcpy(rcls + (size_t)b * C, ro + (size_t)b * T * C, C * sizeof(float));
            memcpy(dout + (size_t)b * T * C, dcls + (size_t)b * C, C * sizeof(float));
        }
        ref_attention_backward(rd, dout, qkv, B, T, H, hd);
        for (size_t c = 0; c < 3 * C; c++) {
            double sum = 0;
            for (size_t t = 0; t < (size_t)B * T; t++) sum += rd[t * 3 * C + c];
            rdb[c] = (float)sum;
        }
        uint16_t *qkvb = malloc(nq * sizeof(uint16_t));
        for (size_t i = 0; i < nq; i++) qkvb[i] = ufo_f32_to_bf16(qkv[i]);
        for (int prec = 0; prec < 2; prec++) {
            float *o = zeros((size_t)B * C), *d = malloc(nq * sizeof(float));
            for (size_t i = 0; i < nq; i++) d[i] = NAN;   // every element written
            CHECK(cpu_attention_cls(o, qkv, 0, B, T, H, hd, prec) == 0, "cpu_attention_cls: %s", ufo_error());
            snprintf(what, sizeof what, "cpu_attention_cls B=%d T=%d H=%d hd=%d", B, T, H, hd);
            compare(what, o, rcls, (size_t)B * C, prec);
            CHECK(cpu_attention_cls_backward(d, NULL, NULL, dcls, qkv, 0, B, T, H, hd, prec) == 0,
                  "cpu_attention_cls_backward: %s", ufo_error());
            snprintf(what, sizeof what, "cpu_attention_cls_backward B=%d T=%d H=%d hd=%d", B, T, H, hd);
            compare(what, d, rd, nq, prec);
            if (prec == UFO_PREC_BF16) {   // bf16 qkv in, bf16 gradient out with db
                float *o2 = zeros((size_t)B * C), *db = rand_buf(3 * C, 1, 0), *db0 = copy_buf(db, 3 * C);
                uint16_t *g = malloc(nq * sizeof(uint16_t));
                CHECK(cpu_attention_cls(o2, qkvb, 1, B, T, H, hd, prec) == 0 && !memcmp(o, o2, (size_t)B * C * 4),
                      "cpu_attention_cls from bf16 qkv differs");
                CHECK(cpu_attention_cls_backward(NULL, g, db, dcls, qkvb, 1, B, T, H, hd, prec) == 0, "%s",
                      ufo_error());
                int same = 1;
                for (size_t i = 0; i < nq && same; i++) same = g[i] == ufo_f32_to_bf16(d[i]);
                CHECK(same, "cpu_attention_cls_backward bf16 out from bf16 qkv != rounded fp32 out");
                for (size_t c = 0; c < 3 * C; c++) db[c] -= db0[c];
                snprintf(what, sizeof what, "cpu_attention_cls_backward db B=%d T=%d H=%d hd=%d", B, T, H, hd);
                compare(what, db, rdb, 3 * C, prec);
                free(o2), free(db), free(db0), free(g);
            }
            free(o), free(d);
        }
        float f = 0;
        CHECK(cpu_attention_cls(&f, qkvb, 1, 1, 1, 1, 1, UFO_PREC_FP32) == -1, "bf16 qkv at fp32 accepted");
        CHECK(cpu_attention_cls_backward(&f, (uint16_t *)&f, NULL, &f, &f, 0, 1, 1, 1, 1, UFO_PREC_FP32) == -1,
              "two outputs accepted");
        free(qkv), free(ro), free(dcls), free(dout), free(rd), free(rcls), free(rdb), free(qkvb);
    }
}

static void test_batchnorm(void) {
    const int shapes[][2] = {{2, 45}, {37, 45}, {64, 130}, {300, 1024}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int n = shapes[si][0], c = shapes[si][1];
        size_t nx = (size_t)n * c;
        float *x = rand_buf(nx, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 1, 0), *dy = rand_buf(nx, 1, 0);
        float *rm = rand_buf(c, 1, 0), *rv = rand_buf(c, 0.5f, 1.5f);
        float *crm = copy_buf(rm, c), *crv = copy_buf(rv, c);
        float *ry = zeros(nx), *rmean = zeros(c), *rrstd = zeros(c), *y = zeros(nx), *mean = zeros(c), *rstd = zeros(c);
        ref_batchnorm_train(ry, rmean, rrstd, x, g, b, rm, rv, n, c, 1e-5f, 0.1f);
        cpu_batchnorm_train(y, mean, rstd, x, g, b, crm, crv, n, c, 1e-5f, 0.1f);
        snprintf(what, sizeof what, "cpu_batchnorm_train n=%d c=%d y", n, c);
        compare(what, y, ry, nx, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_train n=%d c=%d mean", n, c);
        compare(what, mean, rmean, c, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_train n=%d c=%d rstd", n, c);
        compare(what, rstd, rrstd, c, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_train n=%d c=%d running_mean", n, c);
        compare(what, crm, rm, c, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_train n=%d c=%d running_var", n, c);
        compare(what, crv, rv, c, UFO_PREC_FP32);

        float *rdx = zeros(nx), *rdg = rand_buf(c, 1, 0), *rdb = rand_buf(c, 1, 0);
        float *dx = zeros(nx), *dg = copy_buf(rdg, c), *db = copy_buf(rdb, c);
        ref_batchnorm_backward(rdx, rdg, rdb, dy, x, rmean, rrstd, g, n, c);
        cpu_batchnorm_backward(dx, dg, db, dy, x, rmean, rrstd, g, n, c);
        snprintf(what, sizeof what, "cpu_batchnorm_backward n=%d c=%d dx", n, c);
        compare(what, dx, rdx, nx, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_backward n=%d c=%d dg (+=)", n, c);
        compare(what, dg, rdg, c, UFO_PREC_FP32);
        snprintf(what, sizeof what, "cpu_batchnorm_backward n=%d c=%d db (+=)", n, c);
        compare(what, db, rdb, c, UFO_PREC_FP32);
        float *dx2 = copy_buf(dx, nx);
        cpu_batchnorm_backward(NULL, dg, db, dy, x, rmean, rrstd, g, n, c);   // NULL dx: only dg, db move
        CHECK(!memcmp(dx, dx2, nx * sizeof(float)), "NULL dx");
        free(dx2);
        free(x), free(g), free(b), free(dy), free(rm), free(rv), free(crm), free(crv), free(ry), free(rmean),
            free(rrstd), free(y), free(mean), free(rstd), free(rdx), free(rdg), free(rdb), free(dx), free(dg), free(db);
    }
}

static void test_patch_embed_backward(void) {
    const int shapes[][5] = {{1, 8, 8, 4, 3}, {2, 16, 12, 4, 37}, {1, 32, 48, 16, 20}};
    char what[128];
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int B = shapes[si][0], H = shapes[si][1], W = shapes[si][2], p = shapes[si][3], C = shapes[si][4];
        size_t ni = (size_t)B * 3 * H * W, nw = (size_t)C * 3 * p * p, ny = (size_t)B * (H / p) * (W / p) * C;
        float *img = rand_buf(ni, 1, 0), *dy = rand_buf(ny, 1, 0);
        float *rdw = rand_buf(nw, 1, 0), *rdb = rand_buf(C, 1, 0), *dw0 = copy_buf(rdw, nw), *db0 = copy_buf(rdb, C);
        ref_patch_embed_backward(rdw, rdb, dy, img, B, H, W, p, C);
        for (int prec = 0; prec < 2; prec++) {
            float *dw = copy_buf(dw0, nw), *db = copy_buf(db0, C);
            int rc = cpu_patch_embed_backward(dw, db, dy, img, B, H, W, p, C, prec);
            CHECK(rc == 0, "cpu_patch_embed_backward: %s", ufo_error());
            snprintf(what, sizeof what, "cpu_patch_embed_backward B=%d %dx%d p=%d C=%d dw (+=)", B, H, W, p, C);
            compare(what, dw, rdw, nw, prec);
            snprintf(what, sizeof what, "cpu_patch_embed_backward B=%d %dx%d p=%d C=%d db (+=)", B, H, W, p, C);
            compare(what, db, rdb, C, prec);
            free(dw), free(db);
        }
        free(img), free(dy), free(rdw), free(rdb), free(dw0), free(db0);
    }
    float d = 0;
    CHECK(cpu_patch_embed_backward(&d, &d, &d, &d, 1, 10, 8, 4, 1, UFO_PREC_FP32) == -1, "10x8 by 4 accepted");
}

int main(void) {
    fd_linear();
    fd_layernorm();
    fd_gelu();
    fd_attention();
    fd_patch_embed();
    fd_batchnorm();
    test_gemm();
    test_linear_train_forward();
    test_linear_backward();
    test_layernorm_backward();
    test_gelu_backward();
    test_attention_backward();
    test_attention_backward_amx();
    test_attention_cls();
    test_batchnorm();
    test_patch_embed_backward();
    printf("worst: FD rel %.3g; fp32 rel %.3g; bf16 rel %.3g, cosine %.6f\n", worst_fd, worst_f32, worst_bf16_rel,
           worst_bf16_cos);
    return check_summary("backward");
}
