// Training forward/backward of the ViT + BNNeck heads. Activations kept per
// block: the block input x_in, qkv, the attention output att, the mid-block
// residual x_mid and the pre-GELU MLP activation f1; LayerNorm outputs and
// GELU outputs are recomputed in the backward (cheap, and it halves memory).
// The bf16 path (CPU, prec BF16) keeps instead the bf16 inputs of the four
// linears (LN1 and LN2 outputs, attention output, GELU output) and GELU's
// derivative in bf16, in place of att and f1 (block_fwd_bf16 / block_bwd_bf16):
// nothing is rounded twice or recomputed.
// With `recompute`, only x_in is kept per block and the block's forward is
// rerun during its backward.
#include "model/vit_train.h"
#include "model/vit_train_cuda.h"
#include "base/error.h"
#include "base/mem.h"
#include "kernels/cpu/cpu_train.h"
#include "kernels/ref/ref.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- dispatch: one line per op, reference or fast path ---------------------

static int fast(const vit_train_state *st) { return st->backend == VIT_BACKEND_CPU; }
// The bf16 path keeps bf16 copies of the linears' inputs (block_fwd_bf16).
static int bf16(const vit_train_state *st) { return fast(st) && st->prec == UFO_PREC_BF16; }

// y = x W^T + b (+post). `tmp` [rows, out] is scratch for the reference residual.
static int lin_fwd(const vit_train_state *st, float *y, const float *x, const float *w, const float *b, int rows,
                   int in, int out, cpu_post_op post, float *tmp) {
    if (fast(st)) return cpu_linear_train_forward(y, x, w, b, rows, in, out, post, st->prec);
    float *dst = post == CPU_POST_RESIDUAL ? tmp : y;
    ref_linear(dst, x, w, b, rows, in, out);
    if (post == CPU_POST_GELU) ref_gelu(y, y, (size_t)rows * out);
    if (post == CPU_POST_RESIDUAL) ref_add(y, tmp, (size_t)rows * out);
    return 0;
}

static int lin_bwd(const vit_train_state *st, float *dx, float *dw, float *db, const float *dy, const float *x,
                   const float *w, int rows, int in, int out) {
    if (fast(st)) return cpu_linear_backward(dx, dw, db, dy, x, w, rows, in, out, st->prec);
    ref_linear_backward(dx, dw, db, dy, x, w, rows, in, out);
    return 0;
}

static void ln_fwd(const vit_train_state *st, float *y, const float *x, const float *g, const float *b, int rows) {
    const vit_config *c = &st->m->cfg;
    if (fast(st)) cpu_layernorm(y, x, g, b, rows, c->dim, c->ln_eps);
    else ref_layernorm(y, x, g, b, rows, c->dim, c->ln_eps);
}

static int ln_bwd(const vit_train_state *st, float *dx, float *dg, float *db, const float *dy, const float *x,
                  const float *g, int rows) {
    const vit_config *c = &st->m->cfg;
    if (fast(st)) return cpu_layernorm_backward(dx, dg, db, dy, x, g, rows, c->dim, c->ln_eps);
    ref_layernorm_backward(dx, dg, db, dy, x, g, rows, c->dim, c->ln_eps);
    return 0;
}

static void gelu_fwd(const vit_train_state *st, float *y, const float *x, size_t n) {
    if (fast(st)) cpu_gelu(y, x, n);
    else ref_gelu(y, x, n);
}

static void gelu_bwd(const vit_train_state *st, float *dx, const float *dy, const float *x, size_t n) {
    if (fast(st)) cpu_gelu_backward(dx, dy, x, n);
    else ref_gelu_backward(dx, dy, x, n);
}

static int attn_fwd(const vit_train_state *st, float *out, const float *qkv, int n) {
    const vit_config *c = &st->m->cfg;
    if (fast(st)) return cpu_attention(out, qkv, n, vit_tokens(c), c->heads, c->dim / c->heads, st->prec);
    ref_attention(out, qkv, n, vit_tokens(c), c->heads, c->dim / c->heads);
    return 0;
}

static int attn_bwd(const vit_train_state *st, float *dqkv, const float *dout, const float *qkv, int n) {
    const vit_config *c = &st->m->cfg;
    if (fast(st)) return cpu_attention_backward(dqkv, dout, qkv, n, vit_tokens(c), c->heads, c->dim / c->heads, st->prec);
    ref_attention_backward(dqkv, dout, qkv, n, vit_tokens(c), c->heads, c->dim / c->heads);
    return 0;
}

// ---- buffers -----------------------------------------------------------------

typedef struct {
    float *x, *h, *tmp, *g, *dx, *dmid, *dh, *dqkv, *datt, *df1, *dfeat;
} scratch_view;

static size_t rows_of(const vit_train_state *st, int n) { return (size_t)n * vit_tokens(&st->m->cfg); }

static scratch_view view(const vit_train_state *st) {
    const vit_config *c = &st->m->cfg;
    size_t R = rows_of(st, st->cap), D = c->dim, Hd = c->mlp_hidden, p3 = (size_t)3 * c->patch_size * c->patch_size;
    size_t wide = Hd > p3 ? Hd : p3;  // g doubles as the im2col buffer
    scratch_view v;
    float *p = st->scratch;
    v.x = p, p += R * D;
    v.h = p, p += R * D;
    v.tmp = p, p += R * D;
    v.g = p, p += R * wide;
    v.dx = p, p += R * D;
    v.dmid = p, p += R * D;
    v.dh = p, p += R * D;
    v.dqkv = p, p += R * 3 * D;
    v.datt = p, p += R * D;
    v.df1 = p, p += R * Hd;
    v.dfeat = p, p += (size_t)st->cap * D;
    return v;
}

static size_t scratch_size(const vit_config *c, int cap) {
    size_t R = (size_t)cap * vit_tokens(c), D = c->dim, Hd = c->mlp_hidden, p3 = (size_t)3 * c->patch_size * c->patch_size;
    size_t wide = Hd > p3 ? Hd : p3;
    return R * D * 7 + R * wide + R * 3 * D + R * Hd + (size_t)cap * D;
}

