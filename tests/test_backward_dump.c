// Backward-op driver for the PyTorch autograd cross-check
// (tests/py/test_backward_torch.py).
//
//   test_backward_dump                                   self-check (CTest runs it this way)
//   test_backward_dump OP IN_DIR OUT_DIR [fast|ref] [fp32|bf16]
//
// reads OP's inputs from IN_DIR/<name>.npy (float32, C order), runs the
// forward and the backward with the chosen kernels (default fast fp32;
// precision only matters for the matmul ops) and writes the results to
// OUT_DIR/<name>.npy (float32). Parameter gradients start from zero.
//
//   OP           inputs                                  outputs
//   linear       x[n,in] w[out,in] b[out] dy[n,out]      y, y_gelu, y_res (= res + y), dx, dw, db
//                res[n,out]
//   layernorm    x[n,c] g[c] b[c] dy[n,c]  (eps 1e-6)     y, dx, dg, db
//   gelu         x[...] dy[...]                          y, dx
//   attention    qkv[B,T,3,H,hd] dout[B,T,H*hd]          out, dqkv
//   patch_embed  img[B,3,H,W] w[C,3,p,p] b[C] dy[B,P,C]  y, dw, db
//   batchnorm    x[n,c] g[c] b[c] running_mean[c]        y, mean, rstd, running_mean, running_var,
//                running_var[c] dy[n,c]                  dx, dg, db
//                (eps 1e-5, momentum 0.1)
// A failure prints the error on stderr and exits 1.
#include "base/error.h"
#include "base/mem.h"
#include "check.h"
#include "formats/npy.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_train.h"
#include "kernels/ref/ref.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 8
#define MAX_OUT 10

typedef struct {
    const char *name;
    float *data;
    int ndim;
    int64_t shape[UFO_MAX_DIMS];
    size_t n;
} arr;

static arr g_in[MAX_IN], g_out[MAX_OUT];
static int g_nin, g_nout;

static void die(const char *what) {
    fprintf(stderr, "test_backward_dump: %s: %s\n", what, ufo_error());
    exit(1);
}

static const arr *input(const char *dir, const char *name, int ndim) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    ufo_tensor_entry e;
    if (ufo_npy_read(path, &e)) die(path);
    if (e.dtype != UFO_F32) {
        ufo_errorf("dtype %s, want F32", ufo_dtype_name(e.dtype));
        die(path);
    }
    if (ndim >= 0 && e.ndim != ndim) {
        ufo_errorf("%d dimensions, want %d", e.ndim, ndim);
        die(path);
    }
    if (g_nin == MAX_IN) abort();
    arr *a = &g_in[g_nin++];
    a->name = name;
    a->ndim = e.ndim;
    memcpy(a->shape, e.shape, sizeof a->shape);
    a->n = e.nbytes / sizeof(float);
    a->data = e.owned;   // ufo_alloc'ed by the reader: aligned, ours to free
    free(e.name);
    return a;
}

// A zeroed output array of the given shape.
static float *output(const char *name, int ndim, const int64_t *shape) {
    if (g_nout == MAX_OUT) abort();
    arr *a = &g_out[g_nout++];
    a->name = name;
    a->ndim = ndim;
    a->n = 1;
    for (int i = 0; i < ndim; i++) a->n *= (size_t)(a->shape[i] = shape[i]);
    a->data = ufo_calloc(a->n ? a->n * sizeof(float) : 4);
    if (!a->data) die(name);
    return a->data;
}
static float *output_like(const char *name, const arr *like) { return output(name, like->ndim, like->shape); }

static void write_outputs(const char *dir) {
    char path[4096];
    for (int i = 0; i < g_nout; i++) {
        snprintf(path, sizeof path, "%s/%s.npy", dir, g_out[i].name);
        if (ufo_npy_write(path, UFO_F32, g_out[i].shape, g_out[i].ndim, g_out[i].data)) die(path);
    }
}

static void free_all(void) {
    for (int i = 0; i < g_nin; i++) ufo_free(g_in[i].data);
    for (int i = 0; i < g_nout; i++) ufo_free(g_out[i].data);
    g_nin = g_nout = 0;
}

static void need(int ok, const char *what) {
    if (!ok) {
        ufo_errorf("inconsistent shapes");
        die(what);
    }
}

