// The training pass on the GPU (VIT_BACKEND_CUDA): vit_train.c's forward and
// backward, op for op and in the same order, each op one call into the CUDA
// backend (kernels/cuda/cuda_backend.h, every op tested against its ref_*
// twin). Same activations kept (x_in, qkv, att, x_mid, f1 per block, or x_in
// alone with recompute), same drop-path scales (the host's draws, uploaded),
// same BNNeck rule (training mode on each task slice of >= 2 rows).
//
// Mixed precision as on the CPU: fp32 master weights, gradients and the
// residual stream; with bf16 each matmul rounds its two operands to bf16 and
// accumulates in fp32, and the block keeps what vit_train.c's bf16 path keeps,
// rounded where it is made: the inputs of the four linears (the LayerNorm
// outputs, qkv, the attention output, the GELU output) and GELU's derivative,
// in place of the fp32 pre-GELU activation, so the backward recomputes neither
// LayerNorm nor GELU; each output gradient is rounded once, its bias gradient
// summed in the same pass (gpu_grad_rows_bf16). Every matmul reads its weight
// from a bf16 mirror of the parameters rounded once per step. LayerNorm, GELU,
// softmax, BatchNorm and every reduction compute in fp32.
//
// Built without CUDA, vit_train_cuda_init fails with "built without CUDA".
#include "model/vit_train_cuda.h"
#include "base/error.h"
#include "base/mem.h"
#include <stdlib.h>
#include <string.h>

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"

struct vit_train_cuda {
    vit_train_device dev;   // g, params, grads, mom, part
    gpu_dtype dt;
    void *abuf;             // one allocation: everything below
    float *img, *drop;      // this batch's images and drop-path scales
    float *x_in, *x_mid, *f1;         // saved per block (see vit_train.c; f1 fp32 only)
    void *qkv, *att;                  // saved too, in c->dt: qkv only ever feeds the attention, which
                                      // rounds it to bf16 anyway; att only ever a matmul operand
    void *ln1b, *ln2b, *gb, *gd;      // saved too (bf16 only): the LayerNorm outputs, GELU's output and derivative
    float *att_stats;                 // saved too (where flash runs): each row's softmax max and sum,
                                      // so the flash backward need not run the forward again
    float *cls, *feat, *feat_bn, *bn_mean, *bn_rstd, *dfeat_bn;
    float *x, *h, *tmp, *wide, *dx, *x_rec, *dh, *dqkv, *datt, *df1, *dfeat;   // scratch (x_rec: recompute only;
                                                                              // wide: fp32 only)
    void *xb;               // the patch embedding's bf16 operand (bf16 only)
    void *dyb;              // the gradient a linear backward takes, rounded (bf16 only)
    void *w16;              // bf16 mirror of dev.params, rounded at each forward (bf16 only)
};

static int fail_gpu(const char *what) { return ufo_errorf("%s: %s", what, gpu_error()); }

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

// Device twin of a host parameter pointer (into m->params), and its gradient.
static float *P(const vit_train_state *st, const float *host) { return st->cu->dev.params + (host - st->m->params); }
static float *G(const vit_train_state *st, const float *host) { return st->cu->dev.grads + (host - st->m->params); }
// The matmul operand of a weight: its device twin (fp32) or its bf16 mirror.
static const void *W(const vit_train_state *st, const float *host) {
    const vit_train_cuda *c = st->cu;
    return c->dt == GPU_BF16 ? (const void *)((const char *)c->w16 + (size_t)(host - st->m->params) * 2)
                             : (const void *)P(st, host);
}

// ---- buffers -------------------------------------------------------------------

// Carves (or, with base NULL, sizes) the activations and scratch for cap images.
static size_t carve(vit_train_cuda *c, char *base, const vit_config *cf, int cap, int recompute) {
    size_t R = (size_t)cap * vit_tokens(cf), D = cf->dim, Hd = cf->mlp_hidden, L = cf->depth;
    size_t p3 = (size_t)3 * cf->patch_size * cf->patch_size, wide = Hd > p3 ? Hd : p3;
    size_t kept = recompute ? 1 : L, S = cf->img_size, nD = (size_t)cap * D;
    int bf = c->dt == GPU_BF16;
    size_t att_bytes = kept * R * D * (bf ? 2 : 4), qkv_bytes = kept * R * 3 * D * (bf ? 2 : 4);
    size_t f1_bytes = bf ? 0 : kept * R * Hd * 4, ln_bytes = bf ? kept * R * D * 2 : 0, g_bytes = bf ? kept * R * Hd * 2 : 0;
    // [2, cap * heads * T] per kept block: 2.4 MB at ViT-L/16-384 batch 32 (only where flash runs).
    int flash = gpu_uses_flash(c->dev.g, c->dt, (int)(D / cf->heads));
    size_t stats_bytes = flash ? kept * 2 * R * cf->heads * 4 : 0;
    struct { void **dst; size_t bytes; } parts[] = {
        {(void **)&c->img, (size_t)cap * 3 * S * S * 4}, {(void **)&c->drop, L * 2 * cap * 4},
        {(void **)&c->x_in, L * R * D * 4}, {&c->qkv, qkv_bytes},
        {&c->att, att_bytes}, {(void **)&c->att_stats, stats_bytes}, {(void **)&c->x_mid, kept * R * D * 4},
        {(void **)&c->f1, f1_bytes}, {&c->ln1b, ln_bytes}, {&c->ln2b, ln_bytes}, {&c->gb, g_bytes},
        {&c->gd, g_bytes}, {(void **)&c->cls, nD * 4}, {(void **)&c->feat, nD * 4},
        {(void **)&c->feat_bn, nD * 4}, {(void **)&c->bn_mean, UFO_NUM_TASKS * D * 4},
        {(void **)&c->bn_rstd, UFO_NUM_TASKS * D * 4}, {(void **)&c->dfeat_bn, nD * 4},
        {(void **)&c->x, R * D * 4}, {(void **)&c->h, R * D * 4}, {(void **)&c->tmp, R * D * 4},
        {(void **)&c->wide, bf ? 0 : R * wide * 4}, {(void **)&c->dx, R * D * 4},
        {(void **)&c->x_rec, recompute ? R * D * 4 : 0},
        {(void **)&c->dh, R * D * 4}, {(void **)&c->dqkv, R * 3 * D * 4}, {(void **)&c->datt, R * D * 4},
        {(void **)&c->df1, R * Hd * 4}, {(void **)&c->dfeat, nD * 4},
        {&c->xb, bf ? R * p3 * 2 : 0}, {&c->dyb, bf ? R * (Hd > 3 * D ? Hd : 3 * D) * 2 : 0},
    };
    size_t used = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (base) *parts[i].dst = parts[i].bytes ? base + used : NULL;
        used += align256(parts[i].bytes);
    }
    return used;
}

