// cpu_gemm: C = op(A) op(B) (+ bias) (+ beta C) (then GELU) on oneDNN's matmul.
//
// Transposed operands are described to oneDNN with strided memory descriptors
// (A^T: dims [M, K], strides [1, M]; B^T: dims [K, N], strides [1, K]) so
// nothing is copied on our side. Implementations (ONEDNN_VERBOSE=1 shows them):
// bf16 takes oneDNN's first choice, brg:avx512_core_amx_bf16 for every layout;
// fp32 takes the matmul's "gemm:jit" implementation (oneDNN's jit sgemm, which
// reads all four layouts natively) rather than its first choice
// brg:avx512_core, which fell to about half speed on some ViT shapes (B with a
// 3072-float row stride: 165 vs 360 GFLOP/s for 12608x3072x768 on 2 cores).
// Bias, beta (a sum post-op) and GELU (an eltwise post-op) are fused.
// One primitive per distinct shape, transposition, beta, bias, GELU and
// precision, in an LRU cache; memory objects are created with no handle and
// pointed at the caller's arrays per call, so the cache (and the execution) is
// guarded by one mutex.
#include "kernels/cpu/cpu_train.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_gemm_amx.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <string.h>

#define GEMM_CACHE 32

typedef struct {
    int used;
    int M, N, K, ta, tb, bias, gelu;
    float beta;
    ufo_precision prec;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias_m;   // handles set per call
    unsigned long last_use;
} gemm_entry;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static gemm_entry g_cache[GEMM_CACHE];
static unsigned long g_tick;

// ---------------------------------------------------------------- scratch

static _Thread_local void *tl_slot[CPU_TRAIN_SLOTS];
static _Thread_local size_t tl_cap[CPU_TRAIN_SLOTS];

void *cpu_train_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CPU_TRAIN_SLOTS) {
        ufo_errorf("cpu_train_scratch: bad slot %d", slot);
        return NULL;
    }
    if (bytes == 0) bytes = 64;
    if (bytes > tl_cap[slot]) {
        ufo_free(tl_slot[slot]);
        tl_cap[slot] = 0;
        tl_slot[slot] = ufo_alloc(bytes);
        if (!tl_slot[slot]) return NULL;
        tl_cap[slot] = bytes;
    }
    return tl_slot[slot];
}

// ---------------------------------------------------------------- primitives

static void entry_clear(gemm_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    dnnl_memory_t *m[] = {&e->a, &e->b, &e->c, &e->bias_m};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    memset(e, 0, sizeof *e);
}

static int impl_is(const_dnnl_primitive_desc_t pd, const char *prefix) {
    const char *name = NULL;
    return pd && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name) == dnnl_success && name &&
           !strncmp(name, prefix, strlen(prefix));
}

// The primitive descriptor of the implementation to use: for bf16 oneDNN's
// first choice (brgemm on AMX); for fp32 the first "gemm:" implementation
// (oneDNN's jit sgemm behind the matmul API, with the same fused bias / sum /
// GELU), which measured faster than brg:avx512_core on every training shape;
// the first choice where there is none.
static dnnl_status_t pick_impl(dnnl_primitive_desc_t *pd, const dnnl_matmul_desc_t *mm,
                               const_dnnl_primitive_attr_t attr, ufo_precision prec) {
    const char *want = prec == UFO_PREC_FP32 ? "gemm:" : "";
    dnnl_primitive_desc_iterator_t it = NULL;
    dnnl_status_t st = dnnl_primitive_desc_iterator_create(&it, mm, attr, cpu_engine(), NULL);
    if (st != dnnl_success) return st;
    dnnl_primitive_desc_t first = dnnl_primitive_desc_iterator_fetch(it), chosen = NULL;
    if (*want && first && !impl_is(first, want)) {
        while (!chosen && dnnl_primitive_desc_iterator_next(it) == dnnl_success) {
            dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
            if (impl_is(cand, want)) chosen = cand;
            else if (cand) dnnl_primitive_desc_destroy(cand);
        }
    }
    if (chosen) dnnl_primitive_desc_destroy(first);
    else chosen = first;
    dnnl_primitive_desc_iterator_destroy(it);
    *pd = chosen;
    return chosen ? dnnl_success : dnnl_runtime_error;
}

