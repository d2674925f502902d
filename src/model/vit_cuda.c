// The inference forward pass on the GPU: the same ops in the same order as
// vit_forward.c's CPU path (SPEC section 1), each one call into the CUDA
// backend (kernels/cuda/cuda_backend.h). Weights are uploaded once (bf16
// copies of the matrices with --precision bf16); activations are allocated
// once per batch size. The residual stream, LayerNorm statistics, softmax and
// every accumulation stay fp32; with bf16 the matmul inputs are bf16, and so
// are the qkv and fc1 outputs, which only feed the attention and GELU.
//
// Built without CUDA (no UFO_HAVE_CUDA), every entry point below fails with
// "built without CUDA", so the CPU-only build needs no other change.
#include "base/error.h"
#include "base/mem.h"
#include "model/vit.h"
#include <stdlib.h>
#include <string.h>

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"

typedef struct {
    const float *ln1_w, *ln1_b, *proj_b, *ln2_w, *ln2_b, *fc2_b;
    const void *qkv_w, *proj_w, *fc1_w, *fc2_w;  // in the model's dtype
    const void *qkv_b, *fc1_b;  // in the model's dtype too: their linears' outputs are (see block_forward)
} cuda_block;

struct vit_cuda {
    gpu_ctx *g;
    gpu_dtype dt;
    void *wbuf;                  // every weight, one allocation
    const void *patch_w;         // [D, 3*p*p] in dt
    const float *patch_b, *cls, *pos, *norm_w, *norm_b;
    cuda_block *blocks;
    const float *bn[UFO_NUM_TASKS][4];
    // Activations for up to act_batch images (one allocation).
    int act_batch;
    void *abuf;
    float *img, *x, *feat;
    void *qkv, *fc1;             // in dt (qkv also holds the patch embedding's fp32 output)
    void *cols, *h, *att;        // matmul inputs, in dt
};

static int fail_gpu(const char *what) { return ufo_errorf("%s: %s", what, gpu_error()); }

int vit_cuda_check(void) { return gpu_device_count() > 0 ? 0 : ufo_errorf("%s", gpu_error()); }

const char *vit_cuda_device(const vit_model *m) { return m->cuda ? gpu_device_name(m->cuda->g) : ""; }

