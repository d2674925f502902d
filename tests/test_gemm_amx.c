// Our AMX bf16 matmul (cpu_gemm_amx.c) against a double-precision reference
// computed here on the same bf16-rounded operands: every storage layout
// (A and B plain or transposed, float or bf16 elements, B packed ahead),
// ragged shapes (M, N, K not multiples of 32, K = 0), every epilogue (bias,
// sum into C, exact GELU, bf16 output), in-place A rows and packed A, and the
// same bits for 1 and 2 threads. Then the dispatching entry points
// (cpu_linear, cpu_gemm_ex, cpu_linear_backward) on the AMX path against the
// oneDNN path. Skipped, with a line saying so, where the CPU has no AMX.
#define TEST_RNG_SEED 0x61c8864680b583ebull
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_gemm_amx.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_train.h"
#include "tensor/dtype.h"
#include "base/error.h"
#include "check.h"
#include "rand_buf.h"
#include <math.h>
#include <omp.h>

static float rb(float x) { return ufo_bf16_to_f32(ufo_f32_to_bf16(x)); }

static uint16_t *to_bf16(const float *x, size_t n) {
    uint16_t *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = ufo_f32_to_bf16(x[i]);
    return p;
}

// Logical A[i][k] / B[k][j] of an operand stored as the layout says.
static float elem(const float *s, long ld, int trans, long r, long c) { return trans ? s[c * ld + r] : s[r * ld + c]; }

typedef struct {
    int M, N, K, ta, tb, a16, b16, bias, beta, gelu, c16, packed;
} gcase;

// Runs one case and returns max |got - ref| / (scale of the dot products).
static double run_case(const gcase *g, int threads, float *out_copy) {
    const int M = g->M, N = g->N, K = g->K;
    long lda = g->ta ? M : K, ldb = g->tb ? K : N;
    float *A = rand_buf((size_t)M * K, 1.0f, 0.0f), *B = rand_buf((size_t)K * N, 1.0f, 0.0f);
    float *bias = rand_buf((size_t)N, 0.5f, 0.0f), *C0 = rand_buf((size_t)M * N, 1.0f, 0.0f);
    uint16_t *A16 = to_bf16(A, (size_t)M * K), *B16 = to_bf16(B, (size_t)K * N);
    float *C = copy_buf(C0, (size_t)M * N);
    uint16_t *C16 = calloc((size_t)M * N + 1, sizeof *C16);
    amx_operand a = {g->a16 ? (void *)A16 : (void *)A, lda, g->ta, g->a16, 0};
    amx_operand b = {g->b16 ? (void *)B16 : (void *)B, ldb, g->tb, g->b16, 0};
    uint16_t *D16 = calloc((size_t)M * N + 1, sizeof *D16);
    int dg = g->gelu && g->c16;   // GELU' too, as the bf16 training forward of fc1 asks
    amx_epilogue e = {g->bias ? bias : NULL, g->beta ? 1.0f : 0.0f, g->gelu, g->c16, N, dg ? D16 : NULL, 0};
    uint16_t *bp = NULL;
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    if (g->packed) {
        bp = malloc(amx_packed_b_bytes(K, N));
        amx_pack_b(bp, b, K, N);
    }
    int rc = amx_gemm(g->c16 ? (void *)C16 : (void *)C, &e, a, b, bp, M, N, K);
    omp_set_num_threads(saved);
    CHECK(rc == 0, "amx_gemm M=%d N=%d K=%d", M, N, K);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)rb(elem(A, lda, g->ta, i, k)) * rb(elem(B, ldb, g->tb, k, j));
                acc += p;
                mag += fabs(p);
            }
            double v = acc + (g->bias ? bias[j] : 0) + (g->beta ? C0[(size_t)i * N + j] : 0);
            if (g->gelu) v = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
            if (dg) {   // gelu'(u) = Phi(u) + u phi(u) of the pre-activation u, one bf16 rounding
                double u = acc + (g->bias ? bias[j] : 0);
                double d = 0.5 * (1.0 + erf(u / sqrt(2.0))) + u * exp(-0.5 * u * u) / sqrt(2.0 * M_PI);
                double derr = fabs(ufo_bf16_to_f32(D16[(size_t)i * N + j]) - d) / (fabs(d) / 128 + 1e-6 * (mag + 1));
                if (!(derr <= worst)) worst = derr != derr ? INFINITY : derr;
            }
            double got = g->c16 ? ufo_bf16_to_f32(C16[(size_t)i * N + j]) : C[(size_t)i * N + j];
            // fp32 accumulation: a few ulps of the magnitudes summed; bf16 out: one rounding
            double tol = 1e-6 * (mag + 1) + (g->c16 ? fabs(v) / 128 : 1e-6 * fabs(v)) + (g->gelu ? 2e-7 * (fabs(v) + 1) : 0);
            double err = fabs(got - v) / tol;
            if (!(err <= worst)) worst = err != err ? INFINITY : err;
        }
    if (out_copy) {
        for (size_t i = 0; i < (size_t)M * N; i++) out_copy[i] = g->c16 ? ufo_bf16_to_f32(C16[i]) : C[i];
    }
    free(A), free(B), free(bias), free(C0), free(A16), free(B16), free(C), free(C16), free(D16), free(bp);
    return worst;   // in units of the tolerance: <= 1 passes
}