static int entry_build(gemm_entry *e, int M, int N, int K, int ta, int tb, float beta, int bias, int gelu,
                       ufo_precision prec) {
    dnnl_engine_t eng = cpu_engine();
    if (!eng) return -1;
    dnnl_data_type_t dt = prec == UFO_PREC_BF16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N}, biasd = {1, N};
    dnnl_dims_t as = {ta ? 1 : K, ta ? M : 1}, bs = {tb ? 1 : N, tb ? K : 1};
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, dt, as);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_strides(&b_md, 2, bd, dt, bs);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab);
    if (st == dnnl_success && bias) st = dnnl_memory_desc_init_by_tag(&bias_md, 2, biasd, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t mm;
    if (st == dnnl_success) st = dnnl_matmul_desc_init(&mm, &a_md, &b_md, bias ? &bias_md : NULL, &c_md);

    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success) st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success && (beta != 0.0f || gelu)) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success && beta != 0.0f) st = dnnl_post_ops_append_sum(po, beta);
        if (st == dnnl_success && gelu) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.f, 0.f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (st == dnnl_success) st = pick_impl(&pd, &mm, attr, prec);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success) st = dnnl_primitive_create(&e->prim, pd);
    if (st == dnnl_success) st = dnnl_memory_create(&e->a, &a_md, eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success) st = dnnl_memory_create(&e->b, &b_md, eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success) st = dnnl_memory_create(&e->c, &c_md, eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success && bias) st = dnnl_memory_create(&e->bias_m, &bias_md, eng, DNNL_MEMORY_NONE);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        entry_clear(e);
        return ufo_errorf("cpu_gemm: matmul M=%d N=%d K=%d%s%s (%s): oneDNN error %s", M, N, K, ta ? " A^T" : "",
                          tb ? " B^T" : "", prec == UFO_PREC_BF16 ? "bf16" : "fp32", dnnl_status2str(st));
    }
    e->used = 1;
    e->M = M;
    e->N = N;
    e->K = K;
    e->ta = ta;
    e->tb = tb;
    e->beta = beta;
    e->bias = bias;
    e->gelu = gelu;
    e->prec = prec;
    return 0;
}

// Call with g_mu held.
static gemm_entry *get_entry(int M, int N, int K, int ta, int tb, float beta, int bias, int gelu,
                             ufo_precision prec) {
    gemm_entry *victim = NULL;
    for (int i = 0; i < GEMM_CACHE; i++) {
        gemm_entry *e = &g_cache[i];
        if (e->used && e->M == M && e->N == N && e->K == K && e->ta == ta && e->tb == tb && e->beta == beta &&
            e->bias == bias && e->gelu == gelu && e->prec == prec) {
            e->last_use = ++g_tick;
            return e;
        }
        if (!victim || (victim->used && (!e->used || e->last_use < victim->last_use))) victim = e;
    }
    entry_clear(victim);
    if (entry_build(victim, M, N, K, ta, tb, beta, bias, gelu, prec)) return NULL;
    victim->last_use = ++g_tick;
    return victim;
}

// Call with g_mu held.
static int gemm_locked(float *C, const void *A, const void *B, const float *bias, int M, int N, int K, int ta,
                       int tb, float beta, int gelu, ufo_precision prec) {
    dnnl_stream_t strm = cpu_stream();
    if (!strm) return -1;
    gemm_entry *e = get_entry(M, N, K, ta, tb, beta, bias != NULL, gelu, prec);
    if (!e) return -1;
    dnnl_status_t st = dnnl_memory_set_data_handle(e->a, (void *)A);
    if (st == dnnl_success) st = dnnl_memory_set_data_handle(e->b, (void *)B);
    if (st == dnnl_success) st = dnnl_memory_set_data_handle(e->c, C);
    if (st == dnnl_success && bias) st = dnnl_memory_set_data_handle(e->bias_m, (void *)bias);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c},
                                   {DNNL_ARG_BIAS, e->bias_m}};
        st = dnnl_primitive_execute(e->prim, strm, bias ? 4 : 3, args);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(strm);
    if (st != dnnl_success) return cpu_dnnl_error("cpu_gemm: matmul execution", st);
    return 0;
}

