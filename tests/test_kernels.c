// Kernel layer: the reference ops against hand-computed values, then every
// cpu_* op against its ref_* twin on random data (odd shapes included).
#include "base/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ref/ref.h"
#include "check.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// fp32 paths agree with the double-accumulating reference to this (relative to
// the reference's largest magnitude); bf16 paths to the looser pair below.
#define TOL_F32 1e-5
#define TOL_BF16_REL 1e-2
#define TOL_BF16_COS 0.9995

#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#include "rand_buf.h"
static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb);
}
static double max_abs_err(const float *a, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

// Compare a fast result against the reference with the precision's tolerance.
static void compare(const char *what, const float *got, const float *ref, size_t n, ufo_precision prec) {
    double rel = check_max_rel_err(got, ref, (long)n);
    if (getenv("UFO_TEST_VERBOSE"))   // the measured errors, for tuning the tolerances
        printf("%-45s %s rel %.3g cos %.7f\n", what, prec ? "bf16" : "fp32", rel, cosine(got, ref, n));
    if (prec == UFO_PREC_FP32) {
        CHECK(rel <= TOL_F32, "%s fp32: max rel err %.3g", what, rel);
    } else {
        double cs = cosine(got, ref, n);
        CHECK(rel <= TOL_BF16_REL, "%s bf16: max rel err %.3g", what, rel);
        CHECK(cs >= TOL_BF16_COS, "%s bf16: cosine %.6f", what, cs);
    }
}

// ------------------------------------------------------------ hand-checked reference values

static void test_ref_hand(void) {
    // GELU at points where x/2 (1 + erf(x/sqrt2)) was computed in double elsewhere.
    const float xs[] = {0, 1, -1, 2, -3, 0.5f, -0.25f, 5, -5};
    const double want[] = {0.0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416,
                           -0.00404969409489031, 0.34573123063700656, -0.10032341857926907,
                           4.999998566742141, -1.4332578593401202e-06};
    float g[9];
    ref_gelu(g, xs, 9);
    for (int i = 0; i < 9; i++)
        CHECK(fabs(g[i] - want[i]) <= 1e-7 * fmax(1.0, fabs(want[i])), "ref_gelu(%g) = %.9g, want %.9g",
              xs[i], g[i], want[i]);
    float gi[9];
    memcpy(gi, xs, sizeof gi);
    ref_gelu(gi, gi, 9);   // in place
    CHECK(memcmp(gi, g, sizeof g) == 0, "ref_gelu in place");

    // LayerNorm of [1 2 3 4]: mean 2.5, variance 1.25.
    const float x[4] = {1, 2, 3, 4}, gam[4] = {2, 1, 1, 1}, bet[4] = {0, 0, 0, 1};
    const double r = 1.0 / sqrt(1.25);
    const double lw[4] = {-1.5 * r * 2, -0.5 * r, 0.5 * r, 1.5 * r + 1};
    float y[4];
    ref_layernorm(y, x, gam, bet, 1, 4, 0.0f);
    for (int i = 0; i < 4; i++) CHECK(fabs(y[i] - lw[i]) < 1e-6, "ref_layernorm[%d] = %.9g, want %.9g", i, y[i], lw[i]);
    // eps matters: var + eps = 1.25 + 0.75 = 2
    ref_layernorm(y, x, gam, bet, 1, 4, 0.75f);
    CHECK(fabs(y[3] - (1.5 / sqrt(2.0) + 1)) < 1e-6, "ref_layernorm eps: %.9g", y[3]);

    // Linear: y = x W^T + b with W [out=3, in=2].
    const float lx[2] = {1, 2}, lwt[6] = {1, 0, 0, 1, 1, 1}, lb[3] = {0.5f, 0, -1};
    float ly[3];
    ref_linear(ly, lx, lwt, lb, 1, 2, 3);
    CHECK(ly[0] == 1.5f && ly[1] == 2.0f && ly[2] == 2.0f, "ref_linear = %g %g %g", ly[0], ly[1], ly[2]);
    ref_linear(ly, lx, lwt, NULL, 1, 2, 3);
    CHECK(ly[0] == 1.0f && ly[1] == 2.0f && ly[2] == 3.0f, "ref_linear no bias = %g %g %g", ly[0], ly[1], ly[2]);

    // BatchNorm: (3 - 1) / sqrt(3 + 1) * 2 + 1 = 3.
    const float bx = 3, bg = 2, bb = 1, bm = 1, bv = 3;
    float by;
    ref_batchnorm(&by, &bx, &bg, &bb, &bm, &bv, 1, 1, 1.0f);
    CHECK(fabs(by - 3.0f) < 1e-6, "ref_batchnorm = %g", by);

    // Attention, B=1, T=2, H=2, hd=4 (scale 1/2). qkv row: q h0 | q h1 | k h0 | k h1 | v h0 | v h1.
    // Head 0: k0 = 0, k1 = (2 ln3, 0, 0, 0); q0 = e0 gives scores (0, ln3) -> softmax (1/4, 3/4);
    //         q1 = 2 e0 gives (0, ln9) -> (1/10, 9/10).
    // Head 1: q = 0 -> uniform weights -> the mean of the two v.
    float qkv[2 * 3 * 2 * 4] = {0}, out[2 * 2 * 4];
    const float l3 = (float)log(3.0);
    const float v0h0[4] = {1, 0, 2, -1}, v1h0[4] = {5, 1, 2, 3}, v0h1[4] = {1, 2, 3, 4}, v1h1[4] = {3, 2, 1, 0};
    float *t0 = qkv, *t1 = qkv + 24;
    t0[0] = 1;                   // q, token 0, head 0
    t1[0] = 2;                   // q, token 1, head 0
    t1[8] = 2 * l3;              // k, token 1, head 0
    t0[12] = 0.3f, t1[13] = -0.7f;   // k, head 1: anything, q is 0 there
    memcpy(t0 + 16, v0h0, 16), memcpy(t0 + 20, v0h1, 16);
    memcpy(t1 + 16, v1h0, 16), memcpy(t1 + 20, v1h1, 16);
    ref_attention(out, qkv, 1, 2, 2, 4);
    const float aw[16] = {4, 0.75f, 2, 2, 2, 2, 2, 2, 4.6f, 0.9f, 2, 2.6f, 2, 2, 2, 2};
    for (int i = 0; i < 16; i++) CHECK(fabs(out[i] - aw[i]) < 1e-6, "ref_attention[%d] = %.9g, want %g", i, out[i], aw[i]);
    float cout_[16];
    CHECK(cpu_attention(cout_, qkv, 1, 2, 2, 4, UFO_PREC_FP32) == 0, "%s", ufo_error());
    for (int i = 0; i < 16; i++) CHECK(fabs(cout_[i] - aw[i]) < 1e-5, "cpu_attention[%d] = %.9g, want %g", i, cout_[i], aw[i]);

    // Patch embedding ordering: B=1, 3x4x4 image, p=2, C=2. Channel 0 of the
    // output picks pixel (ch 1, ky 1, kx 0) of each patch; channel 1 sums channel 2.
    float img[3 * 4 * 4], pw[2 * 3 * 2 * 2] = {0}, pb[2] = {0.5f, -1}, py[4 * 2];
    for (int i = 0; i < 48; i++) img[i] = (float)i;
    pw[(0 * 3 + 1) * 4 + 1 * 2 + 0] = 1;
    for (int k = 0; k < 4; k++) pw[(1 * 3 + 2) * 4 + k] = 1;
    ref_patch_embed(py, img, pw, pb, 1, 4, 4, 2, 2);
    for (int ty = 0; ty < 2; ty++)
        for (int tx = 0; tx < 2; tx++) {
            int tok = ty * 2 + tx;
            float w0 = img[16 + (ty * 2 + 1) * 4 + tx * 2] + 0.5f;
            float w1 = -1;
            for (int ky = 0; ky < 2; ky++)
                for (int kx = 0; kx < 2; kx++) w1 += img[32 + (ty * 2 + ky) * 4 + tx * 2 + kx];
            CHECK(py[tok * 2] == w0 && py[tok * 2 + 1] == w1, "ref_patch_embed token %d: %g %g, want %g %g", tok,
                  py[tok * 2], py[tok * 2 + 1], w0, w1);
        }
}

// ------------------------------------------------------------ cpu vs ref

static uint16_t bf16_rne(float f) {   // the textbook rounding, for comparison
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    uint32_t lower = u & 0xffffu, upper = u >> 16;
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) upper++;
    return (uint16_t)upper;
}
static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16_rounding(void) {
    const uint32_t special[] = {0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0xbf818000, 0x7f800000,
                                0xff800000, 0x7f7fffff, 0x00800000, 0x80000000, 0x7fc00000, 0x7f800001};
    enum { N = 37 };   // not a multiple of 16: the tail path too
    float x[N];
    for (int i = 0; i < N; i++) x[i] = i < 12 ? f32_from_bits(special[i]) : frand() * 100;
    uint16_t got[N];
    for (int off = 0; off < 2; off++) {
        cpu_debug_disable_native_bf16(off);
        memset(got, 0, sizeof got);
        cpu_f32_to_bf16_serial(got, x, N);
        for (int i = 0; i < N; i++) {
            uint16_t want = bf16_rne(x[i]);
            int ok = want == 0x7fc0 ? (got[i] & 0x7f80) == 0x7f80 && (got[i] & 0x7f) : got[i] == want;
            CHECK(ok, "bf16(%08x) = %04x, want %04x (native %s)", (unsigned)special[i < 12 ? i : 0], got[i], want,
                  off ? "off" : "on");
        }
        // The parallel converter agrees with the serial one.
        size_t n = 100003;
        float *big = rand_buf(n, 3, 0);
        uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
        cpu_f32_to_bf16(a, big, n);
        cpu_f32_to_bf16_serial(b, big, n);
        CHECK(memcmp(a, b, n * 2) == 0, "parallel bf16 conversion differs");
        for (size_t i = 0; i < n; i += 997) CHECK(a[i] == bf16_rne(big[i]), "bf16 at %zu", i);
        free(big), free(a), free(b);
    }
    cpu_debug_disable_native_bf16(0);
}

