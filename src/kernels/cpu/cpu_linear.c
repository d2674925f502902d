// cpu_linear: y = x W^T + b (+ fused GELU or residual sum) on oneDNN's matmul.
//
// W is reordered once, at create time, into the blocked layout that oneDNN's
// matmul picks for "format_tag any" weights. A matmul primitive is then
// created lazily per distinct (n, post-op), with that packed layout given
// explicitly, and cached. (With oneDNN 2.6.3 the preferred layout does not
// depend on n; if it ever did, the explicit layout would cost speed, not
// correctness.)
// bf16: activations are rounded to bf16 into a per-thread scratch buffer
// shared by all layers; weights are bf16; bias, accumulation and dst fp32.
// bf16 on a CPU with AMX (cpu_gemm_amx_enabled at create time): the weights
// are packed once in cpu_gemm_amx's tile layout instead, and every forward
// runs there (activations rounded while packing, post-ops in its epilogue).
// Not thread-safe per layer: one caller at a time (oneDNN parallelises inside).
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_gemm_amx.h"
#include "base/error.h"
#include "base/mem.h"
#include <oneapi/dnnl/dnnl_debug.h>
#include <string.h>

#define CACHE_MAX 8

typedef struct {
    int n;                // 0 = empty slot
    cpu_post_op post;
    int io;               // CPU_LINEAR_SRC_BF16 | CPU_LINEAR_DST_BF16
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst;   // handles set per call
    unsigned long last_use;
} lin_entry;

struct cpu_linear {
    int in, out;
    ufo_precision prec;
    dnnl_data_type_t dt;          // src/weights data type
    int amx;                      // 1: w_buf holds cpu_gemm_amx's packed W^T, no oneDNN objects
    dnnl_memory_desc_t w_md;      // packed weights
    void *w_buf;                  // packed weights (ufo_alloc)
    dnnl_memory_t w_mem;
    float *b_buf;                 // fp32 bias copy or NULL
    dnnl_memory_desc_t b_md;
    dnnl_memory_t b_mem;
    lin_entry cache[CACHE_MAX];
    unsigned long tick;
};

// bf16 activations of the current forward call (grow-only, one per thread).
static _Thread_local uint16_t *tl_xbf;
static _Thread_local size_t tl_xbf_cap;   // elements

static int make_pd(dnnl_primitive_desc_t *pd, const cpu_linear *l, long n, const dnnl_memory_desc_t *w_md,
                   cpu_post_op post, int io) {
    dnnl_engine_t eng = cpu_engine();
    if (!eng) return -1;
    dnnl_memory_desc_t s_md, d_md;
    dnnl_dims_t sd = {n, l->in}, dd = {n, l->out};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&s_md, 2, sd, l->dt, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&d_md, 2, dd, io & CPU_LINEAR_DST_BF16 ? dnnl_bf16 : dnnl_f32, dnnl_ab);
    if (st != dnnl_success) return cpu_dnnl_error("cpu_linear: memory descriptor", st);
    dnnl_matmul_desc_t mm;
    st = dnnl_matmul_desc_init(&mm, &s_md, w_md, l->b_buf ? &l->b_md : NULL, &d_md);
    if (st != dnnl_success) return cpu_dnnl_error("cpu_linear: matmul descriptor", st);

    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success && post != CPU_POST_NONE) {
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success)
            st = post == CPU_POST_GELU ? dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.f, 0.f)
                                       : dnnl_post_ops_append_sum(po, 1.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &mm, attr, eng, NULL);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return ufo_errorf("cpu_linear: matmul %ldx%dx%d (%s): oneDNN error %s", n, l->in, l->out,
                          l->prec == UFO_PREC_BF16 ? "bf16" : "fp32", dnnl_status2str(st));
    return 0;
}