int vit_train_cuda_init(vit_train_state *st) {
    vit_model *m = st->m;
    vit_train_cuda *c = calloc(1, sizeof *c);
    if (!c) return ufo_errorf("out of memory");
    st->cu = c;
    c->dt = st->prec == UFO_PREC_BF16 ? GPU_BF16 : GPU_F32;
    if (!(c->dev.g = gpu_ctx_create(vit_train_cuda_local_device()))) return ufo_errorf("%s", gpu_error());
    gpu_ctx *g = c->dev.g;
    size_t nf = m->n_floats;
    c->dev.part_n = nf / 1024 + (size_t)m->n_params + 1;   // chunks of >= 1024 values per tensor
    size_t act = carve(c, NULL, &m->cfg, st->cap, st->recompute);
    if (!(c->dev.params = gpu_malloc(g, nf * 4)) || !(c->dev.grads = gpu_malloc(g, nf * 4)) ||
        !(c->dev.part = gpu_malloc(g, c->dev.part_n * sizeof(double))))
        return fail_gpu("training on the GPU (parameters, gradients)");
    if (c->dt == GPU_BF16 && !(c->w16 = gpu_malloc(g, nf * 2)))
        return fail_gpu("training on the GPU (the bf16 copy of the weights)");
    if (!(c->abuf = gpu_malloc(g, act)))
        return ufo_errorf("training on the GPU: activations for a batch of %d (%.1f GiB): %s%s", st->cap,
                          act / 1073741824.0, gpu_error(), st->recompute ? "" : "; try run.recompute = 1");
    carve(c, c->abuf, &m->cfg, st->cap, st->recompute);
    c->dev.feat = c->feat, c->dev.feat_bn = c->feat_bn, c->dev.dfeat = c->dfeat, c->dev.dfeat_bn = c->dfeat_bn;
    if (gpu_upload(g, c->dev.params, m->params, nf * 4) || gpu_zero(g, c->dev.grads, nf * 4) || gpu_sync(g))
        return fail_gpu("uploading the model to the GPU");
    return 0;
}

// Made after the activations: with ZeRO the whole-model momentum never exists.
int vit_train_optimizer_init(vit_train_state *st, size_t lo, size_t hi) {
    vit_train_device *d = st->cu && st->backend == VIT_BACKEND_CUDA ? &st->cu->dev : NULL;
    if (!d) return 0;
    size_t nf = st->m->n_floats, n = hi - lo;
    if (lo > hi || hi > nf) return ufo_errorf("optimiser slice [%zu, %zu) of %zu parameters", lo, hi, nf);
    if (d->mom) return ufo_errorf("the optimiser state is on the GPU already");
    d->mom_lo = lo, d->mom_hi = hi;
    if (!(d->mom = gpu_malloc(d->g, n ? n * 4 : 4))) return fail_gpu("the SGD momentum on the GPU");
    int slice = n != nf;
    if (slice && !(d->grad_slice = gpu_malloc(d->g, n ? n * 4 : 4)))
        return fail_gpu("the gradient slice (ZeRO) on the GPU");
    if (gpu_zero(d->g, d->mom, n * 4) || (slice && gpu_zero(d->g, d->grad_slice, n * 4)) || gpu_sync(d->g))
        return fail_gpu("the optimiser state on the GPU");
    return 0;
}

void vit_train_cuda_free(vit_train_state *st) {
    vit_train_cuda *c = st->cu;
    if (!c) return;
    if (c->dev.g) {
        gpu_free(c->dev.g, c->abuf);
        gpu_free(c->dev.g, c->w16);
        gpu_free(c->dev.g, c->dev.params);
        gpu_free(c->dev.g, c->dev.grads);
        gpu_free(c->dev.g, c->dev.mom);
        gpu_free(c->dev.g, c->dev.grad_slice);
        gpu_free(c->dev.g, c->dev.part);
        gpu_ctx_free(c->dev.g);
    }
    free(c);
    st->cu = NULL;
}