static void test_linear_shape(int n, int in, int out, int with_bias, ufo_precision prec) {
    float *x = rand_buf((size_t)n * in, 1, 0), *w = rand_buf((size_t)out * in, 0.2f, 0);
    float *b = with_bias ? rand_buf(out, 0.5f, 0) : NULL;
    float *res = rand_buf((size_t)n * out, 1, 0);
    float *ref = malloc((size_t)n * out * sizeof *ref), *got = malloc((size_t)n * out * sizeof *got);
    char what[96];
    cpu_linear *l = cpu_linear_create(w, b, in, out, prec);
    CHECK(l != NULL, "cpu_linear_create(%d, %d): %s", in, out, ufo_error());
    if (!l) goto done;
    ref_linear(ref, x, w, b, n, in, out);
    // NONE
    CHECK(cpu_linear_forward(l, got, x, n, CPU_POST_NONE) == 0, "%s", ufo_error());
    snprintf(what, sizeof what, "linear n=%d in=%d out=%d bias=%d", n, in, out, with_bias);
    compare(what, got, ref, (size_t)n * out, prec);
    // RESIDUAL: y += x W^T + b
    memcpy(got, res, (size_t)n * out * sizeof *got);
    CHECK(cpu_linear_forward(l, got, x, n, CPU_POST_RESIDUAL) == 0, "%s", ufo_error());
    float *refr = copy_buf(res, (size_t)n * out);
    ref_add(refr, ref, (size_t)n * out);
    snprintf(what, sizeof what, "linear+residual n=%d in=%d out=%d", n, in, out);
    compare(what, got, refr, (size_t)n * out, prec);
    free(refr);
    // GELU
    CHECK(cpu_linear_forward(l, got, x, n, CPU_POST_GELU) == 0, "%s", ufo_error());
    ref_gelu(ref, ref, (size_t)n * out);
    snprintf(what, sizeof what, "linear+gelu n=%d in=%d out=%d", n, in, out);
    compare(what, got, ref, (size_t)n * out, prec);
done:
    cpu_linear_free(l);
    free(x), free(w), free(b), free(res), free(ref), free(got);
}