// Our AMX matmul where it measured faster than oneDNN's: everything but the
// small weight gradients. dW = dY^T X (A stored transposed) packs dY through
// 16-bit transposes, a third of its time; at ViT-B/16 batch 64 (C of 1.8 to
// 2.4 M elements) it still runs 1.25-1.4x oneDNN's, at ViT-S/16 (0.4 to 0.6 M)
// 0.8-1.1x, so C below 2^20 elements stays on oneDNN.
static int amx_for(int transA, int M, int N) {
    return (!transA || (long)M * N >= (1l << 20)) && cpu_gemm_amx_enabled();
}

static int check_args(const char *fn, int M, int N, int K, ufo_precision prec) {
    if (M < 0 || N < 0 || K < 0) return ufo_errorf("%s: bad shape M=%d N=%d K=%d", fn, M, N, K);
    if (prec != UFO_PREC_FP32 && prec != UFO_PREC_BF16) return ufo_errorf("%s: bad precision %d", fn, (int)prec);
    return 0;
}

// K == 0: the product is all zeros, which oneDNN would refuse; do it here.
static void gemm_k0(float *C, const float *bias, int M, int N, float beta, int gelu) {
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            float v = (bias ? bias[j] : 0.0f) + (beta != 0.0f ? beta * C[i * N + j] : 0.0f);
            if (gelu) v = v * 0.5f * (1.0f + erff(v * 0.70710678118654752f));
            C[i * N + j] = v;
        }
}

int cpu_gemm_ex(float *C, const void *A, const void *B, const float *bias, int M, int N, int K, int transA,
                int transB, float beta, int gelu, ufo_precision prec) {
    if (check_args("cpu_gemm_ex", M, N, K, prec)) return -1;
    if ((long)M * N == 0) return 0;
    if (K == 0) {
        gemm_k0(C, bias, M, N, beta, gelu);
        return 0;
    }
    if (prec == UFO_PREC_BF16 && cpu_gemm_env_check()) return -1;
    if (prec == UFO_PREC_BF16 && amx_for(transA, M, N))
        return amx_gemm_simple(C, A, 1, transA, B, 1, transB, bias, M, N, K, beta, gelu);
    pthread_mutex_lock(&g_mu);
    int rc = gemm_locked(C, A, B, bias, M, N, K, !!transA, !!transB, beta, !!gelu, prec);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int cpu_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float beta,
             ufo_precision prec) {
    if (check_args("cpu_gemm", M, N, K, prec)) return -1;
    if (prec == UFO_PREC_FP32 || (long)M * N == 0 || K == 0)
        return cpu_gemm_ex(C, A, B, NULL, M, N, K, transA, transB, beta, 0, prec);
    if (amx_for(transA, M, N))   // rounded while packing: no bf16 copies
        return amx_gemm_simple(C, A, 0, transA, B, 0, transB, NULL, M, N, K, beta, 0);
    size_t na = (size_t)M * K, nb = (size_t)K * N;
    uint16_t *ab = cpu_train_scratch(0, na * sizeof(uint16_t));
    uint16_t *bb = cpu_train_scratch(1, nb * sizeof(uint16_t));
    if (!ab || !bb) return -1;
    cpu_f32_to_bf16(ab, A, na);   // element order is storage order: transposition does not matter
    cpu_f32_to_bf16(bb, B, nb);
    return cpu_gemm_ex(C, ab, bb, NULL, M, N, K, transA, transB, beta, 0, prec);
}