static void run_op(const char *op, const char *in, int fast, ufo_precision prec) {
    if (!strcmp(op, "linear")) {
        const arr *x = input(in, "x", 2), *w = input(in, "w", 2), *b = input(in, "b", 1), *dy = input(in, "dy", 2);
        const arr *res = input(in, "res", 2);
        int n = (int)x->shape[0], nin = (int)x->shape[1], nout = (int)w->shape[0];
        need(w->shape[1] == nin && b->shape[0] == nout && dy->shape[0] == n && dy->shape[1] == nout &&
                 res->n == dy->n,
             op);
        float *y = output_like("y", dy), *yg = output_like("y_gelu", dy), *yr = output_like("y_res", dy);
        float *dx = output_like("dx", x), *dw = output_like("dw", w), *db = output_like("db", b);
        memcpy(yr, res->data, res->n * sizeof(float));
        if (fast) {
            if (cpu_linear_train_forward(y, x->data, w->data, b->data, n, nin, nout, CPU_POST_NONE, prec) ||
                cpu_linear_train_forward(yg, x->data, w->data, b->data, n, nin, nout, CPU_POST_GELU, prec) ||
                cpu_linear_train_forward(yr, x->data, w->data, b->data, n, nin, nout, CPU_POST_RESIDUAL, prec) ||
                cpu_linear_backward(dx, dw, db, dy->data, x->data, w->data, n, nin, nout, prec))
                die(op);
        } else {
            ref_linear(y, x->data, w->data, b->data, n, nin, nout);
            ref_gelu(yg, y, dy->n);
            ref_add(yr, y, dy->n);
            ref_linear_backward(dx, dw, db, dy->data, x->data, w->data, n, nin, nout);
        }
    } else if (!strcmp(op, "layernorm")) {
        const arr *x = input(in, "x", 2), *g = input(in, "g", 1), *b = input(in, "b", 1), *dy = input(in, "dy", 2);
        int n = (int)x->shape[0], c = (int)x->shape[1];
        need(g->shape[0] == c && b->shape[0] == c && dy->n == x->n, op);
        float *y = output_like("y", x), *dx = output_like("dx", x), *dg = output_like("dg", g),
              *db = output_like("db", b);
        if (fast) {
            cpu_layernorm(y, x->data, g->data, b->data, n, c, 1e-6f);
            if (cpu_layernorm_backward(dx, dg, db, dy->data, x->data, g->data, n, c, 1e-6f)) die(op);
        } else {
            ref_layernorm(y, x->data, g->data, b->data, n, c, 1e-6f);
            ref_layernorm_backward(dx, dg, db, dy->data, x->data, g->data, n, c, 1e-6f);
        }
    } else if (!strcmp(op, "gelu")) {
        const arr *x = input(in, "x", -1), *dy = input(in, "dy", -1);
        need(dy->n == x->n, op);
        float *y = output_like("y", x), *dx = output_like("dx", x);
        if (fast) {
            cpu_gelu(y, x->data, x->n);
            cpu_gelu_backward(dx, dy->data, x->data, x->n);
        } else {
            ref_gelu(y, x->data, x->n);
            ref_gelu_backward(dx, dy->data, x->data, x->n);
        }
    } else if (!strcmp(op, "attention")) {
        const arr *qkv = input(in, "qkv", 5), *dout = input(in, "dout", 3);
        int B = (int)qkv->shape[0], T = (int)qkv->shape[1], H = (int)qkv->shape[3], hd = (int)qkv->shape[4];
        need(qkv->shape[2] == 3 && dout->shape[0] == B && dout->shape[1] == T && dout->shape[2] == (int64_t)H * hd,
             op);
        float *out = output_like("out", dout), *dqkv = output_like("dqkv", qkv);
        if (fast) {
            if (cpu_attention(out, qkv->data, B, T, H, hd, prec) ||
                cpu_attention_backward(dqkv, dout->data, qkv->data, B, T, H, hd, prec))
                die(op);
        } else {
            ref_attention(out, qkv->data, B, T, H, hd);
            ref_attention_backward(dqkv, dout->data, qkv->data, B, T, H, hd);
        }
    } else if (!strcmp(op, "patch_embed")) {
        const arr *img = input(in, "img", 4), *w = input(in, "w", 4), *b = input(in, "b", 1), *dy = input(in, "dy", 3);
        int B = (int)img->shape[0], H = (int)img->shape[2], W = (int)img->shape[3], C = (int)w->shape[0],
            p = (int)w->shape[2];
        need(img->shape[1] == 3 && w->shape[1] == 3 && w->shape[3] == p && b->shape[0] == C && H % p == 0 &&
                 W % p == 0 && dy->shape[0] == B && dy->shape[1] == (int64_t)(H / p) * (W / p) && dy->shape[2] == C,
             op);
        float *y = output_like("y", dy), *dw = output_like("dw", w), *db = output_like("db", b);
        if (fast) {
            cpu_linear *proj = cpu_linear_create(w->data, b->data, 3 * p * p, C, prec);
            if (!proj || cpu_patch_embed(proj, y, img->data, B, H, W, p)) die(op);
            cpu_linear_free(proj);
            if (cpu_patch_embed_backward(dw, db, dy->data, img->data, B, H, W, p, C, prec)) die(op);
        } else {
            ref_patch_embed(y, img->data, w->data, b->data, B, H, W, p, C);
            ref_patch_embed_backward(dw, db, dy->data, img->data, B, H, W, p, C);
        }
    } else if (!strcmp(op, "batchnorm")) {
        const arr *x = input(in, "x", 2), *g = input(in, "g", 1), *b = input(in, "b", 1);
        const arr *rm = input(in, "running_mean", 1), *rv = input(in, "running_var", 1), *dy = input(in, "dy", 2);
        int n = (int)x->shape[0], c = (int)x->shape[1];
        need(g->shape[0] == c && b->shape[0] == c && rm->shape[0] == c && rv->shape[0] == c && dy->n == x->n, op);
        float *y = output_like("y", x), *mean = output_like("mean", g), *rstd = output_like("rstd", g);
        float *orm = output_like("running_mean", g), *orv = output_like("running_var", g);
        float *dx = output_like("dx", x), *dg = output_like("dg", g), *db = output_like("db", b);
        memcpy(orm, rm->data, c * sizeof(float));
        memcpy(orv, rv->data, c * sizeof(float));
        if (fast) {
            cpu_batchnorm_train(y, mean, rstd, x->data, g->data, b->data, orm, orv, n, c, 1e-5f, 0.1f);
            cpu_batchnorm_backward(dx, dg, db, dy->data, x->data, mean, rstd, g->data, n, c);
        } else {
            ref_batchnorm_train(y, mean, rstd, x->data, g->data, b->data, orm, orv, n, c, 1e-5f, 0.1f);
            ref_batchnorm_backward(dx, dg, db, dy->data, x->data, mean, rstd, g->data, n, c);
        }
    } else {
        ufo_errorf("unknown op (linear, layernorm, gelu, attention, patch_embed, batchnorm)");
        die(op);
    }
}