// One layer used with many different n (more than the primitive cache holds).
static void test_linear_cache(ufo_precision prec) {
    const int in = 40, out = 24;
    float *w = rand_buf((size_t)out * in, 0.3f, 0), *b = rand_buf(out, 0.3f, 0);
    cpu_linear *l = cpu_linear_create(w, b, in, out, prec);
    CHECK(l != NULL, "%s", ufo_error());
    const int ns[] = {1, 5, 577, 2, 3, 4, 6, 7, 8, 9, 10, 1, 577, 5, 11};
    for (size_t t = 0; l && t < sizeof ns / sizeof *ns; t++) {
        int n = ns[t];
        float *x = rand_buf((size_t)n * in, 1, 0), *ref = malloc((size_t)n * out * 4), *got = malloc((size_t)n * out * 4);
        ref_linear(ref, x, w, b, n, in, out);
        CHECK(cpu_linear_forward(l, got, x, n, t % 2 ? CPU_POST_GELU : CPU_POST_NONE) == 0, "%s", ufo_error());
        if (t % 2) ref_gelu(ref, ref, (size_t)n * out);
        compare("linear cache", got, ref, (size_t)n * out, prec);
        free(x), free(ref), free(got);
    }
    // n = 0 is a no-op, a negative n an error.
    if (l) {
        CHECK(cpu_linear_forward(l, NULL, NULL, 0, CPU_POST_NONE) == 0, "n=0");
        ufo_error_clear();
        CHECK(cpu_linear_forward(l, NULL, NULL, -1, CPU_POST_NONE) == -1, "n=-1 accepted");
        CHECK(strstr(ufo_error(), "cpu_linear") != NULL, "error message: %s", ufo_error());
    }
    cpu_linear_free(l);
    free(w), free(b);
}

