// cpu_attention: softmax(q k^T / sqrt(hd)) v for every (batch, head).
//
// fp32 on CPUs with AVX-512: the fused kernel in cpu_attention_fma.c (the
// scores of 14 queries at a time in L1, a one-pass softmax).
//
// fp32 elsewhere (and under UFO_ATTN=dnnl): per image, q, k and v copied
// head-major, then one head per OpenMP iteration: dnnl_sgemm (single-threaded
// inside our parallel region) gives S = T x T in a per-thread buffer (1.3 MB
// at T = 577, cache resident), an AVX-512 softmax normalises it, and the
// second sgemm writes straight into `out`.
//
// bf16: (batch, head) pairs go in groups of G. A group's q, k, v are gathered
// and rounded to bf16 as [G, T, hd]; a batched oneDNN matmul (AMX where the
// CPU has it) gives S = q k^T in fp32; the softmax runs in fp32 and rounds P
// to bf16; a second batched matmul gives P v in fp32, scattered into `out`.
// G is normally H (one image per group; see group_size). Primitives and
// buffers are kept between calls (guarded by a mutex: callers may be on any
// thread).
//
// bf16 on CPUs with AMX: the fused kernel in cpu_attention_amx.c instead
// (bf16 q, k, v and P, fp32 scores and softmax as here; S never leaves L2).
// UFO_ATTN=dnnl|amx|auto forces a path, for tests and benchmarks;
// cpu_attention_path says which one runs.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_attention_amx.h"
#include "kernels/cpu/cpu_attention_fma.h"
#include "kernels/cpu/cpu_internal.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------- fp32

dnnl_status_t cpu_head_probs_f32(float *P, const float *q, const float *k, int T, int hd, long ld, float scale) {
    dnnl_status_t st = dnnl_sgemm('N', 'T', T, T, hd, scale, q, ld, k, ld, 0.0f, P, T);
    if (st == dnnl_success)
        for (int i = 0; i < T; i++) cpu_softmax_row(P + (size_t)i * T, T, 1.0f);
    return st;
}

// Per image, q, k and v are first copied head-major ([3][H][T][hd]) in one
// token-major pass: a head's rows read in place are 4 * hd bytes from every
// qkv row (12 KB apart at ViT-L), a cache and TLB miss each, which cost as
// much as the arithmetic (50 -> 38 ms per ViT-L/16-384 call at batch 8).
static int attention_f32(float *out, const float *qkv, int B, int T, int H, int hd) {
    const long row = 3L * H * hd, orow = (long)H * hd, head = (long)T * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    int nthr = omp_get_max_threads();
    if (nthr > H) nthr = H;
    float *sbuf = ufo_alloc((size_t)nthr * T * T * sizeof(float)), *hm = ufo_alloc((size_t)3 * H * head * sizeof(float));
    if (!sbuf || !hm) {
        ufo_free(sbuf);
        ufo_free(hm);
        return -1;
    }
    dnnl_status_t err = dnnl_success;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    {
        float *s = sbuf + (size_t)omp_get_thread_num() * T * T;
        for (int b = 0; b < B; b++) {
            const float *x = qkv + (size_t)b * T * row;
#pragma omp for schedule(static)
            for (int t = 0; t < T; t++)
                for (int part = 0; part < 3 * H; part++)   // part = which * H + h
                    memcpy(hm + (size_t)part * head + (size_t)t * hd, x + (size_t)t * row + (size_t)part * hd,
                           (size_t)hd * sizeof(float));
            // (implicit barrier: image b is head-major)
#pragma omp for schedule(static)
            for (int h = 0; h < H; h++) {
                const float *q = hm + (size_t)h * head, *k = q + (size_t)H * head, *v = k + (size_t)H * head;
                float *o = out + (size_t)b * T * orow + (size_t)h * hd;
                dnnl_status_t st = cpu_head_probs_f32(s, q, k, T, hd, hd, scale);
                if (st == dnnl_success) st = dnnl_sgemm('N', 'N', T, hd, T, 1.0f, s, T, v, hd, 0.0f, o, orow);
                if (st != dnnl_success) {
#pragma omp critical(ufo_attention_err)
                    err = st;
                }
            }
            // (implicit barrier: hm is free for image b+1)
        }
    }
    ufo_free(sbuf);
    ufo_free(hm);
    if (err != dnnl_success) return cpu_dnnl_error("cpu_attention: sgemm", err);
    return 0;
}