void vit_train_cuda_zero_grad(vit_train_state *st) {
    gpu_zero(st->cu->dev.g, st->cu->dev.grads, st->m->n_floats * sizeof(float));
}

// ---- ops -------------------------------------------------------------------------

// y = x W^T + b (+ r, a residual, when r is not NULL), with W, b given as host
// parameter pointers and x already in the matmul precision c->dt (bf16:
// written so by its producer, which saves a rounding pass over the activation
// per linear).
static int lin_fwd_op(vit_train_state *st, float *y, const void *x, const float *w_host, const float *b_host,
                      int rows, int in, int out, const float *r) {
    vit_train_cuda *c = st->cu;
    const void *w = W(st, w_host);
    const float *b = b_host ? P(st, b_host) : NULL;
    return r ? gpu_linear_residual(c->dev.g, y, r, x, w, b, rows, in, out, c->dt)
             : gpu_linear(c->dev.g, y, x, w, b, rows, in, out, c->dt, 0);
}

// x in x_dt: fp32, or bf16 when its producer wrote the matmul operand directly;
// dy16: NULL, or dy rounded to bf16 by its producer.
static int lin_bwd(vit_train_state *st, float *dx, const float *w_host, const float *b_host, const float *dy,
                   const void *dy16, const void *x, gpu_dtype x_dt, int rows, int in, int out) {
    gpu_dtype dt = st->cu->dt;
    return gpu_linear_backward(st->cu->dev.g, dx, G(st, w_host), G(st, b_host), dy, dy16, x, x_dt, W(st, w_host), dt,
                               rows, in, out, dt);
}

static int ln_fwd_dt(vit_train_state *st, void *y, const float *x, const float *g_host, const float *b_host, int rows,
                     gpu_dtype dt) {
    const vit_config *cf = &st->m->cfg;
    return gpu_layernorm(st->cu->dev.g, y, x, P(st, g_host), P(st, b_host), rows, cf->dim, cf->dim, cf->ln_eps, dt);
}

static int ln_fwd(vit_train_state *st, float *y, const float *x, const float *g_host, const float *b_host, int rows) {
    return ln_fwd_dt(st, y, x, g_host, b_host, rows, GPU_F32);
}

// LayerNorm straight into the next linear's operand: saved (bf16: ln1b, ln2b)
// or c->h (fp32, recomputed in the backward).
static void *ln_fwd_op(vit_train_state *st, void *saved, const float *x, const float *g_host, const float *b_host,
                       int rows) {
    vit_train_cuda *c = st->cu;
    void *y = c->dt == GPU_BF16 ? saved : (void *)c->h;
    return ln_fwd_dt(st, y, x, g_host, b_host, rows, c->dt) ? NULL : y;
}

// The bf16 linear backward from dyb, the output gradient its producer rounded
// (gpu_grad_rows_bf16, which also summed the bias gradient): dx = dyb W,
// dw += dyb^T xb.
static int lin_bwd16(vit_train_state *st, float *dx, const float *w_host, const void *dyb, const void *xb, int rows,
                     int in, int out) {
    return gpu_linear_backward(st->cu->dev.g, dx, G(st, w_host), NULL, NULL, dyb, xb, GPU_BF16, W(st, w_host),
                               GPU_BF16, rows, in, out, GPU_BF16);
}

// dyb = bf16(dy * s[sample of the row]) (s NULL: 1; rps rows a sample), and the
// bias gradient G(b_host) += its column sums: a linear's dy, rounded once.
static int dy_round(vit_train_state *st, const float *b_host, const float *dy, const float *s, size_t rps, int rows,
                    int c) {
    return gpu_grad_rows_bf16(st->cu->dev.g, st->cu->dyb, G(st, b_host), dy, NULL, s, rps, rows, c);
}

// dx is written, or with acc added to (the residual's gradient already there).
static int ln_bwd(vit_train_state *st, float *dx, const float *g_host, const float *b_host, const float *dy,
                  const float *x, int rows, int acc) {
    const vit_config *cf = &st->m->cfg;
    return gpu_layernorm_backward(st->cu->dev.g, dx, G(st, g_host), G(st, b_host), dy, x, P(st, g_host), rows,
                                  cf->dim, cf->ln_eps, acc);
}

// qkv = LN1 output W^T + b in c->dt: with bf16 the matmul writes it rounded
// (its bias from the bf16 mirror, as cuBLASLt's epilogue takes it in the
// output's type; the inference forward does the same).
static int qkv_fwd(vit_train_state *st, void *qkv, const void *h, const vit_block_weights *w, int rows) {
    vit_train_cuda *c = st->cu;
    int D = st->m->cfg.dim;
    if (c->dt != GPU_BF16) return lin_fwd_op(st, qkv, h, w->qkv_w, w->qkv_b, rows, D, 3 * D, NULL);
    return gpu_linear_out(c->dev.g, qkv, GPU_BF16, h, W(st, w->qkv_w), W(st, w->qkv_b), rows, D, 3 * D, GPU_BF16, 0);
}

// out = attention(qkv) in c->dt: it is saved only as the projection's operand
// (its forward, and its weight gradient in the backward), so bf16 keeps it in
// bf16, the very values both matmuls would round it to.
// stats (or NULL): the flash kernel's row statistics, kept for the backward.
static int attn_fwd(vit_train_state *st, void *out, const void *qkv, float *stats, int n) {
    const vit_config *cf = &st->m->cfg;
    return gpu_attention_train(st->cu->dev.g, out, qkv, st->cu->dt, n, vit_tokens(cf), cf->heads,
                               cf->dim / cf->heads, st->cu->dt, stats);
}

