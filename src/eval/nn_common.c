// Normalisation, double inner products, the fp32 GEMM screen and its error
// bound, block sizing and label groups for the nearest-neighbour metrics.
#include "eval/metrics.h"
#include "eval/nn_internal.h"
#include "base/error.h"
#include "base/mem.h"
#include <float.h>
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int ufo_nn_normalize_f32(const float *x, int64_t n, int d, float *out, const char *what) {
    int bad = -1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * d;
        double ss = 0;
        for (int k = 0; k < d; k++) ss += (double)r[k] * r[k];
        if (!isfinite(ss)) {
#pragma omp critical(ufo_nn_bad)
            if (bad < 0 || i < bad) bad = (int)i;
            continue;
        }
        double nrm = sqrt(ss);
        if (nrm < 1e-12) nrm = 1e-12;
        float *o = out + i * d;
        for (int k = 0; k < d; k++) o[k] = (float)((double)r[k] / nrm);
    }
    if (bad >= 0) return ufo_errorf("%s feature %d is not finite (NaN or Inf)", what, bad);
    return 0;
}

double ufo_nn_dot_f64(const float *a, const float *b, int d) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int k = 0;
    for (; k + 8 <= d; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)a[k + j] * (double)b[k + j];
    double t = 0;
    for (; k < d; k++) t += (double)a[k] * (double)b[k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + t;
}

double ufo_nn_eps(int d) {
    // gamma_n = n u / (1 - n u) bounds any-order summation of n products of
    // an inner product relative to sum |a_k b_k| <= |a| |b| <= (1 + 2^-23)^2.
    double nf = (double)d * ldexp(1.0, -24), nd = (double)(d + 2) * ldexp(1.0, -53);
    double gf = nf / (1 - nf), gd = nd / (1 - nd);
    return gf * (1 + ldexp(1.0, -20)) + 2 * gd + 8 * DBL_EPSILON;
}

// oneDNN's matmul primitive (brgemm kernels) is faster than its legacy
// dnnl_sgemm on AVX-512 machines; the fpmath mode is pinned to strict fp32
// so that a global bf16 default cannot loosen the error bound of ufo_nn_eps.
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;

static void init_engine(void) {
    if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
}

static int matmul_nt(const float *A, const float *B, int64_t m, int64_t n, int d, float *C) {
    pthread_once(&g_once, init_engine);
    if (!g_engine) return -1;
    dnnl_memory_desc_t ma, mb, mc;
    dnnl_dims_t da = {m, d}, db = {d, n}, dc = {m, n};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t xa = NULL, xb = NULL, xc = NULL;
    dnnl_stream_t st = NULL;
    int ok = dnnl_memory_desc_init_by_tag(&ma, 2, da, dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&mb, 2, db, dnnl_f32, dnnl_ba) == dnnl_success &&   // B stored [n, d]
             dnnl_memory_desc_init_by_tag(&mc, 2, dc, dnnl_f32, dnnl_ab) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &ma, &mb, NULL, &mc) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_primitive_attr_set_fpmath_mode(attr, dnnl_fpmath_mode_strict) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&prim, pd) == dnnl_success &&
             dnnl_memory_create(&xa, &ma, g_engine, (void *)A) == dnnl_success &&
             dnnl_memory_create(&xb, &mb, g_engine, (void *)B) == dnnl_success &&
             dnnl_memory_create(&xc, &mc, g_engine, C) == dnnl_success &&
             dnnl_stream_create(&st, g_engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, xa}, {DNNL_ARG_WEIGHTS, xb}, {DNNL_ARG_DST, xc}};
        ok = dnnl_primitive_execute(prim, st, 3, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success;
    }
    if (st) dnnl_stream_destroy(st);
    if (xa) dnnl_memory_destroy(xa);
    if (xb) dnnl_memory_destroy(xb);
    if (xc) dnnl_memory_destroy(xc);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return ok ? 0 : -1;
}