// ---------------------------------------------------------------- bf16

typedef struct {
    int G, T, hd;
    dnnl_primitive_t qk, pv;
    dnnl_memory_t q, k, s, p, v, o;   // handles set per call
} attn_prims;

#define ATTN_CACHE 4
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static attn_prims g_prims[ATTN_CACHE];
static int g_prims_next;
static void *g_ws;            // workspace, grow-only
static size_t g_ws_size;

static void prims_clear(attn_prims *a) {
    if (a->qk) dnnl_primitive_destroy(a->qk);
    if (a->pv) dnnl_primitive_destroy(a->pv);
    dnnl_memory_t *m[] = {&a->q, &a->k, &a->s, &a->p, &a->v, &a->o};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (*m[i]) dnnl_memory_destroy(*m[i]);
    memset(a, 0, sizeof *a);
}

static attn_prims *get_prims(int G, int T, int hd) {
    for (int i = 0; i < ATTN_CACHE; i++)
        if (g_prims[i].G == G && g_prims[i].T == T && g_prims[i].hd == hd) return &g_prims[i];
    attn_prims *a = &g_prims[g_prims_next];
    g_prims_next = (g_prims_next + 1) % ATTN_CACHE;
    prims_clear(a);
    if (!cpu_engine()) return NULL;
    dnnl_memory_desc_t q_md, kt_md, s_md, p_md, v_md, o_md;
    dnnl_dims_t qd = {G, T, hd}, ktd = {G, hd, T}, sd = {G, T, T};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&q_md, 3, qd, dnnl_bf16, dnnl_abc);
    // k stored [G, T, hd] is k^T [G, hd, T] in "acb" order: no transpose needed.
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&kt_md, 3, ktd, dnnl_bf16, dnnl_acb);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&s_md, 3, sd, dnnl_f32, dnnl_abc);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&p_md, 3, sd, dnnl_bf16, dnnl_abc);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&v_md, 3, qd, dnnl_bf16, dnnl_abc);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&o_md, 3, qd, dnnl_f32, dnnl_abc);
    if (st == dnnl_success) st = cpu_make_matmul(&a->qk, &a->q, &a->k, &a->s, &q_md, &kt_md, &s_md);
    if (st == dnnl_success) st = cpu_make_matmul(&a->pv, &a->p, &a->v, &a->o, &p_md, &v_md, &o_md);
    if (st != dnnl_success) {
        prims_clear(a);
        ufo_errorf("cpu_attention: bf16 matmul G=%d T=%d hd=%d: oneDNN error %s", G, T, hd, dnnl_status2str(st));
        return NULL;
    }
    a->G = G;
    a->T = T;
    a->hd = hd;
    return a;
}

// Heads per group. One image's H heads when their S (fp32) and P (bf16) fit
// in 64 MB: q, k, v rows are then gathered whole, and it measured fastest
// (T = 577, H = 16: 32 MB). Otherwise as many heads as fit, at least one.
static int group_size(int BH, int H, int T) {
    size_t per = (size_t)T * T * 6, budget = (size_t)64 << 20;
    size_t g = (size_t)H * per <= budget ? (size_t)H : budget / per;
    if (g < 1) g = 1;
    if (g > (size_t)BH) g = (size_t)BH;
    return (int)g;
}

