// CUDA backend: every gpu_* op against its ref_* twin (or, for the training
// pass's glue and the device SGD, its plain-C arithmetic) on random data (odd
// shapes, the real T = 577 attention), the heads' losses (gpu_cosface,
// gpu_cosface_sharded with 1-3 shards run at once in threads, gpu_triplet)
// against the host ufo_cosface / ufo_triplet (themselves checked
// against PyTorch in tests/py), then the whole forward (backbone and BNNeck
// heads, several batch sizes) against the reference backend.
// fp32: max rel err <= 1e-4; bf16: cosine >= 0.999 (the CPU bf16 path's bar)
// and max rel err <= 2e-2. Without a visible GPU it prints one SKIP line and
// exits 77 (ctest: skipped).
//
// `test_cuda_ops --quick` skips the whole-forward checks.
// -DUFO_CUDA_OPS_ONLY builds the op checks alone from the CUDA and reference
// sources (tools/gpu_check.sh's fallback where libufo's CPU dependencies are missing).
#define _GNU_SOURCE   // pthread_timedjoin_np (the sharded CosFace check's watchdog)
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ref/ref.h"
#include "check.h"
#ifndef UFO_CUDA_OPS_ONLY
#include "base/error.h"
#include "model/vit.h"
#include "train/cosface.h"
#include "train/triplet.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL_F32 1e-4
#define TOL_BF16_REL 2e-2
#define TOL_BF16_COS 0.999

static gpu_ctx *G;

#define TEST_RNG_SEED 0x2545f4914f6cdd1dull
#include "rand_buf.h"
#include "vit_random.h"
static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb);
}

// The textbook round-to-nearest-even, independent of the device's conversion.
static uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// --- device buffers ---------------------------------------------------------

static void *dev(size_t bytes) {
    void *p = gpu_malloc(G, bytes);
    if (!p) {
        fprintf(stderr, "%s\n", gpu_error());
        exit(1);
    }
    return p;
}
static float *dev_from(const float *x, size_t n) {
    float *d = dev(n * sizeof(float));
    if (gpu_upload(G, d, x, n * sizeof(float))) abort();
    return d;
}
// A device copy of x in dtype dt (bf16: converted on the device).
static void *dev_in(const float *x, size_t n, gpu_dtype dt) {
    float *f = dev_from(x, n);
    if (dt == GPU_F32) return f;
    void *b = dev(n * 2);
    CHECK(gpu_to_bf16(G, b, f, n) == 0, "%s", gpu_error());
    gpu_free(G, f);
    return b;
}
// Device buffer (fp32 or bf16) -> host fp32.
static float *to_host(const void *d, size_t n, gpu_dtype dt) {
    float *h = zeros(n);
    if (dt == GPU_F32) {
        CHECK(gpu_download(G, h, d, n * 4) == 0 && gpu_sync(G) == 0, "%s", gpu_error());
        return h;
    }
    uint16_t *b = malloc(n * 2 + 2);
    CHECK(gpu_download(G, b, d, n * 2) == 0 && gpu_sync(G) == 0, "%s", gpu_error());
    for (size_t i = 0; i < n; i++) h[i] = bf16_to_f32(b[i]);
    free(b);
    return h;
}
// Rounds a host copy through bf16 (what the GPU's bf16 inputs hold).
static float *rounded(const float *x, size_t n) {
    float *r = zeros(n);
    for (size_t i = 0; i < n; i++) r[i] = bf16_to_f32(bf16_rne(x[i]));
    return r;
}

static void compare(const char *what, const float *got, const float *ref, size_t n, gpu_dtype dt) {
    double rel = check_max_rel_err(got, ref, (long)n), cs = cosine(got, ref, n);
    printf("  %-44s %s  max rel err %.3g  cosine %.7f\n", what, dt == GPU_BF16 ? "bf16" : "fp32", rel, cs);
    if (dt == GPU_F32) {
        CHECK(rel <= TOL_F32, "%s fp32: max rel err %.3g", what, rel);
    } else {
        CHECK(rel <= TOL_BF16_REL, "%s bf16: max rel err %.3g", what, rel);
        CHECK(cs >= TOL_BF16_COS, "%s bf16: cosine %.6f", what, cs);
    }
}

// --- ops ------------------------------------------------------------------

// A gradient's bf16 twin (d16, device) is its fp32 values (got, host) rounded
// to nearest even, bit for bit: what gpu_linear_backward would have made of it.
static void check_bf16_twin(const char *what, const void *d16, const float *got, size_t n) {
    uint16_t *h = malloc(n * 2);
    CHECK(gpu_download(G, h, d16, n * 2) == 0 && gpu_sync(G) == 0, "%s", gpu_error());
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i] != bf16_rne(got[i]);
    CHECK(bad == 0, "%s: %zu of %zu bf16 copies are not the rounded fp32 values", what, bad, n);
    free(h);
}

static void test_to_bf16(void) {
    const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.00390625f /* tie, even */, 1.01171875f /* tie, odd */,
                             3.4e38f, -3.4e38f, INFINITY, -INFINITY, 1e-40f /* subnormal */, 65504.0f};
    size_t ns = sizeof special / sizeof special[0], n = 100003;
    float *x = rand_buf(n, 1000.0f, 0.0f);
    memcpy(x, special, sizeof special);
    float *dx = dev_from(x, n);
    uint16_t *db = dev(n * 2), *got = malloc(n * 2);
    CHECK(gpu_to_bf16(G, db, dx, n) == 0, "%s", gpu_error());
    CHECK(gpu_download(G, got, db, n * 2) == 0 && gpu_sync(G) == 0, "%s", gpu_error());
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != bf16_rne(x[i]);
    printf("  %-44s %zu of %zu differ from round-to-nearest-even (%zu specials)\n", "to_bf16", bad, n, ns);
    CHECK(bad == 0, "to_bf16: %zu values differ", bad);
    gpu_free(G, dx);
    gpu_free(G, db);
    free(x);
    free(got);
}

static void test_linear(int rows, int in, int out, int bias, int accumulate, gpu_dtype dt) {
    size_t nx = (size_t)rows * in, nw = (size_t)out * in, ny = (size_t)rows * out;
    float *x = rand_buf(nx, 1.0f, 0.0f), *w = rand_buf(nw, 0.5f, 0.0f), *b = rand_buf(out, 1.0f, 0.0f);
    float *y0 = rand_buf(ny, 2.0f, 0.0f);  // the residual for accumulate
    // The reference sees the inputs the GPU sees (bf16-rounded with bf16).
    float *xr = dt == GPU_BF16 ? rounded(x, nx) : x, *wr = dt == GPU_BF16 ? rounded(w, nw) : w;
    float *ref = zeros(ny);
    ref_linear(ref, xr, wr, bias ? b : NULL, rows, in, out);
    if (accumulate) ref_add(ref, y0, ny);
    void *dx = dev_in(x, nx, dt), *dw = dev_in(w, nw, dt);
    float *db = dev_from(b, out), *dy = dev_from(y0, ny);
    CHECK(gpu_linear(G, dy, dx, dw, bias ? db : NULL, rows, in, out, dt, accumulate) == 0, "%s", gpu_error());
    float *got = to_host(dy, ny, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "linear %dx%d->%d%s%s", rows, in, out, bias ? " +bias" : "", accumulate ? " +=" : "");
    compare(what, got, ref, ny, dt);
    if (accumulate) {   // out of place: y = r + x W^T + b into a fresh buffer, r left as it was
        float *dr = dev_from(y0, ny), *dy2 = dev(ny * 4);
        CHECK(gpu_linear_residual(G, dy2, dr, dx, dw, bias ? db : NULL, rows, in, out, dt) == 0, "%s", gpu_error());
        float *got2 = to_host(dy2, ny, GPU_F32), *r2 = to_host(dr, ny, GPU_F32);
        snprintf(what, sizeof what, "linear %dx%d->%d%s residual out of place", rows, in, out, bias ? " +bias" : "");
        compare(what, got2, ref, ny, dt);
        CHECK(!memcmp(r2, y0, ny * 4), "linear residual: the residual input was changed");
        gpu_free(G, dr), gpu_free(G, dy2);
        free(got2), free(r2);
    }
    gpu_free(G, dx), gpu_free(G, dw), gpu_free(G, db), gpu_free(G, dy);
    if (xr != x) free(xr), free(wr);
    free(x), free(w), free(b), free(y0), free(ref), free(got);
}

// gpu_linear_out with a bf16 y and bias (the inference forward's qkv and fc1):
// the reference on the bf16-rounded x, W and b; compared at the bf16 tolerances.
static void test_linear_bf16_out(int rows, int in, int out) {
    size_t nx = (size_t)rows * in, nw = (size_t)out * in, ny = (size_t)rows * out;
    float *x = rand_buf(nx, 1.0f, 0.0f), *w = rand_buf(nw, 0.5f, 0.0f), *b = rand_buf(out, 1.0f, 0.0f);
    float *xr = rounded(x, nx), *wr = rounded(w, nw), *br = rounded(b, out), *ref = zeros(ny);
    ref_linear(ref, xr, wr, br, rows, in, out);
    void *dx = dev_in(x, nx, GPU_BF16), *dw = dev_in(w, nw, GPU_BF16), *db = dev_in(b, out, GPU_BF16);
    void *dy = dev(ny * 2);
    CHECK(gpu_linear_out(G, dy, GPU_BF16, dx, dw, db, rows, in, out, GPU_BF16, 0) == 0, "%s", gpu_error());
    float *got = to_host(dy, ny, GPU_BF16);
    char what[96];
    snprintf(what, sizeof what, "linear %dx%d->%d +bias, bf16 out", rows, in, out);
    compare(what, got, ref, ny, GPU_BF16);
    gpu_free(G, dx), gpu_free(G, dw), gpu_free(G, db), gpu_free(G, dy);
    free(x), free(w), free(b), free(xr), free(wr), free(br), free(ref), free(got);
}

static void test_gelu(gpu_dtype dt) {
    size_t n = 50001;
    float *x = rand_buf(n, 6.0f, 0.0f), *ref = zeros(n);
    ref_gelu(ref, x, n);
    float *dx = dev_from(x, n);
    void *dy = dt == GPU_F32 ? (void *)dx : dev(n * 2);  // fp32: in place, as the forward does
    CHECK(gpu_gelu(G, dy, dx, n, dt) == 0, "%s", gpu_error());
    float *got = to_host(dy, n, dt);
    compare("gelu (exact erf)", got, ref, n, dt);
    if (dt == GPU_BF16) {  // from bf16, in place (the inference forward's fc1)
        float *xr = rounded(x, n);
        ref_gelu(ref, xr, n);
        void *db = dev_in(x, n, GPU_BF16);
        CHECK(gpu_gelu_from(G, db, db, GPU_BF16, n, GPU_BF16) == 0, "%s", gpu_error());
        float *g2 = to_host(db, n, GPU_BF16);
        compare("gelu from bf16, in place", g2, ref, n, dt);
        gpu_free(G, db);
        free(xr), free(g2);
    }
    if (dy != dx) gpu_free(G, dy);
    gpu_free(G, dx);
    free(x), free(ref), free(got);
}