int cpu_linear_train_forward(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                             cpu_post_op post, ufo_precision prec) {
    if (post != CPU_POST_NONE && post != CPU_POST_GELU && post != CPU_POST_RESIDUAL)
        return ufo_errorf("cpu_linear_train_forward: bad post-op %d", (int)post);
    if (check_args("cpu_linear_train_forward", n, out, in, prec)) return -1;
    float beta = post == CPU_POST_RESIDUAL ? 1.0f : 0.0f;
    int gelu = post == CPU_POST_GELU;
    if (prec == UFO_PREC_FP32 || (long)n * out == 0 || in == 0)
        return cpu_gemm_ex(y, x, w, b, n, out, in, 0, 1, beta, gelu, prec);
    if (cpu_gemm_amx_enabled()) return amx_gemm_simple(y, x, 0, 0, w, 0, 1, b, n, out, in, beta, gelu);
    size_t nx = (size_t)n * in, nw = (size_t)out * in;
    uint16_t *xb = cpu_train_scratch(0, nx * sizeof(uint16_t));
    uint16_t *wb = cpu_train_scratch(1, nw * sizeof(uint16_t));
    if (!xb || !wb) return -1;
    cpu_f32_to_bf16(xb, x, nx);
    cpu_f32_to_bf16(wb, w, nw);
    return cpu_gemm_ex(y, xb, wb, b, n, out, in, 0, 1, beta, gelu, prec);
}

int cpu_linear_train_forward_bf16(float *y, const uint16_t *xb, const float *w, const float *b, int n, int in,
                                  int out, cpu_post_op post) {
    if (post != CPU_POST_NONE && post != CPU_POST_GELU && post != CPU_POST_RESIDUAL)
        return ufo_errorf("cpu_linear_train_forward_bf16: bad post-op %d", (int)post);
    if (check_args("cpu_linear_train_forward_bf16", n, out, in, UFO_PREC_BF16)) return -1;
    float beta = post == CPU_POST_RESIDUAL ? 1.0f : 0.0f;
    int gelu = post == CPU_POST_GELU;
    if (cpu_gemm_amx_enabled()) return amx_gemm_simple(y, xb, 1, 0, w, 0, 1, b, n, out, in, beta, gelu);
    const uint16_t *wb = NULL;
    if ((long)n * out > 0 && in > 0) {   // weights are small next to the activations: round them per call
        uint16_t *t = cpu_train_scratch(1, (size_t)out * in * sizeof(uint16_t));
        if (!t) return -1;
        cpu_f32_to_bf16(t, w, (size_t)out * in);
        wb = t;
    }
    return cpu_gemm_ex(y, xb, wb, b, n, out, in, 0, 1, beta, gelu, UFO_PREC_BF16);
}

int cpu_linear_gelu_train_forward_bf16(uint16_t *gb, uint16_t *gd, const uint16_t *xb, const float *w, const float *b,
                                       int n, int in, int out, float *scratch) {
    if (check_args("cpu_linear_gelu_train_forward_bf16", n, out, in, UFO_PREC_BF16)) return -1;
    if (cpu_gemm_amx_enabled()) {
        amx_epilogue e = {b, 0.0f, 1, 1, out, gd, 0};
        amx_operand a = {xb, in, 0, 1, 0}, wt = {w, in, 1, 0, 0};   // B = W^T, stored as W [out, in]
        return amx_gemm(gb, &e, a, wt, NULL, n, out, in);
    }
    if (cpu_linear_train_forward_bf16(scratch, xb, w, b, n, in, out, CPU_POST_NONE)) return -1;
    cpu_gelu_bf16(gb, gd, scratch, (size_t)n * out);
    return 0;
}

int cpu_linear_train_forward_bf16_out(uint16_t *yb, const uint16_t *xb, const float *w, const float *b, int n, int in,
                                      int out, float *scratch) {
    if (check_args("cpu_linear_train_forward_bf16_out", n, out, in, UFO_PREC_BF16)) return -1;
    if (cpu_gemm_amx_enabled() && in > 0) {   // K = 0: the fp32 path's bias-only rows
        amx_epilogue e = {b, 0.0f, 0, 1, out, NULL, 0};
        amx_operand a = {xb, in, 0, 1, 0}, wt = {w, in, 1, 0, 0};   // B = W^T, stored as W [out, in]
        return amx_gemm(yb, &e, a, wt, NULL, n, out, in);
    }
    if (cpu_linear_train_forward_bf16(scratch, xb, w, b, n, in, out, CPU_POST_NONE)) return -1;
    cpu_f32_to_bf16(yb, scratch, (size_t)n * out);
    return 0;
}