// ---- forward ---------------------------------------------------------------------

typedef struct {
    float *x_in, *x_mid, *f1;          // f1: fp32 only
    void *qkv, *att;
    float *stats;                      // NULL where the flash attention cannot run
    void *ln1b, *ln2b, *gb, *gd;       // bf16 only
} block_acts;

static block_acts acts(const vit_train_state *st, int l) {
    const vit_config *cf = &st->m->cfg;
    const vit_train_cuda *c = st->cu;
    size_t R = (size_t)st->cap * vit_tokens(cf), D = cf->dim, Hd = cf->mlp_hidden;
    int s = st->recompute ? 0 : l;
    int bf = c->dt == GPU_BF16;
    size_t att_b = bf ? 2 : 4;
    block_acts a = {c->x_in + (size_t)l * R * D, c->x_mid + (size_t)s * R * D, bf ? NULL : c->f1 + (size_t)s * R * Hd,
                    (char *)c->qkv + (size_t)s * R * 3 * D * att_b, (char *)c->att + (size_t)s * R * D * att_b,
                    c->att_stats ? c->att_stats + (size_t)s * 2 * R * cf->heads : NULL,
                    bf ? (char *)c->ln1b + (size_t)s * R * D * 2 : NULL, bf ? (char *)c->ln2b + (size_t)s * R * D * 2 : NULL,
                    bf ? (char *)c->gb + (size_t)s * R * Hd * 2 : NULL, bf ? (char *)c->gd + (size_t)s * R * Hd * 2 : NULL};
    return a;
}

// Residual scales of block l's attention (k = 0) or MLP (k = 1) branch, or NULL.
static const float *scales(const vit_train_state *st, int l, int k) {
    return st->drop ? st->cu->drop + ((size_t)l * 2 + k) * st->n : NULL;
}

// The projection and the MLP of a block's forward on m rows (every row, or
// last_fwd's n class rows; per values per sample): a.x_mid = base + s1 *
// proj(a.att), then out = a.x_mid + s2 * fc2(gelu(fc1(LN2(a.x_mid)))). Each
// residual sum is written straight into the buffer that keeps it (base may be
// a.x_mid: in place), with no copies of the residual stream.
static int proj_mlp_fwd(vit_train_state *st, const vit_block_weights *w, block_acts a, const float *base, int m,
                        size_t per, const float *s1, const float *s2, float *out) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    int n = st->n, D = st->m->cfg.dim, Hd = st->m->cfg.mlp_hidden;
    const void *h;
    if (s1) {
        if (lin_fwd_op(st, c->tmp, a.att, w->proj_w, w->proj_b, m, D, D, NULL) ||
            gpu_add_scaled_rows(g, a.x_mid, base, c->tmp, s1, n, per))
            return -1;
    } else if (lin_fwd_op(st, a.x_mid, a.att, w->proj_w, w->proj_b, m, D, D, base)) return -1;
    // Each linear's operand comes from its producer in the matmul precision
    // (LayerNorm, the attention kernel, GELU write bf16 directly in bf16 mode).
    // bf16: fc1's fp32 output lives in c->df1 (free until the backward) until
    // GELU has read it once, for its output and its derivative.
    const void *gl = c->dt == GPU_BF16 ? a.gb : (void *)c->wide;
    float *f1 = c->dt == GPU_BF16 ? c->df1 : a.f1;
    if (!(h = ln_fwd_op(st, a.ln2b, a.x_mid, w->ln2_w, w->ln2_b, m)) ||
        lin_fwd_op(st, f1, h, w->fc1_w, w->fc1_b, m, D, Hd, NULL) ||
        (c->dt == GPU_BF16 ? gpu_gelu_bf16(g, a.gb, a.gd, f1, (size_t)m * Hd)
                           : gpu_gelu(g, c->wide, f1, (size_t)m * Hd, GPU_F32)))
        return -1;
    if (s2) return lin_fwd_op(st, c->tmp, gl, w->fc2_w, w->fc2_b, m, Hd, D, NULL) ||
                   gpu_add_scaled_rows(g, out, a.x_mid, c->tmp, s2, n, per);
    return lin_fwd_op(st, out, gl, w->fc2_w, w->fc2_b, m, Hd, D, a.x_mid);
}

// One block from a.x_in into out (the next block's x_in).
static int block_fwd(vit_train_state *st, int l, block_acts a, float *out) {
    const vit_config *cf = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = n * vit_tokens(cf);
    const void *h = ln_fwd_op(st, a.ln1b, a.x_in, w->ln1_w, w->ln1_b, rows);
    if (!h || qkv_fwd(st, a.qkv, h, w, rows) || attn_fwd(st, a.att, a.qkv, a.stats, n)) return -1;
    return proj_mlp_fwd(st, w, a, a.x_in, rows, (size_t)vit_tokens(cf) * cf->dim, scales(st, l, 0), scales(st, l, 1),
                        out);
}