static void test_layernorm(int rows, int c, int stride_rows, gpu_dtype dt) {
    // stride_rows > 1: only every stride_rows-th row is normalised (the class tokens).
    size_t stride = (size_t)c * stride_rows, nx = (size_t)rows * stride;
    float *x = rand_buf(nx, 3.0f, 5.0f), *g = rand_buf(c, 0.5f, 1.0f), *b = rand_buf(c, 0.5f, 0.0f);
    float *dense = zeros((size_t)rows * c), *ref = zeros((size_t)rows * c);
    for (int r = 0; r < rows; r++) memcpy(dense + (size_t)r * c, x + r * stride, c * sizeof(float));
    ref_layernorm(ref, dense, g, b, rows, c, 1e-6f);
    float *dx = dev_from(x, nx), *dg = dev_from(g, c), *dbb = dev_from(b, c);
    void *dy = dev((size_t)rows * c * 4);
    CHECK(gpu_layernorm(G, dy, dx, dg, dbb, rows, c, stride, 1e-6f, dt) == 0, "%s", gpu_error());
    float *got = to_host(dy, (size_t)rows * c, dt);
    char what[96];
    snprintf(what, sizeof what, "layernorm %dx%d%s", rows, c, stride_rows > 1 ? " strided" : "");
    compare(what, got, ref, (size_t)rows * c, dt);
    gpu_free(G, dx), gpu_free(G, dg), gpu_free(G, dbb), gpu_free(G, dy);
    free(x), free(g), free(b), free(dense), free(ref), free(got);
}

static void test_batchnorm(void) {
    int n = 7, c = 300;
    float *x = rand_buf((size_t)n * c, 2.0f, 0.5f), *g = rand_buf(c, 0.5f, 1.0f), *b = rand_buf(c, 0.5f, 0.0f);
    float *mean = rand_buf(c, 0.5f, 0.0f), *var = rand_buf(c, 0.4f, 0.6f), *ref = zeros((size_t)n * c);
    ref_batchnorm(ref, x, g, b, mean, var, n, c, 1e-5f);
    float *dx = dev_from(x, (size_t)n * c), *dg = dev_from(g, c), *dbb = dev_from(b, c);
    float *dm = dev_from(mean, c), *dv = dev_from(var, c);
    CHECK(gpu_batchnorm(G, dx, dx, dg, dbb, dm, dv, n, c, 1e-5f) == 0, "%s", gpu_error());
    float *got = to_host(dx, (size_t)n * c, GPU_F32);
    compare("batchnorm (in place)", got, ref, (size_t)n * c, GPU_F32);
    gpu_free(G, dx), gpu_free(G, dg), gpu_free(G, dbb), gpu_free(G, dm), gpu_free(G, dv);
    free(x), free(g), free(b), free(mean), free(var), free(ref), free(got);
}

// im2col + linear = the patch embedding (a strided conv in the reference).
static void test_patch_embed(int B, int S, int p, int C, gpu_dtype dt) {
    int P = (S / p) * (S / p), K = 3 * p * p;
    size_t ni = (size_t)B * 3 * S * S, nw = (size_t)C * K, ny = (size_t)B * P * C;
    float *img = rand_buf(ni, 1.0f, 0.0f), *w = rand_buf(nw, 0.2f, 0.0f), *b = rand_buf(C, 0.5f, 0.0f);
    float *imr = dt == GPU_BF16 ? rounded(img, ni) : img, *wr = dt == GPU_BF16 ? rounded(w, nw) : w;
    float *ref = zeros(ny);
    ref_patch_embed(ref, imr, wr, b, B, S, S, p, C);
    float *di = dev_from(img, ni), *dbias = dev_from(b, C), *dy = dev(ny * 4);
    void *dw = dev_in(w, nw, dt), *cols = dev((size_t)B * P * K * (dt == GPU_BF16 ? 2 : 4));
    CHECK(gpu_im2col(G, cols, di, B, S, S, p, dt) == 0, "%s", gpu_error());
    CHECK(gpu_linear(G, dy, cols, dw, dbias, B * P, K, C, dt, 0) == 0, "%s", gpu_error());
    float *got = to_host(dy, ny, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "patch embed %dx3x%dx%d p%d ->%d", B, S, S, p, C);
    compare(what, got, ref, ny, dt);
    gpu_free(G, di), gpu_free(G, dbias), gpu_free(G, dy), gpu_free(G, dw), gpu_free(G, cols);
    if (imr != img) free(imr), free(wr);
    free(img), free(w), free(b), free(ref), free(got);
}

static void test_assemble(void) {
    int B = 3, T = 10, D = 40;
    float *patches = rand_buf((size_t)B * (T - 1) * D, 1, 0), *cls = rand_buf(D, 1, 0), *pos = rand_buf((size_t)T * D, 1, 0);
    float *ref = zeros((size_t)B * T * D);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++)
                ref[((size_t)b * T + t) * D + d] =
                    (t == 0 ? cls[d] : patches[((size_t)b * (T - 1) + t - 1) * D + d]) + pos[(size_t)t * D + d];
    float *dp = dev_from(patches, (size_t)B * (T - 1) * D), *dc = dev_from(cls, D), *dpos = dev_from(pos, (size_t)T * D);
    float *dx = dev((size_t)B * T * D * 4);
    CHECK(gpu_assemble_tokens(G, dx, dp, dc, dpos, B, T, D) == 0, "%s", gpu_error());
    float *got = to_host(dx, (size_t)B * T * D, GPU_F32);
    CHECK(memcmp(got, ref, (size_t)B * T * D * 4) == 0, "assemble_tokens differs");
    printf("  %-44s exact: %s\n", "assemble tokens", memcmp(got, ref, (size_t)B * T * D * 4) ? "no" : "yes");
    gpu_free(G, dp), gpu_free(G, dc), gpu_free(G, dpos), gpu_free(G, dx);
    free(patches), free(cls), free(pos), free(ref), free(got);
}

static void test_attention(int B, int T, int H, int hd, float scale, gpu_dtype dt, int flash) {
    gpu_set_flash(G, flash);
    if (flash && !gpu_uses_flash(G, dt, hd)) return;
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    float *qkv = rand_buf(nq, scale, 0.0f), *ref = zeros(no);
    float *qr = dt == GPU_BF16 ? rounded(qkv, nq) : qkv;
    ref_attention(ref, qr, B, T, H, hd);
    float *dq = dev_from(qkv, nq);
    void *dout = dev(no * (dt == GPU_BF16 ? 2 : 4));
    CHECK(gpu_attention(G, dout, dq, B, T, H, hd, dt) == 0, "%s", gpu_error());
    float *got = to_host(dout, no, dt);
    char what[96];
    snprintf(what, sizeof what, "attention%s B%d T%d H%d hd%d (scale %.1f)", flash ? " flash" : "", B, T, H, hd,
             scale);
    compare(what, got, ref, no, dt);
    if (dt == GPU_BF16) {  // qkv handed over in bf16 (the inference forward's): the same values, bit for bit
        void *dqb = dev_in(qkv, nq, GPU_BF16), *dout2 = dev(no * 2);
        CHECK(gpu_attention_from(G, dout2, dqb, GPU_BF16, B, T, H, hd, dt) == 0, "%s", gpu_error());
        float *got2 = to_host(dout2, no, dt);
        CHECK(!memcmp(got, got2, no * sizeof(float)), "%s: from a bf16 qkv differs from an fp32 one", what);
        gpu_free(G, dqb), gpu_free(G, dout2);
        free(got2);
    }
    gpu_free(G, dq), gpu_free(G, dout);
    if (qr != qkv) free(qr);
    free(qkv), free(ref), free(got);
    gpu_set_flash(G, 0);
}

// --- backward (training) ops ------------------------------------------------------
// bf16 results are compared with the fp32 reference on the unrounded inputs.

static void test_gemm(int M, int N, int K, int tA, int tB, float beta, gpu_dtype dt) {
    float *A = rand_buf((size_t)M * K, 1, 0), *B = rand_buf((size_t)K * N, 1, 0), *C = rand_buf((size_t)M * N, 1, 0);
    float *ref = zeros((size_t)M * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = beta * (double)C[(size_t)i * N + j];
            for (int k = 0; k < K; k++)
                acc += (double)A[tA ? (size_t)k * M + i : (size_t)i * K + k] * B[tB ? (size_t)j * K + k : (size_t)k * N + j];
            ref[(size_t)i * N + j] = (float)acc;
        }
    float *dA = dev_from(A, (size_t)M * K), *dB = dev_from(B, (size_t)K * N), *dC = dev_from(C, (size_t)M * N);
    CHECK(gpu_gemm(G, dC, dA, dB, M, N, K, tA, tB, beta, dt) == 0, "%s", gpu_error());
    float *got = to_host(dC, (size_t)M * N, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "gemm %dx%dx%d tA%d tB%d beta %.0f", M, N, K, tA, tB, beta);
    compare(what, got, ref, (size_t)M * N, dt);
    gpu_free(G, dA), gpu_free(G, dB), gpu_free(G, dC);
    free(A), free(B), free(C), free(ref), free(got);
}

