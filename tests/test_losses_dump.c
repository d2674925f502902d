// Driver for tests/py/test_losses_torch.py: runs src/train on .npy inputs and
// writes the results as .npy, for comparison with PyTorch autograd.
//
//   test_losses_dump                        self-check (CTest runs it this way)
//   test_losses_dump cosface DIR s m block nonzero_mean
//       in:  DIR/f.npy [n, D] f32, DIR/W.npy [C, D] f32, DIR/labels.npy [n] int
//       out: DIR/loss.npy f64 [3] = (loss, accuracy, nonzero), DIR/df.npy, DIR/dW.npy (dW from 0)
//   test_losses_dump triplet DIR margin
//       in:  DIR/x.npy [n, D] f32, DIR/labels.npy [n] int
//       out: DIR/loss.npy f64 [2] = (loss, fallback), DIR/dx.npy, DIR/idx.npy i64 [2, n] (pos, neg)
//   test_losses_dump sgd DIR paddle|torch|none momentum clip_norm base min total warmup cosine_steps
//       in:  DIR/params.npy [P] f32, DIR/grads.npy [steps, P] f32, DIR/segs.npy [nseg, 4] f64
//            (offset, size, weight_decay, lr_mult)
//       out: DIR/params_out.npy [P], DIR/mom_out.npy [P], DIR/lr.npy f64 [steps]
//            (step k uses lr(k) of the schedule)
//   test_losses_dump lr DIR base min total warmup cosine_steps
//       out: DIR/lr.npy f64 [total]
//   test_losses_dump pfc DIR s m rate seed step task
//       in:  as cosface; the kept classes drawn by ufo_pfc_sample from the labels
//       out: DIR/kept.npy f64 [K], DIR/loss.npy f64 [3], DIR/df.npy, DIR/dW.npy (from 0;
//            ufo_pfc_cosface: CosFace over the kept classes only)
// A failure prints the error line on stderr and exits 1.
#include "base/error.h"
#include "base/mem.h"
#include "formats/npy.h"
#include "train/cosface.h"
#include "train/lr_schedule.h"
#include "train/pfc.h"
#include "train/sgd.h"
#include "train/triplet.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_path[4096];
static const char *at(const char *dir, const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
    return g_path;
}

// Reads DIR/name as float32 (any numeric dtype converted); *shape gets up to 2 dims.
static float *read_f32(const char *dir, const char *name, int64_t *d0, int64_t *d1) {
    ufo_tensor_entry e;
    if (ufo_npy_read(at(dir, name), &e)) return NULL;
    int64_t n = ufo_tensor_numel(&e);
    float *out = ufo_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (out) ufo_convert_to_f32(out, e.data, e.dtype, (size_t)n);
    *d0 = e.ndim > 0 ? e.shape[0] : 1;
    if (d1) *d1 = e.ndim > 1 ? e.shape[1] : 1;
    free(e.owned);
    free(e.name);
    return out;
}

static double *read_f64(const char *dir, const char *name, int64_t *d0, int64_t *d1) {
    ufo_tensor_entry e;
    if (ufo_npy_read(at(dir, name), &e)) return NULL;
    if (e.dtype != UFO_F64) {
        ufo_errorf("%s: expected float64", name);
        free(e.owned);
        free(e.name);
        return NULL;
    }
    int64_t n = ufo_tensor_numel(&e);
    double *out = ufo_alloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (out) memcpy(out, e.data, (size_t)n * sizeof(double));
    *d0 = e.ndim > 0 ? e.shape[0] : 1;
    *d1 = e.ndim > 1 ? e.shape[1] : 1;
    free(e.owned);
    free(e.name);
    return out;
}

static int32_t *read_labels(const char *dir, int64_t *n) {
    ufo_tensor_entry e;
    if (ufo_npy_read(at(dir, "labels.npy"), &e)) return NULL;
    *n = ufo_tensor_numel(&e);
    int32_t *y = ufo_alloc((size_t)(*n > 0 ? *n : 1) * sizeof(int32_t));
    if (y) {
        for (int64_t i = 0; i < *n; i++) {
            if (e.dtype == UFO_I64) {
                int64_t v;
                memcpy(&v, (const char *)e.data + i * 8, 8);
                y[i] = (int32_t)v;
            } else if (e.dtype == UFO_I32) {
                memcpy(&y[i], (const char *)e.data + i * 4, 4);
            } else {
                ufo_errorf("labels.npy: expected int64 or int32");
                ufo_free(y);
                y = NULL;
                break;
            }
        }
    }
    free(e.owned);
    free(e.name);
    return y;
}