cpu_linear *cpu_linear_create(const float *w, const float *b, int in, int out, ufo_precision prec) {
    if (in <= 0 || out <= 0) {
        ufo_errorf("cpu_linear_create: bad shape in=%d out=%d", in, out);
        return NULL;
    }
    dnnl_engine_t eng = cpu_engine();
    dnnl_stream_t strm = cpu_stream();
    if (!eng || !strm) return NULL;
    cpu_linear *l = ufo_calloc(sizeof *l);
    if (!l) return NULL;
    l->in = in;
    l->out = out;
    l->prec = prec;
    l->dt = prec == UFO_PREC_BF16 ? dnnl_bf16 : dnnl_f32;

    dnnl_status_t st;
    if (b) {
        l->b_buf = ufo_alloc((size_t)out * sizeof(float));
        if (!l->b_buf) goto fail;
        memcpy(l->b_buf, b, (size_t)out * sizeof(float));
        dnnl_dims_t bd = {1, out};
        st = dnnl_memory_desc_init_by_tag(&l->b_md, 2, bd, dnnl_f32, dnnl_ab);
        if (st == dnnl_success) st = dnnl_memory_create(&l->b_mem, &l->b_md, eng, l->b_buf);
        if (st != dnnl_success) {
            cpu_dnnl_error("cpu_linear_create: bias memory", st);
            goto fail;
        }
    }

    if (prec == UFO_PREC_BF16 && cpu_gemm_env_check()) goto fail;
    if (prec == UFO_PREC_BF16 && cpu_gemm_amx_enabled()) {
        l->amx = 1;
        l->w_buf = ufo_alloc(amx_packed_b_bytes(in, out));
        if (!l->w_buf) goto fail;
        amx_pack_b(l->w_buf, (amx_operand){w, in, 1, 0, 0}, in, out);   // B = W^T, stored as W [out, in]
        return l;
    }

    // Ask the matmul which weight layout it wants (M is arbitrary here).
    dnnl_memory_desc_t any_md, user_md;
    dnnl_dims_t wd = {in, out}, ws = {1, in};   // W^T [in, out] viewed in place of W [out, in]
    st = dnnl_memory_desc_init_by_tag(&any_md, 2, wd, l->dt, dnnl_format_tag_any);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_strides(&user_md, 2, wd, dnnl_f32, ws);
    if (st != dnnl_success) {
        cpu_dnnl_error("cpu_linear_create: weight descriptor", st);
        goto fail;
    }
    dnnl_primitive_desc_t pd = NULL;
    if (make_pd(&pd, l, 256, &any_md, CPU_POST_NONE, 0)) goto fail;
    l->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);

    l->w_buf = ufo_alloc(dnnl_memory_desc_get_size(&l->w_md));
    if (!l->w_buf) goto fail;
    st = dnnl_memory_create(&l->w_mem, &l->w_md, eng, l->w_buf);
    if (st != dnnl_success) {
        cpu_dnnl_error("cpu_linear_create: weight memory", st);
        goto fail;
    }

    // Reorder (and for bf16 round) the caller's weights into the packed copy.
    dnnl_memory_t user_mem = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    st = dnnl_memory_create(&user_mem, &user_md, eng, (void *)w);
    if (st == dnnl_success) st = dnnl_reorder_primitive_desc_create(&rpd, &user_md, eng, &l->w_md, eng, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(&reorder, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user_mem}, {DNNL_ARG_TO, l->w_mem}};
        st = dnnl_primitive_execute(reorder, strm, 2, args);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(strm);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (user_mem) dnnl_memory_destroy(user_mem);
    if (st != dnnl_success) {
        cpu_dnnl_error("cpu_linear_create: weight reorder", st);
        goto fail;
    }
    return l;
fail:
    cpu_linear_free(l);
    return NULL;
}

static void entry_clear(lin_entry *e) {
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->src) dnnl_memory_destroy(e->src);
    if (e->dst) dnnl_memory_destroy(e->dst);
    memset(e, 0, sizeof *e);
}

// The cached primitive for (n, post, io), created on a miss (evicting the least
// recently used entry when the cache is full).
static lin_entry *get_entry(cpu_linear *l, int n, cpu_post_op post, int io) {
    lin_entry *victim = NULL;
    for (int i = 0; i < CACHE_MAX; i++) {
        lin_entry *e = &l->cache[i];
        if (e->n == n && e->post == post && e->io == io) {
            e->last_use = ++l->tick;
            return e;
        }
        if (!victim || (victim->n != 0 && (e->n == 0 || e->last_use < victim->last_use))) victim = e;
    }
    entry_clear(victim);

    dnnl_primitive_desc_t pd = NULL;
    if (make_pd(&pd, l, n, &l->w_md, post, io)) return NULL;
    dnnl_engine_t eng = cpu_engine();
    dnnl_status_t st = dnnl_primitive_create(&victim->prim, pd);
    if (st == dnnl_success)
        st = dnnl_memory_create(&victim->src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng,
                                DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&victim->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng,
                                DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        entry_clear(victim);
        cpu_dnnl_error("cpu_linear: primitive creation", st);
        return NULL;
    }
    victim->n = n;
    victim->post = post;
    victim->io = io;
    victim->last_use = ++l->tick;
    return victim;
}

int cpu_linear_forward(cpu_linear *l, float *y, const float *x, int n, cpu_post_op post) {
    return cpu_linear_forward_io(l, y, x, n, post, 0);
}

