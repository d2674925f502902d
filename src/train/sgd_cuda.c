// ufo_sgd_step on the GPU (see sgd.h): the CUDA trainer's optimiser, so the
// parameters, gradients and momentum never leave the device during a run.
#include "base/error.h"
#include "base/mem.h"
#include "train/sgd.h"
#include <math.h>

#define CHUNK 16384   // as sgd.c: norm partial sums over fixed pieces

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"

// The clip scale of sgd.c for a gradient norm.
static double clip_scale(double nrm, const ufo_sgd_opts *o) {
    const float c = o->clip_norm;
    if (c > 0 && o->clip == UFO_CLIP_PADDLE) return nrm > c ? c / nrm : 1.0;
    if (c > 0 && o->clip == UFO_CLIP_TORCH) {
        float coef = c / ((float)nrm + 1e-6f);
        return coef < 1.0f ? coef : 1.0;
    }
    return 1.0;
}

static int check_segments(const ufo_sgd_segment *seg, int nseg, size_t total) {
    for (int t = 0; t < nseg; t++)
        if (seg[t].offset > total || seg[t].size > total - seg[t].offset)
            return ufo_errorf("sgd: segment %d [%zu, +%zu) is outside the %zu-element buffer", t, seg[t].offset,
                              seg[t].size, total);
    return 0;
}

// Sums of squares of the segments' gradients, in double, over CHUNK-sized
// pieces: each piece reduced on the GPU, the pieces added in order here.
int ufo_sgd_sumsq_device(void *gpu, const float *grad, double *part, size_t part_n, size_t total,
                         const ufo_sgd_segment *seg, int nseg, double *sums) {
    gpu_ctx *g = gpu;
    if (check_segments(seg, nseg, total)) return -1;
    size_t need = 0;
    for (int t = 0; t < nseg; t++) need += (seg[t].size + CHUNK - 1) / CHUNK;
    if (need > part_n) return ufo_errorf("sgd: %zu norm pieces, scratch for %zu", need, part_n);
    double *host = ufo_alloc((need + 1) * sizeof(double));
    if (!host) return ufo_error_wrap("sgd scratch");
    int rc = 0;
    size_t k = 0;
    for (int t = 0; t < nseg && rc == 0; t++) {
        if (gpu_sumsq_chunks(g, part + k, grad + seg[t].offset, seg[t].size, CHUNK)) rc = -1;
        k += (seg[t].size + CHUNK - 1) / CHUNK;
    }
    if (rc == 0 && (gpu_download(g, host, part, need * sizeof(double)) || gpu_sync(g))) rc = -1;
    if (rc) rc = ufo_errorf("sgd on the GPU: %s", gpu_error());
    k = 0;
    for (int t = 0; t < nseg && rc == 0; t++) {
        double s = 0;
        for (size_t c = 0, nc = (seg[t].size + CHUNK - 1) / CHUNK; c < nc; c++) s += host[k++];
        sums[t] = s;
    }
    ufo_free(host);
    return rc;
}

int ufo_sgd_step_device_ex(void *gpu, float *param, const float *grad, float *mom, double *part, size_t part_n,
                           size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                           double *norms, const double *given) {
    gpu_ctx *g = gpu;
    double *sums = ufo_alloc(((size_t)nseg + 1) * sizeof(double));
    if (!sums) return ufo_error_wrap("sgd scratch");
    int own = 0;   // segments whose norm is taken here
    for (int t = 0; t < nseg; t++) own |= !given || given[t] < 0;
    int rc = own ? ufo_sgd_sumsq_device(g, grad, part, part_n, total, seg, nseg, sums) : check_segments(seg, nseg, total);
    for (int t = 0; t < nseg && rc == 0; t++) {
        double nrm = given && given[t] >= 0 ? given[t] : sqrt(sums[t]);
        if (norms) norms[t] = nrm;
        if (!isfinite(nrm))
            rc = ufo_errorf("sgd: the gradient of segment %d (offset %zu, %zu elements) is not finite", t,
                            seg[t].offset, seg[t].size);
        sums[t] = clip_scale(nrm, opts);   // from here on: the scale
    }
    for (int t = 0; t < nseg && rc == 0; t++) {
        size_t o = seg[t].offset;
        if (gpu_sgd_update(g, param + o, grad + o, mom + o, seg[t].size, (float)sums[t], seg[t].weight_decay,
                           opts->momentum, lr * seg[t].lr_mult))
            rc = ufo_errorf("sgd on the GPU: %s", gpu_error());
    }
    if (rc == 0 && gpu_sync(g)) rc = ufo_errorf("sgd on the GPU: %s", gpu_error());
    ufo_free(sums);
    return rc;
}

int ufo_sgd_step_device_rows(void *gpu, float *param, const float *grad, float *mom, const int *rows, int nrows,
                             int cols, float weight_decay, float lr_mult, float lr, const ufo_sgd_opts *opts,
                             double norm) {
    if (!isfinite(norm)) return ufo_errorf("sgd: a sampled classifier's gradient is not finite");
    if (gpu_sgd_update_rows(gpu, param, grad, mom, rows, nrows, cols, (float)clip_scale(norm, opts), weight_decay,
                            opts->momentum, lr * lr_mult) ||
        gpu_sync(gpu))
        return ufo_errorf("sgd on the GPU: %s", gpu_error());
    return 0;
}

int ufo_sgd_step_device(void *gpu, float *param, const float *grad, float *mom, double *part, size_t part_n,
                        size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                        double *norms) {
    return ufo_sgd_step_device_ex(gpu, param, grad, mom, part, part_n, total, seg, nseg, lr, opts, norms, NULL);
}

#else

int ufo_sgd_sumsq_device(void *gpu, const float *grad, double *part, size_t part_n, size_t total,
                         const ufo_sgd_segment *seg, int nseg, double *sums) {
    return ufo_errorf("this ufo was built without CUDA");
}

int ufo_sgd_step_device_ex(void *gpu, float *param, const float *grad, float *mom, double *part, size_t part_n,
                           size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                           double *norms, const double *given) {
    return ufo_errorf("this ufo was built without CUDA");
}

int ufo_sgd_step_device_rows(void *gpu, float *param, const float *grad, float *mom, const int *rows, int nrows,
                             int cols, float weight_decay, float lr_mult, float lr, const ufo_sgd_opts *opts,
                             double norm) {
    return ufo_errorf("this ufo was built without CUDA");
}

int ufo_sgd_step_device(void *gpu, float *param, const float *grad, float *mom, double *part, size_t part_n,
                        size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                        double *norms) {
    return ufo_errorf("this ufo was built without CUDA");
}

#endif
