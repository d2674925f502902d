// SGD with momentum, L2 decay and per-tensor clipping (see sgd.h).
#include "train/sgd.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <stdint.h>

#define CHUNK 16384   // norm partial sums: fixed chunks, fixed order

void ufo_sgd_defaults(ufo_sgd_opts *o) {
    o->momentum = 0.9f;
    o->clip_norm = 5.0f;
    o->clip = UFO_CLIP_PADDLE;
}

static double chunk_sumsq(const float *g, size_t n) {
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) a[j] += (double)g[k + j] * g[k + j];
    for (; k < n; k++) a[0] += (double)g[k] * g[k];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// ||g||_2^2 with the partial sums of fixed CHUNK-sized pieces added in order.
static double seg_sumsq(const float *g, size_t n, double *part) {
    size_t nchunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (nchunks > 1)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        part[c] = chunk_sumsq(g + lo, len);
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    return s;
}

static double seg_norm(const float *g, size_t n, double *part) { return sqrt(seg_sumsq(g, n, part)); }

double ufo_sgd_sumsq(const float *g, size_t n) {
    double *part = ufo_alloc(((n + CHUNK - 1) / CHUNK + 1) * sizeof(double));
    if (!part) return NAN;
    double r = seg_sumsq(g, n, part);
    ufo_free(part);
    return r;
}

int ufo_sgd_step(float *param, const float *grad, float *mom, size_t total, const ufo_sgd_segment *seg, int nseg,
                 float lr, const ufo_sgd_opts *opts, double *norms) {
    return ufo_sgd_step_ex(param, grad, mom, total, seg, nseg, lr, opts, norms, NULL);
}

int ufo_sgd_step_ex(float *param, const float *grad, float *mom, size_t total, const ufo_sgd_segment *seg, int nseg,
                    float lr, const ufo_sgd_opts *opts, double *norms, const double *given) {
    size_t maxn = 0;
    for (int t = 0; t < nseg; t++) {
        if (seg[t].offset > total || seg[t].size > total - seg[t].offset)
            return ufo_errorf("sgd: segment %d [%zu, +%zu) is outside the %zu-element buffer", t, seg[t].offset,
                              seg[t].size, total);
        if (seg[t].size > maxn) maxn = seg[t].size;
    }
    double *part = ufo_alloc(((maxn + CHUNK - 1) / CHUNK + 1) * sizeof(double));
    double *scale = ufo_alloc(((size_t)nseg + 1) * sizeof(double));
    if (!part || !scale) {
        ufo_free(part);
        ufo_free(scale);
        return ufo_error_wrap("sgd scratch");
    }
    const float c = opts->clip_norm;
    int rc = 0;
    for (int t = 0; t < nseg; t++) {
        double nrm = given && given[t] >= 0 ? given[t] : seg_norm(grad + seg[t].offset, seg[t].size, part);
        if (norms) norms[t] = nrm;
        if (!isfinite(nrm)) {
            rc = ufo_errorf("sgd: the gradient of segment %d (offset %zu, %zu elements) is not finite", t,
                            seg[t].offset, seg[t].size);
            break;
        }
        double sc = 1.0;
        if (c > 0 && opts->clip == UFO_CLIP_PADDLE) sc = nrm > c ? c / nrm : 1.0;
        else if (c > 0 && opts->clip == UFO_CLIP_TORCH) {
            // torch: clip_coef = max_norm / (total_norm + 1e-6) in fp32, clamped to 1
            float coef = c / ((float)nrm + 1e-6f);
            sc = coef < 1.0f ? coef : 1.0;
        }
        scale[t] = sc;
    }
    if (rc == 0) {
        const float mu = opts->momentum;
        for (int t = 0; t < nseg; t++) {
            const float sc = (float)scale[t], wd = seg[t].weight_decay, step = lr * seg[t].lr_mult;
            float *p = param + seg[t].offset, *b = mom + seg[t].offset;
            const float *g = grad + seg[t].offset;
            const int64_t n = (int64_t)seg[t].size;
            if (sc == 1.0f) {
#pragma omp parallel for simd schedule(static) if (n > 65536)
                for (int64_t k = 0; k < n; k++) {
                    float d = g[k] + wd * p[k];
                    b[k] = mu * b[k] + d;
                    p[k] = p[k] - step * b[k];
                }
            } else {
#pragma omp parallel for simd schedule(static) if (n > 65536)
                for (int64_t k = 0; k < n; k++) {
                    float d = g[k] * sc + wd * p[k];
                    b[k] = mu * b[k] + d;
                    p[k] = p[k] - step * b[k];
                }
            }
        }
    }
    ufo_free(part);
    ufo_free(scale);
    return rc;
}