// The last block on the class tokens (vit_train.c's last_fwd, the same
// contract): LayerNorm 1 and qkv on every row (keys and values), the class
// queries' attention, then the projection and the MLP on the n class rows;
// a.x_mid, a.att, a.f1 hold n rows. out: the class outputs [n, D].
static int last_fwd(vit_train_state *st, int l, block_acts a, float *out) {
    vit_train_cuda *c = st->cu;
    const vit_config *cf = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, T = vit_tokens(cf), rows = n * T, D = cf->dim;
    const void *h = ln_fwd_op(st, a.ln1b, a.x_in, w->ln1_w, w->ln1_b, rows);
    if (!h || qkv_fwd(st, a.qkv, h, w, rows) ||
        gpu_attention_cls(c->dev.g, a.att, a.qkv, c->dt, n, T, cf->heads, D / cf->heads, c->dt) ||
        gpu_copy_rows(c->dev.g, a.x_mid, D, a.x_in, (size_t)T * D, n, D))   // the class rows' residual
        return -1;
    return proj_mlp_fwd(st, w, a, a.x_mid, n, D, scales(st, l, 0), scales(st, l, 1), out);
}

static int forward(vit_train_state *st, const float *images, const float *drop, float bn_momentum) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    const vit_model *m = st->m;
    const vit_config *cf = &m->cfg;
    int n = st->n, S = cf->img_size, p = cf->patch_size, D = cf->dim, T = vit_tokens(cf), P_ = T - 1;
    if (gpu_upload(g, c->img, images, (size_t)n * 3 * S * S * sizeof(float))) return -1;
    if (drop && gpu_upload(g, c->drop, drop, (size_t)cf->depth * 2 * n * sizeof(float))) return -1;
    // The weights changed since the last forward (SGD, a resume, ZeRO's gather):
    // one rounding pass over all of them, instead of one per matmul call (two
    // or three per weight and step: forward, backward, the recompute).
    if (c->dt == GPU_BF16 && gpu_to_bf16(g, c->w16, c->dev.params, m->n_floats)) return -1;
    // Patch embedding into h, then x = [cls; patches] + pos_embed.
    // The tokens go straight into block 0's saved input; each block writes the
    // next one's, the last c->x.
    void *cols = c->dt == GPU_BF16 ? c->xb : (void *)c->wide;
    if (gpu_im2col(g, cols, c->img, n, S, S, p, c->dt) ||
        lin_fwd_op(st, c->h, cols, m->w.patch_w, m->w.patch_b, n * P_, 3 * p * p, D, NULL) ||
        gpu_assemble_tokens(g, cf->depth ? acts(st, 0).x_in : c->x, c->h, P(st, m->w.cls_token), P(st, m->w.pos_embed), n, T, D))
        return -1;
    for (int l = 0; l < cf->depth; l++) {   // the last block on the class rows only
        int rc = l + 1 < cf->depth ? block_fwd(st, l, acts(st, l), acts(st, l + 1).x_in)
                                   : last_fwd(st, l, acts(st, l), c->x);
        if (rc) return -1;
    }
    if (gpu_copy(g, c->cls, c->x, (size_t)n * D * sizeof(float)) ||   // depth >= 1 (vit_params.c)
        ln_fwd(st, c->feat, c->cls, m->w.norm_w, m->w.norm_b, n) ||
        gpu_copy(g, c->feat_bn, c->feat, (size_t)n * D * sizeof(float)))
        return -1;
    // BNNecks (vit_train.c's heads_fwd, single process; with sync BN the host
    // runs them on the downloaded features).
    int sync = st->comm && st->comm->size > 1;
    for (int t = 0; t < UFO_NUM_TASKS && !sync; t++) {
        int lo = st->seg[t], cnt = st->seg[t + 1] - lo;
        if (cnt < 2 || !(m->head_mask >> t & 1)) continue;
        float *const *bn = m->w.bn[t];
        if (gpu_batchnorm_train(g, c->feat_bn + (size_t)lo * D, c->bn_mean + (size_t)t * D, c->bn_rstd + (size_t)t * D,
                                c->feat + (size_t)lo * D, P(st, bn[0]), P(st, bn[1]), P(st, bn[2]), P(st, bn[3]), cnt,
                                D, cf->bn_eps, bn_momentum))
            return -1;
    }
    // Device losses (st->feat_on_device, never with sync BN) read them there.
    int down = sync || !st->feat_on_device;
    if (down && (gpu_download(g, st->feat, c->feat, (size_t)n * D * sizeof(float)) ||
                 (!sync && gpu_download(g, st->feat_bn, c->feat_bn, (size_t)n * D * sizeof(float)))))
        return -1;
    return gpu_sync(g);
}

int vit_train_cuda_forward(vit_train_state *st, const float *images, const float *drop, float bn_momentum) {
    return forward(st, images, drop, bn_momentum) ? fail_gpu("CUDA training forward") : 0;
}

int vit_train_cuda_bn_params(vit_train_state *st, int dir) {
    gpu_ctx *g = st->cu->dev.g;
    size_t bytes = (size_t)st->m->cfg.dim * sizeof(float);
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        if (!(st->m->head_mask >> t & 1)) continue;
        float *const *bn = st->m->w.bn[t];
        for (int k = dir ? 2 : 0; k < 4; k++)
            if (dir ? gpu_upload(g, P(st, bn[k]), bn[k], bytes) : gpu_download(g, bn[k], P(st, bn[k]), bytes))
                return fail_gpu("BatchNorm parameters");
    }
    return gpu_sync(g) ? fail_gpu("BatchNorm parameters") : 0;
}

int vit_train_cuda_add_grads(vit_train_state *st, const float *param, const float *vals, size_t n) {
    vit_train_cuda *c = st->cu;
    // c->tmp is free between the passes (stream order keeps it so).
    if (gpu_upload(c->dev.g, c->tmp, vals, n * sizeof(float)) ||
        gpu_scale_rows(c->dev.g, G(st, param), c->tmp, NULL, n, 1, 1))
        return fail_gpu("adding gradients");
    return 0;
}