static int write_f32(const char *dir, const char *name, const float *a, int64_t d0, int64_t d1) {
    const int64_t shape[2] = {d0, d1};
    return ufo_npy_write(at(dir, name), UFO_F32, shape, d1 > 0 ? 2 : 1, a);
}

static int write_f64(const char *dir, const char *name, const double *a, int64_t n) {
    return ufo_npy_write(at(dir, name), UFO_F64, &n, 1, a);
}

static int run_cosface(int argc, char **argv) {
    if (argc != 7) return ufo_errorf("usage: cosface DIR s m block nonzero_mean");
    const char *dir = argv[2];
    ufo_cosface_opts o = {.s = strtof(argv[3], NULL), .m = strtof(argv[4], NULL), .block = atoi(argv[5]),
                          .nonzero_mean = atoi(argv[6])};
    int64_t n = 0, D = 0, C = 0, Dw = 0, nl = 0;
    float *f = read_f32(dir, "f.npy", &n, &D), *W = read_f32(dir, "W.npy", &C, &Dw);
    int32_t *y = read_labels(dir, &nl);
    float *df = ufo_alloc((size_t)(n * D) * sizeof(float)), *dW = ufo_calloc((size_t)(C * Dw) * sizeof(float));
    int rc = -1;
    ufo_cosface_result r;
    if (!f || !W || !y || !df || !dW) goto out;
    if (Dw != D || nl != n) {
        ufo_errorf("cosface: shapes disagree");
        goto out;
    }
    if (ufo_cosface(f, W, y, (int)n, (int)D, (int)C, &o, df, dW, &r)) goto out;
    double v[3] = {r.loss, r.accuracy, r.nonzero};
    rc = write_f64(dir, "loss.npy", v, 3) || write_f32(dir, "df.npy", df, n, D) || write_f32(dir, "dW.npy", dW, C, D)
             ? -1
             : 0;
out:
    ufo_free(f);
    ufo_free(W);
    ufo_free(y);
    ufo_free(df);
    ufo_free(dW);
    return rc;
}

static int run_pfc(int argc, char **argv) {
    if (argc != 9) return ufo_errorf("usage: pfc DIR s m rate seed step task");
    const char *dir = argv[2];
    ufo_cosface_opts o = {.s = strtof(argv[3], NULL), .m = strtof(argv[4], NULL)};
    double rate = strtod(argv[5], NULL);
    uint64_t seed = strtoull(argv[6], NULL, 10);
    long step = strtol(argv[7], NULL, 10);
    int task = atoi(argv[8]);
    int64_t n = 0, D = 0, C = 0, Dw = 0, nl = 0;
    float *f = read_f32(dir, "f.npy", &n, &D), *W = read_f32(dir, "W.npy", &C, &Dw);
    int32_t *y = read_labels(dir, &nl);
    float *df = ufo_alloc((size_t)(n * D) * sizeof(float)), *dW = ufo_calloc((size_t)(C * Dw) * sizeof(float));
    int *kept = malloc(sizeof(int) * (size_t)(C > 0 ? C : 1));
    double *kd = malloc(sizeof(double) * (size_t)(C > 0 ? C : 1));
    int rc = -1, nk;
    ufo_cosface_result r;
    if (!f || !W || !y || !df || !dW || !kept || !kd) goto out;
    if (Dw != D || nl != n) {
        ufo_errorf("pfc: shapes disagree");
        goto out;
    }
    if ((nk = ufo_pfc_sample((int)C, rate, y, (int)n, seed, step, task, kept)) < 0) goto out;
    if (ufo_pfc_cosface(f, W, y, (int)n, (int)D, (int)C, &o, kept, nk, df, dW, &r)) goto out;
    for (int i = 0; i < nk; i++) kd[i] = kept[i];
    double v[3] = {r.loss, r.accuracy, r.nonzero};
    rc = write_f64(dir, "kept.npy", kd, nk) || write_f64(dir, "loss.npy", v, 3) || write_f32(dir, "df.npy", df, n, D) ||
                 write_f32(dir, "dW.npy", dW, C, D)
             ? -1
             : 0;
out:
    ufo_free(f);
    ufo_free(W);
    ufo_free(y);
    ufo_free(df);
    ufo_free(dW);
    free(kept);
    free(kd);
    return rc;
}