static void test_layouts(void) {
    const int Ms[] = {1, 17, 45, 70}, Ns[] = {16, 33, 64}, Ks[] = {0, 5, 64, 100};
    int cases = 0, failed = 0;
    for (int mi = 0; mi < 4; mi++)
        for (int ni = 0; ni < 3; ni++)
            for (int ki = 0; ki < 4; ki++)
                for (int lay = 0; lay < 16; lay++) {
                    gcase g = {Ms[mi], Ns[ni], Ks[ki], lay & 1, lay >> 1 & 1, lay >> 2 & 1, lay >> 3 & 1,
                               (mi + ki) & 1, (ni + lay) % 3 == 0, ki % 2 == 1 && lay % 5 == 0, 0, lay % 3 == 1};
                    double w = run_case(&g, 2, NULL);
                    cases++;
                    if (!(w <= 1.0)) {
                        failed++;
                        fprintf(stderr, "M=%d N=%d K=%d ta=%d tb=%d a16=%d b16=%d bias=%d beta=%d gelu=%d: %.2f x tol\n",
                                g.M, g.N, g.K, g.ta, g.tb, g.a16, g.b16, g.bias, g.beta, g.gelu, w);
                    }
                }
    CHECK(failed == 0, "%d of %d layout cases off", failed, cases);
    printf("layouts: %d cases, %d off\n", cases, failed);
}

// The epilogues at sizes that use every code path: several row blocks read in
// place (bf16 rows, K a multiple of 32) plus a packed ragged last block, K
// split in chunks (K = 320), a column panel, bf16 / GELU outputs, and K long
// enough to go in panels (> 2,048) with partial sums parked in C.
static void test_epilogues(void) {
    const gcase cs[] = {
        {100, 96, 320, 0, 1, 1, 0, 1, 0, 0, 0, 1},   // cpu_linear: bf16 rows in place, B packed ahead
        {100, 96, 320, 0, 1, 0, 0, 1, 0, 1, 1, 1},   // fp32 rows, GELU, bf16 out
        {100, 96, 320, 0, 0, 1, 1, 0, 1, 0, 0, 0},   // residual sum
        {64, 48, 1024, 0, 1, 1, 0, 1, 0, 0, 0, 0},   // K = 1024: packed (stride a multiple of 2 KB)
        {33, 1000, 96, 1, 1, 1, 1, 0, 0, 1, 0, 0},   // ragged N, transposed A
        {70, 50, 2500, 1, 0, 1, 1, 1, 1, 0, 0, 0},   // dW-like: long K in panels, summed into C, bias
        {45, 96, 4400, 1, 0, 0, 1, 0, 0, 0, 0, 0},   // three K panels, C overwritten (streaming stores)
    };
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++) {
        double w = run_case(&cs[i], 2, NULL);
        CHECK(w <= 1.0, "epilogue case %zu: %.2f x tol", i, w);
    }
}

// Each output element is summed by one thread in one order: 1 and 2 threads agree bit for bit.
static void test_threads(void) {
    gcase g = {130, 160, 352, 0, 1, 1, 0, 1, 0, 0, 0, 0};
    float *c1 = zeros((size_t)g.M * g.N), *c2 = zeros((size_t)g.M * g.N);
    uint64_t seed = rng_state;
    run_case(&g, 1, c1);
    rng_state = seed;
    run_case(&g, 2, c2);
    CHECK(!memcmp(c1, c2, (size_t)g.M * g.N * sizeof *c1), "1 vs 2 threads differ");
    free(c1), free(c2);
}

// cpu_linear (weights packed at create), cpu_gemm_ex and cpu_linear_backward
// with bf16 on the AMX path against the same calls on oneDNN's.
static void test_dispatch(void) {
    const int n = 77, in = 96, out = 160;
    float *x = rand_buf((size_t)n * in, 1.0f, 0.0f), *w = rand_buf((size_t)out * in, 0.1f, 0.0f);
    float *b = rand_buf(out, 0.1f, 0.0f), *dy = rand_buf((size_t)n * out, 1.0f, 0.0f);
    float *y[2], *dx[2], *dw[2];
    const char *paths[2] = {"amx", "dnnl"};
    for (int p = 0; p < 2; p++) {
        cpu_debug_gemm_path(paths[p]);
        y[p] = zeros((size_t)n * out), dx[p] = zeros((size_t)n * in), dw[p] = zeros((size_t)out * in);
        cpu_linear *l = cpu_linear_create(w, b, in, out, UFO_PREC_BF16);
        CHECK(l && cpu_linear_forward(l, y[p], x, n, CPU_POST_GELU) == 0, "cpu_linear on %s", paths[p]);
        cpu_linear_free(l);
        CHECK(cpu_linear_backward(dx[p], dw[p], NULL, dy, x, w, n, in, out, UFO_PREC_BF16) == 0);
    }
    cpu_debug_gemm_path(NULL);
    double ey = check_max_rel_err(y[0], y[1], (long)n * out), ex = check_max_rel_err(dx[0], dx[1], (long)n * in);
    double ew = check_max_rel_err(dw[0], dw[1], (long)out * in);
    printf("amx vs oneDNN: linear+GELU %.2e, dx %.2e, dw %.2e (max rel)\n", ey, ex, ew);
    CHECK(ey < 1e-5 && ex < 1e-5 && ew < 1e-5, "AMX and oneDNN paths disagree");
    for (int p = 0; p < 2; p++) free(y[p]), free(dx[p]), free(dw[p]);
    free(x), free(w), free(b), free(dy);
}