// bf16 activations in and out (cpu_linear_forward_io): the same values as the
// fp32-in path, whose rounding moves into the producer; a bf16 output is the
// fp32 output (after bias and GELU) rounded to nearest even.
static void test_linear_bf16_io(int n, int in, int out) {
    float *w = rand_buf((size_t)out * in, 0.1f, 0), *b = rand_buf(out, 0.5f, 0), *x = rand_buf((size_t)n * in, 1, 0);
    float *y = zeros((size_t)n * out), *y2 = zeros((size_t)n * out);
    uint16_t *xb = malloc((size_t)n * in * 2), *yb = malloc((size_t)n * out * 2);
    if (!xb || !yb) abort();
    for (size_t i = 0; i < (size_t)n * in; i++) xb[i] = bf16_rne(x[i]);
    cpu_linear *l = cpu_linear_create(w, b, in, out, UFO_PREC_BF16);
    CHECK(l, "%s", ufo_error());
    if (l) {
        for (int post = CPU_POST_NONE; post <= CPU_POST_GELU; post++) {
            CHECK(cpu_linear_forward(l, y, x, n, (cpu_post_op)post) == 0, "%s", ufo_error());
            CHECK(cpu_linear_forward_io(l, y2, xb, n, (cpu_post_op)post, CPU_LINEAR_SRC_BF16) == 0, "%s", ufo_error());
            CHECK(!memcmp(y, y2, (size_t)n * out * sizeof *y), "linear %dx%dx%d post %d: bf16 input != fp32 input", n, in,
                  out, post);
            CHECK(cpu_linear_forward_io(l, yb, xb, n, (cpu_post_op)post, CPU_LINEAR_SRC_BF16 | CPU_LINEAR_DST_BF16) == 0,
                  "%s", ufo_error());
            size_t bad = 0;
            for (size_t i = 0; i < (size_t)n * out; i++) bad += yb[i] != bf16_rne(y[i]);
            CHECK(bad == 0, "linear %dx%dx%d post %d: %zu bf16 outputs are not the rounded fp32 ones", n, in, out, post,
                  bad);
        }
        // Residual into bf16 and bf16 io on an fp32 layer are refused.
        CHECK(cpu_linear_forward_io(l, yb, xb, n, CPU_POST_RESIDUAL, CPU_LINEAR_DST_BF16) == -1 &&
              strstr(ufo_error(), "fp32 output"));
        cpu_linear *l32 = cpu_linear_create(w, b, in, out, UFO_PREC_FP32);
        CHECK(l32 && cpu_linear_forward_io(l32, y2, xb, n, CPU_POST_NONE, CPU_LINEAR_SRC_BF16) == -1);
        cpu_linear_free(l32);
    }
    cpu_linear_free(l);
    free(w), free(b), free(x), free(y), free(y2), free(xb), free(yb);
}