// Saved activations of block l (in recompute mode all blocks share slot 0,
// except x_in which is always per block).
typedef struct {
    float *x_in, *qkv, *att, *x_mid, *f1;   // att, f1 NULL on the bf16 path; qkv NULL with qkvb
    uint16_t *ln1b, *attb, *ln2b, *gb, *gd;   // bf16 path only
    uint16_t *qkvb;                           // bf16 path with the AMX attention
} block_acts;

static block_acts acts(const vit_train_state *st, int l) {
    const vit_config *c = &st->m->cfg;
    size_t R = rows_of(st, st->cap), D = c->dim, Hd = c->mlp_hidden;
    int s = st->recompute ? 0 : l;
    block_acts a = {st->x_in + (size_t)l * R * D, NULL, NULL, st->x_mid + (size_t)s * R * D, NULL,
                    NULL, NULL, NULL, NULL, NULL, NULL};
    if (st->qkv) a.qkv = st->qkv + (size_t)s * R * 3 * D;
    if (st->qkvb) a.qkvb = st->qkvb + (size_t)s * R * 3 * D;
    if (st->att) a.att = st->att + (size_t)s * R * D;
    if (st->f1) a.f1 = st->f1 + (size_t)s * R * Hd;
    if (st->ln1b) {
        a.ln1b = st->ln1b + (size_t)s * R * D;
        a.attb = st->attb + (size_t)s * R * D;
        a.ln2b = st->ln2b + (size_t)s * R * D;
        a.gb = st->gb + (size_t)s * R * Hd;
        a.gd = st->gd + (size_t)s * R * Hd;
    }
    return a;
}

int vit_train_init(vit_train_state *st, vit_model *m, vit_backend backend, ufo_precision prec, int cap,
                   int recompute) {
    memset(st, 0, sizeof *st);
    st->m = m;
    st->backend = backend;
    st->prec = prec;
    st->recompute = recompute;
    st->cap = cap;
    const vit_config *c = &m->cfg;
    if (backend == VIT_BACKEND_CUDA) {  // device buffers; on the host the features and sync BN's buffers
        size_t nD = (size_t)cap * c->dim;
        st->feat = ufo_alloc(nD * sizeof(float));
        st->feat_bn = ufo_alloc(nD * sizeof(float));
        st->bn_mean = ufo_calloc((size_t)UFO_NUM_TASKS * c->dim * sizeof(float));
        st->bn_rstd = ufo_calloc((size_t)UFO_NUM_TASKS * c->dim * sizeof(float));
        st->bn_acc = calloc((size_t)3 * c->dim, sizeof(double));
        st->scratch_floats = 2 * nD + (size_t)2 * UFO_NUM_TASKS * c->dim;   // cuda_backward's
        st->scratch = ufo_alloc(st->scratch_floats * sizeof(float));
        if (!st->feat || !st->feat_bn || !st->bn_mean || !st->bn_rstd || !st->bn_acc || !st->scratch ||
            vit_train_cuda_init(st)) {
            vit_train_free(st);
            return -1;
        }
        return 0;
    }
    size_t R = (size_t)cap * vit_tokens(c), D = c->dim, Hd = c->mlp_hidden, L = c->depth;
    size_t kept = recompute ? 1 : L;
    st->grads = ufo_calloc(m->n_floats * sizeof(float));
    st->x_in = ufo_alloc(L * R * D * sizeof(float));
    int bf = bf16(st);
    // The AMX attention reads a bf16 qkv: half the bytes written, kept and read twice.
    if (bf && cpu_attention_io_ok(vit_tokens(c), c->dim / c->heads))
        st->qkvb = ufo_alloc(kept * R * 3 * D * sizeof(uint16_t));
    else st->qkv = ufo_alloc(kept * R * 3 * D * sizeof(float));
    if (bf) {   // bf16 inputs of the linears and GELU' replace the fp32 attention output and f1
        st->ln1b = ufo_alloc(kept * R * D * sizeof(uint16_t));
        st->attb = ufo_alloc(kept * R * D * sizeof(uint16_t));
        st->ln2b = ufo_alloc(kept * R * D * sizeof(uint16_t));
        st->gb = ufo_alloc(kept * R * Hd * sizeof(uint16_t));
        st->gd = ufo_alloc(kept * R * Hd * sizeof(uint16_t));
    } else {
        st->att = ufo_alloc(kept * R * D * sizeof(float));
        st->f1 = ufo_alloc(kept * R * Hd * sizeof(float));
    }
    st->x_mid = ufo_alloc(kept * R * D * sizeof(float));
    st->cls = ufo_alloc((size_t)cap * D * sizeof(float));
    st->feat = ufo_alloc((size_t)cap * D * sizeof(float));
    st->feat_bn = ufo_alloc((size_t)cap * D * sizeof(float));
    st->bn_mean = ufo_calloc((size_t)UFO_NUM_TASKS * D * sizeof(float));
    st->bn_rstd = ufo_calloc((size_t)UFO_NUM_TASKS * D * sizeof(float));
    st->bn_acc = calloc((size_t)3 * D, sizeof(double));
    st->scratch_floats = scratch_size(c, cap);
    st->scratch = ufo_alloc(st->scratch_floats * sizeof(float));
    int acts_ok = bf ? st->ln1b && st->attb && st->ln2b && st->gb && st->gd : st->att && st->f1;
    if (!st->grads || !st->x_in || !(st->qkv || st->qkvb) || !acts_ok || !st->x_mid || !st->cls || !st->feat ||
        !st->feat_bn || !st->bn_mean || !st->bn_rstd || !st->scratch || !st->bn_acc) {
        vit_train_free(st);
        return ufo_errorf("out of memory for training activations (batch %d%s)", cap,
                          recompute ? "" : "; try recomputation");
    }
    return 0;
}