static void test_linear_backward(int n, int in, int out, gpu_dtype dt) {
    float *x = rand_buf((size_t)n * in, 1, 0), *w = rand_buf((size_t)out * in, 0.5f, 0), *dy = rand_buf((size_t)n * out, 1, 0);
    float *dw0 = rand_buf((size_t)out * in, 0.5f, 0), *db0 = rand_buf(out, 0.5f, 0);  // accumulated into
    float *rdx = zeros((size_t)n * in), *rdw = zeros((size_t)out * in), *rdb = zeros(out);
    memcpy(rdw, dw0, (size_t)out * in * 4), memcpy(rdb, db0, (size_t)out * 4);
    ref_linear_backward(rdx, rdw, rdb, dy, x, w, n, in, out);
    float *dx = dev((size_t)n * in * 4), *dw = dev_from(dw0, (size_t)out * in), *db = dev_from(db0, out);
    float *ddy = dev_from(dy, (size_t)n * out), *dxx = dev_from(x, (size_t)n * in), *dww = dev_from(w, (size_t)out * in);
    CHECK(gpu_linear_backward(G, dx, dw, db, ddy, NULL, dxx, GPU_F32, dww, GPU_F32, n, in, out, dt) == 0, "%s",
          gpu_error());
    float *gdx = to_host(dx, (size_t)n * in, GPU_F32), *gdw = to_host(dw, (size_t)out * in, GPU_F32);
    float *gdb = to_host(db, out, GPU_F32);
    if (dt == GPU_BF16) {  // x, w and dy handed over already in bf16: the same values, bit for bit
        void *xb = dev((size_t)n * in * 2), *wb = dev((size_t)out * in * 2), *yb = dev((size_t)n * out * 2);
        float *dw2 = dev_from(dw0, (size_t)out * in), *dx2 = dev((size_t)n * in * 4);
        CHECK(gpu_to_bf16(G, xb, dxx, (size_t)n * in) == 0 && gpu_to_bf16(G, wb, dww, (size_t)out * in) == 0 &&
                  gpu_to_bf16(G, yb, ddy, (size_t)n * out) == 0 &&
                  gpu_linear_backward(G, dx2, dw2, NULL, ddy, yb, xb, GPU_BF16, wb, GPU_BF16, n, in, out, dt) == 0,
              "%s", gpu_error());
        float *h2 = to_host(dw2, (size_t)out * in, GPU_F32), *hx = to_host(dx2, (size_t)n * in, GPU_F32);
        CHECK(!memcmp(h2, gdw, (size_t)out * in * 4), "linear backward: dw from a bf16 x differs from an fp32 x's");
        CHECK(!memcmp(hx, gdx, (size_t)n * in * 4), "linear backward: dx from a bf16 w differs from an fp32 w's");
        gpu_free(G, xb), gpu_free(G, wb), gpu_free(G, yb), gpu_free(G, dw2), gpu_free(G, dx2);
        free(h2), free(hx);
    }
    char what[96];
    snprintf(what, sizeof what, "linear backward %dx%d->%d dx", n, in, out);
    compare(what, gdx, rdx, (size_t)n * in, dt);
    snprintf(what, sizeof what, "linear backward %dx%d->%d dw +=", n, in, out);
    compare(what, gdw, rdw, (size_t)out * in, dt);
    snprintf(what, sizeof what, "linear backward %dx%d->%d db +=", n, in, out);
    compare(what, gdb, rdb, out, GPU_F32);  // a plain fp32 column sum in both precisions
    gpu_free(G, dx), gpu_free(G, dw), gpu_free(G, db), gpu_free(G, ddy), gpu_free(G, dxx), gpu_free(G, dww);
    free(x), free(w), free(dy), free(dw0), free(db0), free(rdx), free(rdw), free(rdb), free(gdx), free(gdw), free(gdb);
}

// c % 32 == 0 and c <= 1024: the one-pass LayerNorm backward; otherwise the row
// kernel and a column pass.
static void test_norm_gelu_backward(int n, int c) {
    size_t nc = (size_t)n * c;
    float *x = rand_buf(nc, 2, 1), *dy = rand_buf(nc, 1, 0), *g = rand_buf(c, 0.5f, 1), *dg0 = rand_buf(c, 1, 0);
    float *db0 = rand_buf(c, 1, 0), *rdx = zeros(nc), *rdg = zeros(c), *rdb = zeros(c);
    memcpy(rdg, dg0, c * 4), memcpy(rdb, db0, c * 4);
    ref_layernorm_backward(rdx, rdg, rdb, dy, x, g, n, c, 1e-6f);
    float *dx = dev(nc * 4), *ddg = dev_from(dg0, c), *ddb = dev_from(db0, c), *ddy = dev_from(dy, nc);
    float *dxx = dev_from(x, nc), *dgg = dev_from(g, c);
    CHECK(gpu_layernorm_backward(G, dx, ddg, ddb, ddy, dxx, dgg, n, c, 1e-6f, 0) == 0, "%s", gpu_error());
    float *a = to_host(dx, nc, GPU_F32), *b = to_host(ddg, c, GPU_F32), *d = to_host(ddb, c, GPU_F32);
    printf("  layernorm backward %d x %d:\n", n, c);
    compare("layernorm backward dx", a, rdx, nc, GPU_F32);
    compare("layernorm backward dgamma +=", b, rdg, c, GPU_F32);
    compare("layernorm backward dbeta +=", d, rdb, c, GPU_F32);
    // dx_accumulate: dx += the same gradient, the residual's share already in dx
    // (bit for bit the write above plus a separate fp32 addition).
    float *res = rand_buf(nc, 1, 0), *want = zeros(nc);
    for (size_t i = 0; i < nc; i++) want[i] = res[i] + a[i];
    float *dxa = dev_from(res, nc);
    CHECK(gpu_layernorm_backward(G, dxa, NULL, NULL, ddy, dxx, dgg, n, c, 1e-6f, 1) == 0, "%s", gpu_error());
    float *got = to_host(dxa, nc, GPU_F32);
    CHECK(!memcmp(got, want, nc * 4), "layernorm backward dx += differs from a write plus an add");
    compare("layernorm backward dx += (vs reference)", got, want, nc, GPU_F32);
    gpu_free(G, dxa);
    free(a), free(b), free(d), free(res), free(want), free(got);
    // GELU backward (x spread over the interesting range)
    float *xg = rand_buf(nc, 5, 0), *ref = zeros(nc);
    ref_gelu_backward(ref, dy, xg, nc);
    float *dxg = dev_from(xg, nc);
    CHECK(gpu_gelu_backward(G, dx, ddy, dxg, nc) == 0, "%s", gpu_error());
    a = to_host(dx, nc, GPU_F32);
    compare("gelu backward (exact erf)", a, ref, nc, GPU_F32);
    free(a), free(xg), free(ref);
    gpu_free(G, dxg);
    gpu_free(G, dx), gpu_free(G, ddg), gpu_free(G, ddb), gpu_free(G, ddy), gpu_free(G, dxx), gpu_free(G, dgg);
    free(x), free(dy), free(g), free(dg0), free(db0), free(rdx), free(rdg), free(rdb);
}

// The bf16 training's fused passes (model/vit_train_cuda.c's bf16 path).
// gpu_gelu_bf16: GELU and its derivative rounded, against ref_gelu /
// ref_gelu_backward: each within half a bf16 step of the reference (what
// rounding it gives) plus the fp32 function's own error (the device's erff
// and expf; GELU's negative tail cancels in 1 + erf, where 1e-6 absolute is
// many bf16 steps of a tiny value).
static void check_rounded(const char *what, const void *d16, const float *want, size_t n) {
    float *got = to_host(d16, n, GPU_BF16);
    size_t bad = 0, exact = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), bar = fabs(want[i]) / 256 * 1.01 + 1e-6;
        bad += err > bar;
        exact += got[i] == bf16_to_f32(bf16_rne(want[i]));
        if (err / bar > worst) worst = err / bar;
    }
    printf("  %-44s bf16  %zu of %zu the reference rounded, worst %.2f of the bar\n", what, exact, n, worst);
    CHECK(bad == 0, "%s: %zu of %zu values further than half a bf16 step from the reference", what, bad, n);
    free(got);
}

static void test_gelu_bf16(size_t n) {
    float *x = rand_buf(n, 5, 0), *ones = zeros(n), *y = zeros(n), *d = zeros(n);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    ref_gelu(y, x, n);
    ref_gelu_backward(d, ones, x, n);
    float *dx = dev_from(x, n);
    void *gy = dev(n * 2 + 8), *gd = dev(n * 2 + 8);
    CHECK(gpu_gelu_bf16(G, gy, gd, dx, n) == 0, "%s", gpu_error());
    check_rounded(n % 4 ? "gelu bf16 (n % 4 != 0)" : "gelu bf16", gy, y, n);
    check_rounded(n % 4 ? "gelu derivative bf16 (n % 4 != 0)" : "gelu derivative bf16", gd, d, n);
    gpu_free(G, dx), gpu_free(G, gy), gpu_free(G, gd);
    free(x), free(ones), free(y), free(d);
}

// gpu_grad_rows_bf16: g = dy * s[row / per] * mul rounded (bit for bit: one or
// two fp32 products), db += its column sums (against double sums).
static void test_grad_rows_bf16(int n, int c, int use_scale, int use_mul) {
    size_t nc = (size_t)n * c;
    int per = 5, ns = (n + per - 1) / per;
    float *m0 = rand_buf(nc, 1, 0.5f), *dy = rand_buf(nc, 1, 0), *mul = rounded(m0, nc), *s = rand_buf(ns, 1, 1);
    float *db0 = rand_buf(c, 1, 0), *want = zeros(nc), *wdb = zeros(c);
    s[0] = 0;   // a dropped sample
    for (int k = 0; k < c; k++) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)i * c + k;
            float g = dy[o] * (use_scale ? s[i / per] : 1.0f);
            g = g * (use_mul ? mul[o] : 1.0f);
            want[o] = g;
            sum += g;
        }
        wdb[k] = (float)(db0[k] + sum);
    }
    float *ddy = dev_from(dy, nc), *ds = dev_from(s, ns), *ddb = dev_from(db0, c);
    void *dmul = dev_in(mul, nc, GPU_BF16), *dst = dev(nc * 2);
    CHECK(gpu_grad_rows_bf16(G, dst, ddb, ddy, use_mul ? dmul : NULL, use_scale ? ds : NULL, per, n, c) == 0, "%s",
          gpu_error());
    char what[96];
    snprintf(what, sizeof what, "grad rows bf16 %dx%d%s%s", n, c, use_scale ? " scaled" : "", use_mul ? " x gelu'" : "");
    check_bf16_twin(what, dst, want, nc);
    float *got = to_host(ddb, c, GPU_F32);
    strncat(what, " db +=", sizeof what - strlen(what) - 1);
    compare(what, got, wdb, c, GPU_F32);
    gpu_free(G, ddy), gpu_free(G, ds), gpu_free(G, ddb), gpu_free(G, dmul), gpu_free(G, dst);
    free(m0), free(dy), free(mul), free(s), free(db0), free(want), free(wdb), free(got);
}