static int attention_bf16_locked(float *out, const float *qkv, int B, int T, int H, int hd) {
    const long row = 3L * H * hd, orow = (long)H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const int BH = B * H, G = group_size(BH, H, T);
    const size_t thd = (size_t)T * hd, tt = (size_t)T * T;
    // Workspace: q, k, v bf16 [G, T, hd]; S fp32 [G, T, T]; P bf16 [G, T, T]; O fp32 [G, T, hd].
    size_t off_q = 0, off_k = off_q + G * thd * 2, off_v = off_k + G * thd * 2, off_s = off_v + G * thd * 2;
    off_s = (off_s + 63) & ~(size_t)63;
    size_t off_p = off_s + G * tt * 4;
    off_p = (off_p + 63) & ~(size_t)63;
    size_t off_o = off_p + G * tt * 2;
    off_o = (off_o + 63) & ~(size_t)63;
    size_t need = off_o + G * thd * 4;
    if (need > g_ws_size) {
        ufo_free(g_ws);
        g_ws_size = 0;
        g_ws = ufo_alloc(need);
        if (!g_ws) return -1;
        g_ws_size = need;
    }
    char *ws = g_ws;
    uint16_t *qb = (uint16_t *)(ws + off_q), *kb = (uint16_t *)(ws + off_k), *vb = (uint16_t *)(ws + off_v);
    float *s = (float *)(ws + off_s), *o = (float *)(ws + off_o);
    uint16_t *p = (uint16_t *)(ws + off_p);

    for (int c0 = 0; c0 < BH; c0 += G) {
        int g = BH - c0 < G ? BH - c0 : G;
        attn_prims *a = get_prims(g, T, hd);
        if (!a) return -1;
        // Gather and round q, k, v of the group.
#pragma omp parallel for schedule(static) if ((size_t)g * thd > 32768)
        for (long i = 0; i < (long)g * T; i++) {   // token-major: neighbouring heads are adjacent in qkv
            int t = (int)(i / g), gi = (int)(i % g), bh = c0 + gi, b = bh / H, h = bh % H;
            const float *src = qkv + ((size_t)b * T + t) * row + (size_t)h * hd;
            size_t dst = ((size_t)gi * T + t) * hd;
            cpu_f32_to_bf16_serial(qb + dst, src, hd);
            cpu_f32_to_bf16_serial(kb + dst, src + (size_t)H * hd, hd);
            cpu_f32_to_bf16_serial(vb + dst, src + (size_t)2 * H * hd, hd);
        }
        dnnl_status_t st = cpu_exec_matmul(a->qk, a->q, qb, a->k, kb, a->s, s);
        if (st != dnnl_success) return cpu_dnnl_error("cpu_attention: q k^T matmul", st);
#pragma omp parallel for schedule(static) if ((size_t)g * tt > 32768)
        for (long r = 0; r < (long)g * T; r++) {
            cpu_softmax_row_bf16(s + (size_t)r * T, p + (size_t)r * T, T, scale);
        }
        st = cpu_exec_matmul(a->pv, a->p, p, a->v, vb, a->o, o);
        if (st != dnnl_success) return cpu_dnnl_error("cpu_attention: P v matmul", st);
#pragma omp parallel for schedule(static) if ((size_t)g * thd > 32768)
        for (long i = 0; i < (long)g * T; i++) {
            int t = (int)(i / g), gi = (int)(i % g), bh = c0 + gi, b = bh / H, h = bh % H;
            memcpy(out + ((size_t)b * T + t) * orow + (size_t)h * hd, o + ((size_t)gi * T + t) * hd,
                   (size_t)hd * sizeof(float));
        }
    }
    return 0;
}

// ---------------------------------------------------------------- dispatch

typedef enum { PATH_AUTO, PATH_DNNL, PATH_AMX, PATH_BAD } attn_path;
static int g_debug_path = -1;   // cpu_debug_attention_path; -1 = follow UFO_ATTN