void vit_train_free(vit_train_state *st) {
    float *bufs[] = {st->grads, st->x_in, st->qkv, st->att, st->x_mid, st->f1, st->cls,
                     st->feat, st->feat_bn, st->bn_mean, st->bn_rstd, st->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ufo_free(bufs[i]);
    uint16_t *bbufs[] = {st->ln1b, st->attb, st->ln2b, st->gb, st->gd, st->qkvb};
    for (size_t i = 0; i < sizeof bbufs / sizeof bbufs[0]; i++) ufo_free(bbufs[i]);
    free(st->bn_acc);
    vit_train_cuda_free(st);
    memset(st, 0, sizeof *st);
}

void vit_train_zero_grad(vit_train_state *st) {
    if (st->backend == VIT_BACKEND_CUDA) vit_train_cuda_zero_grad(st);  // queued; a failure resurfaces in the next op
    else memset(st->grads, 0, st->m->n_floats * sizeof(float));
}

void vit_drop_path_scales(const vit_config *c, float rate, int n, double (*u)(void *), void *ctx, float *drop) {
    for (int l = 0; l < c->depth; l++) {
        double r = c->depth > 1 ? (double)rate * l / (c->depth - 1) : rate;
        for (int k = 0; k < 2 * n; k++)
            drop[(size_t)l * 2 * n + k] = r <= 0 ? 1.0f : (u(ctx) >= r ? (float)(1.0 / (1.0 - r)) : 0.0f);
    }
}

// ---- forward -----------------------------------------------------------------

// dst[i] = x[i] + s[i / per] * y[i] for each of n samples of per values (x may be dst).
static void add_scaled_to(float *dst, const float *x, const float *y, const float *s, int n, size_t per) {
#pragma omp parallel for
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < per; k++) dst[i * per + k] = x[i * per + k] + s[i] * y[i * per + k];
}

// The projection and the MLP of a block's forward on m rows (every row, or
// the last block's n class rows; per values per sample): a.x_mid = base + s1 *
// proj(att), then out = a.x_mid + s2 * fc2(gelu(fc1(LN2(a.x_mid)))); base may
// be a.x_mid (in place). With drop path the sums go out of place; without,
// the matmuls' sum post-op adds to a copy.
static int proj_mlp_fwd(vit_train_state *st, const vit_block_weights *w, block_acts a, scratch_view v,
                        const float *base, int m, size_t per, const float *s1, const float *s2, float *out) {
    int n = st->n, D = st->m->cfg.dim, Hd = st->m->cfg.mlp_hidden;
    size_t bytes = (size_t)m * D * sizeof(float);
    if (s1) {
        if (lin_fwd(st, v.tmp, a.att, w->proj_w, w->proj_b, m, D, D, CPU_POST_NONE, NULL)) return -1;
        add_scaled_to(a.x_mid, base, v.tmp, s1, n, per);
    } else {
        if (base != a.x_mid) memcpy(a.x_mid, base, bytes);
        if (lin_fwd(st, a.x_mid, a.att, w->proj_w, w->proj_b, m, D, D, CPU_POST_RESIDUAL, v.tmp)) return -1;
    }
    ln_fwd(st, v.h, a.x_mid, w->ln2_w, w->ln2_b, m);
    if (lin_fwd(st, a.f1, v.h, w->fc1_w, w->fc1_b, m, D, Hd, CPU_POST_NONE, NULL)) return -1;
    gelu_fwd(st, v.g, a.f1, (size_t)m * Hd);
    if (s2) {
        if (lin_fwd(st, v.tmp, v.g, w->fc2_w, w->fc2_b, m, Hd, D, CPU_POST_NONE, NULL)) return -1;
        add_scaled_to(out, a.x_mid, v.tmp, s2, n, per);
        return 0;
    }
    memcpy(out, a.x_mid, bytes);
    return lin_fwd(st, out, v.g, w->fc2_w, w->fc2_b, m, Hd, D, CPU_POST_RESIDUAL, v.tmp);
}

// proj_mlp_fwd on the bf16 path: the inputs of the linears rounded where they
// are made (LayerNorm and GELU write bf16 into the saved activations).
static int proj_mlp_fwd_bf16(vit_train_state *st, const vit_block_weights *w, block_acts a, scratch_view v,
                             const float *base, int m, size_t per, const float *s1, const float *s2, float *out) {
    const vit_config *c = &st->m->cfg;
    int n = st->n, D = c->dim, Hd = c->mlp_hidden;
    size_t bytes = (size_t)m * D * sizeof(float);
    if (s1) {
        if (cpu_linear_train_forward_bf16(v.tmp, a.attb, w->proj_w, w->proj_b, m, D, D, CPU_POST_NONE)) return -1;
        add_scaled_to(a.x_mid, base, v.tmp, s1, n, per);
    } else {
        if (base != a.x_mid) memcpy(a.x_mid, base, bytes);
        if (cpu_linear_train_forward_bf16(a.x_mid, a.attb, w->proj_w, w->proj_b, m, D, D, CPU_POST_RESIDUAL))
            return -1;
    }
    if (cpu_layernorm_bf16(a.ln2b, a.x_mid, w->ln2_w, w->ln2_b, m, D, c->ln_eps)) return -1;
    // the pre-GELU activation only lives until GELU has read it: df1 is free until the backward
    if (cpu_linear_gelu_train_forward_bf16(a.gb, a.gd, a.ln2b, w->fc1_w, w->fc1_b, m, D, Hd, v.df1)) return -1;
    if (s2) {
        if (cpu_linear_train_forward_bf16(v.tmp, a.gb, w->fc2_w, w->fc2_b, m, Hd, D, CPU_POST_NONE)) return -1;
        add_scaled_to(out, a.x_mid, v.tmp, s2, n, per);
        return 0;
    }
    memcpy(out, a.x_mid, bytes);
    return cpu_linear_train_forward_bf16(out, a.gb, w->fc2_w, w->fc2_b, m, Hd, D, CPU_POST_RESIDUAL);
}