static void test_attention(int B, int T, int H, int hd, ufo_precision prec) {
    size_t nin = (size_t)B * T * 3 * H * hd, nout = (size_t)B * T * H * hd;
    float *qkv = rand_buf(nin, 1.5f, 0);
    float *ref = malloc(nout * sizeof *ref), *got = malloc(nout * sizeof *got);
    ref_attention(ref, qkv, B, T, H, hd);
    CHECK(cpu_attention(got, qkv, B, T, H, hd, prec) == 0, "cpu_attention: %s", ufo_error());
    char what[96];
    snprintf(what, sizeof what, "attention B=%d T=%d H=%d hd=%d", B, T, H, hd);
    compare(what, got, ref, nout, prec);
    free(qkv), free(ref), free(got);
}

static void test_layernorm(int n, int c) {
    float *x = rand_buf((size_t)n * c, 2, 3), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 0.5f, 0);
    float *ref = malloc((size_t)n * c * 4), *got = malloc((size_t)n * c * 4);
    ref_layernorm(ref, x, g, b, n, c, 1e-6f);
    cpu_layernorm(got, x, g, b, n, c, 1e-6f);
    char what[64];
    snprintf(what, sizeof what, "layernorm n=%d c=%d", n, c);
    compare(what, got, ref, (size_t)n * c, UFO_PREC_FP32);
    cpu_layernorm(x, x, g, b, n, c, 1e-6f);   // in place
    compare("layernorm in place", x, ref, (size_t)n * c, UFO_PREC_FP32);
    free(x), free(g), free(b), free(ref), free(got);
}

static void test_batchnorm(int n, int c) {
    float *x = rand_buf((size_t)n * c, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 0.5f, 0);
    float *m = rand_buf(c, 1, 0), *v = rand_buf(c, 0.4f, 0.6f);
    float *ref = malloc((size_t)n * c * 4), *got = malloc((size_t)n * c * 4);
    ref_batchnorm(ref, x, g, b, m, v, n, c, 1e-5f);
    cpu_batchnorm(got, x, g, b, m, v, n, c, 1e-5f);
    char what[64];
    snprintf(what, sizeof what, "batchnorm n=%d c=%d", n, c);
    compare(what, got, ref, (size_t)n * c, UFO_PREC_FP32);
    free(x), free(g), free(b), free(m), free(v), free(ref), free(got);
}

static void test_gelu_add(size_t n) {
    float *x = rand_buf(n, 6, 0), *got = malloc(n * 4), *ref = malloc(n * 4);
    x[0] = 0, x[1] = -0.0f, x[2] = 40, x[3] = -40, x[4] = 1e-20f;
    ref_gelu(ref, x, n);
    cpu_gelu(got, x, n);
    compare("gelu", got, ref, n, UFO_PREC_FP32);
    // Absolute error per element, against erf in double.
    double *exact = malloc(n * sizeof *exact);
    for (size_t i = 0; i < n; i++) exact[i] = x[i] * 0.5 * (1.0 + erf(x[i] * M_SQRT1_2));
    double abs_err = max_abs_err(got, exact, n);
    CHECK(abs_err <= 1e-6, "cpu_gelu abs err %.3g", abs_err);
    CHECK(got[2] == 40.0f && got[3] == 0.0f && got[0] == 0.0f, "gelu(40)=%g gelu(-40)=%g", got[2], got[3]);
    cpu_gelu(x, x, n);   // in place
    CHECK(memcmp(x, got, n * 4) == 0, "cpu_gelu in place");
    free(exact);

    float *a = rand_buf(n, 1, 0), *y1 = rand_buf(n, 1, 0), *y2 = copy_buf(y1, n);
    ref_add(y1, a, n);
    cpu_add(y2, a, n);
    CHECK(memcmp(y1, y2, n * 4) == 0, "cpu_add differs from ref_add");
    free(x), free(got), free(ref), free(a), free(y1), free(y2);
}