static void test_batchnorm_train_backward(int n, int c) {
    size_t nc = (size_t)n * c;
    float *x = rand_buf(nc, 2, 0.5f), *g = rand_buf(c, 0.5f, 1), *b = rand_buf(c, 0.5f, 0), *rm = rand_buf(c, 0.5f, 0);
    float *rv = rand_buf(c, 0.4f, 0.6f), *dy = rand_buf(nc, 1, 0);
    float *ry = zeros(nc), *rmean = zeros(c), *rrstd = zeros(c), *rrm = zeros(c), *rrv = zeros(c);
    memcpy(rrm, rm, c * 4), memcpy(rrv, rv, c * 4);
    ref_batchnorm_train(ry, rmean, rrstd, x, g, b, rrm, rrv, n, c, 1e-5f, 0.1f);
    float *dx_ = dev_from(x, nc), *dg_ = dev_from(g, c), *db_ = dev_from(b, c), *drm = dev_from(rm, c);
    float *drv = dev_from(rv, c), *dyy = dev(nc * 4), *dmean = dev(c * 4), *drstd = dev(c * 4);
    CHECK(gpu_batchnorm_train(G, dyy, dmean, drstd, dx_, dg_, db_, drm, drv, n, c, 1e-5f, 0.1f) == 0, "%s", gpu_error());
    float *a = to_host(dyy, nc, GPU_F32), *m = to_host(drm, c, GPU_F32), *v = to_host(drv, c, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "batchnorm train n=%d y", n);
    compare(what, a, ry, nc, GPU_F32);
    compare("batchnorm train running_mean", m, rrm, c, GPU_F32);
    compare("batchnorm train running_var (unbiased)", v, rrv, c, GPU_F32);
    free(a), free(m), free(v);
    // backward with the reference's saved statistics
    float *rdx = zeros(nc), *rdg = zeros(c), *rdb = zeros(c);
    ref_batchnorm_backward(rdx, rdg, rdb, dy, x, rmean, rrstd, g, n, c);
    float *ddy = dev_from(dy, nc), *dm2 = dev_from(rmean, c), *dr2 = dev_from(rrstd, c), *gdx = dev(nc * 4);
    float *gdg = dev_from(rdg, c), *gdb = dev_from(rdb, c);  // accumulate onto the reference's result: 2x
    CHECK(gpu_batchnorm_backward(G, gdx, gdg, gdb, ddy, dx_, dm2, dr2, dg_, n, c) == 0, "%s", gpu_error());
    a = to_host(gdx, nc, GPU_F32), m = to_host(gdg, c, GPU_F32), v = to_host(gdb, c, GPU_F32);
    for (int k = 0; k < c; k++) rdg[k] *= 2, rdb[k] *= 2;
    snprintf(what, sizeof what, "batchnorm backward n=%d dx", n);
    compare(what, a, rdx, nc, GPU_F32);
    compare("batchnorm backward dgamma +=", m, rdg, c, GPU_F32);
    compare("batchnorm backward dbeta +=", v, rdb, c, GPU_F32);
    free(a), free(m), free(v);
    gpu_free(G, dx_), gpu_free(G, dg_), gpu_free(G, db_), gpu_free(G, drm), gpu_free(G, drv), gpu_free(G, dyy);
    gpu_free(G, dmean), gpu_free(G, drstd), gpu_free(G, ddy), gpu_free(G, dm2), gpu_free(G, dr2), gpu_free(G, gdx);
    gpu_free(G, gdg), gpu_free(G, gdb);
    free(x), free(g), free(b), free(rm), free(rv), free(dy), free(ry), free(rmean), free(rrstd), free(rrm), free(rrv);
    free(rdx), free(rdg), free(rdb);
}

static void test_patch_embed_backward(int B, int S, int p, int C, gpu_dtype dt) {
    int P = (S / p) * (S / p), K = 3 * p * p;
    size_t ni = (size_t)B * 3 * S * S, ny = (size_t)B * P * C;
    float *img = rand_buf(ni, 1, 0), *dy = rand_buf(ny, 1, 0), *dw0 = rand_buf((size_t)C * K, 1, 0);
    float *db0 = rand_buf(C, 1, 0), *rdw = zeros((size_t)C * K), *rdb = zeros(C);
    memcpy(rdw, dw0, (size_t)C * K * 4), memcpy(rdb, db0, C * 4);
    ref_patch_embed_backward(rdw, rdb, dy, img, B, S, S, p, C);
    float *di = dev_from(img, ni), *ddy = dev_from(dy, ny), *ddw = dev_from(dw0, (size_t)C * K), *ddb = dev_from(db0, C);
    CHECK(gpu_patch_embed_backward(G, ddw, ddb, ddy, di, B, S, S, p, C, dt) == 0, "%s", gpu_error());
    float *a = to_host(ddw, (size_t)C * K, GPU_F32), *b = to_host(ddb, C, GPU_F32);
    compare("patch embed backward dw +=", a, rdw, (size_t)C * K, dt);
    compare("patch embed backward db +=", b, rdb, C, GPU_F32);
    gpu_free(G, di), gpu_free(G, ddy), gpu_free(G, ddw), gpu_free(G, ddb);
    free(img), free(dy), free(dw0), free(db0), free(rdw), free(rdb), free(a), free(b);
}

// flash: the flash backward (bf16, hd 64 only), else the GEMM path.
static void test_attention_backward(int B, int T, int H, int hd, float scale, gpu_dtype dt, int flash) {
    gpu_set_flash(G, flash);
    if (flash && !gpu_uses_flash(G, dt, hd)) return;
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    float *qkv = rand_buf(nq, scale, 0), *dout = rand_buf(no, 1, 0), *ref = zeros(nq);
    ref_attention_backward(ref, dout, qkv, B, T, H, hd);
    float *dq = dev_from(qkv, nq), *dd = dev_from(dout, no), *dqkv = dev(nq * 4);
    void *dqkv16 = dt == GPU_BF16 ? dev(nq * 2) : NULL;
    CHECK(gpu_attention_backward(G, dqkv, dqkv16, dd, dq, B, T, H, hd, dt) == 0, "%s", gpu_error());
    float *got = to_host(dqkv, nq, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "attention backward%s B%d T%d H%d hd%d", flash ? " flash" : "", B, T, H, hd);
    compare(what, got, ref, nq, dt);
    if (dqkv16) check_bf16_twin(what, dqkv16, got, nq);
    if (dt == GPU_BF16) {  // qkv kept in bf16 (the training's): the same values, bit for bit
        void *dqb = dev_in(qkv, nq, GPU_BF16);
        float *dqkv2 = dev(nq * 4);
        CHECK(gpu_attention_backward_from(G, dqkv2, NULL, dd, dqb, GPU_BF16, B, T, H, hd, dt) == 0, "%s",
              gpu_error());
        float *got2 = to_host(dqkv2, nq, GPU_F32);
        // The flash backward adds dq up with atomics across key blocks: on a GPU its
        // order, so dq's last bits, vary from run to run (dk, dv do not). dq then
        // within 1e-5 of its largest value, the rest bit for bit.
        double dq_max = 0, dq_diff = 0;
        size_t other_diff = 0;
        for (size_t i = 0; i < nq; i++) {
            if (flash && (i / ((size_t)H * hd)) % 3 == 0) {
                dq_max = fmax(dq_max, fabs(got[i]));
                dq_diff = fmax(dq_diff, fabs((double)got[i] - got2[i]));
            } else other_diff += memcmp(&got[i], &got2[i], sizeof(float)) != 0;
        }
        CHECK(other_diff == 0 && dq_diff <= 1e-5 * dq_max,
              "%s: from a bf16 qkv differs from an fp32 one (%zu values of dk, dv; dq by %.3g of %.3g)", what,
              other_diff, dq_diff, dq_max);
        // The training's pair: the forward keeps its output (bf16) and row statistics, the
        // backward takes them instead of running the forward again (flash; else the same call).
        size_t no16 = (size_t)B * T * H * hd;
        void *o16 = dev(no16 * 2);
        float *stats = (float *)dev((size_t)2 * B * H * T * 4), *dqkv3 = dev(nq * 4);
        CHECK(gpu_attention_train(G, o16, dqb, GPU_BF16, B, T, H, hd, GPU_BF16, stats) == 0 &&
                  gpu_attention_backward_saved(G, dqkv3, NULL, dd, dqb, GPU_BF16, o16, stats, B, T, H, hd, dt) == 0,
              "%s", gpu_error());
        float *got3 = to_host(dqkv3, nq, GPU_F32);
        char what3[128];
        snprintf(what3, sizeof what3, "%s, saved O + stats", what);
        compare(what3, got3, ref, nq, dt);
        gpu_free(G, dqb), gpu_free(G, dqkv2), gpu_free(G, o16), gpu_free(G, stats), gpu_free(G, dqkv3);
        free(got2), free(got3);
    }
    gpu_set_flash(G, 0);
    gpu_free(G, dq), gpu_free(G, dd), gpu_free(G, dqkv), gpu_free(G, dqkv16);
    free(qkv), free(dout), free(ref), free(got);
}

// The class-query attention (the training's last block) against token 0's
// rows of ref_attention, its backward against ref_attention_backward with an
// output gradient on token 0 only (the other tokens' query gradients: zeros).
static void test_attention_cls(int B, int T, int H, int hd, float scale, gpu_dtype dt) {
    size_t C = (size_t)H * hd, nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = rand_buf(nq, scale, 0), *ro = zeros(no), *rcls = zeros((size_t)B * C), *dcls = rand_buf((size_t)B * C, 1, 0);
    float *dout = zeros(no), *ref = zeros(nq);
    ref_attention(ro, qkv, B, T, H, hd);
    for (int b = 0; b < B; b++) {
        memcpy(rcls + (size_t)b * C, ro + (size_t)b * T * C, C * sizeof(float));
        memcpy(dout + (size_t)b * T * C, dcls + (size_t)b * C, C * sizeof(float));
    }
    ref_attention_backward(ref, dout, qkv, B, T, H, hd);
    float *dq = dev_from(qkv, nq), *dd = dev_from(dcls, (size_t)B * C), *dqkv = dev(nq * 4);
    void *dout_dev = dev((size_t)B * C * (dt == GPU_BF16 ? 2 : 4)), *dqkv16 = dt == GPU_BF16 ? dev(nq * 2) : NULL;
    // NaN everywhere first: every row must be written
    float *nan = malloc(nq * sizeof(float));
    for (size_t i = 0; i < nq; i++) nan[i] = NAN;
    CHECK(gpu_upload(G, dqkv, nan, nq * 4) == 0, "%s", gpu_error());
    CHECK(gpu_attention_cls(G, dout_dev, dq, GPU_F32, B, T, H, hd, dt) == 0 &&
              gpu_attention_cls_backward(G, dqkv, dqkv16, dd, dq, GPU_F32, B, T, H, hd, dt) == 0,
          "%s", gpu_error());
    float *got = to_host(dout_dev, (size_t)B * C, dt), *gd = to_host(dqkv, nq, GPU_F32);
    char what[96];
    snprintf(what, sizeof what, "attention class query B%d T%d H%d hd%d", B, T, H, hd);
    compare(what, got, rcls, (size_t)B * C, dt);
    snprintf(what, sizeof what, "attention class query backward B%d T%d H%d hd%d", B, T, H, hd);
    compare(what, gd, ref, nq, dt);
    if (dqkv16) check_bf16_twin(what, dqkv16, gd, nq);
    if (dt == GPU_BF16) {  // from a bf16 qkv: the same bits
        void *dqb = dev_in(qkv, nq, GPU_BF16), *o2 = dev((size_t)B * C * 2);
        float *dqkv2 = dev(nq * 4);
        CHECK(gpu_attention_cls(G, o2, dqb, GPU_BF16, B, T, H, hd, dt) == 0 &&
                  gpu_attention_cls_backward(G, dqkv2, NULL, dd, dqb, GPU_BF16, B, T, H, hd, dt) == 0,
              "%s", gpu_error());
        float *got2 = to_host(o2, (size_t)B * C, dt), *gd2 = to_host(dqkv2, nq, GPU_F32);
        CHECK(!memcmp(got, got2, (size_t)B * C * sizeof(float)) && !memcmp(gd, gd2, nq * sizeof(float)),
              "%s: from a bf16 qkv differs from an fp32 one", what);
        gpu_free(G, dqb), gpu_free(G, o2), gpu_free(G, dqkv2);
        free(got2), free(gd2);
    }
    CHECK(gpu_attention_cls(G, dout_dev, dq, GPU_BF16, B, T, H, hd, GPU_F32) == -1, "a bf16 qkv at fp32 accepted");
    gpu_free(G, dq), gpu_free(G, dd), gpu_free(G, dqkv), gpu_free(G, dout_dev), gpu_free(G, dqkv16);
    free(qkv), free(ro), free(rcls), free(dcls), free(dout), free(ref), free(nan), free(got), free(gd);
}