// block_fwd on the bf16 path, from the block's saved input a.x_in to xout:
// LayerNorm and GELU write bf16 straight into the saved activations, the
// attention output is rounded once; the same rounded arrays feed the forward
// matmuls here and the weight gradients in block_bwd_bf16. With drop path the
// two residual sums are written out of place (x_in -> x_mid -> xout), so the
// block copies nothing; without, the matmuls' sum post-op adds in place.
static int block_fwd_bf16(vit_train_state *st, int l, block_acts a, float *xout, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim;
    size_t per = (size_t)vit_tokens(c) * D;
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    if (cpu_layernorm_bf16(a.ln1b, a.x_in, w->ln1_w, w->ln1_b, rows, D, c->ln_eps)) return -1;
    if (a.qkvb) {   // qkv and the attention output rounded where they are made (dqkv: free until the backward)
        if (cpu_linear_train_forward_bf16_out(a.qkvb, a.ln1b, w->qkv_w, w->qkv_b, rows, D, 3 * D, v.dqkv) ||
            cpu_attention_io(a.attb, a.qkvb, n, vit_tokens(c), c->heads, D / c->heads,
                             CPU_ATTN_QKV_BF16 | CPU_ATTN_OUT_BF16))
            return -1;
    } else {
        if (cpu_linear_train_forward_bf16(a.qkv, a.ln1b, w->qkv_w, w->qkv_b, rows, D, 3 * D, CPU_POST_NONE)) return -1;
        if (attn_fwd(st, v.datt, a.qkv, n)) return -1;   // datt is free until the backward
        cpu_f32_to_bf16(a.attb, v.datt, (size_t)rows * D);
    }
    return proj_mlp_fwd_bf16(st, w, a, v, a.x_in, rows, per, s1, s2, xout);
}

// One block: x (= a.x_in on entry, copied by the caller) -> x.
static int block_fwd(vit_train_state *st, int l, block_acts a, float *x, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim;
    size_t per = (size_t)vit_tokens(c) * D;
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    ln_fwd(st, v.h, x, w->ln1_w, w->ln1_b, rows);
    if (lin_fwd(st, a.qkv, v.h, w->qkv_w, w->qkv_b, rows, D, 3 * D, CPU_POST_NONE, NULL)) return -1;
    if (attn_fwd(st, a.att, a.qkv, n)) return -1;
    return proj_mlp_fwd(st, w, a, v, x, rows, per, s1, s2, x);
}

// Patches of img [n, 3, S, S] as rows [n * P, 3 p p] in (channel, ky, kx) order.
static void im2col(float *cols, const float *img, int n, int S, int p) {
    int g = S / p, K = 3 * p * p;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < n; b++)
        for (int t = 0; t < g * g; t++) {
            int py = t / g, px = t % g;
            float *row = cols + ((size_t)b * g * g + t) * K;
            for (int ch = 0; ch < 3; ch++)
                for (int ky = 0; ky < p; ky++)
                    memcpy(row + (ch * p + ky) * p, img + (((size_t)b * 3 + ch) * S + py * p + ky) * S + px * p,
                           p * sizeof(float));
        }
}

static float *grad_of(vit_train_state *st, const float *param);
static int synced(const vit_train_state *st) { return st->comm && st->comm->size > 1; }

// Training-mode BatchNorm of task t over the GLOBAL batch (ref_batchnorm_train's
// arithmetic, with the two per-feature sums all-reduced): this rank's cnt rows
// at lo, N rows in all.
static void bn_sync_fwd(vit_train_state *st, int t, int lo, int cnt, int N, float momentum) {
    const vit_config *c = &st->m->cfg;
    int D = c->dim;
    float *const *bn = st->m->w.bn[t];
    const float *x = st->feat + (size_t)lo * D;
    float *y = st->feat_bn + (size_t)lo * D, *mean = st->bn_mean + (size_t)t * D, *rstd = st->bn_rstd + (size_t)t * D;
    double *acc = st->bn_acc, *m = acc + D, *r = acc + 2 * D;
    memset(acc, 0, sizeof(double) * D);
    for (int i = 0; i < cnt; i++)
        for (int k = 0; k < D; k++) acc[k] += x[(size_t)i * D + k];
    ufo_comm_allreduce_sum_f64(st->comm, acc, D, "sync BatchNorm mean");
    for (int k = 0; k < D; k++) m[k] = acc[k] / N, acc[k] = 0;
    for (int i = 0; i < cnt; i++)
        for (int k = 0; k < D; k++) {
            double d = x[(size_t)i * D + k] - m[k];
            acc[k] += d * d;
        }
    ufo_comm_allreduce_sum_f64(st->comm, acc, D, "sync BatchNorm variance");
    for (int k = 0; k < D; k++) {
        double var = acc[k] / N, unbiased = N > 1 ? acc[k] / (N - 1) : var;
        r[k] = 1.0 / sqrt(var + (double)c->bn_eps);
        mean[k] = (float)m[k];
        rstd[k] = (float)r[k];
        bn[2][k] = (float)((1.0 - momentum) * bn[2][k] + (double)momentum * m[k]);
        bn[3][k] = (float)((1.0 - momentum) * bn[3][k] + (double)momentum * unbiased);
    }
    for (int i = 0; i < cnt; i++)
        for (int k = 0; k < D; k++) {
            size_t o = (size_t)i * D + k;
            y[o] = (float)((x[o] - m[k]) * r[k] * bn[0][k] + bn[1][k]);
        }
}

// Its backward (ref_batchnorm_backward's arithmetic): dg, db (+=) get this
// rank's partial sums; dx uses the all-reduced ones.
static void bn_sync_bwd(vit_train_state *st, int t, int lo, int cnt, int N, const float *dy, float *dx, float *dg,
                        float *db) {
    int D = st->m->cfg.dim;
    float *const *bn = st->m->w.bn[t];
    const float *x = st->feat + (size_t)lo * D, *mean = st->bn_mean + (size_t)t * D, *rstd = st->bn_rstd + (size_t)t * D;
    double *s1 = st->bn_acc, *s2 = st->bn_acc + D;
    memset(s1, 0, sizeof(double) * 2 * D);
    for (int i = 0; i < cnt; i++)
        for (int k = 0; k < D; k++) {
            size_t o = (size_t)i * D + k;
            double xh = ((double)x[o] - mean[k]) * rstd[k];
            s1[k] += dy[o];
            s2[k] += dy[o] * xh;
        }
    for (int k = 0; k < D; k++) dg[k] = (float)(dg[k] + s2[k]), db[k] = (float)(db[k] + s1[k]);
    ufo_comm_allreduce_sum_f64(st->comm, s1, (size_t)2 * D, "sync BatchNorm backward");
    for (int k = 0; k < D; k++) {
        double a = s1[k] / N, bb = s2[k] / N, gr = (double)bn[0][k] * rstd[k];
        for (int i = 0; i < cnt; i++) {
            size_t o = (size_t)i * D + k;
            double xh = ((double)x[o] - mean[k]) * rstd[k];
            dx[o] = (float)(gr * (dy[o] - a - xh * bb));
        }
    }
}