static int run_triplet(int argc, char **argv) {
    if (argc != 4) return ufo_errorf("usage: triplet DIR margin");
    const char *dir = argv[2];
    int64_t n = 0, D = 0, nl = 0;
    float *x = read_f32(dir, "x.npy", &n, &D);
    int32_t *y = read_labels(dir, &nl);
    float *dx = ufo_alloc((size_t)(n * D) * sizeof(float));
    int *p = ufo_alloc((size_t)n * sizeof(int)), *q = ufo_alloc((size_t)n * sizeof(int));
    int64_t *idx = ufo_alloc((size_t)(2 * n) * sizeof(int64_t));
    int rc = -1;
    ufo_triplet_result r;
    if (!x || !y || !dx || !p || !q || !idx) goto out;
    if (nl != n) {
        ufo_errorf("triplet: shapes disagree");
        goto out;
    }
    if (ufo_triplet(x, y, (int)n, (int)D, strtof(argv[3], NULL), dx, p, q, &r)) goto out;
    for (int64_t i = 0; i < n; i++) idx[i] = p[i], idx[n + i] = q[i];
    double v[2] = {r.loss, r.fallback};
    const int64_t ishape[2] = {2, n};
    rc = write_f64(dir, "loss.npy", v, 2) || write_f32(dir, "dx.npy", dx, n, D) ||
                 ufo_npy_write(at(dir, "idx.npy"), UFO_I64, ishape, 2, idx)
             ? -1
             : 0;
out:
    ufo_free(x);
    ufo_free(y);
    ufo_free(dx);
    ufo_free(p);
    ufo_free(q);
    ufo_free(idx);
    return rc;
}

static int parse_schedule(ufo_lr_schedule *s, char **a) {
    s->base_lr = strtod(a[0], NULL);
    s->min_lr = strtod(a[1], NULL);
    s->total_steps = atol(a[2]);
    s->warmup_steps = atol(a[3]);
    s->cosine_steps = atol(a[4]);
    return 0;
}

static int run_sgd(int argc, char **argv) {
    if (argc != 11) return ufo_errorf("usage: sgd DIR paddle|torch|none momentum clip_norm base min total warmup cosine");
    const char *dir = argv[2];
    ufo_sgd_opts o = {.momentum = strtof(argv[4], NULL), .clip_norm = strtof(argv[5], NULL)};
    if (!strcmp(argv[3], "paddle")) o.clip = UFO_CLIP_PADDLE;
    else if (!strcmp(argv[3], "torch")) o.clip = UFO_CLIP_TORCH;
    else if (!strcmp(argv[3], "none")) o.clip = UFO_CLIP_NONE;
    else return ufo_errorf("sgd: unknown clip mode %s", argv[3]);
    ufo_lr_schedule sch;
    parse_schedule(&sch, argv + 6);
    int64_t P = 0, one = 0, steps = 0, P2 = 0, nseg = 0, four = 0;
    float *p = read_f32(dir, "params.npy", &P, &one), *g = read_f32(dir, "grads.npy", &steps, &P2);
    double *sv = read_f64(dir, "segs.npy", &nseg, &four);
    float *mom = ufo_calloc((size_t)P * sizeof(float));
    double *lrs = ufo_alloc((size_t)(steps > 0 ? steps : 1) * sizeof(double));
    ufo_sgd_segment *seg = ufo_alloc((size_t)(nseg > 0 ? nseg : 1) * sizeof *seg);
    int rc = -1;
    if (!p || !g || !sv || !mom || !lrs || !seg) goto out;
    if (P2 != P || four != 4) {
        ufo_errorf("sgd: shapes disagree");
        goto out;
    }
    for (int64_t t = 0; t < nseg; t++)
        seg[t] = (ufo_sgd_segment){(size_t)sv[4 * t], (size_t)sv[4 * t + 1], (float)sv[4 * t + 2], (float)sv[4 * t + 3]};
    for (int64_t k = 0; k < steps; k++) {
        lrs[k] = ufo_lr_at(&sch, (long)k);
        if (ufo_sgd_step(p, g + k * P, mom, (size_t)P, seg, (int)nseg, (float)lrs[k], &o, NULL)) goto out;
    }
    rc = write_f32(dir, "params_out.npy", p, P, 0) || write_f32(dir, "mom_out.npy", mom, P, 0) ||
                 write_f64(dir, "lr.npy", lrs, steps)
             ? -1
             : 0;
out:
    ufo_free(p);
    ufo_free(g);
    ufo_free(sv);
    ufo_free(mom);
    ufo_free(lrs);
    ufo_free(seg);
    return rc;
}