static void test_patch_embed(int B, int H, int W, int p, int C, ufo_precision prec) {
    int k = 3 * p * p, ntok = B * (H / p) * (W / p);
    float *img = rand_buf((size_t)B * 3 * H * W, 1, 0), *w = rand_buf((size_t)C * k, 0.1f, 0), *b = rand_buf(C, 0.5f, 0);
    float *ref = malloc((size_t)ntok * C * 4), *got = malloc((size_t)ntok * C * 4);
    ref_patch_embed(ref, img, w, b, B, H, W, p, C);
    cpu_linear *l = cpu_linear_create(w, b, k, C, prec);
    CHECK(l != NULL, "%s", ufo_error());
    if (l) {
        CHECK(cpu_patch_embed(l, got, img, B, H, W, p) == 0, "cpu_patch_embed: %s", ufo_error());
        char what[96];
        snprintf(what, sizeof what, "patch_embed B=%d %dx%d p=%d C=%d", B, H, W, p, C);
        compare(what, got, ref, (size_t)ntok * C, prec);
        CHECK(cpu_patch_embed(l, got, img, B, H + 1, W, p) == -1, "image not a multiple of p accepted");
        CHECK(cpu_patch_embed(l, got, img, B, H, W, p * 2) == -1, "wrong patch size accepted");
    }
    cpu_linear_free(l);
    free(img), free(w), free(b), free(ref), free(got);
}

int main(void) {
    printf("oneDNN ISA: %s, native bf16: %s\n", cpu_isa_name(), cpu_has_bf16() ? "yes" : "no");
    CHECK(cpu_isa_name() != NULL && strlen(cpu_isa_name()) > 0, "cpu_isa_name");

    test_ref_hand();

    for (int pi = 0; pi < 2; pi++) {
        ufo_precision prec = pi ? UFO_PREC_BF16 : UFO_PREC_FP32;
        test_linear_shape(1, 64, 96, 1, prec);
        test_linear_shape(3, 17, 5, 1, prec);
        test_linear_shape(37, 100, 77, 0, prec);
        test_linear_shape(577, 192, 200, 1, prec);
        test_linear_shape(130, 768, 129, 1, prec);
        test_linear_cache(prec);

        test_attention(1, 1, 1, 8, prec);
        test_attention(1, 2, 1, 64, prec);
        test_attention(3, 17, 3, 24, prec);
        test_attention(2, 50, 5, 16, prec);
        test_attention(2, 577, 2, 64, prec);
        // The fused fp32 kernel's edges: strips of 14 queries, blocks of 32
        // keys, hd 32 / 96, T past its 1024 limit (then the sgemm path).
        test_attention(3, 15, 2, 32, prec);
        test_attention(1, 33, 3, 96, prec);
        test_attention(2, 197, 3, 64, prec);
        if (prec == UFO_PREC_FP32) test_attention(1, 1030, 1, 32, prec);

        test_patch_embed(2, 32, 32, 16, 64, prec);
        test_patch_embed(1, 24, 40, 8, 37, prec);
    }

    // The per-head sgemm attention, the fp32 path where the fused one cannot run.
    cpu_debug_attention_path("dnnl");
    CHECK(!strcmp(cpu_attention_path(577, 64, UFO_PREC_FP32), "sgemm"), "UFO_ATTN=dnnl keeps fp32 on sgemm");
    test_attention(2, 577, 2, 64, UFO_PREC_FP32);
    test_attention(3, 15, 2, 32, UFO_PREC_FP32);
    cpu_debug_attention_path(NULL);
    if (cpu_has_avx512())
        CHECK(!strcmp(cpu_attention_path(577, 64, UFO_PREC_FP32), "avx512"), "fp32 attention path %s",
              cpu_attention_path(577, 64, UFO_PREC_FP32));
    CHECK(!strcmp(cpu_attention_path(577, 48, UFO_PREC_FP32), "sgemm"), "hd 48 takes the sgemm path");

    test_linear_bf16_io(577, 192, 768);
    test_bf16_rounding();
    // The AVX-512F integer bf16 rounding, used where AVX512-BF16 is missing.
    cpu_debug_disable_native_bf16(1);
    test_linear_shape(37, 100, 77, 1, UFO_PREC_BF16);
    test_linear_bf16_io(37, 100, 77);
    test_attention(2, 50, 5, 16, UFO_PREC_BF16);
    test_attention(1, 577, 2, 64, UFO_PREC_BF16);
    cpu_debug_disable_native_bf16(0);

    test_layernorm(1, 1024);
    test_layernorm(577, 192);
    test_layernorm(7, 33);
    test_batchnorm(5, 1024);
    test_batchnorm(1, 13);
    test_batchnorm(300, 200);
    test_gelu_add(100003);
    test_gelu_add(5);

    return check_summary("test_kernels");
}