static int heads_fwd(vit_train_state *st, float bn_momentum) {
    const vit_config *c = &st->m->cfg;
    int D = c->dim;
    memcpy(st->feat_bn, st->feat, (size_t)st->n * D * sizeof(float));
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        int lo = st->seg[t], cnt = st->seg[t + 1] - lo;
        if (synced(st)) {   // every rank takes part, whatever its own rows
            if (st->total[t] >= 2 && (st->m->head_mask >> t & 1)) bn_sync_fwd(st, t, lo, cnt, st->total[t], bn_momentum);
            continue;
        }
        if (cnt < 2 || !(st->m->head_mask >> t & 1)) continue;
        float *const *bn = st->m->w.bn[t];
        float *y = st->feat_bn + (size_t)lo * D, *x = st->feat + (size_t)lo * D;
        float *mean = st->bn_mean + (size_t)t * D, *rstd = st->bn_rstd + (size_t)t * D;
        if (fast(st)) cpu_batchnorm_train(y, mean, rstd, x, bn[0], bn[1], bn[2], bn[3], cnt, D, c->bn_eps, bn_momentum);
        else ref_batchnorm_train(y, mean, rstd, x, bn[0], bn[1], bn[2], bn[3], cnt, D, c->bn_eps, bn_momentum);
    }
    return 0;
}

// The MLP branch and the projection of a block's backward on m rows (every
// row, or the last block's n class rows; rps rows per sample): v.dx holds
// d(block output) on entry; on return v.dmid holds d(x_mid) and v.datt
// d(attention output).
static int mlp_proj_bwd(vit_train_state *st, const vit_block_weights *w, block_acts a, scratch_view v, int m,
                        int rps, const float *s1, const float *s2) {
    int n = st->n, D = st->m->cfg.dim, Hd = st->m->cfg.mlp_hidden;
    size_t per = (size_t)rps * D;
    // MLP branch: out = x_mid + s2 * fc2(gelu(fc1(LN2(x_mid))))
    const float *dy2 = v.dx;
    if (s2) {
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < per; k++) v.tmp[i * per + k] = s2[i] * v.dx[i * per + k];
        dy2 = v.tmp;
    }
    gelu_fwd(st, v.g, a.f1, (size_t)m * Hd);
    if (lin_bwd(st, v.df1, grad_of(st, w->fc2_w), grad_of(st, w->fc2_b), dy2, v.g, w->fc2_w, m, Hd, D)) return -1;
    gelu_bwd(st, v.df1, v.df1, a.f1, (size_t)m * Hd);
    ln_fwd(st, v.h, a.x_mid, w->ln2_w, w->ln2_b, m);
    if (lin_bwd(st, v.dh, grad_of(st, w->fc1_w), grad_of(st, w->fc1_b), v.df1, v.h, w->fc1_w, m, D, Hd)) return -1;
    if (ln_bwd(st, v.dmid, grad_of(st, w->ln2_w), grad_of(st, w->ln2_b), v.dh, a.x_mid, w->ln2_w, m)) return -1;
    for (size_t k = 0; k < (size_t)m * D; k++) v.dmid[k] += v.dx[k];
    // Attention branch: x_mid = x_in + s1 * proj(attn(qkv(LN1(x_in))))
    const float *dy1 = v.dmid;
    if (s1) {
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < per; k++) v.tmp[i * per + k] = s1[i] * v.dmid[i * per + k];
        dy1 = v.tmp;
    }
    return lin_bwd(st, v.datt, grad_of(st, w->proj_w), grad_of(st, w->proj_b), dy1, a.att, w->proj_w, m, D, D);
}

// mlp_proj_bwd on the bf16 path: the weight gradients read the bf16 inputs
// saved by the forward; every output gradient is rounded once, with its bias
// gradient (and drop-path scale) in the same pass; GELU's backward writes
// bf16 directly (v.g holds it).
static int mlp_proj_bwd_bf16(vit_train_state *st, const vit_block_weights *w, block_acts a, scratch_view v, int m,
                             int rps, const float *s1, const float *s2) {
    const vit_config *c = &st->m->cfg;
    int D = c->dim, Hd = c->mlp_hidden;
    uint16_t *df1b = (uint16_t *)v.g;   // [m, Hd] bf16: fits in g's [rows, Hd] floats
    return cpu_linear_backward_bf16(v.df1, grad_of(st, w->fc2_w), grad_of(st, w->fc2_b), v.dx, s2, rps, NULL, a.gb,
                                    w->fc2_w, m, Hd, D) ||
                   cpu_gelu_backward_bf16(df1b, grad_of(st, w->fc1_b), v.df1, a.gd, m, Hd) ||
                   cpu_linear_backward_bf16(v.dh, grad_of(st, w->fc1_w), NULL, NULL, NULL, 0, df1b, a.ln2b, w->fc1_w,
                                            m, D, Hd) ||
                   cpu_layernorm_backward_add(v.dmid, grad_of(st, w->ln2_w), grad_of(st, w->ln2_b), v.dh, a.x_mid,
                                              w->ln2_w, v.dx, m, D, c->ln_eps) ||
                   cpu_linear_backward_bf16(v.datt, grad_of(st, w->proj_w), grad_of(st, w->proj_b), v.dmid, s1, rps,
                                            NULL, a.attb, w->proj_w, m, D, D)
               ? -1
               : 0;
}