// --- glue of the training pass and the device SGD (exact or double-checked) -----

static void test_training_glue(void) {
    size_t n = 70001, rows = 37, cols = 300, stride = 577;
    float *x = rand_buf(n, 3, 0), *y = rand_buf(n, 1, 0), *s = rand_buf(rows, 1, 0);
    // from_bf16: widening is exact
    uint16_t *hb = malloc(n * 2);
    for (size_t i = 0; i < n; i++) hb[i] = bf16_rne(x[i]);
    void *db = dev(n * 2);
    float *df = dev(n * 4);
    CHECK(gpu_upload(G, db, hb, n * 2) == 0 && gpu_from_bf16(G, df, db, n) == 0, "%s", gpu_error());
    float *got = to_host(df, n, GPU_F32);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += got[i] != bf16_to_f32(hb[i]);
    CHECK(bad == 0, "from_bf16: %zu values differ", bad);
    free(got);
    // copy_rows (strided -> dense), copy, zero
    float *dx = dev_from(x, n), *dd = dev(rows * cols * 4);
    CHECK(gpu_copy_rows(G, dd, cols, dx + 5, stride, rows, cols) == 0, "%s", gpu_error());
    got = to_host(dd, rows * cols, GPU_F32);
    bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) bad += got[r * cols + c] != x[5 + r * stride + c];
    CHECK(bad == 0, "copy_rows: %zu values differ", bad);
    free(got);
    CHECK(gpu_copy(G, df, dx, n * 4) == 0 && gpu_zero(G, dd, rows * cols * 4) == 0, "%s", gpu_error());
    got = to_host(df, n, GPU_F32);
    CHECK(memcmp(got, x, n * 4) == 0, "gpu_copy differs");
    free(got);
    got = to_host(dd, rows * cols, GPU_F32);
    bad = 0;
    for (size_t i = 0; i < rows * cols; i++) bad += got[i] != 0.0f;
    CHECK(bad == 0, "gpu_zero left %zu values", bad);
    free(got);
    // gather_rows / scatter_add_rows (Partial-FC's kept rows): ascending with
    // gaps and runs, the first and the last row of a [C, D] matrix; exact.
    {
        enum { C = 233, D = 70, K = 9 };
        static const int keep[K] = {0, 1, 2, 17, 100, 101, 180, 231, 232};
        int *dk = dev(sizeof keep);
        float *dc = dev(K * D * 4);
        CHECK(gpu_upload(G, dk, keep, sizeof keep) == 0 && gpu_gather_rows(G, dc, dx, dk, K, D) == 0, "%s",
              gpu_error());
        got = to_host(dc, K * D, GPU_F32);
        bad = 0;
        for (int j = 0; j < K; j++)
            for (int d = 0; d < D; d++) bad += got[j * D + d] != x[(size_t)keep[j] * D + d];
        CHECK(bad == 0, "gather_rows: %zu values differ", bad);
        free(got);
        // dst = x (C rows); dst[keep[j]] += y[j]: the other rows stay x exactly.
        float *dst = dev_from(x, (size_t)C * D), *dsrc = dev_from(y, K * D);
        CHECK(gpu_scatter_add_rows(G, dst, dsrc, dk, K, D) == 0, "%s", gpu_error());
        got = to_host(dst, (size_t)C * D, GPU_F32);
        bad = 0;
        for (int c = 0, j = 0; c < C; c++) {
            int hit = j < K && keep[j] == c;
            for (int d = 0; d < D; d++) {
                float want = x[(size_t)c * D + d] + (hit ? y[(size_t)j * D + d] : 0.0f);
                bad += hit ? got[(size_t)c * D + d] != want : memcmp(&got[(size_t)c * D + d], &x[(size_t)c * D + d], 4) != 0;
            }
            j += hit;
        }
        CHECK(bad == 0, "scatter_add_rows: %zu values differ", bad);
        free(got);
        CHECK(gpu_gather_rows(G, dc, dx, dk, 0, D) == 0 && gpu_scatter_add_rows(G, dst, dc, dk, 0, D) == 0, "%s",
              gpu_error());
        CHECK(gpu_gather_rows(G, dc, dx, dk, -1, D) != 0, "gather_rows took n = -1");
        // sgd_update_rows: the kept rows take gpu_sgd_update's step (sgd.c's
        // arithmetic, here in double), the others stay as they were, bit for bit.
        float *m0 = rand_buf((size_t)C * D, 1, 0), *pr = copy_buf(x, (size_t)C * D), *mr = copy_buf(m0, (size_t)C * D);
        for (int j = 0; j < K; j++)
            for (int d = 0; d < D; d++) {
                size_t i = (size_t)keep[j] * D + d;
                double step = (double)y[i] * 0.7f + (double)1e-4f * pr[i];
                mr[i] = (float)((double)0.9f * mr[i] + step);
                pr[i] = (float)(pr[i] - (double)0.05f * mr[i]);
            }
        float *dp = dev_from(x, (size_t)C * D), *dg = dev_from(y, (size_t)C * D), *dm = dev_from(m0, (size_t)C * D);
        CHECK(gpu_sgd_update_rows(G, dp, dg, dm, dk, K, D, 0.7f, 1e-4f, 0.9f, 0.05f) == 0, "%s", gpu_error());
        float *gp = to_host(dp, (size_t)C * D, GPU_F32), *gm = to_host(dm, (size_t)C * D, GPU_F32);
        compare("sgd_update_rows parameters", gp, pr, (size_t)C * D, GPU_F32);
        compare("sgd_update_rows momentum", gm, mr, (size_t)C * D, GPU_F32);
        bad = 0;
        for (int c = 0, j = 0; c < C; c++) {
            if (j < K && keep[j] == c) {
                j++;
                continue;
            }
            bad += memcmp(gp + (size_t)c * D, x + (size_t)c * D, D * 4) != 0;
            bad += memcmp(gm + (size_t)c * D, m0 + (size_t)c * D, D * 4) != 0;
        }
        CHECK(bad == 0, "sgd_update_rows changed %zu rows it was not given", bad);
        gpu_free(G, dp), gpu_free(G, dg), gpu_free(G, dm);
        free(m0), free(pr), free(mr), free(gp), free(gm);
        gpu_free(G, dk), gpu_free(G, dc), gpu_free(G, dst), gpu_free(G, dsrc);
    }
    // scale_rows: dst = s * src, then dst += src (s NULL)
    size_t per = n / rows;
    float *dy = dev_from(y, n), *ds = dev_from(s, rows);
    CHECK(gpu_scale_rows(G, df, dx, ds, rows, per, 0) == 0 && gpu_scale_rows(G, df, dy, NULL, rows * per, 1, 1) == 0,
          "%s", gpu_error());
    got = to_host(df, rows * per, GPU_F32);
    float *ref = zeros(rows * per);
    for (size_t i = 0; i < rows * per; i++) ref[i] = s[i / per] * x[i] + y[i];
    compare("scale_rows (drop path) + add", got, ref, rows * per, GPU_F32);
    // add_scaled_rows: dst = base + s * src into a third buffer (the drop-path
    // residual written straight into the next block's input), base untouched.
    float *dsum = dev(rows * per * 4);
    CHECK(gpu_add_scaled_rows(G, dsum, dy, dx, ds, rows, per) == 0, "%s", gpu_error());
    float *got3 = to_host(dsum, rows * per, GPU_F32), *base = to_host(dy, rows * per, GPU_F32);
    for (size_t i = 0; i < rows * per; i++) ref[i] = y[i] + s[i / per] * x[i];
    compare("add_scaled_rows (residual + drop path)", got3, ref, rows * per, GPU_F32);
    CHECK(!memcmp(base, y, rows * per * 4), "add_scaled_rows changed its base");
    gpu_free(G, dsum);
    free(got3), free(base);
    free(got), free(ref);
    // sumsq_chunks: double partial sums
    size_t chunk = 16384, nc = (n + chunk - 1) / chunk;
    double *dp = dev(nc * 8), *hp = malloc(nc * 8), worst = 0;
    CHECK(gpu_sumsq_chunks(G, dp, dx, n, chunk) == 0 && gpu_download(G, hp, dp, nc * 8) == 0 && gpu_sync(G) == 0, "%s",
          gpu_error());
    for (size_t c = 0; c < nc; c++) {
        double r = 0;
        for (size_t i = c * chunk; i < n && i < (c + 1) * chunk; i++) r += (double)x[i] * x[i];
        if (fabs(hp[c] - r) / r > worst) worst = fabs(hp[c] - r) / r;
    }
    printf("  %-44s max rel err %.3g (double)\n", "sumsq_chunks", worst);
    CHECK(worst <= 1e-12, "sumsq_chunks: rel err %.3g", worst);
    // sgd_update: train/sgd.h's update
    float *m0 = rand_buf(n, 1, 0), *dm = dev_from(m0, n), *pr = zeros(n), *mr = zeros(n);
    CHECK(gpu_sgd_update(G, dx, dy, dm, n, 0.7f, 1e-4f, 0.9f, 0.05f) == 0, "%s", gpu_error());
    for (size_t i = 0; i < n; i++) {
        float d = y[i] * 0.7f + 1e-4f * x[i];
        mr[i] = 0.9f * m0[i] + d;
        pr[i] = x[i] - 0.05f * mr[i];
    }
    float *gp = to_host(dx, n, GPU_F32), *gm = to_host(dm, n, GPU_F32);
    compare("sgd_update parameters", gp, pr, n, GPU_F32);
    compare("sgd_update momentum", gm, mr, n, GPU_F32);
    gpu_free(G, db), gpu_free(G, df), gpu_free(G, dx), gpu_free(G, dd), gpu_free(G, dy), gpu_free(G, ds);
    gpu_free(G, dp), gpu_free(G, dm);
    free(x), free(y), free(s), free(hb), free(hp), free(m0), free(pr), free(mr), free(gp), free(gm);
}

// --- the whole forward -------------------------------------------------------
#ifndef UFO_CUDA_OPS_ONLY

// --- the heads' losses against train/cosface.c and train/triplet.c (fp32, rel 1e-4) ---

static double rel1(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1e-30); }

