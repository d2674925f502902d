// The task heads on the GPU (see heads_cuda.h).
#include "train/heads_cuda.h"
#include "base/error.h"
#include <stdlib.h>
#include <string.h>

int ufo_heads_cuda_wanted(const ufo_trainer *t) {
    const char *env = getenv("UFO_CUDA_HEADS");   // "cpu": the host path (a fallback, and for comparisons)
    if (t->cfg.backend != VIT_BACKEND_CUDA || t->comm || (env && !strcmp(env, "cpu"))) return 0;
    for (int k = 0; k < UFO_NUM_TASKS; k++)
        if (t->sampled[k] || t->sharded[k]) return 0;
    return 1;
}

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"

#define SGD_CHUNK 16384   // sgd_cuda.c's norm pieces

struct ufo_heads_cuda {
    float *cls, *grad, *mom;   // [t->cls_off[UFO_NUM_TASKS]], the layout of t->cls
    double *part;              // norm pieces of the SGD
    size_t part_n;
};

static int fail(const char *what) { return ufo_errorf("%s: %s", what, gpu_error()); }

static size_t cls_bytes(const ufo_trainer *t) {
    size_t n = t->cls_off[UFO_NUM_TASKS];
    return (n ? n : 1) * sizeof(float);
}

int ufo_heads_cuda_init(ufo_trainer *t) {
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (!dev) return ufo_errorf("the heads on the GPU need the CUDA trainer");
    ufo_heads_cuda *h = calloc(1, sizeof *h);
    if (!h) return ufo_errorf("out of memory");
    t->dev_heads = h;
    size_t bytes = cls_bytes(t);
    h->part_n = t->cls_off[UFO_NUM_TASKS] / SGD_CHUNK + (size_t)t->ncls_seg + 1;
    if (!(h->cls = gpu_malloc(dev->g, bytes)) || !(h->grad = gpu_malloc(dev->g, bytes)) ||
        !(h->mom = gpu_malloc(dev->g, bytes)) || !(h->part = gpu_malloc(dev->g, h->part_n * sizeof(double))))
        return fail("the classifiers on the GPU");
    if (gpu_zero(dev->g, h->grad, bytes)) return fail("the classifiers on the GPU");
    t->st.feat_on_device = 1;
    return ufo_heads_cuda_to_device(t);
}

void ufo_heads_cuda_free(ufo_trainer *t) {
    ufo_heads_cuda *h = t->dev_heads;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (!h) return;
    if (dev) {
        gpu_free(dev->g, h->cls);
        gpu_free(dev->g, h->grad);
        gpu_free(dev->g, h->mom);
        gpu_free(dev->g, h->part);
    }
    free(h);
    t->dev_heads = NULL;
    t->st.feat_on_device = 0;
}

int ufo_heads_cuda_to_device(ufo_trainer *t) {
    ufo_heads_cuda *h = t->dev_heads;
    if (!h) return 0;
    gpu_ctx *g = vit_train_device_of(&t->st)->g;
    size_t bytes = cls_bytes(t);
    if (gpu_upload(g, h->cls, t->cls, bytes) || gpu_upload(g, h->mom, t->cls_mom, bytes) || gpu_sync(g))
        return fail("copying the classifiers to the GPU");
    return 0;
}

int ufo_heads_cuda_to_host(const ufo_trainer *t) {
    const ufo_heads_cuda *h = t->dev_heads;
    if (!h) return 0;
    gpu_ctx *g = vit_train_device_of(&t->st)->g;
    size_t bytes = cls_bytes(t);
    if (gpu_download(g, t->cls, h->cls, bytes) || gpu_download(g, t->cls_mom, h->mom, bytes) ||
        gpu_download(g, t->cls_grad, h->grad, bytes) || gpu_sync(g))
        return fail("copying the classifiers to the host");
    return 0;
}

int ufo_heads_cuda_grad(ufo_trainer *t, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                        ufo_step_stats *stats) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    gpu_ctx *g = dev->g;
    int D = t->model->cfg.dim;
    size_t nD = (size_t)t->st.n * D * sizeof(float);
    // Rows of tasks without triplet get no pre-BN gradient; CosFace writes every row's post-BN one.
    if (gpu_zero(g, h->grad, cls_bytes(t)) || gpu_zero(g, dev->dfeat, nD) || gpu_zero(g, dev->dfeat_bn, nD))
        return fail("the heads' gradients");
    for (int k = 0, lo = 0; k < UFO_NUM_TASKS; lo += counts[k], k++) {
        if (!counts[k]) continue;
        size_t o = (size_t)lo * D;
        double loss;
        int correct;
        if (gpu_cosface(g, dev->feat_bn + o, h->cls + t->cls_off[k], labels + lo, counts[k], D, c->classes[k],
                        c->cos_s[k], c->cos_m[k], 0, 0, 0.0, dev->dfeat_bn + o, h->grad + t->cls_off[k], &loss,
                        &correct, NULL))
            return ufo_errorf("%s CosFace on the GPU: %s", vit_task_name(k), gpu_error());
        stats->cosface[k] = loss;
        stats->accuracy[k] = (double)correct / counts[k];
        stats->loss += loss;
        if (c->triplet[k]) {
            if (gpu_triplet(g, dev->feat + o, labels + lo, counts[k], D, c->triplet_margin, dev->dfeat + o, &loss,
                            NULL, NULL, NULL))
                return ufo_errorf("%s triplet on the GPU: %s", vit_task_name(k), gpu_error());
            stats->triplet[k] = loss;
            stats->loss += loss;
        }
    }
    return vit_train_backward_device(&t->st, dev->dfeat, dev->dfeat_bn);
}

int ufo_heads_cuda_step(ufo_trainer *t, float lr) {
    ufo_heads_cuda *h = t->dev_heads;
    if (!t->ncls_seg) return 0;
    return ufo_sgd_step_device(vit_train_device_of(&t->st)->g, h->cls, h->grad, h->mom, h->part, h->part_n,
                               t->cls_off[UFO_NUM_TASKS], t->cls_seg, t->ncls_seg, lr, &t->cfg.sgd, NULL);
}

#else   // built without CUDA: a CUDA trainer cannot start, so none of this runs

int ufo_heads_cuda_init(ufo_trainer *t) { return ufo_errorf("this ufo was built without CUDA"); }
void ufo_heads_cuda_free(ufo_trainer *t) {}
int ufo_heads_cuda_to_device(ufo_trainer *t) { return 0; }
int ufo_heads_cuda_to_host(const ufo_trainer *t) { return 0; }
int ufo_heads_cuda_grad(ufo_trainer *t, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                        ufo_step_stats *stats) {
    return ufo_errorf("this ufo was built without CUDA");
}
int ufo_heads_cuda_step(ufo_trainer *t, float lr) { return ufo_errorf("this ufo was built without CUDA"); }

#endif