int vit_train_cuda_local_device(void) {
    // One GPU per process under mpirun: the node-local rank picks it.
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    int n = gpu_device_count();
    for (int i = 0; i < 3 && n > 0; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) % n;
    }
    return 0;
}

// ---- backward ---------------------------------------------------------------------

// The MLP branch and the projection of a block's backward on m rows (every
// row, or last_bwd's n class rows; rps rows a sample), fp32: c->dx holds
// d(block output) on entry, d(x_mid) on return, and c->datt d(attention
// output). GELU and LayerNorm 2 are recomputed from the saved f1 and x_mid.
static int mlp_proj_bwd_f32(vit_train_state *st, const vit_block_weights *w, block_acts a, int m, size_t rps,
                            const float *s1, const float *s2) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    int n = st->n, D = st->m->cfg.dim, Hd = st->m->cfg.mlp_hidden;
    size_t per = rps * D;
    // MLP branch: out = x_mid + s2 * fc2(gelu(fc1(LN2(x_mid))))
    const float *dy2 = c->dx;
    if (s2) {
        if (gpu_add_scaled_rows(g, c->tmp, NULL, c->dx, s2, n, per)) return -1;
        dy2 = c->tmp;
    }
    const void *h;
    if (gpu_gelu(g, c->wide, a.f1, (size_t)m * Hd, GPU_F32) ||
        lin_bwd(st, c->df1, w->fc2_w, w->fc2_b, dy2, NULL, c->wide, GPU_F32, m, Hd, D) ||
        gpu_gelu_backward(g, c->df1, c->df1, a.f1, (size_t)m * Hd) ||
        !(h = ln_fwd_op(st, NULL, a.x_mid, w->ln2_w, w->ln2_b, m)) ||
        lin_bwd(st, c->dh, w->fc1_w, w->fc1_b, c->df1, NULL, h, GPU_F32, m, D, Hd) ||
        ln_bwd(st, c->dx, w->ln2_w, w->ln2_b, c->dh, a.x_mid, m, 1))   // d(x_mid)
        return -1;
    // Attention branch: x_mid = x_in + s1 * proj(attn(qkv(LN1(x_in))))
    const float *dy1 = c->dx;
    if (s1) {
        if (gpu_add_scaled_rows(g, c->tmp, NULL, c->dx, s1, n, per)) return -1;
        dy1 = c->tmp;
    }
    return lin_bwd(st, c->datt, w->proj_w, w->proj_b, dy1, NULL, a.att, GPU_F32, m, D, D);
}

// The same in bf16 (vit_train.c's mlp_proj_bwd_bf16): each output gradient
// rounded once into c->dyb with the drop-path scale and its bias gradient
// (fc1's times GELU's saved derivative), the weight gradients from the saved
// bf16 inputs: nothing recomputed.
static int mlp_proj_bwd_bf16(vit_train_state *st, const vit_block_weights *w, block_acts a, int m, size_t rps,
                             const float *s1, const float *s2) {
    vit_train_cuda *c = st->cu;
    int D = st->m->cfg.dim, Hd = st->m->cfg.mlp_hidden;
    return dy_round(st, w->fc2_b, c->dx, s2, rps, m, D) ||
                   lin_bwd16(st, c->df1, w->fc2_w, c->dyb, a.gb, m, Hd, D) ||
                   gpu_grad_rows_bf16(c->dev.g, c->dyb, G(st, w->fc1_b), c->df1, a.gd, NULL, 1, m, Hd) ||
                   lin_bwd16(st, c->dh, w->fc1_w, c->dyb, a.ln2b, m, D, Hd) ||
                   ln_bwd(st, c->dx, w->ln2_w, w->ln2_b, c->dh, a.x_mid, m, 1) ||   // d(x_mid)
                   dy_round(st, w->proj_b, c->dx, s1, rps, m, D) ||
                   lin_bwd16(st, c->datt, w->proj_w, c->dyb, a.att, m, D, D)
               ? -1
               : 0;
}

static int mlp_proj_bwd(vit_train_state *st, const vit_block_weights *w, block_acts a, int m, size_t rps,
                        const float *s1, const float *s2) {
    return st->cu->dt == GPU_BF16 ? mlp_proj_bwd_bf16(st, w, a, m, rps, s1, s2)
                                  : mlp_proj_bwd_f32(st, w, a, m, rps, s1, s2);
}

// The qkv linear's backward from c->dqkv (and, bf16, its rounded copy in
// c->dyb, written by the attention backward): dh = d(LayerNorm 1 output), the
// input saved (bf16) or recomputed (fp32).
static int qkv_bwd(vit_train_state *st, const vit_block_weights *w, block_acts a, int rows) {
    vit_train_cuda *c = st->cu;
    int D = st->m->cfg.dim, bf = c->dt == GPU_BF16;
    const void *h = bf ? a.ln1b : ln_fwd_op(st, NULL, a.x_in, w->ln1_w, w->ln1_b, rows);
    return !h || lin_bwd(st, c->dh, w->qkv_w, w->qkv_b, c->dqkv, bf ? c->dyb : NULL, h, c->dt, rows, D, 3 * D) ? -1 : 0;
}