static int run_lr(int argc, char **argv) {
    if (argc != 8) return ufo_errorf("usage: lr DIR base min total warmup cosine_steps");
    ufo_lr_schedule s;
    parse_schedule(&s, argv + 3);
    if (s.total_steps <= 0) return ufo_errorf("lr: total must be > 0");
    double *v = ufo_alloc((size_t)s.total_steps * sizeof(double));
    if (!v) return -1;
    for (long k = 0; k < s.total_steps; k++) v[k] = ufo_lr_at(&s, k);
    int rc = write_f64(argv[2], "lr.npy", v, s.total_steps);
    ufo_free(v);
    return rc;
}

// Without arguments: a tiny run of every entry point (CTest), including the
// npy round trip the Python test relies on.
static int self_check(void) {
    float f[4 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0}, W[3 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    int32_t y[4] = {0, 1, 2, 1};   // row 3 ties classes 0 and 1: top-1 is 0, wrong
    float df[12], dW[9] = {0};
    ufo_cosface_opts o = {.s = 10, .m = 0.2f};
    ufo_cosface_result r;
    if (ufo_cosface(f, W, y, 4, 3, 3, &o, df, dW, &r)) return -1;
    if (!(r.loss > 0 && r.accuracy == 0.75)) return ufo_errorf("self-check: cosface loss %g accuracy %g", r.loss, r.accuracy);
    ufo_triplet_result t;
    if (ufo_triplet(f, y, 4, 3, 0, df, NULL, NULL, &t)) return -1;
    if (!(t.loss > 0)) return ufo_errorf("self-check: triplet loss %g", t.loss);
    float p[2] = {1, 1}, g[2] = {1, -1}, b[2] = {0, 0};
    ufo_sgd_segment s = {0, 2, 0, 1};
    ufo_sgd_opts so;
    ufo_sgd_defaults(&so);
    if (ufo_sgd_step(p, g, b, 2, &s, 1, 0.5f, &so, NULL)) return -1;
    if (p[0] != 0.5f || p[1] != 1.5f) return ufo_errorf("self-check: sgd");
    ufo_lr_schedule ls;
    ufo_lr_schedule_default(&ls, 0.2, 100);
    if (ufo_lr_at(&ls, 0) != 0 || ufo_lr_at(&ls, 10) != 0.2) return ufo_errorf("self-check: lr");
    return 0;
}

int main(int argc, char **argv) {
    int rc;
    if (argc == 1) rc = self_check();
    else if (!strcmp(argv[1], "cosface")) rc = run_cosface(argc, argv);
    else if (!strcmp(argv[1], "triplet")) rc = run_triplet(argc, argv);
    else if (!strcmp(argv[1], "sgd")) rc = run_sgd(argc, argv);
    else if (!strcmp(argv[1], "lr")) rc = run_lr(argc, argv);
    else if (!strcmp(argv[1], "pfc")) rc = run_pfc(argc, argv);
    else rc = ufo_errorf("unknown mode %s", argv[1]);
    if (rc) {
        fprintf(stderr, "test_losses_dump: %s\n", ufo_error());
        return 1;
    }
    if (argc == 1) printf("losses_dump: self-check ok\n");
    return 0;
}
