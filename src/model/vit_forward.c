// Inference forward pass (SPEC section 1): patch embedding, class token,
// position embedding, pre-norm blocks, final LayerNorm on the class token,
// optional BNNeck. Each op dispatches to the reference or the fast kernel.
#include "model/vit.h"
#include "base/error.h"
#include "base/mem.h"
#include "kernels/cpu/cpu_train.h"
#include "kernels/ref/ref.h"
#include <string.h>

typedef struct {
    float *x, *h, *qkv, *att, *mlp;
} vit_acts;

static int ensure_acts(vit_model *m, int n, vit_acts *a) {
    const vit_config *c = &m->cfg;
    size_t rows = (size_t)n * vit_tokens(c), D = c->dim;
    // h, att and mlp may hold bf16 in the packed layout (rows and columns padded to 32);
    // every part a whole number of 64-byte lines, for the streaming stores.
    size_t r32 = (rows + 31) / 32 * 32, Dp = ((size_t)D + 31) / 32 * 32, Hp = ((size_t)c->mlp_hidden + 31) / 32 * 32;
#define FIT(fp32, packed) ((((fp32) > (packed) / 2 ? (fp32) : (packed) / 2) + 15) / 16 * 16)
    // qkv also holds the last block's class rows (gather_cls): n x D fp32, then the attention's
    // n rows in fp32 or packed (32-row blocks: more than n * T * 3 * D when T is tiny), in floats:
    size_t n32 = ((size_t)n + 31) / 32 * 32, att_n = (size_t)n * D > n32 * Dp / 2 ? (size_t)n * D : n32 * Dp / 2;
    size_t cls = ((size_t)n * D + 15) / 16 * 16 + att_n;
    size_t x = FIT(rows * D, 0), h = FIT(rows * D, r32 * Dp), att = FIT(rows * D, r32 * Dp);
    size_t qkv = FIT(rows * 3 * D > cls ? rows * 3 * D : cls, 0);
    size_t mlp = FIT(rows * c->mlp_hidden, r32 * Hp);
#undef FIT
    if (n > m->act_batch) {
        ufo_free(m->act);
        m->act = ufo_alloc((x + h + qkv + att + mlp) * sizeof(float));
        m->act_batch = m->act ? n : 0;
        if (!m->act) return -1;
    }
    a->x = m->act;
    a->h = a->x + x;
    a->qkv = a->h + h;
    a->att = a->qkv + qkv;
    a->mlp = a->att + att;
    return 0;
}

// y = x W^T + b with a fused post-op; the reference path does the same in steps.
// `tmp` (rows x out) is scratch for the reference residual case.
static int linear(const vit_model *m, cpu_linear *fast, const float *w, const float *b, float *y,
                  const float *x, int rows, int in, int out, cpu_post_op post, float *tmp) {
    if (m->backend == VIT_BACKEND_CPU) return cpu_linear_forward(fast, y, x, rows, post);
    if (post == CPU_POST_RESIDUAL) {
        ref_linear(tmp, x, w, b, rows, in, out);
        ref_add(y, tmp, (size_t)rows * out);
        return 0;
    }
    ref_linear(y, x, w, b, rows, in, out);
    if (post == CPU_POST_GELU) ref_gelu(y, y, (size_t)rows * out);
    return 0;
}

static void layernorm(const vit_model *m, float *y, const float *x, const float *g, const float *b, int rows) {
    if (m->backend == VIT_BACKEND_CPU) cpu_layernorm(y, x, g, b, rows, m->cfg.dim, m->cfg.ln_eps);
    else ref_layernorm(y, x, g, b, rows, m->cfg.dim, m->cfg.ln_eps);
}

// x[b] = [cls; patches[b]] + pos_embed
static void assemble_tokens(const vit_model *m, float *x, const float *patches, int n) {
    int T = vit_tokens(&m->cfg), D = m->cfg.dim;
    const float *pos = m->w.pos_embed;
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * T * D;
        for (int d = 0; d < D; d++) xi[d] = m->w.cls_token[d] + pos[d];
        const float *pi = patches + (size_t)i * (T - 1) * D;
        for (size_t k = 0; k < (size_t)(T - 1) * D; k++) xi[D + k] = pi[k] + pos[D + k];
    }
}