// Element (i, k) of the packed layout (cpu.h), written from its definition.
static size_t packed_at(int i, int k, int c) { return ((size_t)(i / 32) * ((c + 31) / 32) + k / 32) * 1024 + i % 32 * 32 + k % 32; }

// The packed layout in and out (LayerNorm writes it, cpu_linear reads and
// writes it): exactly the values of the row-major bf16 path, and zeros in the
// padded columns of a packed output.
static void test_packed(void) {
    const int n = 70, in = 96, out = 80;   // 70 rows: a padded last block; 80 columns: a padded block
    float *x = rand_buf((size_t)n * in, 1.0f, 0.0f), *w = rand_buf((size_t)out * in, 0.1f, 0.0f);
    float *g = rand_buf(in, 0.2f, 1.0f), *be = rand_buf(in, 0.1f, 0.0f), *b = rand_buf(out, 0.1f, 0.0f);
    uint16_t *h = calloc((size_t)n * in, 2), *hp = calloc(cpu_packed_bytes(n, in), 1);
    uint16_t *y = calloc((size_t)n * out, 2), *yp = calloc(cpu_packed_bytes(n, out), 1);
    float *z = zeros((size_t)n * out), *zp = zeros((size_t)n * out);
    CHECK(cpu_layernorm_bf16(h, x, g, be, n, in, 1e-6f) == 0);
    CHECK(cpu_layernorm_bf16_ex(hp, x, g, be, n, in, 1e-6f, 1) == 0);
    int same = 1;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) same &= h[(size_t)i * in + k] == hp[packed_at(i, k, in)];
    CHECK(same, "packed LayerNorm differs from the row-major one");
    cpu_debug_gemm_path("amx");
    cpu_linear *l = cpu_linear_create(w, b, in, out, UFO_PREC_BF16);
    CHECK(l && cpu_linear_is_amx(l));
    CHECK(cpu_linear_forward_io(l, y, h, n, CPU_POST_GELU, CPU_LINEAR_SRC_BF16 | CPU_LINEAR_DST_BF16) == 0);
    CHECK(cpu_linear_forward_io(l, yp, hp, n, CPU_POST_GELU, CPU_LINEAR_SRC_PACKED | CPU_LINEAR_DST_PACKED) == 0);
    same = 1;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < out; j++) same &= y[(size_t)i * out + j] == yp[packed_at(i, j, out)];
        for (int j = out; j < (out + 31) / 32 * 32; j++) same &= yp[packed_at(i, j, out)] == 0;
    }
    CHECK(same, "packed in/out linear differs from the row-major one (or padding not zero)");
    CHECK(cpu_linear_forward_io(l, z, h, n, CPU_POST_RESIDUAL, CPU_LINEAR_SRC_BF16) == 0);
    CHECK(cpu_linear_forward_io(l, zp, hp, n, CPU_POST_RESIDUAL, CPU_LINEAR_SRC_PACKED) == 0);
    CHECK(!memcmp(z, zp, (size_t)n * out * sizeof *z), "packed input, fp32 residual output differs");
    cpu_linear_free(l);
    cpu_debug_gemm_path("dnnl");
    l = cpu_linear_create(w, b, in, out, UFO_PREC_BF16);
    ufo_error_clear();
    CHECK(l && cpu_linear_forward_io(l, yp, hp, n, CPU_POST_NONE, CPU_LINEAR_SRC_PACKED) == -1,
          "packed input accepted on the oneDNN path");
    cpu_linear_free(l);
    cpu_debug_gemm_path(NULL);
    free(x), free(w), free(g), free(be), free(b), free(h), free(hp), free(y), free(yp), free(z), free(zp);
}

int main(void) {
    if (!cpu_has_amx()) {
        printf("SKIP: this CPU (or OS) has no AMX; the oneDNN path is what runs here\n");
        return 0;
    }
    test_layouts();
    test_epilogues();
    test_threads();
    test_dispatch();
    test_packed();
    // A misspelt UFO_GEMM is refused, not taken for "auto".
    cpu_debug_gemm_path("amxx");
    ufo_error_clear();
    CHECK(cpu_linear_create((const float[]){1, 2}, NULL, 2, 1, UFO_PREC_BF16) == NULL && strstr(ufo_error(), "UFO_GEMM"),
          "UFO_GEMM=amxx accepted");
    cpu_debug_gemm_path(NULL);
    return check_summary("test_gemm_amx");
}
