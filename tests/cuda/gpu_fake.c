// A CPU stand-in for the CUDA backend's C interface (cuda_backend.h), for
// checking the code that DRIVES the backend (model/vit_train_cuda.c, the
// device SGD in train/sgd_cuda.c, model/vit_cuda.c) on a machine without a
// GPU. Every op runs its kernels/ref twin on host memory (the losses: the
// host's ufo_cosface / ufo_triplet); "device" memory comes
// from gpu_malloc and every pointer an op touches is checked to lie, with its
// whole extent, inside one live device allocation (a host pointer passed as a
// device one, or a buffer carved too small, aborts with the op's name).
// bf16 buffers hold real bf16 bits; bf16 matmuls round their operands.
//
// Not part of any build target: tools/cuda_fake_check.sh builds libufo with
// this file in place of src/kernels/cuda and runs tests/cuda/test_cuda_train.c
// against it. It checks bookkeeping, not the CUDA kernels (test_cuda_ops does).
#include "kernels/cuda/cuda_backend.h"
#include "kernels/ref/ref.h"
#include "base/error.h"
#include "train/cosface.h"
#include "train/triplet.h"
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpu_ctx {
    int flash;
    size_t chunk;
};

static _Thread_local char err_[256];   // per thread, as the backend's gpu_error()
const char *gpu_error(void) { return err_; }

#define MAXA 4096
static struct {
    char *p;
    size_t n;
} allocs[MAXA];
// One table for every thread (test_cuda_ops runs shards in threads, as a real
// GPU serves several contexts): every look-up and change under the lock.
static pthread_mutex_t allocs_mu = PTHREAD_MUTEX_INITIALIZER;

static void need(const void *p, size_t bytes, const char *op) {
    if (!p || bytes == 0) return;
    const char *c = p;
    pthread_mutex_lock(&allocs_mu);
    for (int i = 0; i < MAXA; i++)
        if (allocs[i].p && c >= allocs[i].p && c < allocs[i].p + allocs[i].n) {
            if (c + bytes > allocs[i].p + allocs[i].n) {
                fprintf(stderr, "gpu_fake: %s: %zu bytes at +%zu overrun a %zu-byte device buffer\n", op, bytes,
                        (size_t)(c - allocs[i].p), allocs[i].n);
                abort();
            }
            pthread_mutex_unlock(&allocs_mu);
            return;
        }
    fprintf(stderr, "gpu_fake: %s: %p (%zu bytes) is not device memory\n", op, p, bytes);
    abort();
}

// The losses take HOST labels: a device pointer there would not be readable on a GPU.
static void host_only(const void *p, const char *op) {
    for (int i = 0; i < MAXA; i++)
        if (p && allocs[i].p && (const char *)p >= allocs[i].p && (const char *)p < allocs[i].p + allocs[i].n) {
            fprintf(stderr, "gpu_fake: %s: %p is device memory, the interface takes a host array\n", op, p);
            abort();
        }
}

int gpu_device_count(void) { return 1; }
const char *gpu_device_name(const gpu_ctx *g) { return "gpu_fake (CPU stand-in)"; }
gpu_ctx *gpu_ctx_create(int device) {
    gpu_ctx *g = calloc(1, sizeof *g);
    g->chunk = (size_t)1 << 30;
    return g;
}
void gpu_ctx_free(gpu_ctx *g) { free(g); }
int gpu_sync(gpu_ctx *g) { return 0; }

void *gpu_malloc(gpu_ctx *g, size_t bytes) {
    pthread_mutex_lock(&allocs_mu);
    for (int i = 0; i < MAXA; i++)
        if (!allocs[i].p) {
            allocs[i].p = malloc(bytes ? bytes : 1);
            allocs[i].n = bytes ? bytes : 1;
            memset(allocs[i].p, 0xff, allocs[i].n);   // NaN: uninitialised reads show up
            void *p = allocs[i].p;
            pthread_mutex_unlock(&allocs_mu);
            return p;
        }
    abort();
}
void gpu_free(gpu_ctx *g, void *p) {
    if (!p) return;
    pthread_mutex_lock(&allocs_mu);
    for (int i = 0; i < MAXA; i++)
        if (allocs[i].p == p) {
            free(p);
            allocs[i].p = NULL;
            pthread_mutex_unlock(&allocs_mu);
            return;
        }
    fprintf(stderr, "gpu_fake: gpu_free of a non-device pointer\n");
    abort();
}
void *gpu_host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void gpu_host_free(void *p) { free(p); }
int gpu_upload(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    need(dst, bytes, "upload");
    memcpy(dst, src, bytes);
    return 0;
}
int gpu_download(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    need(src, bytes, "download");
    memcpy(dst, src, bytes);
    return 0;
}