// Without arguments: a linear layer's backward, fast against ref, on a small input.
static int self_check(void) {
    enum { N = 5, IN = 7, OUT = 3 };
    float x[N * IN], w[OUT * IN], dy[N * OUT];
    for (int i = 0; i < N * IN; i++) x[i] = (float)((i * 37 % 17) - 8) / 8;
    for (int i = 0; i < OUT * IN; i++) w[i] = (float)((i * 11 % 13) - 6) / 6;
    for (int i = 0; i < N * OUT; i++) dy[i] = (float)((i * 5 % 7) - 3) / 3;
    float rdx[N * IN], rdw[OUT * IN] = {0}, rdb[OUT] = {0}, fdx[N * IN], fdw[OUT * IN] = {0}, fdb[OUT] = {0};
    ref_linear_backward(rdx, rdw, rdb, dy, x, w, N, IN, OUT);
    CHECK(cpu_linear_backward(fdx, fdw, fdb, dy, x, w, N, IN, OUT, UFO_PREC_FP32) == 0, "%s", ufo_error());
    CHECK(check_max_rel_err(fdx, rdx, N * IN) <= 1e-5);
    CHECK(check_max_rel_err(fdw, rdw, OUT * IN) <= 1e-5);
    CHECK(check_max_rel_err(fdb, rdb, OUT) <= 1e-5);
    return check_summary("backward_dump");
}

int main(int argc, char **argv) {
    if (argc == 1) return self_check();
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s OP IN_DIR OUT_DIR [fast|ref] [fp32|bf16]\n", argv[0]);
        return 2;
    }
    int fast = 1;
    ufo_precision prec = UFO_PREC_FP32;
    if (argc > 4) {
        if (!strcmp(argv[4], "ref")) fast = 0;
        else if (strcmp(argv[4], "fast")) return fprintf(stderr, "bad backend %s\n", argv[4]), 2;
    }
    if (argc > 5) {
        if (!strcmp(argv[5], "bf16")) prec = UFO_PREC_BF16;
        else if (strcmp(argv[5], "fp32")) return fprintf(stderr, "bad precision %s\n", argv[5]), 2;
    }
    run_op(argv[1], argv[2], fast, prec);
    write_outputs(argv[3]);
    free_all();
    return 0;
}