// ---- the last block on the class tokens ----------------------------------------
//
// The features are the class tokens of the last block's output, so on the fast
// backends that block runs its query, projection and MLP on the n class rows
// only (keys and values still come from every token: LayerNorm 1 and qkv run on
// all rows); its saved x_mid, attention output and MLP activations hold n rows.
// The reference backend runs the whole block, so the tests comparing the two
// check this. The output and the incoming gradient are [n, D], compact.
static int cls_last(const vit_train_state *st, int l) { return fast(st) && l == st->m->cfg.depth - 1; }

// dst[i] = row 0 of image i of x ([n, T, D] -> [n, D]).
static void gather_cls(float *dst, const float *x, int n, int T, int D) {
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * D, x + (size_t)i * T * D, (size_t)D * sizeof(float));
}

// x [rows, D] holds the block input (= a.x_in) on entry, the class outputs [n, D] on return.
static int last_fwd(vit_train_state *st, int l, block_acts a, float *x, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim, T = vit_tokens(c);
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    ln_fwd(st, v.h, a.x_in, w->ln1_w, w->ln1_b, rows);
    if (lin_fwd(st, a.qkv, v.h, w->qkv_w, w->qkv_b, rows, D, 3 * D, CPU_POST_NONE, NULL) ||
        cpu_attention_cls(a.att, a.qkv, 0, n, T, c->heads, D / c->heads, st->prec))
        return -1;
    gather_cls(a.x_mid, a.x_in, n, T, D);   // the class rows' residual
    return proj_mlp_fwd(st, w, a, v, a.x_mid, n, D, s1, s2, x);
}

// The same on the bf16 path (block_fwd_bf16's roundings), class outputs to xout [n, D].
static int last_fwd_bf16(vit_train_state *st, int l, block_acts a, float *xout, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim, T = vit_tokens(c);
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    if (cpu_layernorm_bf16(a.ln1b, a.x_in, w->ln1_w, w->ln1_b, rows, D, c->ln_eps)) return -1;
    int rc = a.qkvb ? cpu_linear_train_forward_bf16_out(a.qkvb, a.ln1b, w->qkv_w, w->qkv_b, rows, D, 3 * D, v.dqkv)
                    : cpu_linear_train_forward_bf16(a.qkv, a.ln1b, w->qkv_w, w->qkv_b, rows, D, 3 * D, CPU_POST_NONE);
    if (rc || cpu_attention_cls(v.datt, a.qkvb ? (const void *)a.qkvb : a.qkv, !!a.qkvb, n, T, c->heads, D / c->heads,
                                UFO_PREC_BF16))
        return -1;
    cpu_f32_to_bf16(a.attb, v.datt, (size_t)n * D);
    gather_cls(a.x_mid, a.x_in, n, T, D);   // the class rows' residual
    return proj_mlp_fwd_bf16(st, w, a, v, a.x_mid, n, D, s1, s2, xout);
}

// dx [n, D] holds d(class outputs) on entry, d(block input) [rows, D] on return.
static int last_bwd(vit_train_state *st, int l, block_acts a, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim, T = vit_tokens(c);
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    if (st->recompute && (bf16(st) ? last_fwd_bf16(st, l, a, v.dmid, v) : last_fwd(st, l, a, v.dmid, v))) return -1;
    if (bf16(st)) {
        uint16_t *dqkvb = (uint16_t *)v.dqkv;
        if (mlp_proj_bwd_bf16(st, w, a, v, n, 1, s1, s2) ||
            cpu_attention_cls_backward(NULL, dqkvb, grad_of(st, w->qkv_b), v.datt,
                                       a.qkvb ? (const void *)a.qkvb : a.qkv, !!a.qkvb, n, T, c->heads, D / c->heads,
                                       UFO_PREC_BF16) ||
            cpu_linear_backward_bf16(v.dh, grad_of(st, w->qkv_w), NULL, NULL, NULL, 0, dqkvb, a.ln1b, w->qkv_w, rows,
                                     D, 3 * D))
            return -1;
    } else {
        if (mlp_proj_bwd(st, w, a, v, n, 1, s1, s2) ||
            cpu_attention_cls_backward(v.dqkv, NULL, NULL, v.datt, a.qkv, 0, n, T, c->heads, D / c->heads, st->prec))
            return -1;
        ln_fwd(st, v.h, a.x_in, w->ln1_w, w->ln1_b, rows);
        if (lin_bwd(st, v.dh, grad_of(st, w->qkv_w), grad_of(st, w->qkv_b), v.dqkv, v.h, w->qkv_w, rows, D, 3 * D))
            return -1;
    }
    // LayerNorm 1 over every row; the class rows also get the residual's gradient
    if (ln_bwd(st, v.dx, grad_of(st, w->ln1_w), grad_of(st, w->ln1_b), v.dh, a.x_in, w->ln1_w, rows)) return -1;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < D; k++) v.dx[(size_t)i * T * D + k] += v.dmid[(size_t)i * D + k];
    return 0;
}