int cpu_linear_forward_io(cpu_linear *l, void *y, const void *x, int n, cpu_post_op post, int io) {
    if (n < 0) return ufo_errorf("cpu_linear_forward: bad n=%d", n);
    if (n == 0) return 0;
    if (post != CPU_POST_NONE && post != CPU_POST_GELU && post != CPU_POST_RESIDUAL)
        return ufo_errorf("cpu_linear_forward: bad post-op %d", (int)post);
    if (io & ~(CPU_LINEAR_SRC_BF16 | CPU_LINEAR_DST_BF16 | CPU_LINEAR_SRC_PACKED | CPU_LINEAR_DST_PACKED))
        return ufo_errorf("cpu_linear_forward: bad io flags %d", io);
    if ((io & (CPU_LINEAR_SRC_PACKED | CPU_LINEAR_DST_PACKED)) && !l->amx)
        return ufo_errorf("cpu_linear_forward: the packed layout needs the AMX matmul");
    if (io & CPU_LINEAR_SRC_PACKED) io |= CPU_LINEAR_SRC_BF16;
    if (io & CPU_LINEAR_DST_PACKED) io |= CPU_LINEAR_DST_BF16;
    if (io && l->prec != UFO_PREC_BF16) return ufo_errorf("cpu_linear_forward: bf16 input/output on an fp32 layer");
    if ((io & CPU_LINEAR_DST_BF16) && post == CPU_POST_RESIDUAL)
        return ufo_errorf("cpu_linear_forward: a residual sum needs an fp32 output");
    if (l->amx) {
        amx_epilogue e = {l->b_buf, post == CPU_POST_RESIDUAL ? 1.0f : 0.0f, post == CPU_POST_GELU,
                          !!(io & CPU_LINEAR_DST_BF16), l->out, NULL, !!(io & CPU_LINEAR_DST_PACKED)};
        amx_operand a = {x, l->in, 0, !!(io & CPU_LINEAR_SRC_BF16), !!(io & CPU_LINEAR_SRC_PACKED)};
        return amx_gemm(y, &e, a, (amx_operand){0}, l->w_buf, n, l->out, l->in);
    }
    dnnl_stream_t strm = cpu_stream();
    if (!strm) return -1;
    const void *src = x;
    if (l->prec == UFO_PREC_BF16 && !(io & CPU_LINEAR_SRC_BF16)) {
        size_t need = (size_t)n * l->in;
        if (need > tl_xbf_cap) {
            ufo_free(tl_xbf);
            tl_xbf_cap = 0;
            tl_xbf = ufo_alloc(need * sizeof(uint16_t));
            if (!tl_xbf) return -1;
            tl_xbf_cap = need;
        }
        cpu_f32_to_bf16(tl_xbf, x, need);
        src = tl_xbf;
    }
    lin_entry *e = get_entry(l, n, post, io);
    if (!e) return -1;
    dnnl_status_t st = dnnl_memory_set_data_handle(e->src, (void *)src);
    if (st == dnnl_success) st = dnnl_memory_set_data_handle(e->dst, y);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, e->src}, {DNNL_ARG_WEIGHTS, l->w_mem}, {DNNL_ARG_DST, e->dst},
                                   {DNNL_ARG_BIAS, l->b_mem}};
        st = dnnl_primitive_execute(e->prim, strm, l->b_mem ? 4 : 3, args);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(strm);
    if (st != dnnl_success) return cpu_dnnl_error("cpu_linear_forward: matmul execution", st);
    return 0;
}

int cpu_linear_is_amx(const cpu_linear *l) { return l && l->amx; }

void cpu_linear_free(cpu_linear *l) {
    if (!l) return;
    for (int i = 0; i < CACHE_MAX; i++) entry_clear(&l->cache[i]);
    if (l->w_mem) dnnl_memory_destroy(l->w_mem);
    if (l->b_mem) dnnl_memory_destroy(l->b_mem);
    ufo_free(l->w_buf);
    ufo_free(l->b_buf);
    ufo_free(l);
}

// Patch embedding: im2col (tokens in raster order; each patch vector ordered
// (channel, ky, kx) like the conv weight [C, 3, p, p] flattened), then proj.
int cpu_patch_embed(cpu_linear *proj, float *y, const float *img, int B, int H, int W, int p) {
    if (B < 0 || p <= 0 || H % p || W % p)
        return ufo_errorf("cpu_patch_embed: image %dx%d is not a whole number of %dx%d patches", H, W, p, p);
    int gh = H / p, gw = W / p, k = 3 * p * p;
    if (proj->in != k) return ufo_errorf("cpu_patch_embed: projection takes %d inputs, patches have %d", proj->in, k);
    size_t ntok = (size_t)B * gh * gw;
    if (ntok == 0) return 0;
    float *col = ufo_alloc(ntok * k * sizeof(float));
    if (!col) return -1;
#pragma omp parallel for collapse(2) schedule(static) if (ntok * k > 32768)
    for (int bi = 0; bi < B; bi++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                float *dst = col + (((size_t)bi * gh + py) * gw + px) * k;
                for (int ch = 0; ch < 3; ch++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = img + (((size_t)bi * 3 + ch) * H + (size_t)py * p + ky) * W + (size_t)px * p;
                        memcpy(dst + ((size_t)ch * p + ky) * p, src, (size_t)p * sizeof(float));
                    }
            }
    int rc = cpu_linear_forward(proj, y, col, (int)ntok, CPU_POST_NONE);
    ufo_free(col);
    return rc;
}