// c->dx holds d(block output); on return it holds d(block input).
static int block_bwd(vit_train_state *st, int l, block_acts a) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    const vit_config *cf = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, rows = n * vit_tokens(cf), D = cf->dim;
    void *d16 = c->dt == GPU_BF16 ? c->dyb : NULL;
    // Recompute: rerun the block from its saved input (its output is not needed).
    if ((st->recompute && block_fwd(st, l, a, c->x_rec)) ||
        mlp_proj_bwd(st, w, a, rows, (size_t)vit_tokens(cf), scales(st, l, 0), scales(st, l, 1)) ||
        gpu_attention_backward_saved(g, c->dqkv, d16, c->datt, a.qkv, c->dt, a.att, a.stats, n, vit_tokens(cf),
                                     cf->heads, D / cf->heads, c->dt) ||
        qkv_bwd(st, w, a, rows) ||
        ln_bwd(st, c->dx, w->ln1_w, w->ln1_b, c->dh, a.x_in, rows, 1))   // d(x_in), for the block below
        return -1;
    return 0;
}

// last_fwd's backward: c->dx holds d(class outputs) [n, D] on entry, d(block
// input) [rows, D] on return.
static int last_bwd(vit_train_state *st, int l, block_acts a) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    const vit_config *cf = &st->m->cfg;
    const vit_block_weights *w = &st->m->w.blocks[l];
    int n = st->n, T = vit_tokens(cf), rows = n * T, D = cf->dim;
    void *d16 = c->dt == GPU_BF16 ? c->dyb : NULL;
    if ((st->recompute && last_fwd(st, l, a, c->x_rec)) ||
        mlp_proj_bwd(st, w, a, n, 1, scales(st, l, 0), scales(st, l, 1)) ||
        gpu_attention_cls_backward(g, c->dqkv, d16, c->datt, a.qkv, c->dt, n, T, cf->heads, D / cf->heads, c->dt) ||
        qkv_bwd(st, w, a, rows))
        return -1;
    // d(x_in): d(x_mid) on the class rows (moved aside first: it sits at c->dx's
    // start), then LayerNorm 1's gradient added over every row.
    if (gpu_copy(g, c->tmp, c->dx, (size_t)n * D * sizeof(float)) ||
        gpu_zero(g, c->dx, (size_t)rows * D * sizeof(float)) ||
        gpu_copy_rows(g, c->dx, (size_t)T * D, c->tmp, D, n, D) ||
        ln_bwd(st, c->dx, w->ln1_w, w->ln1_b, c->dh, a.x_in, rows, 1))
        return -1;
    return 0;
}

// d_feat, d_feat_bn: host buffers, or device ones with on_device (gpu_copy
// does nothing when they are c->dfeat / c->dfeat_bn themselves).
static int backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn, int on_device) {
    vit_train_cuda *c = st->cu;
    gpu_ctx *g = c->dev.g;
    const vit_model *m = st->m;
    const vit_config *cf = &m->cfg;
    int n = st->n, D = cf->dim, T = vit_tokens(cf), P_ = T - 1, S = cf->img_size, p = cf->patch_size;
    size_t nD = (size_t)n * D;
    // d(pre-BN feature) = d_feat + BN backward of d_feat_bn, per task slice.
    size_t b = nD * sizeof(float);
    if (!d_feat ? gpu_zero(g, c->dfeat, b)
                : on_device ? gpu_copy(g, c->dfeat, d_feat, b) : gpu_upload(g, c->dfeat, d_feat, b))
        return -1;
    if (d_feat_bn && (on_device ? gpu_copy(g, c->dfeat_bn, d_feat_bn, b) : gpu_upload(g, c->dfeat_bn, d_feat_bn, b)))
        return -1;
    for (int t = 0; t < UFO_NUM_TASKS && d_feat_bn; t++) {
        int lo = st->seg[t], cnt = st->seg[t + 1] - lo;
        if (cnt < 1) continue;
        float *dst = c->dfeat + (size_t)lo * D, *dy = c->dfeat_bn + (size_t)lo * D;
        if (cnt < 2 || !(m->head_mask >> t & 1)) {  // identity: no BN ran on this slice
            if (gpu_scale_rows(g, dst, dy, NULL, (size_t)cnt * D, 1, 1)) return -1;
            continue;
        }
        float *const *bn = m->w.bn[t];
        if (gpu_batchnorm_backward(g, c->tmp, G(st, bn[0]), G(st, bn[1]), dy, c->feat + (size_t)lo * D,
                                   c->bn_mean + (size_t)t * D, c->bn_rstd + (size_t)t * D, P(st, bn[0]), cnt, D) ||
            gpu_scale_rows(g, dst, c->tmp, NULL, (size_t)cnt * D, 1, 1))
            return -1;
    }
    // Final LayerNorm on the class tokens; the other tokens get no gradient.
    if (ln_bwd(st, c->dx, m->w.norm_w, m->w.norm_b, c->dfeat, c->cls, n, 0)) return -1;
    for (int l = cf->depth - 1; l >= 0; l--) {
        if (l + 1 < cf->depth ? block_bwd(st, l, acts(st, l)) : last_bwd(st, l, acts(st, l))) return -1;
        if (st->grads_ready) {   // blocks are contiguous in the buffer, ln1_w first
            const float *end = l + 1 < cf->depth ? m->w.blocks[l + 1].ln1_w : m->w.norm_w;
            void *ready = gpu_record_event(g);
            if (!ready) return -1;
            st->grads_ready(st->grads_ready_ctx, (size_t)(m->w.blocks[l].ln1_w - m->params),
                            (size_t)(end - m->params), ready);
        }
    }
    // Tokens: pos_embed gets every row's gradient, cls_token the class rows', the
    // patch embedding the other rows'.
    if (gpu_colsum_acc(g, G(st, m->w.pos_embed), c->dx, n, T * D) ||
        gpu_copy_rows(g, c->dh, D, c->dx, (size_t)T * D, n, D) || gpu_colsum_acc(g, G(st, m->w.cls_token), c->dh, n, D) ||
        gpu_copy_rows(g, c->dh, (size_t)P_ * D, c->dx + D, (size_t)T * D, n, (size_t)P_ * D) ||
        gpu_patch_embed_backward(g, G(st, m->w.patch_w), G(st, m->w.patch_b), c->dh, c->img, n, S, S, p, D, c->dt))
        return -1;
    return gpu_sync(g);
}