int vit_train_forward(vit_train_state *st, const float *images, int n, const int counts[UFO_NUM_TASKS],
                      const float *drop, float bn_momentum) {
    const vit_config *c = &st->m->cfg;
    if (n < 1 || n > st->cap) return ufo_errorf("training batch of %d images (capacity %d)", n, st->cap);
    st->n = n;
    st->images = images;
    st->drop = drop;
    st->seg[0] = 0;
    for (int t = 0; t < UFO_NUM_TASKS; t++) st->seg[t + 1] = st->seg[t] + counts[t];
    if (st->seg[UFO_NUM_TASKS] != n) return ufo_errorf("task counts add up to %d, batch has %d", st->seg[4], n);
    if (st->backend == VIT_BACKEND_CUDA) {
        if (vit_train_cuda_forward(st, images, drop, bn_momentum)) return -1;
        if (!synced(st)) return 0;
        // Sync BN: on the host (the statistics are all-reduced over the ranks),
        // with the BNNecks' parameters fetched from the device and their
        // running statistics sent back.
        if (vit_train_cuda_bn_params(st, 0)) return -1;
        heads_fwd(st, bn_momentum);
        return vit_train_cuda_bn_params(st, 1);
    }
    scratch_view v = view(st);
    int S = c->img_size, p = c->patch_size, D = c->dim, T = vit_tokens(c), P = T - 1;
    size_t rows = rows_of(st, n);

    // Patch embedding into h, then x = [cls; patches] + pos_embed.
    if (fast(st)) {
        im2col(v.g, images, n, S, p);
        if (lin_fwd(st, v.h, v.g, st->m->w.patch_w, st->m->w.patch_b, n * P, 3 * p * p, D, CPU_POST_NONE, NULL))
            return -1;
    } else {
        ref_patch_embed(v.h, images, st->m->w.patch_w, st->m->w.patch_b, n, S, S, p, D);
    }
    const float *pos = st->m->w.pos_embed, *cls = st->m->w.cls_token;
    for (int i = 0; i < n; i++) {
        float *xi = v.x + (size_t)i * T * D;
        for (int d = 0; d < D; d++) xi[d] = cls[d] + pos[d];
        const float *hi = v.h + (size_t)i * P * D;
        for (size_t k = 0; k < (size_t)P * D; k++) xi[D + k] = hi[k] + pos[D + k];
    }
    if (bf16(st)) {   // each block writes the next one's saved input
        memcpy(acts(st, 0).x_in, v.x, rows * D * sizeof(float));
        for (int l = 0; l < c->depth; l++) {
            block_acts a = acts(st, l);
            int rc = cls_last(st, l) ? last_fwd_bf16(st, l, a, v.x, v)
                                     : block_fwd_bf16(st, l, a, l + 1 < c->depth ? acts(st, l + 1).x_in : v.x, v);
            if (rc) return -1;
        }
    } else {
        for (int l = 0; l < c->depth; l++) {
            block_acts a = acts(st, l);
            memcpy(a.x_in, v.x, rows * D * sizeof(float));
            if (cls_last(st, l) ? last_fwd(st, l, a, v.x, v) : block_fwd(st, l, a, v.x, v)) return -1;
        }
    }
    if (cls_last(st, c->depth - 1)) memcpy(st->cls, v.x, (size_t)n * D * sizeof(float));   // already [n, D]
    else gather_cls(st->cls, v.x, n, T, D);
    ln_fwd(st, st->feat, st->cls, st->m->w.norm_w, st->m->w.norm_b, n);
    return heads_fwd(st, bn_momentum);
}

// ---- backward ----------------------------------------------------------------

// Gradient of the loss w.r.t. param p: its slot in st->grads.
static float *grad_of(vit_train_state *st, const float *param) { return st->grads + (param - st->m->params); }

// block_bwd on the bf16 path (after the recomputation, if any): mlp_proj_bwd_bf16,
// then the attention gradient comes out rounded, with the qkv bias gradient.
static int block_bwd_bf16(vit_train_state *st, int l, block_acts a, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim, T = vit_tokens(c);
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    uint16_t *dqkvb = (uint16_t *)v.dqkv;
    if (mlp_proj_bwd_bf16(st, w, a, v, rows, T, s1, s2)) return -1;
    int rc = a.qkvb ? cpu_attention_backward_bf16_qkvb(dqkvb, grad_of(st, w->qkv_b), v.datt, a.qkvb, n, T, c->heads,
                                                       D / c->heads)
                    : cpu_attention_backward_bf16(dqkvb, grad_of(st, w->qkv_b), v.datt, a.qkv, n, T, c->heads,
                                                  D / c->heads);
    if (rc || cpu_linear_backward_bf16(v.dh, grad_of(st, w->qkv_w), NULL, NULL, NULL, 0, dqkvb, a.ln1b, w->qkv_w, rows,
                                       D, 3 * D))
        return -1;
    return cpu_layernorm_backward_add(v.dx, grad_of(st, w->ln1_w), grad_of(st, w->ln1_b), v.dh, a.x_in, w->ln1_w,
                                      v.dmid, rows, D, c->ln_eps);
}

// dx holds d(block output); on return dx holds d(block input).
static int block_bwd(vit_train_state *st, int l, block_acts a, scratch_view v) {
    const vit_config *c = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = (int)rows_of(st, n), D = c->dim;
    const float *s1 = st->drop ? st->drop + (size_t)l * 2 * n : NULL, *s2 = s1 ? s1 + n : NULL;
    if (st->recompute && bf16(st)) {   // output to dmid, free until below
        if (block_fwd_bf16(st, l, a, v.dmid, v)) return -1;
    } else if (st->recompute) {  // rerun the block from its saved input to refill qkv, att, x_mid, f1
        float *x = v.dmid;  // free until below
        memcpy(x, a.x_in, (size_t)rows * D * sizeof(float));
        if (block_fwd(st, l, a, x, v)) return -1;
    }
    if (bf16(st)) return block_bwd_bf16(st, l, a, v);
    if (mlp_proj_bwd(st, w, a, v, rows, vit_tokens(c), s1, s2) || attn_bwd(st, v.dqkv, v.datt, a.qkv, n)) return -1;
    ln_fwd(st, v.h, a.x_in, w->ln1_w, w->ln1_b, rows);
    if (lin_bwd(st, v.dh, grad_of(st, w->qkv_w), grad_of(st, w->qkv_b), v.dqkv, v.h, w->qkv_w, rows, D, 3 * D))
        return -1;
    if (ln_bwd(st, v.dx, grad_of(st, w->ln1_w), grad_of(st, w->ln1_b), v.dh, a.x_in, w->ln1_w, rows)) return -1;
    for (size_t k = 0; k < (size_t)rows * D; k++) v.dx[k] += v.dmid[k];
    return 0;
}