// gpu_cosface vs ufo_cosface on f [n, D], W [classes, D], labels: loss, the
// top-1 and non-zero counts, df (rows other than skip_row, and skip_row alone:
// a zero feature row's df is ~1e12 times the others) and dW, accumulated onto
// a non-zero dW; then the forward alone gives the same loss.
static void test_cosface(const char *what, const float *f, const float *W, const int32_t *lab, int n, int D,
                         int classes, int block, float s, float m, int nonzero_mean, int skip_row, int *host_nonzero) {
    size_t nD = (size_t)n * D, CD = (size_t)classes * D;
    float *dW0 = rand_buf(CD, 1e-3f, 0), *df_r = zeros(nD), *dW_r = copy_buf(dW0, CD);
    ufo_cosface_opts o = {.s = s, .m = m, .block = block, .nonzero_mean = nonzero_mean};
    ufo_cosface_result r;
    CHECK(ufo_cosface(f, W, lab, n, D, classes, &o, df_r, dW_r, &r) == 0, "%s", ufo_error());
    float *fd = dev_from(f, nD), *Wd = dev_from(W, CD), *dfd = dev(nD * 4), *dWd = dev_from(dW0, CD);
    double loss = -1, loss2 = -1;
    int correct = -1, nonzero = -1, c2 = -1;
    CHECK(gpu_cosface(G, fd, Wd, lab, n, D, classes, s, m, block, nonzero_mean, 0.0, dfd, dWd, &loss, &correct,
                      &nonzero) == 0, "%s: %s", what, gpu_error());
    float *df = to_host(dfd, nD, GPU_F32), *dW = to_host(dWd, CD, GPU_F32);
    int lo = skip_row == 0 ? 1 : 0, hi = skip_row == n - 1 ? n - 1 : n;   // skip_row: first, last or none (-1)
    double e_df = check_max_rel_err(df + (size_t)lo * D, df_r + (size_t)lo * D, (long)(hi - lo) * D);
    double e_skip = skip_row >= 0 ? check_max_rel_err(df + (size_t)skip_row * D, df_r + (size_t)skip_row * D, D) : 0;
    double e_dW = check_max_rel_err(dW, dW_r, (long)CD), e_loss = rel1(loss, r.loss);
    printf("  cosface %-36s loss %.6f vs %.6f (rel %.2g), correct %d/%d, nonzero %d/%d, df rel %.3g%s, dW rel %.3g\n",
           what, loss, r.loss, e_loss, correct, r.correct, nonzero, r.nonzero, e_df, skip_row >= 0 ? " (+ zero row)" : "",
           e_dW);
    CHECK(e_loss <= TOL_F32, "%s: loss rel err %.3g", what, e_loss);
    CHECK(correct == r.correct && nonzero == r.nonzero, "%s: correct %d vs %d, nonzero %d vs %d", what, correct,
          r.correct, nonzero, r.nonzero);
    CHECK(e_df <= TOL_F32 && e_skip <= TOL_F32, "%s: df rel err %.3g, zero row %.3g", what, e_df, e_skip);
    CHECK(e_dW <= TOL_F32, "%s: dW rel err %.3g", what, e_dW);
    CHECK(gpu_cosface(G, fd, Wd, lab, n, D, classes, s, m, block, nonzero_mean, 0.0, NULL, NULL, &loss2, &c2, NULL) == 0 &&
              rel1(loss2, loss) <= 1e-12 && c2 == correct,
          "%s: forward only: %.9g vs %.9g", what, loss2, loss);
    if (host_nonzero) *host_nonzero = r.nonzero;
    gpu_free(G, fd), gpu_free(G, Wd), gpu_free(G, dfd), gpu_free(G, dWd);
    free(dW0), free(df_r), free(dW_r), free(df), free(dW);
}

// 37 rows x 96 of 50 classes with top-1 ties: labels 20-22 once; rows 0 and 1
// point exactly at their class, whose weight row is duplicated at a higher
// (40 = 5) and a lower (2 = 9) index (ties go to the lower class); most rows
// near their class (a non-trivial accuracy). *W, *f: malloc'd [50, 96], [37, 96].
enum { TIE_N = 37, TIE_D = 96, TIE_C = 50 };
static void cosface_tie_data(float **Wp, float **fp, int32_t *lab) {
    int n = TIE_N, D = TIE_D, C = TIE_C;
    float *W = rand_buf((size_t)C * D, 0.05f, 0), *f = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) lab[i] = i < 34 ? (i * 7) % 17 : 20 + (i - 34);
    lab[0] = 5, lab[1] = 9;
    memcpy(W + 40 * D, W + 5 * D, D * 4);
    memcpy(W + 2 * D, W + 9 * D, D * 4);
    for (int k = 0; k < D; k++) f[k] = 3 * W[5 * D + k], f[D + k] = 2 * W[9 * D + k];
    for (int i = 2; i < 30; i++)
        for (int k = 0; k < D; k++) f[(size_t)i * D + k] = 0.3f * f[(size_t)i * D + k] + 20 * W[(size_t)lab[i] * D + k];
    *Wp = W, *fp = f;
}

static void test_cosface_cases(void) {
    // 1. The tie data in blocks of 16 (16 + 16 + 16 + 2); row 36 is zero (df =
    // d f_hat / 1e-12, as torch's clamp_min), labelled 3.
    int n = TIE_N, D = TIE_D, C = TIE_C;
    float *W, *f;
    int32_t lab[64];
    cosface_tie_data(&W, &f, lab);
    lab[36] = 3;
    for (int k = 0; k < D; k++) f[36 * D + k] = 0;
    test_cosface("37x96, 50 classes, block 16", f, W, lab, n, D, C, 16, 30, 0.2f, 0, 36, NULL);
    test_cosface("same, one block", f, W, lab, n, D, C, 0, 30, 0.2f, 0, 36, NULL);
    free(W), free(f);
    // 2. nonzero_mean: half the rows exactly on their class with s = 64, m = 0.35
    // (their fp32 loss is 0), the others random.
    n = 24, D = 64, C = 20;
    W = rand_buf((size_t)C * D, 0.05f, 0), f = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) {
        lab[i] = (i * 3) % C;
        if (i % 2 == 0)
            for (int k = 0; k < D; k++) f[(size_t)i * D + k] = 4 * W[(size_t)lab[i] * D + k];
    }
    int nz = -1;
    test_cosface("24x64, 20 classes, nonzero_mean", f, W, lab, n, D, C, 7, 64, 0.35f, 1, -1, &nz);
    CHECK(nz > 0 && nz < n, "the nonzero_mean case needs zero and non-zero losses (nonzero %d of %d)", nz, n);
    test_cosface("same, plain mean", f, W, lab, n, D, C, 7, 64, 0.35f, 0, -1, NULL);
    free(W), free(f);
    // 3. The default block over 8200 classes: 8192 + 8.
    n = 16, D = 32, C = 8200;
    W = rand_buf((size_t)C * D, 0.05f, 0), f = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) lab[i] = (i * 977) % C;
    lab[3] = C - 1;   // the label in the short last block
    test_cosface("16x32, 8200 classes, default block", f, W, lab, n, D, C, 0, 50, 0.3f, 0, -1, NULL);
    free(W), free(f);
}

// gpu_cosface_sharded: R shards run at once, one thread and one context each,
// their all-reduces between the threads (rank order, so every shard gets the
// same sums), against the host ufo_cosface over ALL classes (one process): the
// loss, correct and nonzero on every shard, df of every row on every shard, dW
// the shards' rows side by side. dev_cb 1: d f_hat through allreduce_device
// (called with the device buffer, the sum expected there on return); 0: the
// backend's download / host all-reduce / upload. R = 1 (identity reduces) must
// also give gpu_cosface's results bit for bit.
typedef struct {
    pthread_barrier_t bar;
    void *bufs[3];
    int R;
} shard_group;
typedef struct {
    shard_group *grp;
    int rank, lo, hi, rc;
    gpu_ctx *g;
    const float *f, *W, *dW0;
    const int32_t *lab;
    int n, D, C, block, dev_cb;
    float s, m;
    double loss;
    int correct, nonzero;
    float *df, *dW;   // host results
    char err[256];
} shard_rank;

static int shard_allreduce(void *ctx, void *buf, size_t n, int is_double, int op_max) {
    shard_rank *r = ctx;
    shard_group *grp = r->grp;
    size_t es = is_double ? 8 : 4;
    char *acc = malloc(n * es);
    if (!acc) return -1;
    grp->bufs[r->rank] = buf;
    pthread_barrier_wait(&grp->bar);
    memcpy(acc, grp->bufs[0], n * es);
    for (int q = 1; q < grp->R; q++)
        for (size_t i = 0; i < n; i++) {
            if (is_double) {
                double *a = (double *)acc, b = ((const double *)grp->bufs[q])[i];
                a[i] = op_max ? (b > a[i] ? b : a[i]) : a[i] + b;
            } else {
                float *a = (float *)acc, b = ((const float *)grp->bufs[q])[i];
                a[i] = op_max ? (b > a[i] ? b : a[i]) : a[i] + b;
            }
        }
    pthread_barrier_wait(&grp->bar);   // every shard has read every buffer
    memcpy(buf, acc, n * es);
    free(acc);
    return 0;
}
static int shard_allreduce_dev(void *ctx, float *buf, size_t n) {
    shard_rank *r = ctx;
    float *h = malloc(n * 4);
    int rc = !h || gpu_download(r->g, h, buf, n * 4) || gpu_sync(r->g) || shard_allreduce(ctx, h, n, 0, 0) ||
             gpu_upload(r->g, buf, h, n * 4) || gpu_sync(r->g);
    free(h);
    return rc ? -1 : 0;
}

static void *shard_run(void *arg) {
    shard_rank *r = arg;
    size_t nD = (size_t)r->n * r->D, CD = (size_t)(r->hi - r->lo) * r->D;
    r->rc = -1;
    float *fd = NULL, *Wd = NULL, *dfd = NULL, *dWd = NULL;
    if (!(r->g = gpu_ctx_create(0))) goto out;
    fd = gpu_malloc(r->g, nD * 4), Wd = gpu_malloc(r->g, CD * 4), dfd = gpu_malloc(r->g, nD * 4);
    dWd = gpu_malloc(r->g, CD * 4);
    if (!fd || !Wd || !dfd || !dWd || gpu_upload(r->g, fd, r->f, nD * 4) ||
        gpu_upload(r->g, Wd, r->W + (size_t)r->lo * r->D, CD * 4) ||
        gpu_upload(r->g, dWd, r->dW0 + (size_t)r->lo * r->D, CD * 4))
        goto out;
    gpu_cosface_shard sh = {shard_allreduce, r->dev_cb ? shard_allreduce_dev : NULL, r, r->lo, r->C};
    if (gpu_cosface_sharded(r->g, fd, Wd, r->lab, r->n, r->D, r->hi - r->lo, r->s, r->m, r->block, 0, 0.0, dfd, dWd,
                            &r->loss, &r->correct, &r->nonzero, &sh) ||
        gpu_download(r->g, r->df, dfd, nD * 4) || gpu_download(r->g, r->dW + (size_t)r->lo * r->D, dWd, CD * 4) ||
        gpu_sync(r->g))
        goto out;
    r->rc = 0;
out:
    if (r->rc) snprintf(r->err, sizeof r->err, "%s", gpu_error());
    if (r->g) gpu_free(r->g, fd), gpu_free(r->g, Wd), gpu_free(r->g, dfd), gpu_free(r->g, dWd), gpu_ctx_free(r->g);
    return NULL;
}