int vit_train_cuda_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    return backward(st, d_feat, d_feat_bn, 0) ? fail_gpu("CUDA training backward") : 0;
}

int vit_train_cuda_backward_device(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    return backward(st, d_feat, d_feat_bn, 1) ? fail_gpu("CUDA training backward") : 0;
}

// ---- host <-> device ------------------------------------------------------------------

const vit_train_device *vit_train_device_of(const vit_train_state *st) {
    return st->backend == VIT_BACKEND_CUDA && st->cu ? &st->cu->dev : NULL;
}

const char *vit_train_device_name(const vit_train_state *st) {
    return vit_train_device_of(st) ? gpu_device_name(st->cu->dev.g) : "";
}

const char *vit_train_attention(const vit_train_state *st) {
    if (!vit_train_device_of(st)) return "";
    const vit_config *cf = &st->m->cfg;
    return gpu_uses_flash(st->cu->dev.g, st->cu->dt, cf->dim / cf->heads) ? "flash" : "gemm";
}

int vit_train_to_host(const vit_train_state *st, float *mom) {
    if (!vit_train_device_of(st)) return 0;
    const vit_train_device *d = &st->cu->dev;
    size_t bytes = st->m->n_floats * sizeof(float), mbytes = (d->mom_hi - d->mom_lo) * sizeof(float);
    if (gpu_download(d->g, st->m->params, d->params, bytes) ||
        (mom && d->mom && gpu_download(d->g, mom, d->mom, mbytes)) || gpu_sync(d->g))
        return fail_gpu("copying the trained parameters to the host");
    return 0;
}

int vit_train_to_device(vit_train_state *st, const float *mom) {
    if (!vit_train_device_of(st)) return 0;
    vit_train_device *d = &st->cu->dev;
    size_t bytes = st->m->n_floats * sizeof(float), mbytes = (d->mom_hi - d->mom_lo) * sizeof(float);
    if (gpu_upload(d->g, d->params, st->m->params, bytes) ||
        (d->mom && (mom ? gpu_upload(d->g, d->mom, mom, mbytes) : gpu_zero(d->g, d->mom, mbytes))) || gpu_sync(d->g))
        return fail_gpu("copying the parameters to the GPU");
    return 0;
}

int vit_train_grads_to_host(const vit_train_state *st, float *grads) {
    size_t bytes = st->m->n_floats * sizeof(float);
    if (!vit_train_device_of(st)) {
        memcpy(grads, st->grads, bytes);
        return 0;
    }
    const vit_train_device *d = &st->cu->dev;
    if (gpu_download(d->g, grads, d->grads, bytes) || gpu_sync(d->g)) return fail_gpu("copying the gradients");
    return 0;
}

#else  // built without CUDA

#define NO_CUDA "this ufo was built without CUDA (rebuild with the CUDA toolkit's nvcc on PATH)"

int vit_train_cuda_init(vit_train_state *st) { return ufo_errorf(NO_CUDA); }
void vit_train_cuda_free(vit_train_state *st) {}
void vit_train_cuda_zero_grad(vit_train_state *st) {}
int vit_train_cuda_forward(vit_train_state *st, const float *images, const float *drop, float bn_momentum) {
    return ufo_errorf(NO_CUDA);
}
int vit_train_cuda_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    return ufo_errorf(NO_CUDA);
}
int vit_train_cuda_backward_device(vit_train_state *st, const float *d_feat, const float *d_feat_bn) {
    return ufo_errorf(NO_CUDA);
}
int vit_train_cuda_bn_params(vit_train_state *st, int dir) { return ufo_errorf(NO_CUDA); }
int vit_train_cuda_add_grads(vit_train_state *st, const float *param, const float *vals, size_t n) {
    return ufo_errorf(NO_CUDA);
}
int vit_train_cuda_local_device(void) { return 0; }
const vit_train_device *vit_train_device_of(const vit_train_state *st) { return NULL; }
const char *vit_train_device_name(const vit_train_state *st) { return ""; }
const char *vit_train_attention(const vit_train_state *st) { return ""; }
int vit_train_optimizer_init(vit_train_state *st, size_t lo, size_t hi) { return 0; }
int vit_train_to_host(const vit_train_state *st, float *mom) { return 0; }
int vit_train_to_device(vit_train_state *st, const float *mom) { return 0; }
int vit_train_grads_to_host(const vit_train_state *st, float *grads) {
    memcpy(grads, st->grads, st->m->n_floats * sizeof(float));
    return 0;
}

#endif