// The last block's output is read only at the class tokens (the final
// LayerNorm takes nothing else), so after its attention, which needs every
// token's k and v, it goes on with the class rows alone: the projection and
// the MLP on n rows instead of n * T (about 2/3 of the block, ~2.8% of a
// ViT-L forward). cls_rows copies them, dense, into the free qkv space:
// x's in fp32, the attention output's in its own layout (fp32 [.., D], or the
// AMX matmul's packed bf16 blocks, padding columns included).
typedef struct {
    float *x;     // the class rows of x, [n, D] fp32
    void *att;    // and of the attention output
} cls_rows;

static size_t cls_x_floats(int n, int D) { return ((size_t)n * D + 15) / 16 * 16; }

static cls_rows gather_cls(const vit_acts *a, int n, int T, int D, int packed) {
    cls_rows c = {a->qkv, a->qkv + cls_x_floats(n, D)};
    for (int i = 0; i < n; i++) memcpy(c.x + (size_t)i * D, a->x + (size_t)i * T * D, D * sizeof(float));
    if (!packed) {
        for (int i = 0; i < n; i++)
            memcpy((float *)c.att + (size_t)i * D, a->att + (size_t)i * T * D, D * sizeof(float));
        return c;
    }
    // Packed: 32 x 32 blocks, block (r/32, k/32) at ((r/32) * cb + k/32) * 1024, row-major inside.
    size_t cb = ((size_t)D + 31) / 32;
    const uint16_t *src = (const uint16_t *)a->att;
    uint16_t *dst = c.att;
    for (size_t i = 0; i < (size_t)n; i++) {
        size_t r = i * T;
        for (size_t k = 0; k < cb; k++)
            memcpy(dst + ((i / 32) * cb + k) * 1024 + i % 32 * 32, src + ((r / 32) * cb + k) * 1024 + r % 32 * 32,
                   32 * sizeof(uint16_t));
    }
    return c;
}

// bf16 on the CPU: LayerNorm writes the bf16 rows the next matmul reads, and
// fc1 + GELU writes bf16 straight for fc2, so no activation is rounded in a
// pass of its own (the values are those of the fp32-in path: the same roundings,
// made by the producer). The bf16 rows live in the fp32 h, att and mlp buffers.
// With the AMX matmul and attention (amx), every matmul input travels in the
// packed layout its producer writes (LayerNorm, attention, fc1), and q, k, v
// and the attention output are bf16 too: the same values again.
static int block_forward_bf16(vit_model *m, int l, vit_acts *a, int n, float **out) {
    const vit_config *c = &m->cfg;
    const vit_block_weights *w = &m->w.blocks[l];
    const int D = c->dim, T = vit_tokens(c), hd = D / c->heads;
    int rows = n * T;
    uint16_t *hb = (uint16_t *)a->h, *mb = (uint16_t *)a->mlp;
    const int amx = cpu_linear_is_amx(m->qkv[l]) && cpu_attention_io_ok(T, hd);
    const int in = amx ? CPU_LINEAR_SRC_PACKED : CPU_LINEAR_SRC_BF16;

    if (cpu_layernorm_bf16_ex(hb, a->x, w->ln1_w, w->ln1_b, rows, D, c->ln_eps, amx)) return -1;
    if (cpu_linear_forward_io(m->qkv[l], a->qkv, hb, rows, CPU_POST_NONE, in | (amx ? CPU_LINEAR_DST_BF16 : 0)))
        return -1;
    if (amx ? cpu_attention_io(a->att, a->qkv, n, T, c->heads, hd, CPU_ATTN_QKV_BF16 | CPU_ATTN_OUT_PACKED)
            : cpu_attention(a->att, a->qkv, n, T, c->heads, hd, m->prec))
        return -1;
    float *x = a->x;
    const void *att = a->att;
    if (l == c->depth - 1) {
        cls_rows cr = gather_cls(a, n, T, D, amx);
        x = cr.x, att = cr.att, rows = n;
    }
    *out = x;
    if (cpu_linear_forward_io(m->proj[l], x, att, rows, CPU_POST_RESIDUAL, amx ? in : 0)) return -1;
    if (cpu_layernorm_bf16_ex(hb, x, w->ln2_w, w->ln2_b, rows, D, c->ln_eps, amx)) return -1;
    int mlp_out = amx ? CPU_LINEAR_DST_PACKED : CPU_LINEAR_DST_BF16;
    if (cpu_linear_forward_io(m->fc1[l], mb, hb, rows, CPU_POST_GELU, in | mlp_out)) return -1;
    return cpu_linear_forward_io(m->fc2[l], x, mb, rows, CPU_POST_RESIDUAL, in);
}