static void test_cosface_sharded(const char *what, const float *f, const float *W, const int32_t *lab, int n, int D,
                                 int C, int block, float s, float m, int R, int dev_cb) {
    size_t nD = (size_t)n * D, CD = (size_t)C * D;
    float *dW0 = rand_buf(CD, 1e-3f, 0), *df_r = zeros(nD), *dW_r = copy_buf(dW0, CD), *dW = zeros(CD);
    ufo_cosface_opts o = {.s = s, .m = m, .block = block};
    ufo_cosface_result cr;
    CHECK(ufo_cosface(f, W, lab, n, D, C, &o, df_r, dW_r, &cr) == 0, "%s", ufo_error());
    shard_group grp = {.R = R};
    pthread_barrier_init(&grp.bar, NULL, (unsigned)R);
    shard_rank rk[3];
    pthread_t th[3];
    for (int q = 0; q < R; q++) {
        rk[q] = (shard_rank){.grp = &grp, .rank = q, .f = f, .W = W, .dW0 = dW0, .lab = lab, .n = n, .D = D, .C = C,
                             .block = block, .dev_cb = dev_cb, .s = s, .m = m, .df = zeros(nD), .dW = dW};
        ufo_comm_split(C, R, q, &rk[q].lo, &rk[q].hi);
        CHECK(pthread_create(&th[q], NULL, shard_run, &rk[q]) == 0, "pthread_create");
    }
    // A shard that fails before a reduce leaves the others at the barrier for
    // good: give up after a minute (these cases take milliseconds) rather than
    // spend a device session's time on ctest's timeout.
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    for (int q = 0; q < R; q++)
        if (pthread_timedjoin_np(th[q], NULL, &deadline)) {
            printf("FAILED: %s: shard %d did not finish within 60 s (%s; another shard failed before a reduce?)\n", what,
                   q, rk[q].err[0] ? rk[q].err : "no error yet");
            fflush(stdout);
            _exit(1);
        }
    pthread_barrier_destroy(&grp.bar);
    double e_df = 0, e_loss = 0;
    for (int q = 0; q < R; q++) {
        CHECK(rk[q].rc == 0, "%s: shard %d: %s", what, q, rk[q].err);
        double e = check_max_rel_err(rk[q].df, df_r, (long)nD), el = rel1(rk[q].loss, cr.loss);
        e_df = e > e_df ? e : e_df, e_loss = el > e_loss ? el : e_loss;
        CHECK(rk[q].correct == cr.correct && rk[q].nonzero == cr.nonzero, "%s: shard %d: correct %d vs %d, nonzero %d vs %d",
              what, q, rk[q].correct, cr.correct, rk[q].nonzero, cr.nonzero);
        // Every shard holds the same global values (the same reductions, the same per-row kernels).
        CHECK(rk[q].loss == rk[0].loss && memcmp(rk[q].df, rk[0].df, nD * 4) == 0, "%s: shard %d differs from shard 0",
              what, q);
    }
    double e_dW = check_max_rel_err(dW, dW_r, (long)CD);
    printf("  cosface sharded %-30s %d shards%s: loss %.6f vs %.6f (rel %.2g), correct %d/%d, df rel %.3g, dW rel %.3g\n",
           what, R, dev_cb ? " (d f_hat on the device)" : "", rk[0].loss, cr.loss, e_loss, rk[0].correct, cr.correct,
           e_df, e_dW);
    CHECK(e_loss <= TOL_F32 && e_df <= TOL_F32 && e_dW <= TOL_F32, "%s: loss %.3g, df %.3g, dW %.3g", what, e_loss,
          e_df, e_dW);
    if (R == 1) {   // identity reduces: gpu_cosface's results exactly
        float *fd = dev_from(f, nD), *Wd = dev_from(W, CD), *dfd = dev(nD * 4), *dWd = dev_from(dW0, CD);
        double loss = -1;
        int correct = -1;
        CHECK(gpu_cosface(G, fd, Wd, lab, n, D, C, s, m, block, 0, 0.0, dfd, dWd, &loss, &correct, NULL) == 0, "%s",
              gpu_error());
        float *df1 = to_host(dfd, nD, GPU_F32), *dW1 = to_host(dWd, CD, GPU_F32);
        CHECK(loss == rk[0].loss && correct == rk[0].correct && !memcmp(df1, rk[0].df, nD * 4) && !memcmp(dW1, dW, CD * 4),
              "%s: one shard differs from gpu_cosface (loss %.9g vs %.9g)", what, rk[0].loss, loss);
        gpu_free(G, fd), gpu_free(G, Wd), gpu_free(G, dfd), gpu_free(G, dWd);
        free(df1), free(dW1);
    }
    for (int q = 0; q < R; q++) free(rk[q].df);
    free(dW0), free(df_r), free(dW_r), free(dW);
}

static void test_cosface_sharded_cases(void) {
    // The tie data (no zero row: its df of ~1e12 would hide the others'
    // errors; row 33 labelled with the last class): ties between a label (5, 9)
    // and a copy of its weight row (40, 2), in other shards when split; block 7
    // crosses the shard boundaries.
    int n = TIE_N, D = TIE_D, C = TIE_C;
    float *W, *f;
    int32_t lab[64];
    cosface_tie_data(&W, &f, lab);
    lab[33] = 49;
    test_cosface_sharded("37x96, 50 classes, block 7", f, W, lab, n, D, C, 7, 30, 0.2f, 1, 0);
    test_cosface_sharded("same", f, W, lab, n, D, C, 7, 30, 0.2f, 1, 1);
    test_cosface_sharded("same", f, W, lab, n, D, C, 7, 30, 0.2f, 2, 0);
    test_cosface_sharded("same", f, W, lab, n, D, C, 7, 30, 0.2f, 2, 1);
    test_cosface_sharded("same, one block per shard", f, W, lab, n, D, C, 0, 30, 0.2f, 3, 1);
    free(W), free(f);
}

// gpu_triplet vs ufo_triplet: loss, fallback, the distance means, dx.
static void test_triplet(const char *what, const float *x, const int32_t *lab, int n, int D, float margin,
                         int want_fallback) {
    size_t nD = (size_t)n * D;
    float *dx_r = zeros(nD);
    ufo_triplet_result r;
    CHECK(ufo_triplet(x, lab, n, D, margin, dx_r, NULL, NULL, &r) == 0, "%s", ufo_error());
    float *xd = dev_from(x, nD), *dxd = dev(nD * 4);
    double loss = -1, ap = -1, an = -1;
    int fb = -1;
    CHECK(gpu_triplet(G, xd, lab, n, D, margin, dxd, &loss, &fb, &ap, &an) == 0, "%s: %s", what, gpu_error());
    float *dx = to_host(dxd, nD, GPU_F32);
    double e_dx = check_max_rel_err(dx, dx_r, (long)nD), e_loss = rel1(loss, r.loss);
    double e_d = fmax(rel1(ap, r.dist_ap_mean), rel1(an, r.dist_an_mean));
    printf("  triplet %-36s loss %.6f vs %.6f (rel %.2g), fallback %d/%d, dist means rel %.2g, dx rel %.3g\n", what,
           loss, r.loss, e_loss, fb, r.fallback, e_d, e_dx);
    CHECK(r.fallback == want_fallback, "%s: the host's fallback is %d, the case needs %d", what, r.fallback,
          want_fallback);
    CHECK(e_loss <= TOL_F32 && fb == r.fallback && e_d <= TOL_F32, "%s: loss rel %.3g, fallback %d vs %d", what,
          e_loss, fb, r.fallback);
    CHECK(e_dx <= TOL_F32, "%s: dx rel err %.3g", what, e_dx);
    gpu_free(G, xd), gpu_free(G, dxd);
    free(dx_r), free(dx);
}

static void test_triplet_cases(void) {
    int32_t lab[64];
    // Random features: 8 identities x 4, one seen once, one pair.
    int n = 35, D = 64;
    float *x = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) lab[i] = i < 32 ? i / 4 : i == 32 ? 100 : 7 + 100;
    test_triplet("35x64, soft margin", x, lab, n, D, 0.0f, 0);
    test_triplet("35x64, margin 0.3", x, lab, n, D, 0.3f, 0);
    free(x);
    // Ties and the clamp: features in {-1, 0, 1} (every Gram entry exact, so
    // equal distances are equal on both sides), a repeated row with the same
    // label (distance 0: the clamp), one with another label, a zero row.
    n = 24, D = 8;
    x = rand_buf((size_t)n * D, 1, 0);
    for (size_t i = 0; i < (size_t)n * D; i++) x[i] = x[i] < -0.33f ? -1.0f : x[i] > 0.33f ? 1.0f : 0.0f;
    for (int i = 0; i < n; i++) lab[i] = i % 5;
    memcpy(x + 10 * D, x + 5 * D, D * 4);   // labels 0 and 0
    memcpy(x + 7 * D, x + 3 * D, D * 4);    // labels 2 and 3
    memset(x + 12 * D, 0, D * 4);
    test_triplet("24x8 integer features, ties", x, lab, n, D, 0.0f, 0);
    test_triplet("same, margin 0.3", x, lab, n, D, 0.3f, 0);
    free(x);
    // The soft margin overflows (ap - an > 88.7): margin ranking with 0.3 instead.
    n = 8, D = 16;
    x = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) lab[i] = i / 2;
    x[1 * D] += 200;   // sample 1: far from its positive 0, near the negatives
    test_triplet("8x16, overflow fallback", x, lab, n, D, 0.0f, 1);
    free(x);
    // No negatives at all (an = 1e9, no gradient), and one row.
    n = 6, D = 16;
    x = rand_buf((size_t)n * D, 1, 0);
    for (int i = 0; i < n; i++) lab[i] = 4;
    test_triplet("6x16, one identity", x, lab, n, D, 0.0f, 0);
    test_triplet("1x16", x, lab, 1, D, 0.0f, 0);
    free(x);
}