const char *vit_cuda_attention(const vit_model *m) {
    if (!m->cuda) return "";
    return gpu_uses_flash(m->cuda->g, m->cuda->dt, m->cfg.dim / m->cfg.heads) ? "flash" : "gemm";
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

void vit_cuda_release(vit_model *m) {
    vit_cuda *c = m->cuda;
    if (!c) return;
    if (c->g) {
        gpu_free(c->g, c->abuf);
        gpu_free(c->g, c->wbuf);
        gpu_ctx_free(c->g);
    }
    free(c->blocks);
    free(c);
    m->cuda = NULL;
}

// Weight upload: a first pass sizes the buffer, a second copies. Matrices are
// converted to bf16 on the device through a staging buffer.
typedef struct {
    vit_cuda *c;
    char *base;      // NULL in the sizing pass
    size_t used;
    float *stage;    // fp32 staging for matrices (bf16 only)
    int err;
} uploader;

static const float *put_vec(uploader *u, const float *src, size_t n) {
    size_t off = u->used;
    u->used += align256(n * sizeof(float));
    if (!u->base || u->err) return NULL;
    if (gpu_upload(u->c->g, u->base + off, src, n * sizeof(float))) u->err = -1;
    return (const float *)(u->base + off);
}

static const void *put_mat(uploader *u, const float *src, size_t n) {
    if (u->c->dt == GPU_F32) return put_vec(u, src, n);
    size_t off = u->used;
    u->used += align256(n * 2);
    if (!u->base || u->err) return NULL;
    // The stage is reused by the next matrix: wait for this conversion first.
    if (gpu_upload(u->c->g, u->stage, src, n * sizeof(float)) || gpu_to_bf16(u->c->g, u->base + off, u->stage, n) ||
        gpu_sync(u->c->g))
        u->err = -1;
    return u->base + off;
}

static void upload_all(uploader *u, const vit_model *m) {
    vit_cuda *c = u->c;
    const vit_config *cf = &m->cfg;
    int D = cf->dim, Hd = cf->mlp_hidden, T = vit_tokens(cf), p = cf->patch_size;
    c->patch_w = put_mat(u, m->w.patch_w, (size_t)D * 3 * p * p);
    c->patch_b = put_vec(u, m->w.patch_b, D);
    c->cls = put_vec(u, m->w.cls_token, D);
    c->pos = put_vec(u, m->w.pos_embed, (size_t)T * D);
    c->norm_w = put_vec(u, m->w.norm_w, D);
    c->norm_b = put_vec(u, m->w.norm_b, D);
    for (int l = 0; l < cf->depth; l++) {
        const vit_block_weights *w = &m->w.blocks[l];
        cuda_block *b = &c->blocks[l];
        b->ln1_w = put_vec(u, w->ln1_w, D);
        b->ln1_b = put_vec(u, w->ln1_b, D);
        b->qkv_w = put_mat(u, w->qkv_w, (size_t)3 * D * D);
        b->qkv_b = put_mat(u, w->qkv_b, (size_t)3 * D);
        b->proj_w = put_mat(u, w->proj_w, (size_t)D * D);
        b->proj_b = put_vec(u, w->proj_b, D);
        b->ln2_w = put_vec(u, w->ln2_w, D);
        b->ln2_b = put_vec(u, w->ln2_b, D);
        b->fc1_w = put_mat(u, w->fc1_w, (size_t)Hd * D);
        b->fc1_b = put_mat(u, w->fc1_b, Hd);
        b->fc2_w = put_mat(u, w->fc2_w, (size_t)D * Hd);
        b->fc2_b = put_vec(u, w->fc2_b, D);
    }
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        for (int k = 0; k < 4; k++) c->bn[t][k] = m->w.bn[t][k] ? put_vec(u, m->w.bn[t][k], D) : NULL;
}

int vit_cuda_prepare(vit_model *m, ufo_precision prec) {
    vit_cuda_release(m);
    vit_cuda *c = calloc(1, sizeof *c);
    if (!c || !(c->blocks = calloc((size_t)m->cfg.depth, sizeof *c->blocks))) {
        free(c);
        return ufo_errorf("out of memory");
    }
    m->cuda = c;
    c->dt = prec == UFO_PREC_BF16 ? GPU_BF16 : GPU_F32;
    if (!(c->g = gpu_ctx_create(0))) {
        vit_cuda_release(m);
        return ufo_errorf("%s", gpu_error());
    }
    uploader u = {.c = c};
    upload_all(&u, m);  // sizing pass
    size_t total = u.used;
    const vit_config *cf = &m->cfg;
    size_t stage = 0;  // bf16: the largest matrix, in fp32
    if (c->dt == GPU_BF16) {
        size_t D = cf->dim, mats[3] = {D * cf->mlp_hidden, 3 * D * D, D * 3 * cf->patch_size * cf->patch_size};
        for (int i = 0; i < 3; i++)
            if (mats[i] * sizeof(float) > stage) stage = mats[i] * sizeof(float);
    }
    if (!(c->wbuf = gpu_malloc(c->g, total + align256(stage)))) {
        vit_cuda_release(m);
        return fail_gpu("uploading the model to the GPU");
    }
    u = (uploader){.c = c, .base = c->wbuf, .stage = stage ? (float *)((char *)c->wbuf + total) : NULL};
    upload_all(&u, m);
    if (u.err || gpu_sync(c->g)) {
        vit_cuda_release(m);
        return fail_gpu("uploading the model to the GPU");
    }
    return 0;
}

// Activations for n images, carved out of one allocation (each piece 256-byte
// aligned, as cuBLASLt's fastest kernels want).
static int ensure_acts(vit_model *m, int n) {
    vit_cuda *c = m->cuda;
    if (n <= c->act_batch) return 0;
    const vit_config *cf = &m->cfg;
    size_t T = vit_tokens(cf), D = cf->dim, Hd = cf->mlp_hidden, S = cf->img_size, p = cf->patch_size;
    size_t rows = (size_t)n * T, P = T - 1, es = c->dt == GPU_BF16 ? 2 : 4;
    size_t sz[8] = {
        (size_t)n * 3 * S * S * 4,                        // img
        rows * D * 4,                                     // x
        rows * 3 * D * 4,                                 // qkv (also the patch embedding's output)
        rows * Hd * 4,                                    // fc1
        (size_t)n * D * 4,                                // feat
        (size_t)n * P * 3 * p * p * es,                   // cols
        rows * D * es,                                    // h
        rows * D * es,                                    // att
    };
    size_t total = 0;
    for (int i = 0; i < 8; i++) total += align256(sz[i]);
    gpu_free(c->g, c->abuf);
    c->abuf = NULL;
    c->act_batch = 0;
    if (!(c->abuf = gpu_malloc(c->g, total))) return fail_gpu("activations");
    char *q = c->abuf;
    void *ptr[8];
    for (int i = 0; i < 8; i++) {
        ptr[i] = q;
        q += align256(sz[i]);
    }
    c->img = ptr[0], c->x = ptr[1], c->qkv = ptr[2], c->fc1 = ptr[3], c->feat = ptr[4];
    c->cols = ptr[5], c->h = ptr[6], c->att = ptr[7];
    c->act_batch = n;
    return 0;
}

// Block l on x. In the last block only the class tokens' outputs are used (the
// final LayerNorm reads nothing else), so after the attention, which needs
// every token's k and v, it goes on with the class rows alone: x's and the
// attention output's copied into dense [n, D] buffers in the free qkv space,
// and the projection and the MLP run on n rows instead of n * T (about 2/3 of
// the block; ~2.8% of a ViT-L forward). The last block's output, the dense
// class rows [n, D], are where *out says.
static int block_forward(vit_model *m, int l, int n, float **out) {
    vit_cuda *c = m->cuda;
    gpu_ctx *g = c->g;
    const vit_config *cf = &m->cfg;
    const cuda_block *w = &c->blocks[l];
    int T = vit_tokens(cf), rows = n * T, D = cf->dim, Hd = cf->mlp_hidden;
    gpu_dtype dt = c->dt;
    // qkv and fc1 only feed the attention and GELU, which round to dt anyway:
    // with bf16 they are written in bf16 (half the traffic of an fp32 round
    // trip, as PyTorch's autocast does); GELU then runs in place.
    if (gpu_layernorm(g, c->h, c->x, w->ln1_w, w->ln1_b, rows, D, D, cf->ln_eps, dt) ||
        gpu_linear_out(g, c->qkv, dt, c->h, w->qkv_w, w->qkv_b, rows, D, 3 * D, dt, 0) ||
        gpu_attention_from(g, c->att, c->qkv, dt, n, T, cf->heads, D / cf->heads, dt))
        return fail_gpu("CUDA forward");
    float *x = c->x;
    const void *att = c->att;
    if (l == cf->depth - 1) {
        float *xc = (float *)c->qkv;   // [n, D] fp32, then [n, D] in dt: qkv is free now
        void *attc = (char *)c->qkv + align256((size_t)n * D * sizeof(float));
        if (gpu_copy_rows_dt(g, xc, D, c->x, (size_t)T * D, n, D, GPU_F32) ||
            gpu_copy_rows_dt(g, attc, D, c->att, (size_t)T * D, n, D, dt))
            return fail_gpu("CUDA forward");
        x = xc, att = attc, rows = n;
        *out = xc;
    }
    if (gpu_linear(g, x, att, w->proj_w, w->proj_b, rows, D, D, dt, 1) ||
        gpu_layernorm(g, c->h, x, w->ln2_w, w->ln2_b, rows, D, D, cf->ln_eps, dt) ||
        gpu_linear_out(g, c->fc1, dt, c->h, w->fc1_w, w->fc1_b, rows, D, Hd, dt, 0) ||
        gpu_gelu_from(g, c->fc1, c->fc1, dt, (size_t)rows * Hd, dt) ||
        gpu_linear(g, x, c->fc1, w->fc2_w, w->fc2_b, rows, Hd, D, dt, 1))
        return fail_gpu("CUDA forward");
    return 0;
}

int vit_cuda_forward(vit_model *m, const float *images, int n, int task, float *out) {
    vit_cuda *c = m->cuda;
    if (!c) return ufo_errorf("the CUDA backend is not prepared");
    if (ensure_acts(m, n)) return -1;
    const vit_config *cf = &m->cfg;
    gpu_ctx *g = c->g;
    int S = cf->img_size, p = cf->patch_size, D = cf->dim, T = vit_tokens(cf);
    if (gpu_upload(g, c->img, images, (size_t)n * 3 * S * S * sizeof(float)) ||
        gpu_im2col(g, c->cols, c->img, n, S, S, p, c->dt) ||
        gpu_linear(g, c->qkv, c->cols, c->patch_w, c->patch_b, n * (T - 1), 3 * p * p, D, c->dt, 0) ||
        gpu_assemble_tokens(g, c->x, c->qkv, c->cls, c->pos, n, T, D))
        return fail_gpu("CUDA forward");
    float *last = NULL;   // the last block's class rows, dense [n, D] (depth >= 1, vit_config_check)
    for (int l = 0; l < cf->depth; l++)
        if (block_forward(m, l, n, &last)) return -1;
    // Final LayerNorm on the class tokens only, then the BNNeck.
    if (gpu_layernorm(g, c->feat, last, c->norm_w, c->norm_b, n, D, D, cf->ln_eps, GPU_F32))
        return fail_gpu("CUDA forward");
    if (task >= 0) {
        const float *const *bn = c->bn[task];
        if (gpu_batchnorm(g, c->feat, c->feat, bn[0], bn[1], bn[2], bn[3], n, D, cf->bn_eps))
            return fail_gpu("CUDA forward");
    }
    if (gpu_download(g, out, c->feat, (size_t)n * D * sizeof(float)) || gpu_sync(g)) return fail_gpu("CUDA forward");
    return 0;
}

float *vit_host_alloc(const vit_model *m, size_t bytes) {
    if (m->backend != VIT_BACKEND_CUDA) return ufo_alloc(bytes);
    float *p = gpu_host_alloc(bytes);
    if (!p) ufo_errorf("%s", gpu_error());
    return p;
}

void vit_host_free(const vit_model *m, float *p) {
    if (m->backend == VIT_BACKEND_CUDA) gpu_host_free(p);
    else ufo_free(p);
}

#else  // built without CUDA

#define NO_CUDA "this ufo was built without CUDA (rebuild with the CUDA toolkit's nvcc on PATH)"

int vit_cuda_check(void) { return ufo_errorf(NO_CUDA); }
const char *vit_cuda_device(const vit_model *m) { return ""; }
const char *vit_cuda_attention(const vit_model *m) { return ""; }
int vit_cuda_prepare(vit_model *m, ufo_precision prec) { return ufo_errorf(NO_CUDA); }
int vit_cuda_forward(vit_model *m, const float *images, int n, int task, float *out) { return ufo_errorf(NO_CUDA); }
void vit_cuda_release(vit_model *m) {}
float *vit_host_alloc(const vit_model *m, size_t bytes) { return ufo_alloc(bytes); }
void vit_host_free(const vit_model *m, float *p) { ufo_free(p); }

#endif