int ufo_nn_gemm_nt(const float *A, const float *B, int64_t m, int64_t n, int d, float *C, int64_t ldc) {
    if (m <= 0 || n <= 0) return 0;
    if (ldc == n && matmul_nt(A, B, m, n, d, C) == 0) return 0;
    dnnl_status_t st = dnnl_sgemm('N', 'T', m, n, d, 1.0f, A, d, B, d, 0.0f, C, ldc);
    if (st != dnnl_success) return ufo_errorf("similarity matrix: oneDNN sgemm failed (status %d)", (int)st);
    return 0;
}

float ufo_nn_float_down(double x) {
    float f = (float)x;
    if ((double)f > x) f = nextafterf(f, -INFINITY);
    return f;
}

float ufo_nn_float_up(double x) {
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

static int g_block_rows = -1;   // -1: not set (environment, else auto)

void ufo_metrics_set_block_rows(int rows) { g_block_rows = rows < 0 ? 0 : rows; }

int ufo_nn_block_rows(int64_t row_floats, int64_t max_rows) {
    int64_t rows = g_block_rows;
    if (rows < 0) {
        const char *e = getenv("UFO_METRICS_BLOCK");
        rows = e && *e ? atol(e) : 0;
        if (rows < 0) rows = 0;
    }
    if (rows == 0) {
        const int64_t budget = (int64_t)256 << 20;   // bytes of similarities per block
        rows = budget / (4 * (row_floats > 0 ? row_floats : 1));
        if (rows > 64) rows = rows / 64 * 64;
    }
    if (rows > max_rows) rows = max_rows;
    if (rows < 1) rows = 1;
    return (int)rows;
}

typedef struct {
    int key, idx;
} key_idx;

static int cmp_key_idx(const void *a, const void *b) {
    const key_idx *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int ufo_nn_groups_build(const int *labels, int n, ufo_nn_groups *g) {
    memset(g, 0, sizeof *g);
    size_t cnt = (size_t)(n > 0 ? n : 1);
    key_idx *t = ufo_alloc(sizeof(key_idx) * cnt);
    g->order = ufo_alloc(sizeof(int) * cnt);
    g->key = ufo_alloc(sizeof(int) * cnt);
    if (!t || !g->order || !g->key) {
        ufo_free(t);
        ufo_nn_groups_free(g);
        return -1;
    }
    g->n = n;
    for (int i = 0; i < n; i++) t[i] = (key_idx){labels[i], i};
    qsort(t, (size_t)n, sizeof *t, cmp_key_idx);
    for (int k = 0; k < n; k++) {
        g->order[k] = t[k].idx;
        g->key[k] = t[k].key;
    }
    ufo_free(t);
    return 0;
}

void ufo_nn_groups_find(const ufo_nn_groups *g, int label, int *lo, int *hi) {
    int a = 0, b = g->n;   // first key >= label
    while (a < b) {
        int m = a + (b - a) / 2;
        if (g->key[m] < label) a = m + 1;
        else b = m;
    }
    *lo = a;
    b = g->n;              // first key > label
    while (a < b) {
        int m = a + (b - a) / 2;
        if (g->key[m] <= label) a = m + 1;
        else b = m;
    }
    *hi = a;
}

int ufo_nn_groups_max(const ufo_nn_groups *g) {
    int best = 0;
    for (int k = 0; k < g->n;) {
        int e = k;
        while (e < g->n && g->key[e] == g->key[k]) e++;
        if (e - k > best) best = e - k;
        k = e;
    }
    return best;
}

void ufo_nn_groups_free(ufo_nn_groups *g) {
    ufo_free(g->order);
    ufo_free(g->key);
    memset(g, 0, sizeof *g);
}

// ---- The pluggable screen (metrics.h). One metric call at a time owns it:
// its device state (the resident gallery) belongs to one call.
static pthread_mutex_t g_screen_mu = PTHREAD_MUTEX_INITIALIZER;
static ufo_metrics_screen g_screen;   // .block NULL: none installed
static int g_screen_busy;

void ufo_metrics_set_screen(const ufo_metrics_screen *s) {
    pthread_mutex_lock(&g_screen_mu);
    if (s && s->begin && s->block && s->end) g_screen = *s;
    else memset(&g_screen, 0, sizeof g_screen);
    pthread_mutex_unlock(&g_screen_mu);
}

int ufo_metrics_screen_mode(void) {
    const char *e = getenv("UFO_METRICS_GPU");
    if (!e || !*e || !strcmp(e, "auto")) return 1;
    if (!strcmp(e, "always")) return 2;
    if (!strcmp(e, "never")) return 0;
    return ufo_errorf("UFO_METRICS_GPU must be always, never or auto (got '%s')", e);
}

int ufo_nn_screen_begin(ufo_nn_screen *s, const float *B, int64_t n, int d, double macs) {
    memset(s, 0, sizeof *s);
    s->B = B, s->n = n, s->d = d;
    pthread_mutex_lock(&g_screen_mu);
    int have = g_screen.block && !g_screen_busy, mode = have ? ufo_metrics_screen_mode() : 0;
    if (have && (mode == 2 || (mode == 1 && macs >= UFO_METRICS_SCREEN_MIN_MACS))) {
        s->ext = 1;
        s->scr = g_screen;
        g_screen_busy = 1;
    }
    pthread_mutex_unlock(&g_screen_mu);
    if (mode < 0) return -1;
    int rc = s->ext ? s->scr.begin(s->scr.ctx, B, n, d) : 0;
    if (rc > 0) {   // declined (e.g. device memory short): oneDNN screens this call
        ufo_nn_screen_end(s);
        rc = 0;
    }
    return rc;
}

// Trust, but verify: a few values of every block of an installed screen
// against the double products. A screen outside the contract (TF32 is off by
// 1e-4 to 1e-3, eps is 4.6e-5 at d = 768) fails loudly instead of skewing a metric.
static int spot_check(const ufo_nn_screen *s, const float *A, int64_t m, int64_t col0, int64_t w, const float *C) {
    const double eps = ufo_nn_eps(s->d);
    for (int64_t k = 0; k < 16; k++) {
        int64_t i = (k * 7919) % m, j = (k * 104729 + k * k) % w;
        double v = ufo_nn_dot_f64(A + (size_t)i * s->d, s->B + (size_t)(col0 + j) * s->d, s->d);
        double err = fabs((double)C[(size_t)i * w + j] - v);
        if (!(err <= eps))
            return ufo_errorf("similarity screen: value (%lld, %lld) is off by %.3g, more than fp32 allows (%.3g): "
                              "the installed screen is not strict fp32 (TF32?)",
                              (long long)i, (long long)(col0 + j), err, eps);
    }
    return 0;
}

int ufo_nn_screen_block(ufo_nn_screen *s, const float *A, int64_t m, int64_t col0, float *C) {
    int64_t w = s->n - col0;
    if (m <= 0 || w <= 0) return 0;
    if (s->ext) {
        int rc = s->scr.block(s->scr.ctx, A, m, col0, w, C);
        if (rc <= 0) return rc ? -1 : spot_check(s, A, m, col0, w, C);
        // 1: declined this block (device memory short): oneDNN screens it.
    }
    return ufo_nn_gemm_nt(A, s->B + (size_t)col0 * s->d, m, w, s->d, C, w);
}

void ufo_nn_screen_end(ufo_nn_screen *s) {
    if (!s->ext) return;
    s->scr.end(s->scr.ctx);
    s->ext = 0;
    pthread_mutex_lock(&g_screen_mu);
    g_screen_busy = 0;
    pthread_mutex_unlock(&g_screen_mu);
}