// d(pre-BN feature) dfeat [n, D] = d_feat + BN backward of d_feat_bn, per task
// slice, on the host; tmp [n, D] is scratch. bn_g: NULL, or [UFO_NUM_TASKS][2][D]
// (zeroed here) to receive the BNNecks' gamma/beta gradients instead of st->grads
// (the CUDA backend adds them to its device gradients).
static void heads_bwd(vit_train_state *st, const float *d_feat, const float *d_feat_bn, float *dfeat, float *tmp,
                      float *bn_g) {
    const vit_config *c = &st->m->cfg;
    int n = st->n, D = c->dim;
    if (d_feat) memcpy(dfeat, d_feat, (size_t)n * D * sizeof(float));
    else memset(dfeat, 0, (size_t)n * D * sizeof(float));
    if (bn_g) memset(bn_g, 0, sizeof(float) * 2 * D * UFO_NUM_TASKS);
    for (int t = 0; t < UFO_NUM_TASKS && d_feat_bn; t++) {
        int lo = st->seg[t], cnt = st->seg[t + 1] - lo;
        float *dst = dfeat + (size_t)lo * D;
        const float *dy = d_feat_bn + (size_t)lo * D;
        int bn_ran = synced(st) ? st->total[t] >= 2 : cnt >= 2;
        float *dg = bn_g ? bn_g + (size_t)t * 2 * D : NULL, *db = bn_g ? dg + D : NULL;
        if ((st->m->head_mask >> t & 1) && !bn_g) dg = grad_of(st, st->m->w.bn[t][0]), db = grad_of(st, st->m->w.bn[t][1]);
        if (bn_ran && synced(st) && (st->m->head_mask >> t & 1)) {
            bn_sync_bwd(st, t, lo, cnt, st->total[t], dy, tmp, dg, db);
            for (size_t k = 0; k < (size_t)cnt * D; k++) dst[k] += tmp[k];
            continue;
        }
        if (cnt < 1) continue;
        if (!bn_ran || !(st->m->head_mask >> t & 1)) {  // identity: no BN ran on this slice
            for (size_t k = 0; k < (size_t)cnt * D; k++) dst[k] += dy[k];
            continue;
        }
        float *const *bn = st->m->w.bn[t];
        const float *x = st->feat + (size_t)lo * D, *mean = st->bn_mean + (size_t)t * D, *rstd = st->bn_rstd + (size_t)t * D;
        if (fast(st)) cpu_batchnorm_backward(tmp, dg, db, dy, x, mean, rstd, bn[0], cnt, D);
        else ref_batchnorm_backward(tmp, dg, db, dy, x, mean, rstd, bn[0], cnt, D);
        for (size_t k = 0; k < (size_t)cnt * D; k++) dst[k] += tmp[k];
    }
}

// CUDA: the heads' backward on the host when the BNNecks are synchronised
// (their forward ran on the host too, see vit_train_forward); the backbone's on
// the device.
static int cuda_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    if (!synced(st)) return vit_train_cuda_backward(st, d_feat, d_feat_bn);
    size_t nD = (size_t)st->cap * st->m->cfg.dim;
    float *dfeat = st->scratch, *tmp = dfeat + nD, *bn_g = tmp + nD;
    heads_bwd(st, d_feat, d_feat_bn, dfeat, tmp, bn_g);
    int D = st->m->cfg.dim;
    for (int t = 0; t < UFO_NUM_TASKS && d_feat_bn; t++)
        if ((st->m->head_mask >> t & 1) &&
            (vit_train_cuda_add_grads(st, st->m->w.bn[t][0], bn_g + (size_t)t * 2 * D, D) ||
             vit_train_cuda_add_grads(st, st->m->w.bn[t][1], bn_g + (size_t)t * 2 * D + D, D)))
            return -1;
    return vit_train_cuda_backward(st, dfeat, NULL);
}

int vit_train_backward_device(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    if (st->backend != VIT_BACKEND_CUDA || synced(st))
        return ufo_errorf("vit_train_backward_device: the CUDA backend in one process only");
    return vit_train_cuda_backward_device(st, d_feat, d_feat_bn);
}

int vit_train_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    if (st->backend == VIT_BACKEND_CUDA) return cuda_backward(st, d_feat, d_feat_bn);
    const vit_config *c = &st->m->cfg;
    scratch_view v = view(st);
    int n = st->n, D = c->dim, T = vit_tokens(c), P = T - 1, S = c->img_size, p = c->patch_size;
    size_t rows = rows_of(st, n);
    heads_bwd(st, d_feat, d_feat_bn, v.dfeat, v.tmp, NULL);
    // Final LayerNorm on the class tokens; the other tokens get no gradient.
    if (ln_bwd(st, v.dh, grad_of(st, st->m->w.norm_w), grad_of(st, st->m->w.norm_b), v.dfeat, st->cls,
               st->m->w.norm_w, n))
        return -1;
    if (cls_last(st, c->depth - 1)) {   // last_bwd takes the class rows' gradient [n, D]
        memcpy(v.dx, v.dh, (size_t)n * D * sizeof(float));
    } else {
        memset(v.dx, 0, rows * D * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(v.dx + (size_t)i * T * D, v.dh + (size_t)i * D, D * sizeof(float));
    }
    for (int l = c->depth - 1; l >= 0; l--)
        if (cls_last(st, l) ? last_bwd(st, l, acts(st, l), v) : block_bwd(st, l, acts(st, l), v)) return -1;
    // Tokens: pos_embed gets every row's gradient, cls_token the class rows'.
    float *dpos = grad_of(st, st->m->w.pos_embed), *dcls = grad_of(st, st->m->w.cls_token);
    for (int i = 0; i < n; i++) {
        const float *dxi = v.dx + (size_t)i * T * D;
        for (size_t k = 0; k < (size_t)T * D; k++) dpos[k] += dxi[k];
        for (int d = 0; d < D; d++) dcls[d] += dxi[d];
        memcpy(v.dh + (size_t)i * P * D, dxi + D, (size_t)P * D * sizeof(float));
    }
    float *dpw = grad_of(st, st->m->w.patch_w), *dpb = grad_of(st, st->m->w.patch_b);
    if (fast(st)) return cpu_patch_embed_backward(dpw, dpb, v.dh, st->images, n, S, S, p, D, st->prec);
    ref_patch_embed_backward(dpw, dpb, v.dh, st->images, n, S, S, p, D);
    return 0;
}