static void test_forward(const char *name, int img, int patch, int dim, int depth, int heads) {
    vit_config c = {.img_size = img, .patch_size = patch, .dim = dim, .depth = depth, .heads = heads,
                    .mlp_hidden = 4 * dim, .ln_eps = 1e-6f, .bn_eps = 1e-5f};
    vit_model m;
    unsigned mask = (1u << UFO_TASK_FACE) | (1u << UFO_TASK_VEHICLE);
    if (vit_alloc(&m, &c, mask)) {
        CHECK(0, "vit_alloc: %s", ufo_error());
        return;
    }
    randomize_vit(&m, 0.08f);
    const int batches[] = {3, 5, 2};  // grow, then shrink: activations reused
    const int tasks[] = {UFO_TASK_BACKBONE, UFO_TASK_VEHICLE, UFO_TASK_FACE};
    for (int mode = 0; mode < 3; mode++) {  // fp32, bf16, bf16 with flash attention (where hd is 64)
        int prec = mode > 0;
        setenv("UFO_CUDA_ATTENTION", mode == 2 ? "flash" : "gemm", 1);  // read when the context is made
        if (mode == 2 && dim / heads != 64) continue;
        for (int k = 0; k < 3; k++) {
            int n = batches[k], task = tasks[k];
            size_t ni = (size_t)n * 3 * img * img, no = (size_t)n * dim;
            float *x = rand_buf(ni, 1.0f, 0.0f), *ref = zeros(no), *got = zeros(no);
            CHECK(vit_prepare(&m, VIT_BACKEND_REF, UFO_PREC_FP32) == 0, "%s", ufo_error());
            CHECK(vit_forward(&m, x, n, task, ref) == 0, "%s", ufo_error());
            CHECK(vit_prepare(&m, VIT_BACKEND_CUDA, prec ? UFO_PREC_BF16 : UFO_PREC_FP32) == 0, "%s", ufo_error());
            CHECK(vit_forward(&m, x, n, task, got) == 0, "%s", ufo_error());
            char what[128];
            snprintf(what, sizeof what, "forward %s n=%d %s%s", name, n, task < 0 ? "backbone" : vit_task_name(task),
                     mode == 2 ? " flash" : "");
            compare(what, got, ref, no, prec ? GPU_BF16 : GPU_F32);
            free(x), free(ref), free(got);
        }
        // Several batch sizes on one prepared model (activations planned once, then reused).
        CHECK(vit_prepare(&m, VIT_BACKEND_CUDA, prec ? UFO_PREC_BF16 : UFO_PREC_FP32) == 0, "%s", ufo_error());
        float *x = rand_buf((size_t)4 * 3 * img * img, 1.0f, 0.0f), *a = zeros((size_t)4 * dim), *b = zeros((size_t)4 * dim);
        CHECK(vit_forward(&m, x, 4, UFO_TASK_VEHICLE, a) == 0, "%s", ufo_error());
        for (int i = 0; i < 4; i++)  // one image at a time gives the same rows
            CHECK(vit_forward(&m, x + (size_t)i * 3 * img * img, 1, UFO_TASK_VEHICLE, b + (size_t)i * dim) == 0, "%s",
                  ufo_error());
        // (cuBLASLt may pick another algorithm per row count: equal to rounding, not bits.)
        char what[128];
        snprintf(what, sizeof what, "forward %s batch 4 vs 4 x 1%s", name, mode == 2 ? " flash" : "");
        compare(what, b, a, 4L * dim, prec ? GPU_BF16 : GPU_F32);
        free(x), free(a), free(b);
    }
    vit_free(&m);
}

// The production shapes (ViT-L width: D 1024, 16 heads, T 577) for two blocks,
// against the CPU fast path in fp32 (itself checked against the reference in
// test_kernels/test_model): GPU fp32 within 1e-4, GPU bf16 (both attention
// kernels) cosine >= 0.999.
static void test_forward_vitl_shapes(void) {
    vit_config c = {.img_size = 384, .patch_size = 16, .dim = 1024, .depth = 2, .heads = 16, .mlp_hidden = 4096,
                    .ln_eps = 1e-6f, .bn_eps = 1e-5f};
    vit_model m;
    if (vit_alloc(&m, &c, 1u << UFO_TASK_VEHICLE)) {
        CHECK(0, "vit_alloc: %s", ufo_error());
        return;
    }
    randomize_vit(&m, 0.08f);
    int n = 3;
    size_t ni = (size_t)n * 3 * 384 * 384, no = (size_t)n * c.dim;
    float *x = rand_buf(ni, 1.0f, 0.0f), *ref = zeros(no), *got = zeros(no);
    CHECK(vit_prepare(&m, VIT_BACKEND_CPU, UFO_PREC_FP32) == 0, "%s", ufo_error());
    CHECK(vit_forward(&m, x, n, UFO_TASK_VEHICLE, ref) == 0, "%s", ufo_error());
    for (int mode = 0; mode < 3; mode++) {
        setenv("UFO_CUDA_ATTENTION", mode == 2 ? "flash" : "gemm", 1);
        CHECK(vit_prepare(&m, VIT_BACKEND_CUDA, mode ? UFO_PREC_BF16 : UFO_PREC_FP32) == 0, "%s", ufo_error());
        CHECK(vit_forward(&m, x, n, UFO_TASK_VEHICLE, got) == 0, "%s", ufo_error());
        compare(mode == 2 ? "forward ViT-L shapes L2 n=3 vs CPU, flash" : "forward ViT-L shapes L2 n=3 vs CPU", got,
                ref, no, mode ? GPU_BF16 : GPU_F32);
    }
    setenv("UFO_CUDA_ATTENTION", "gemm", 1);
    vit_free(&m);
    free(x), free(ref), free(got);
}
#endif

int main(int argc, char **argv) {
    // --quick: the ops and the losses, not the whole-forward checks (which run
    // the same kernels at larger sizes): the emulator's sanitizer and fallback runs.
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    // --flash: the flash attention's checks alone (bf16, forward and backward), for the
    // forward kernel's other shapes (UFO_FLASH_FWD, gpu_flash.cu) in tools/cuda_emu_check.sh
    // and tools/gpu_check.sh.
    int flash_only = argc > 1 && !strcmp(argv[1], "--flash");
    if (gpu_device_count() <= 0) {
        printf("SKIP: no CUDA device visible\n");
        return 77;
    }
    if (!(G = gpu_ctx_create(0))) {
        fprintf(stderr, "%s\n", gpu_error());
        return 1;
    }
    printf("device: %s\n", gpu_device_name(G));
    if (flash_only) {
        test_attention(2, 577, 2, 64, 1.0f, GPU_BF16, 1);
        test_attention(1, 70, 1, 64, 1.0f, GPU_BF16, 1);
        test_attention(3, 200, 2, 64, 4.0f, GPU_BF16, 1);   // the last block of 128 rows: two m-tiles past T
        test_attention_backward(2, 577, 2, 64, 1.0f, GPU_BF16, 1);
        test_attention_backward(1, 70, 1, 64, 1.0f, GPU_BF16, 1);
        return check_summary("test_cuda_ops --flash");
    }
    test_to_bf16();
    for (int dt = 0; dt < 2; dt++) {
        test_linear(37, 96, 80, 1, 0, dt);      // odd rows; bias epilogue
        test_linear(37, 96, 80, 1, 1, dt);      // residual: y += x W^T + b
        test_linear(33, 64, 48, 0, 0, dt);      // no bias
        test_linear(1154, 256, 768, 1, 0, dt);  // qkv-like, two images of T = 577
        test_linear(577, 1024, 256, 1, 1, dt);  // fc2-like long K
        if (dt == GPU_BF16) test_linear_bf16_out(150, 96, 200), test_linear_bf16_out(37, 64, 48);
        test_gelu(dt);
        test_layernorm(61, 1024, 1, dt);
        test_layernorm(5, 200, 577, dt);        // class tokens of 5 images
        test_patch_embed(2, 64, 16, 96, dt);
        test_patch_embed(1, 30, 6, 20, dt);
        for (int flash = 0; flash < 2; flash++) {  // flash: bf16 with hd 64 only
            test_attention(2, 577, 2, 64, 1.0f, dt, flash);  // the real sequence length and head dim
            test_attention(1, 577, 3, 64, 4.0f, dt, flash);  // peaked softmax
            test_attention(2, 64, 2, 64, 1.0f, dt, flash);   // exactly one key tile
            test_attention(1, 70, 1, 64, 1.0f, dt, flash);   // a second, almost empty tile
        }
        gpu_set_attention_chunk_bytes(G, 1);  // one image per chunk: offsets between chunks
        test_attention(3, 50, 3, 32, 3.0f, dt, 0);  // other head dims
        gpu_set_attention_chunk_bytes(G, (size_t)1 << 30);
        test_attention(1, 7, 1, 16, 1.0f, dt, 0);
        test_attention(2, 9, 2, 6, 1.0f, dt, 0);   // hd % 4 != 0: the element-wise layout kernels
    }
    test_batchnorm();
    test_assemble();
    for (int dt = 0; dt < 2; dt++) {
        test_gemm(37, 45, 29, 0, 0, 0.0f, dt);
        test_gemm(37, 45, 29, 1, 0, 1.0f, dt);
        test_gemm(37, 45, 29, 0, 1, 1.0f, dt);
        test_gemm(64, 96, 128, 1, 1, 0.0f, dt);
        test_linear_backward(75, 96, 144, dt);
        test_patch_embed_backward(2, 32, 8, 48, dt);
        for (int flash = 0; flash < 2; flash++) {  // flash: bf16 with hd 64 only
            test_attention_backward(2, 577, 2, 64, 1.0f, dt, flash);  // 10 key tiles, the last one partial
            test_attention_backward(1, 577, 3, 64, 4.0f, dt, flash);  // peaked softmax
            test_attention_backward(2, 64, 2, 64, 1.0f, dt, flash);   // exactly one tile
            test_attention_backward(1, 70, 1, 64, 1.0f, dt, flash);   // a second, almost empty tile
        }
        gpu_set_attention_chunk_bytes(G, 1);
        test_attention_backward(3, 37, 3, 32, 2.0f, dt, 0);  // three chunks of one image
        gpu_set_attention_chunk_bytes(G, (size_t)1 << 30);
        test_attention_backward(2, 9, 2, 6, 1.0f, dt, 0);   // hd % 4 != 0: the element-wise layout kernels
        test_attention_cls(2, 577, 2, 64, 1.0f, dt);
        test_attention_cls(3, 37, 3, 32, 4.0f, dt);   // peaked softmax, another head dim
        test_attention_cls(1, 1, 1, 8, 1.0f, dt);     // one token
    }
    test_norm_gelu_backward(67, 384);   // three blocks of rows, the last partial
    test_norm_gelu_backward(40, 1024);  // every lane's 32 columns
    test_norm_gelu_backward(67, 100);   // c % 32 != 0
    test_gelu_bf16((size_t)67 * 384);
    test_gelu_bf16(1001);
    test_grad_rows_bf16(67, 384, 1, 0);   // three row blocks, the last partial; four columns a thread
    test_grad_rows_bf16(67, 384, 0, 1);
    test_grad_rows_bf16(40, 6, 1, 1);     // c % 4 != 0: one column a thread
    test_batchnorm_train_backward(16, 300);
    test_batchnorm_train_backward(1, 40);  // n = 1: running_var takes the biased (zero) variance
    test_training_glue();
#ifndef UFO_CUDA_OPS_ONLY
    test_cosface_cases();
    test_cosface_sharded_cases();
    test_triplet_cases();
#endif
    gpu_ctx_free(G);
#ifndef UFO_CUDA_OPS_ONLY
    if (quick) return check_summary("test_cuda_ops --quick");
    test_forward("img64/p16 d128 L2 H2", 64, 16, 128, 2, 2);
    test_forward("img384/p16 d128 L1 H2 (T=577)", 384, 16, 128, 1, 2);
    test_forward("img48/p8 d96 L2 H3 (hd 32)", 48, 8, 96, 2, 3);
    test_forward_vitl_shapes();
#else
    printf("ops only: the whole-forward checks need libufo\n");
#endif
    return check_summary("test_cuda_ops");
}
