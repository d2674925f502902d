// The fused AMX bf16 attention (cpu_attention_amx.c) against the double
// reference ref_attention, per output row, on random inputs: odd token counts
// (padding of keys and queries), head dims 32..256, several thread counts.
// Where the CPU or OS has no AMX that part is skipped (said on stdout) and the
// oneDNN bf16 fallback is still checked the same way.
#include "base/error.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_attention_amx.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/ref/ref.h"
#include "check.h"
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// bf16 q, k, v and P against a double reference: every output row (hd values)
// must point the same way to 1e-3 and no element may be off by more than 1%
// of the output's largest magnitude (measured: >= 0.99998 and <= 0.4%). Peaked
// softmax rows (inputs x4) amplify the bf16 rounding of the scores: 3% there
// (measured 1.5%, the same for the oneDNN path).
#define ROW_COS 0.999
#define MAX_REL 1e-2
#define MAX_REL_PEAKED 3e-2

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float frand(void) {   // uniform [-1, 1)
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static float *rand_qkv(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

// Worst per-row cosine and max |got - ref| / max |ref| over [rows, hd] rows.
static void row_stats(const float *got, const float *ref, long rows, int hd, double *min_cos, double *rel) {
    double mc = 1, md = 0, mr = 1e-30;
    for (long r = 0; r < rows; r++) {
        const float *g = got + r * hd, *f = ref + r * hd;
        double ab = 0, aa = 0, bb = 0;
        for (int e = 0; e < hd; e++) {
            ab += (double)g[e] * f[e], aa += (double)g[e] * g[e], bb += (double)f[e] * f[e];
            double d = fabs((double)g[e] - f[e]);
            if (d > md || d != d) md = d != d ? INFINITY : d;
            if (fabs(f[e]) > mr) mr = fabs(f[e]);
        }
        double c = aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb);
        if (!(c >= mc)) mc = c;   // NaN counts as worst
    }
    *min_cos = mc, *rel = md / mr;
}

// Runs cpu_attention on the forced path and checks it against ref.
static void check_path(const char *path, const float *qkv, const float *ref, int B, int T, int H, int hd,
                       float in_scale, float *got) {
    cpu_debug_attention_path(path);
    size_t nout = (size_t)B * T * H * hd;
    memset(got, 0xff, nout * sizeof *got);   // NaN: a row never written fails
    int rc = cpu_attention(got, qkv, B, T, H, hd, UFO_PREC_BF16);
    CHECK(rc == 0, "%s B=%d T=%d H=%d hd=%d: %s", path, B, T, H, hd, ufo_error());
    double mc, rel;
    row_stats(got, ref, (long)B * T * H, hd, &mc, &rel);
    if (getenv("UFO_TEST_VERBOSE"))
        printf("%-5s B=%d T=%4d H=%2d hd=%3d x%.1f: row cos min %.6f, max rel err %.3g\n", path, B, T, H, hd,
               in_scale, mc, rel);
    CHECK(mc >= ROW_COS, "%s B=%d T=%d H=%d hd=%d: worst row cosine %.6f", path, B, T, H, hd, mc);
    CHECK(rel <= (in_scale > 2 ? MAX_REL_PEAKED : MAX_REL), "%s B=%d T=%d H=%d hd=%d: max rel err %.3g", path, B, T, H, hd, rel);
}

static void test_shape(int B, int T, int H, int hd, float in_scale, int amx) {
    size_t nin = (size_t)B * T * 3 * H * hd, nout = (size_t)B * T * H * hd;
    float *qkv = rand_qkv(nin, in_scale), *ref = malloc(nout * 4), *got = malloc(nout * 4), *got1 = malloc(nout * 4);
    if (!ref || !got || !got1) abort();
    ref_attention(ref, qkv, B, T, H, hd);
    check_path("dnnl", qkv, ref, B, T, H, hd, in_scale, got1);
    cpu_debug_attention_path(NULL);
    if (amx) {
        CHECK(!strcmp(cpu_attention_path(T, hd, UFO_PREC_BF16), "amx"), "path %s",
              cpu_attention_path(T, hd, UFO_PREC_BF16));
        check_path("amx", qkv, ref, B, T, H, hd, in_scale, got);
        if (getenv("UFO_TEST_VERBOSE")) {
            double d = 0;
            for (size_t i = 0; i < nout; i++) d = fmax(d, fabs((double)got[i] - got1[i]));
            printf("      amx vs oneDNN: max abs diff %.3g\n", d);
        }
        // Work is split by (batch, head, 32 query rows): any thread count,
        // including ones that cut a head between threads, gives the same bits.
        int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK(cpu_attention(got1, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "%s", ufo_error());
        CHECK(memcmp(got, got1, nout * 4) == 0, "amx B=%d T=%d H=%d hd=%d: 1 thread differs", B, T, H, hd);
        omp_set_num_threads(3);
        CHECK(cpu_attention(got1, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "%s", ufo_error());
        CHECK(memcmp(got, got1, nout * 4) == 0, "amx B=%d T=%d H=%d hd=%d: 3 threads differ", B, T, H, hd);
        omp_set_num_threads(saved);
    }
    cpu_debug_attention_path(NULL);
    free(qkv), free(ref), free(got), free(got1);
}

// Two application threads in cpu_attention at once: one gets the kept
// buffers, the other allocates its own; both must give the single-call bits.
typedef struct {
    const float *qkv;
    float *out;
    int rc;
} call_arg;
static void *call_attention(void *p) {
    call_arg *a = p;
    for (int i = 0; i < 3 && a->rc == 0; i++) a->rc = cpu_attention(a->out, a->qkv, 2, 77, 3, 64, UFO_PREC_BF16);
    return NULL;
}
static void test_concurrent(void) {
    size_t nin = (size_t)2 * 77 * 3 * 3 * 64, nout = (size_t)2 * 77 * 3 * 64;
    float *q1 = rand_qkv(nin, 1.5f), *q2 = rand_qkv(nin, 1.5f);
    float *w1 = malloc(nout * 4), *w2 = malloc(nout * 4), *g1 = malloc(nout * 4), *g2 = malloc(nout * 4);
    if (!w1 || !w2 || !g1 || !g2) abort();
    CHECK(cpu_attention(w1, q1, 2, 77, 3, 64, UFO_PREC_BF16) == 0, "%s", ufo_error());
    CHECK(cpu_attention(w2, q2, 2, 77, 3, 64, UFO_PREC_BF16) == 0, "%s", ufo_error());
    call_arg a1 = {q1, g1, 0}, a2 = {q2, g2, 0};
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, call_attention, &a1) == 0, "pthread_create");
    CHECK(pthread_create(&t2, NULL, call_attention, &a2) == 0, "pthread_create");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(a1.rc == 0 && a2.rc == 0, "concurrent calls failed: %s", ufo_error());
    CHECK(memcmp(g1, w1, nout * 4) == 0 && memcmp(g2, w2, nout * 4) == 0, "concurrent calls differ");
    free(q1), free(q2), free(w1), free(w2), free(g1), free(g2);
}

// bf16 qkv in and bf16 out (cpu_attention_io, the model's bf16 forward) must
// give exactly the bits of the fp32 call rounded afterwards: the kernel rounds
// q, k, v to bf16 itself, and the output rounding is the same nearest-even.
static void test_io(int B, int T, int H, int hd) {
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    float *qkv = rand_qkv(nq, 1.5f), *ref = malloc(no * sizeof *ref);
    uint16_t *qb = malloc(nq * 2), *ob = malloc(no * 2), *rb = malloc(no * 2);
    float *of = malloc(no * sizeof *of);
    cpu_f32_to_bf16(qb, qkv, nq);
    CHECK(cpu_attention(ref, qkv, B, T, H, hd, UFO_PREC_BF16) == 0, "%s", ufo_error());
    cpu_f32_to_bf16(rb, ref, no);
    CHECK(cpu_attention_io(ob, qb, B, T, H, hd, CPU_ATTN_QKV_BF16 | CPU_ATTN_OUT_BF16) == 0, "%s", ufo_error());
    CHECK(!memcmp(ob, rb, no * 2), "bf16 in/out differs from fp32 rounded (T=%d hd=%d)", T, hd);
    CHECK(cpu_attention_io(of, qb, B, T, H, hd, CPU_ATTN_QKV_BF16) == 0, "%s", ufo_error());
    CHECK(!memcmp(of, ref, no * 4), "bf16 in, fp32 out differs (T=%d hd=%d)", T, hd);
    free(qkv), free(ref), free(qb), free(ob), free(rb), free(of);
}

int main(void) {
    int amx = cpu_has_amx();
    if (amx) printf("AMX: yes (oneDNN ISA %s); testing the AMX kernel and the oneDNN fallback\n", cpu_isa_name());
    else printf("SKIP AMX part: this CPU or OS has no AMX-BF16 tiles; testing the oneDNN bf16 fallback only\n");

    test_shape(1, 5, 2, 64, 1.5f, amx);      // fewer tokens than one tile
    test_shape(2, 17, 3, 32, 1.5f, amx);     // one 16-row query half
    test_shape(1, 1, 3, 64, 1.5f, amx);      // a single token
    test_shape(2, 33, 2, 96, 1.5f, amx);     // 33: a 1-row query block, 31 padded keys
    test_shape(1, 64, 2, 128, 1.5f, amx);    // exact multiples
    test_shape(1, 47, 1, 256, 1.0f, amx);
    test_shape(1, 577, 3, 64, 1.5f, amx);    // ViT-L/16 at 384: 576 patches + cls
    test_shape(1, 577, 1, 64, 4.0f, amx);    // peaked softmax rows
    test_shape(1, 1025, 1, 64, 1.5f, amx);   // ViT-L/16 at 512
    test_concurrent();                        // whichever path "auto" takes here
    if (amx) {
        test_io(2, 197, 3, 64);
        test_io(1, 33, 2, 96);
    } else {
        CHECK(!cpu_attention_io_ok(197, 64), "bf16 attention I/O offered without AMX");
    }

    // Shapes AMX cannot take go to oneDNN under "auto", and forcing "amx" on
    // them is an error, not a silent fallback.
    CHECK(!strcmp(cpu_attention_path(50, 24, UFO_PREC_BF16), "onednn"), "hd=24 path %s",
          cpu_attention_path(50, 24, UFO_PREC_BF16));
    CHECK(!strcmp(cpu_attention_path(50, 24, UFO_PREC_FP32), "sgemm"), "fp32 path, hd=24");
    {
        float qkv[3 * 24] = {0}, out[24];
        cpu_debug_attention_path("amx");
        ufo_error_clear();
        CHECK(cpu_attention(out, qkv, 1, 1, 1, 24, UFO_PREC_BF16) == -1, "amx forced on hd=24 accepted");
        CHECK(strstr(ufo_error(), "UFO_ATTN=amx") != NULL, "error: %s", ufo_error());
        cpu_debug_attention_path(NULL);
    }
    // UFO_ATTN: a bad value is an error, "dnnl" is honoured.
    setenv("UFO_ATTN", "fast", 1);
    {
        float qkv[3 * 64] = {0}, out[64];
        ufo_error_clear();
        CHECK(cpu_attention(out, qkv, 1, 1, 1, 64, UFO_PREC_BF16) == -1, "UFO_ATTN=fast accepted");
        CHECK(strstr(ufo_error(), "UFO_ATTN") != NULL, "error: %s", ufo_error());
    }
    setenv("UFO_ATTN", "dnnl", 1);
    CHECK(!strcmp(cpu_attention_path(577, 64, UFO_PREC_BF16), "onednn"), "UFO_ATTN=dnnl ignored");
    unsetenv("UFO_ATTN");
    return check_summary("test_attention_amx");
}