static uint16_t rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static float wid(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float rnd(float f) { return wid(rne(f)); }
// fp32 copy of a buffer in dt (malloc'd).
static float *as_f32(const void *x, size_t n, gpu_dtype dt) {
    float *r = malloc((n ? n : 1) * 4);
    for (size_t i = 0; i < n; i++) r[i] = dt == GPU_BF16 ? wid(((const uint16_t *)x)[i]) : ((const float *)x)[i];
    return r;
}
static void store(void *y, const float *v, size_t n, gpu_dtype dt) {
    for (size_t i = 0; i < n; i++)
        if (dt == GPU_BF16) ((uint16_t *)y)[i] = rne(v[i]);
        else ((float *)y)[i] = v[i];
}
static size_t es(gpu_dtype dt) { return dt == GPU_BF16 ? 2 : 4; }

int gpu_to_bf16(gpu_ctx *g, void *dst, const float *src, size_t n) {
    need(dst, n * 2, "to_bf16 dst"), need(src, n * 4, "to_bf16 src");
    store(dst, src, n, GPU_BF16);
    return 0;
}
int gpu_from_bf16(gpu_ctx *g, float *dst, const void *src, size_t n) {
    need(dst, n * 4, "from_bf16 dst"), need(src, n * 2, "from_bf16 src");
    for (size_t i = 0; i < n; i++) dst[i] = wid(((const uint16_t *)src)[i]);
    return 0;
}

int gpu_linear(gpu_ctx *g, float *y, const void *x, const void *w, const float *b, int rows, int in, int out,
               gpu_dtype dt, int accumulate) {
    size_t ny = (size_t)rows * out;
    need(y, ny * 4, "linear y"), need(x, (size_t)rows * in * es(dt), "linear x");
    need(w, (size_t)out * in * es(dt), "linear w"), need(b, (size_t)out * 4, "linear b");
    float *xf = as_f32(x, (size_t)rows * in, dt), *wf = as_f32(w, (size_t)out * in, dt), *t = malloc(ny * 4);
    ref_linear(t, xf, wf, b, rows, in, out);
    for (size_t i = 0; i < ny; i++) y[i] = accumulate ? y[i] + t[i] : t[i];
    free(xf), free(wf), free(t);
    return 0;
}
int gpu_gelu(gpu_ctx *g, void *y, const float *x, size_t n, gpu_dtype dt) {
    need(y, n * es(dt), "gelu y"), need(x, n * 4, "gelu x");
    float *t = malloc(n * 4);
    ref_gelu(t, x, n);
    store(y, t, n, dt);
    free(t);
    return 0;
}
int gpu_layernorm(gpu_ctx *g, void *y, const float *x, const float *gamma, const float *beta, int rows, int c,
                  size_t x_stride, float eps, gpu_dtype dt) {
    need(y, (size_t)rows * c * es(dt), "layernorm y"), need(x, ((size_t)(rows - 1) * x_stride + c) * 4, "layernorm x");
    need(gamma, c * 4, "layernorm gamma"), need(beta, c * 4, "layernorm beta");
    float *d = malloc((size_t)rows * c * 4), *t = malloc((size_t)rows * c * 4);
    for (int r = 0; r < rows; r++) memcpy(d + (size_t)r * c, x + r * x_stride, c * 4);
    ref_layernorm(t, d, gamma, beta, rows, c, eps);
    store(y, t, (size_t)rows * c, dt);
    free(d), free(t);
    return 0;
}
int gpu_batchnorm(gpu_ctx *g, float *y, const float *x, const float *gamma, const float *beta, const float *mean,
                  const float *var, int n, int c, float eps) {
    need(y, (size_t)n * c * 4, "batchnorm"), need(x, (size_t)n * c * 4, "batchnorm");
    ref_batchnorm(y, x, gamma, beta, mean, var, n, c, eps);
    return 0;
}
int gpu_im2col(gpu_ctx *g, void *cols, const float *img, int B, int H, int W, int p, gpu_dtype dt) {
    int gh = H / p, gw = W / p, K = 3 * p * p;
    need(img, (size_t)B * 3 * H * W * 4, "im2col img"), need(cols, (size_t)B * gh * gw * K * es(dt), "im2col cols");
    float *t = malloc((size_t)B * gh * gw * K * 4);
    for (int b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++)
                for (int ch = 0; ch < 3; ch++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                            t[(((size_t)b * gh + py) * gw + px) * K + (ch * p + ky) * p + kx] =
                                img[(((size_t)b * 3 + ch) * H + py * p + ky) * W + px * p + kx];
    store(cols, t, (size_t)B * gh * gw * K, dt);
    free(t);
    return 0;
}
int gpu_assemble_tokens(gpu_ctx *g, float *x, const float *patches, const float *cls, const float *pos, int B,
                        int T, int D) {
    need(x, (size_t)B * T * D * 4, "assemble x"), need(patches, (size_t)B * (T - 1) * D * 4, "assemble patches");
    need(cls, D * 4, "assemble cls"), need(pos, (size_t)T * D * 4, "assemble pos");
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++)
                x[((size_t)b * T + t) * D + d] =
                    (t == 0 ? cls[d] : patches[((size_t)b * (T - 1) + t - 1) * D + d]) + pos[(size_t)t * D + d];
    return 0;
}
int gpu_attention(gpu_ctx *g, void *out, const float *qkv, int B, int T, int H, int hd, gpu_dtype dt) {
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    need(qkv, nq * 4, "attention qkv"), need(out, no * es(dt), "attention out");
    float *q = malloc(nq * 4), *t = malloc(no * 4);
    for (size_t i = 0; i < nq; i++) q[i] = dt == GPU_BF16 ? rnd(qkv[i]) : qkv[i];
    ref_attention(t, q, B, T, H, hd);
    store(out, t, no, dt);
    free(q), free(t);
    return 0;
}
void gpu_set_flash(gpu_ctx *g, int on) { g->flash = on; }
int gpu_uses_flash(const gpu_ctx *g, gpu_dtype dt, int hd) { return 0; }
void gpu_set_attention_chunk_bytes(gpu_ctx *g, size_t bytes) { g->chunk = bytes; }

int gpu_gemm(gpu_ctx *g, float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
             float beta, gpu_dtype dt) {
    need(C, (size_t)M * N * 4, "gemm C"), need(A, (size_t)M * K * 4, "gemm A"), need(B, (size_t)K * N * 4, "gemm B");
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = A[transA ? (size_t)k * M + i : (size_t)i * K + k];
                float b = B[transB ? (size_t)j * K + k : (size_t)k * N + j];
                if (dt == GPU_BF16) a = rnd(a), b = rnd(b);
                acc += (double)a * b;
            }
            C[(size_t)i * N + j] = (float)(acc + (beta != 0 ? beta * C[(size_t)i * N + j] : 0));
        }
    return 0;
}
int gpu_colsum_acc(gpu_ctx *g, float *db, const float *dy, size_t n, int c) {
    need(db, (size_t)c * 4, "colsum db"), need(dy, n * c * 4, "colsum dy");
    for (int k = 0; k < c; k++) {
        float s = 0;
        for (size_t i = 0; i < n; i++) s += dy[i * c + k];
        db[k] += s;
    }
    return 0;
}
int gpu_linear_backward(gpu_ctx *g, float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                        int n, int in, int out, gpu_dtype dt) {
    if (dx && gpu_gemm(g, dx, dy, w, n, in, out, 0, 0, 0.0f, dt)) return -1;
    if (dw && gpu_gemm(g, dw, dy, x, out, in, n, 1, 0, 1.0f, dt)) return -1;
    if (db && gpu_colsum_acc(g, db, dy, (size_t)n, out)) return -1;
    return 0;
}
int gpu_layernorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy, const float *x,
                           const float *gamma, int n, int c, float eps) {
    size_t nc = (size_t)n * c;
    need(dx, nc * 4, "ln bwd dx"), need(dy, nc * 4, "ln bwd dy"), need(x, nc * 4, "ln bwd x");
    need(dg, c * 4, "ln bwd dg"), need(db, c * 4, "ln bwd db"), need(gamma, c * 4, "ln bwd gamma");
    ref_layernorm_backward(dx, dg, db, dy, x, gamma, n, c, eps);
    return 0;
}
int gpu_gelu_backward(gpu_ctx *g, float *dx, const float *dy, const float *x, size_t n) {
    need(dx, n * 4, "gelu bwd"), need(dy, n * 4, "gelu bwd"), need(x, n * 4, "gelu bwd");
    ref_gelu_backward(dx, dy, x, n);
    return 0;
}
int gpu_attention_backward(gpu_ctx *g, float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd,
                           gpu_dtype dt) {
    size_t nq = (size_t)B * T * 3 * H * hd, no = (size_t)B * T * H * hd;
    need(dqkv, nq * 4, "attn bwd dqkv"), need(dout, no * 4, "attn bwd dout"), need(qkv, nq * 4, "attn bwd qkv");
    ref_attention_backward(dqkv, dout, qkv, B, T, H, hd);
    return 0;
}
int gpu_batchnorm_train(gpu_ctx *g, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, float *running_mean, float *running_var, int n, int c, float eps,
                        float momentum) {
    need(y, (size_t)n * c * 4, "bn train y"), need(x, (size_t)n * c * 4, "bn train x"), need(mean, c * 4, "bn mean");
    need(rstd, c * 4, "bn rstd"), need(gamma, c * 4, "bn g"), need(beta, c * 4, "bn b");
    need(running_mean, c * 4, "bn rm"), need(running_var, c * 4, "bn rv");
    ref_batchnorm_train(y, mean, rstd, x, gamma, beta, running_mean, running_var, n, c, eps, momentum);
    return 0;
}
int gpu_batchnorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int c) {
    need(dx, (size_t)n * c * 4, "bn bwd dx"), need(dy, (size_t)n * c * 4, "bn bwd dy"), need(x, (size_t)n * c * 4, "x");
    need(dg, c * 4, "bn bwd dg"), need(db, c * 4, "bn bwd db"), need(mean, c * 4, "mean"), need(rstd, c * 4, "rstd");
    ref_batchnorm_backward(dx, dg, db, dy, x, mean, rstd, gamma, n, c);
    return 0;
}
int gpu_patch_embed_backward(gpu_ctx *g, float *dw, float *db, const float *dy, const float *img, int B, int H, int W,
                             int p, int C, gpu_dtype dt) {
    size_t P = (size_t)(H / p) * (W / p);
    need(dw, (size_t)C * 3 * p * p * 4, "pe bwd dw"), need(db, C * 4, "pe bwd db");
    need(dy, B * P * C * 4, "pe bwd dy"), need(img, (size_t)B * 3 * H * W * 4, "pe bwd img");
    ref_patch_embed_backward(dw, db, dy, img, B, H, W, p, C);
    return 0;
}
int gpu_copy(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    need(dst, bytes, "copy dst"), need(src, bytes, "copy src");
    memmove(dst, src, bytes);
    return 0;
}
// Every op has finished when it returns: an event marks nothing to wait for.
void *gpu_record_event(gpu_ctx *g) {
    static int done;
    return &done;
}
int gpu_zero(gpu_ctx *g, void *p, size_t bytes) {
    need(p, bytes, "zero");
    memset(p, 0, bytes);
    return 0;
}
int gpu_copy_rows(gpu_ctx *g, float *dst, size_t dst_stride, const float *src, size_t src_stride, size_t rows,
                  size_t cols) {
    if (!rows || !cols) return 0;
    need(dst, ((rows - 1) * dst_stride + cols) * 4, "copy_rows dst"), need(src, ((rows - 1) * src_stride + cols) * 4, "src");
    for (size_t r = 0; r < rows; r++) memmove(dst + r * dst_stride, src + r * src_stride, cols * 4);
    return 0;
}
// The rows are read as device memory, and each row of dst / src checked on its own.
int gpu_gather_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D) {
    if (n < 0 || D < 0) {
        snprintf(err_, sizeof err_, "gather_rows: bad sizes n=%d D=%d", n, D);
        return -1;
    }
    if (!n || !D) return 0;
    need(dst, (size_t)n * D * 4, "gather_rows dst"), need(rows, (size_t)n * 4, "gather_rows rows");
    for (int j = 0; j < n; j++) {
        need(src + (size_t)rows[j] * D, (size_t)D * 4, "gather_rows src row");
        memcpy(dst + (size_t)j * D, src + (size_t)rows[j] * D, (size_t)D * 4);
    }
    return 0;
}
int gpu_scatter_add_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D) {
    if (n < 0 || D < 0) {
        snprintf(err_, sizeof err_, "scatter_add_rows: bad sizes n=%d D=%d", n, D);
        return -1;
    }
    if (!n || !D) return 0;
    need(src, (size_t)n * D * 4, "scatter_add_rows src"), need(rows, (size_t)n * 4, "scatter_add_rows rows");
    for (int j = 0; j < n; j++) {
        float *d = dst + (size_t)rows[j] * D;
        need(d, (size_t)D * 4, "scatter_add_rows dst row");
        for (int i = 0; i < D; i++) d[i] += src[(size_t)j * D + i];
    }
    return 0;
}
int gpu_scale_rows(gpu_ctx *g, float *dst, const float *src, const float *s, size_t n, size_t per, int accumulate) {
    need(dst, n * per * 4, "scale_rows dst"), need(src, n * per * 4, "scale_rows src"), need(s, n * 4, "scale_rows s");
    for (size_t i = 0; i < n * per; i++) {
        float v = s ? s[i / per] * src[i] : src[i];
        dst[i] = accumulate ? dst[i] + v : v;
    }
    return 0;
}
int gpu_sumsq_chunks(gpu_ctx *g, double *part, const float *x, size_t n, size_t chunk) {
    size_t nc = (n + chunk - 1) / chunk;
    need(part, nc * 8, "sumsq part"), need(x, n * 4, "sumsq x");
    for (size_t c = 0; c < nc; c++) {
        double s = 0;
        for (size_t i = c * chunk; i < n && i < (c + 1) * chunk; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    return 0;
}
int gpu_sgd_update(gpu_ctx *g, float *param, const float *grad, float *mom, size_t n, float scale, float weight_decay,
                   float momentum, float step) {
    need(param, n * 4, "sgd p"), need(grad, n * 4, "sgd g"), need(mom, n * 4, "sgd m");
    for (size_t i = 0; i < n; i++) {
        float d = grad[i] * scale + weight_decay * param[i];
        mom[i] = momentum * mom[i] + d;
        param[i] = param[i] - step * mom[i];
    }
    return 0;
}
int gpu_sgd_update_rows(gpu_ctx *g, float *param, const float *grad, float *mom, const int *rows, int nrows, int cols,
                        float scale, float weight_decay, float momentum, float step) {
    if (nrows < 0 || cols < 0) {
        snprintf(err_, sizeof err_, "sgd_update_rows: bad sizes nrows=%d cols=%d", nrows, cols);
        return -1;
    }
    if (!nrows || !cols) return 0;
    need(rows, (size_t)nrows * 4, "sgd_rows rows");
    for (int r = 0; r < nrows; r++) {
        size_t o = (size_t)rows[r] * cols;
        if (gpu_sgd_update(g, param + o, grad + o, mom + o, (size_t)cols, scale, weight_decay, momentum, step)) return -1;
    }
    return 0;
}

// The losses: the host versions on the "device" buffers (the labels are host
// arrays, as in the real interface). Sharded: the host's ufo_cosface with
// opts.shard, over a stand-in group whose all-reduce is the caller's
// callbacks: host arrays go to `allreduce`; d f_hat (cosface.c's one fp32 sum)
// goes to `allreduce_device` through a fresh "device" buffer, as the real
// backend passes its device scratch.
static int shard_reduce(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what) {
    const gpu_cosface_shard *sh = c->impl;
    (void)what;
    if (t == UFO_COMM_F32 && op == UFO_COMM_SUM && sh->allreduce_device) {
        float *d = gpu_malloc(NULL, n * 4);
        if (!d) return -1;
        memcpy(d, buf, n * 4);
        int rc = sh->allreduce_device(sh->ctx, d, n);
        memcpy(buf, d, n * 4);
        gpu_free(NULL, d);
        return rc;
    }
    return sh->allreduce(sh->ctx, buf, n, t == UFO_COMM_F64, op == UFO_COMM_MAX);
}
int gpu_cosface_sharded(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D, int classes,
                        float s, float m, int block, int nonzero_mean, double den, float *df, float *dW, double *loss,
                        int *correct, int *nonzero, const gpu_cosface_shard *sh) {
    size_t nD = (size_t)(n > 0 ? n : 0) * (D > 0 ? D : 0), CD = (size_t)(classes > 0 ? classes : 0) * (D > 0 ? D : 0);
    need(f, nD * 4, "cosface f"), need(W, CD * 4, "cosface W"), need(df, nD * 4, "cosface df");
    need(dW, CD * 4, "cosface dW"), host_only(labels, "cosface labels");
    if (sh && (classes <= 0 || !sh->allreduce)) {
        snprintf(err_, sizeof err_, "cosface: bad sizes n=%d D=%d classes=%d (or no all-reduce)", n, D, classes);
        return -1;
    }
    static const ufo_comm_ops ops = {.name = "gpu_fake shard", .allreduce = shard_reduce};
    // size 2: ufo_cosface takes the sharded path for any size > 1 (the size itself is never used).
    ufo_comm c = {.rank = 0, .size = 2, .timeout_s = 1e9, .ops = &ops, .impl = (void *)sh};
    ufo_cosface_opts o = {.s = s, .m = m, .block = block, .nonzero_mean = nonzero_mean, .den = den};
    if (sh) o.shard = &c, o.class_lo = sh->class_lo, o.total_classes = sh->total_classes;
    ufo_cosface_result r;
    if (ufo_cosface(f, W, labels, n, D, classes, &o, df, dW, &r)) {
        snprintf(err_, sizeof err_, "%s", ufo_error());
        return -1;
    }
    if (loss) *loss = r.loss;
    if (correct) *correct = r.correct;
    if (nonzero) *nonzero = r.nonzero;
    return 0;
}
int gpu_cosface(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D, int classes, float s,
                float m, int block, int nonzero_mean, double den, float *df, float *dW, double *loss, int *correct,
                int *nonzero) {
    return gpu_cosface_sharded(g, f, W, labels, n, D, classes, s, m, block, nonzero_mean, den, df, dW, loss, correct,
                               nonzero, NULL);
}
int gpu_triplet(gpu_ctx *g, const float *x, const int *labels, int n, int D, float margin, float *dx, double *loss,
                int *fallback, double *dist_ap_mean, double *dist_an_mean) {
    size_t nD = (size_t)(n > 0 ? n : 0) * (D > 0 ? D : 0);
    need(x, nD * 4, "triplet x"), need(dx, nD * 4, "triplet dx"), host_only(labels, "triplet labels");
    ufo_triplet_result r;
    if (ufo_triplet(x, labels, n, D, margin, dx, NULL, NULL, &r)) {
        snprintf(err_, sizeof err_, "%s", ufo_error());
        return -1;
    }
    if (loss) *loss = r.loss;
    if (fallback) *fallback = r.fallback;
    if (dist_ap_mean) *dist_ap_mean = r.dist_ap_mean;
    if (dist_an_mean) *dist_an_mean = r.dist_an_mean;
    return 0;
}