// Block l on a->x; *out: where its output rows are, a->x (row stride T * D) or,
// for the last block, the dense class rows (stride D).
static int block_forward(vit_model *m, int l, vit_acts *a, int n, float **out) {
    const vit_config *c = &m->cfg;
    if (m->backend == VIT_BACKEND_CPU && m->prec == UFO_PREC_BF16)
        return block_forward_bf16(m, l, a, n, out);
    const vit_block_weights *w = &m->w.blocks[l];
    int rows = n * vit_tokens(c), D = c->dim, Hd = c->mlp_hidden;
    int fast = m->backend == VIT_BACKEND_CPU;
    cpu_linear *qkv = fast ? m->qkv[l] : NULL, *proj = fast ? m->proj[l] : NULL;
    cpu_linear *fc1 = fast ? m->fc1[l] : NULL, *fc2 = fast ? m->fc2[l] : NULL;

    layernorm(m, a->h, a->x, w->ln1_w, w->ln1_b, rows);
    if (linear(m, qkv, w->qkv_w, w->qkv_b, a->qkv, a->h, rows, D, 3 * D, CPU_POST_NONE, NULL)) return -1;
    if (fast) {
        if (cpu_attention(a->att, a->qkv, n, vit_tokens(c), c->heads, D / c->heads, m->prec)) return -1;
    } else {
        ref_attention(a->att, a->qkv, n, vit_tokens(c), c->heads, D / c->heads);
    }
    float *x = a->x;
    const float *att = a->att;
    if (l == c->depth - 1) {
        cls_rows cr = gather_cls(a, n, vit_tokens(c), D, 0);
        x = cr.x, att = cr.att, rows = n;
    }
    *out = x;
    if (linear(m, proj, w->proj_w, w->proj_b, x, att, rows, D, D, CPU_POST_RESIDUAL, a->h)) return -1;
    layernorm(m, a->h, x, w->ln2_w, w->ln2_b, rows);
    if (linear(m, fc1, w->fc1_w, w->fc1_b, a->mlp, a->h, rows, D, Hd, CPU_POST_GELU, NULL)) return -1;
    if (linear(m, fc2, w->fc2_w, w->fc2_b, x, a->mlp, rows, Hd, D, CPU_POST_RESIDUAL, a->h)) return -1;
    return 0;
}

int vit_forward(vit_model *m, const float *images, int n, int task, float *out) {
    const vit_config *c = &m->cfg;
    if (task >= 0 && (task >= UFO_NUM_TASKS || !(m->head_mask >> task & 1)))
        return ufo_errorf("this model has no '%s' head", vit_task_name(task));
    if (n <= 0) return 0;
    if (m->backend == VIT_BACKEND_CUDA) return vit_cuda_forward(m, images, n, task, out);
    vit_acts a;
    if (ensure_acts(m, n, &a)) return -1;
    int S = c->img_size, p = c->patch_size, D = c->dim;

    // Patch embedding into h (n x (T-1) x D), then tokens into x.
    if (m->backend == VIT_BACKEND_CPU) {
        if (cpu_patch_embed(m->patch, a.h, images, n, S, S, p)) return -1;
    } else {
        ref_patch_embed(a.h, images, m->w.patch_w, m->w.patch_b, n, S, S, p, D);
    }
    assemble_tokens(m, a.x, a.h, n);
    float *last = NULL;   // the last block's output: its class rows, dense [n, D] (depth >= 1, vit_config_check)
    for (int l = 0; l < c->depth; l++)
        if (block_forward(m, l, &a, n, &last)) return -1;

    // Only the class token is kept, so the final LayerNorm runs on those rows only.
    float *feat = task >= 0 ? a.att : out;
    ref_layernorm(feat, last, m->w.norm_w, m->w.norm_b, n, D, c->ln_eps);
    if (task >= 0) {
        float *const *bn = m->w.bn[task];
        ref_batchnorm(out, feat, bn[0], bn[1], bn[2], bn[3], n, D, c->bn_eps);
    }
    return 0;
}