void cpu_debug_attention_path(const char *name) {
    int v = -1;
    if (name) v = !strcmp(name, "dnnl") ? PATH_DNNL : !strcmp(name, "amx") ? PATH_AMX : PATH_AUTO;
    __atomic_store_n(&g_debug_path, v, __ATOMIC_RELAXED);
}

static attn_path requested_path(void) {
    int v = __atomic_load_n(&g_debug_path, __ATOMIC_RELAXED);
    if (v >= 0) return (attn_path)v;
    const char *e = getenv("UFO_ATTN");
    if (!e || !*e || !strcmp(e, "auto")) return PATH_AUTO;
    if (!strcmp(e, "dnnl")) return PATH_DNNL;
    if (!strcmp(e, "amx")) return PATH_AMX;
    return PATH_BAD;
}

const char *cpu_attention_path(int T, int hd, ufo_precision prec) {
    attn_path p = requested_path();
    if (p == PATH_BAD) return "invalid UFO_ATTN";
    if (prec != UFO_PREC_BF16) return p != PATH_DNNL && fma_attention_ok(T, hd) ? "avx512" : "sgemm";
    if (p == PATH_DNNL) return "onednn";
    if (amx_attention_ok(T, hd)) return "amx";
    return p == PATH_AMX ? "unavailable (UFO_ATTN=amx)" : "onednn";
}

int cpu_attention(float *out, const float *qkv, int B, int T, int H, int hd, ufo_precision prec) {
    if (B < 0 || T < 0 || H < 0 || hd <= 0)
        return ufo_errorf("cpu_attention: bad shape B=%d T=%d H=%d hd=%d", B, T, H, hd);
    if ((long)B * T * H == 0) return 0;
    attn_path path = requested_path();
    if (path == PATH_BAD)
        return ufo_errorf("cpu_attention: UFO_ATTN must be auto, dnnl or amx, got '%s'", getenv("UFO_ATTN"));
    if (prec != UFO_PREC_BF16) {   // UFO_ATTN=dnnl keeps the per-head sgemm path; amx is a bf16 kernel
        if (path != PATH_DNNL && fma_attention_ok(T, hd)) return fma_attention(out, qkv, B, T, H, hd);
        return attention_f32(out, qkv, B, T, H, hd);
    }
    if (path != PATH_DNNL && amx_attention_ok(T, hd)) return amx_attention(out, qkv, B, T, H, hd, 0);
    if (path == PATH_AMX && !cpu_has_amx())
        return ufo_errorf("cpu_attention: UFO_ATTN=amx but this CPU or OS has no AMX");
    if (path == PATH_AMX)
        return ufo_errorf("cpu_attention: UFO_ATTN=amx but head dim %d is not a multiple of 32 up to 256", hd);
    pthread_mutex_lock(&g_mu);
    int rc = attention_bf16_locked(out, qkv, B, T, H, hd);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int cpu_attention_io_ok(int T, int hd) {
    attn_path p = requested_path();
    return p != PATH_DNNL && p != PATH_BAD && amx_attention_ok(T, hd);
}

int cpu_attention_io(void *out, const void *qkv, int B, int T, int H, int hd, int io) {
    if (B < 0 || T < 0 || H < 0 || hd <= 0)
        return ufo_errorf("cpu_attention_io: bad shape B=%d T=%d H=%d hd=%d", B, T, H, hd);
    if (io & ~(CPU_ATTN_QKV_BF16 | CPU_ATTN_OUT_BF16 | CPU_ATTN_OUT_PACKED)) return ufo_errorf("cpu_attention_io: bad io flags %d", io);
    if (!cpu_attention_io_ok(T, hd))
        return ufo_errorf("cpu_attention_io: bf16 input/output needs the AMX attention path (T=%d hd=%d)", T, hd);
    if ((long)B * T * H == 0) return 0;
    return amx_attention(out, qkv, B, T, H, hd, io);
}
