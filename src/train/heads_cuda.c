// The task heads on the GPU (see heads_cuda.h).
#include "train/heads_cuda.h"
#include "base/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Task k's head can run on the device: trained, all its classes (or all of
// its Partial-FC shard's) in every step.
static int device_task(const ufo_trainer *t, int k) { return t->cfg.classes[k] > 0 && !t->sampled[k]; }

int ufo_heads_cuda_wanted(const ufo_trainer *t) {
    const char *env = getenv("UFO_CUDA_HEADS");   // "cpu": the host path (a fallback, and for comparisons)
    if (t->cfg.backend != VIT_BACKEND_CUDA || (env && !strcmp(env, "cpu"))) return 0;
    if (t->comm && !t->cfg.dev_comm) return 0;   // data parallel: the device group gathers and sums
    int any = 0;
    for (int k = 0; k < UFO_NUM_TASKS; k++) any |= device_task(t, k);
    return any;
}

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"

#define SGD_CHUNK 16384   // sgd_cuda.c's norm pieces

struct ufo_heads_cuda {
    float *cls, *grad, *mom;            // the device heads' classifiers, task k at off[k]
    size_t off[UFO_NUM_TASKS + 1], n;   // (only device heads take room)
    ufo_sgd_segment seg[UFO_NUM_TASKS];  // t->cls_seg's of the device heads, at off[k]
    int nseg;
    double *part;                       // norm pieces of the SGD
    size_t part_n;
    float *gx, *gdx;                    // data parallel: a task's gathered features [G, D], their gradient
    int any_shard;                      // a device head is Partial-FC sharded
};

static int fail(const char *what) { return ufo_errorf("%s: %s", what, gpu_error()); }

static gpu_ctx *ctx(const ufo_trainer *t) { return vit_train_device_of(&t->st)->g; }

int ufo_heads_cuda_init(ufo_trainer *t) {
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (!dev) return ufo_errorf("the heads on the GPU need the CUDA trainer");
    ufo_heads_cuda *h = calloc(1, sizeof *h);
    if (!h) return ufo_errorf("out of memory");
    t->dev_heads = h;
    int all = 1;
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        t->dev_task[k] = device_task(t, k);
        all &= t->dev_task[k] || !t->cfg.classes[k];
        h->off[k + 1] = h->off[k] + (t->dev_task[k] ? t->cls_off[k + 1] - t->cls_off[k] : 0);
    }
    h->n = h->off[UFO_NUM_TASKS];
    for (int s = 0; s < t->ncls_seg; s++) {
        int k = t->cls_seg_task[s];
        if (!t->dev_task[k]) continue;
        h->any_shard |= t->sharded[k];
        h->seg[h->nseg] = t->cls_seg[s];
        h->seg[h->nseg++].offset = h->off[k];
    }
    size_t bytes = (h->n ? h->n : 1) * sizeof(float);
    h->part_n = h->n / SGD_CHUNK + (size_t)h->nseg + 1;
    if (!(h->cls = gpu_malloc(dev->g, bytes)) || !(h->grad = gpu_malloc(dev->g, bytes)) ||
        !(h->mom = gpu_malloc(dev->g, bytes)) || !(h->part = gpu_malloc(dev->g, h->part_n * sizeof(double))))
        return fail("the classifiers on the GPU");
    size_t gbytes = (size_t)t->cfg.batch_cap * t->model->cfg.dim * sizeof(float);
    if (t->comm && (!(h->gx = gpu_malloc(dev->g, gbytes)) || !(h->gdx = gpu_malloc(dev->g, gbytes))))
        return fail("the gathered features on the GPU");
    if (gpu_zero(dev->g, h->grad, bytes)) return fail("the classifiers on the GPU");
    // Else the host heads need the features on the host; so does sync BN (data
    // parallel: the BNNecks run on the host, vit_train.h), which downloads them anyway.
    t->st.feat_on_device = all && !t->comm;
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
        gpu_free(dev->g, h->gx);
        gpu_free(dev->g, h->gdx);
    }
    free(h);
    t->dev_heads = NULL;
    memset(t->dev_task, 0, sizeof t->dev_task);
    t->st.feat_on_device = 0;
}

int ufo_heads_cuda_to_device(ufo_trainer *t) {
    ufo_heads_cuda *h = t->dev_heads;
    if (!h) return 0;
    gpu_ctx *g = ctx(t);
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        size_t o = t->cls_off[k], bytes = (h->off[k + 1] - h->off[k]) * sizeof(float);
        if (!t->dev_task[k]) continue;
        if (gpu_upload(g, h->cls + h->off[k], t->cls + o, bytes) || gpu_upload(g, h->mom + h->off[k], t->cls_mom + o, bytes))
            return fail("copying the classifiers to the GPU");
    }
    return gpu_sync(g) ? fail("copying the classifiers to the GPU") : 0;
}

int ufo_heads_cuda_to_host(const ufo_trainer *t) {
    const ufo_heads_cuda *h = t->dev_heads;
    if (!h) return 0;
    gpu_ctx *g = ctx(t);
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        size_t o = t->cls_off[k], bytes = (h->off[k + 1] - h->off[k]) * sizeof(float);
        if (!t->dev_task[k]) continue;
        if (gpu_download(g, t->cls + o, h->cls + h->off[k], bytes) ||
            gpu_download(g, t->cls_mom + o, h->mom + h->off[k], bytes) ||
            gpu_download(g, t->cls_grad + o, h->grad + h->off[k], bytes))
            return fail("copying the classifiers to the host");
    }
    return gpu_sync(g) ? fail("copying the classifiers to the host") : 0;
}

int ufo_heads_cuda_begin(ufo_trainer *t) {
    ufo_heads_cuda *h = t->dev_heads;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    size_t nD = (size_t)t->st.n * t->model->cfg.dim * sizeof(float);
    // Rows of heads without triplet get no pre-BN gradient; the other rows are all written.
    if (gpu_zero(dev->g, h->grad, (h->n ? h->n : 1) * sizeof(float)) || gpu_zero(dev->g, dev->dfeat, nD) ||
        gpu_zero(dev->g, dev->dfeat_bn, nD))
        return fail("the heads' gradients");
    return 0;
}

int ufo_heads_cuda_task(ufo_trainer *t, int k, int lo, int n, const int32_t *labels, ufo_step_stats *stats) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    int D = t->model->cfg.dim;
    size_t o = (size_t)lo * D;
    double loss;
    int correct;
    if (gpu_cosface(dev->g, dev->feat_bn + o, h->cls + h->off[k], labels, n, D, c->classes[k], c->cos_s[k],
                    c->cos_m[k], 0, 0, 0.0, dev->dfeat_bn + o, h->grad + h->off[k], &loss, &correct, NULL))
        return ufo_errorf("%s CosFace on the GPU: %s", vit_task_name(k), gpu_error());
    stats->cosface[k] = loss;
    stats->accuracy[k] = (double)correct / n;
    stats->loss += loss;
    if (c->triplet[k]) {
        if (gpu_triplet(dev->g, dev->feat + o, labels, n, D, c->triplet_margin, dev->dfeat + o, &loss, NULL, NULL,
                        NULL))
            return ufo_errorf("%s triplet on the GPU: %s", vit_task_name(k), gpu_error());
        stats->triplet[k] = loss;
        stats->loss += loss;
    }
    return 0;
}

int ufo_heads_cuda_backward(ufo_trainer *t, const int counts[UFO_NUM_TASKS]) {
    const vit_train_device *dev = vit_train_device_of(&t->st);
    int D = t->model->cfg.dim;
    for (int k = 0, lo = 0; k < UFO_NUM_TASKS; lo += counts[k], k++) {   // the host heads' rows
        size_t o = (size_t)lo * D, bytes = (size_t)counts[k] * D * sizeof(float);
        if (!counts[k] || t->dev_task[k]) continue;
        if (gpu_upload(dev->g, dev->dfeat + o, t->df + o, bytes) || gpu_upload(dev->g, dev->dfeat_bn + o, t->df_bn + o, bytes))
            return fail("the host heads' feature gradients");
    }
    return vit_train_backward_device(&t->st, dev->dfeat, dev->dfeat_bn);
}

// Partial-FC's cross-rank reductions for gpu_cosface_sharded: the per-row
// state over the host group, d f_hat (a device buffer, [G, D]) over the device
// group (NCCL: no trip over PCIe; it returns once the sum is in place).
static int shard_allreduce(void *ctx, void *buf, size_t n, int is_double, int op_max) {
    ufo_trainer *t = ctx;
    if (!is_double) return op_max ? -1 : ufo_comm_allreduce_sum_f32(t->comm, buf, n, "Partial-FC (GPU) sum");
    return op_max ? ufo_comm_allreduce_max_f64(t->comm, buf, n, "Partial-FC (GPU) softmax max")
                  : ufo_comm_allreduce_sum_f64(t->comm, buf, n, "Partial-FC (GPU) softmax sum");
}
static int shard_allreduce_device(void *ctx, float *buf, size_t n) {
    ufo_trainer *t = ctx;
    return ufo_comm_allreduce_sum_f32(t->cfg.dev_comm, buf, n, "Partial-FC d feature (device)");
}

// cnt[r] = rank r's bytes of task rows of `row_bytes` (trainer.c's gather_rows split).
static size_t *row_counts(const ufo_trainer *t, int Gk, size_t row_bytes) {
    size_t *cnt = malloc(sizeof(size_t) * t->size);
    if (!cnt) ufo_comm_abort(t->comm, 1, "out of memory");
    for (int r = 0; r < t->size; r++) {
        int rlo, rhi;
        ufo_comm_split(Gk, t->size, r, &rlo, &rhi);
        cnt[r] = (size_t)(rhi - rlo) * row_bytes;
    }
    return cnt;
}

// A Partial-FC sharded head (trainer.c's task_losses_dp, on the device): the
// task's post-BN rows of every rank gathered over the device group, CosFace
// over this rank's shard of the classes (the loss and accuracy global), this
// rank's rows of the feature gradient back to the host; dW is the shard's own.
static int sharded_cosface(ufo_trainer *t, int k, int lo, int n, int Gk, int off, ufo_step_stats *stats) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    int D = t->model->cfg.dim;
    size_t o = (size_t)lo * D, bytes = (size_t)n * D * sizeof(float);
    // The upload must be complete before the device group's stream reads it.
    if (n > 0 && gpu_upload(dev->g, dev->feat_bn + o, t->st.feat_bn + o, bytes)) return fail("the features to the GPU");
    if (gpu_sync(dev->g)) return fail("the features to the GPU");
    size_t *cnt = row_counts(t, Gk, (size_t)D * sizeof(float));
    ufo_comm_allgatherv(c->dev_comm, dev->feat_bn + o, h->gx, cnt, "Partial-FC features (device)");
    free(cnt);
    gpu_cosface_shard sh = {shard_allreduce, shard_allreduce_device, t, t->shard_lo[k], c->classes[k]};
    double loss;
    int correct;
    if (gpu_cosface_sharded(dev->g, h->gx, h->cls + h->off[k], t->glab, Gk, D, t->shard_hi[k] - t->shard_lo[k],
                            c->cos_s[k], c->cos_m[k], 0, 0, 0.0, h->gdx, h->grad + h->off[k], &loss, &correct, NULL,
                            &sh))
        return ufo_errorf("%s CosFace (sharded) on the GPU: %s", vit_task_name(k), gpu_error());
    stats->cosface[k] = loss, stats->accuracy[k] = (double)correct / Gk;
    // Before the triplet reuses gx / gdx.
    if (n > 0 && gpu_download(dev->g, t->df_bn + o, h->gdx + (size_t)off * D, bytes)) return fail("the feature gradients");
    return gpu_sync(dev->g) ? fail("the feature gradients") : 0;
}

// Data parallel. The BNNecks are synchronised on the host (vit_train.h), so
// st->feat_bn is the host's: this rank's rows go up for CosFace, and the
// feature gradients come back down for the host's BN backward (each [n, D],
// small next to the classifier the device keeps). The pre-BN features of the
// triplet are gathered from the device copies over the device group.
static int task_dp(ufo_trainer *t, int k, int lo, int n, int Gk, int off, const int32_t *labels,
                   const int32_t *glabels, ufo_step_stats *stats, double *loss_sum, double *correct_sum) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    int D = t->model->cfg.dim;
    size_t o = (size_t)lo * D, bytes = (size_t)n * D * sizeof(float);
    double loss;
    int correct;
    if (t->sharded[k]) {
        if (sharded_cosface(t, k, lo, n, Gk, off, stats)) return -1;
    } else if (n > 0) {   // CosFace on this rank's rows, divided by the global row count
        if (gpu_upload(dev->g, dev->feat_bn + o, t->st.feat_bn + o, bytes)) return fail("the features to the GPU");
        if (gpu_cosface(dev->g, dev->feat_bn + o, h->cls + h->off[k], labels, n, D, c->classes[k], c->cos_s[k],
                        c->cos_m[k], 0, 0, (double)Gk, dev->dfeat_bn + o, h->grad + h->off[k], &loss, &correct, NULL))
            return ufo_errorf("%s CosFace on the GPU: %s", vit_task_name(k), gpu_error());
        *loss_sum = loss, *correct_sum = correct;
        if (gpu_download(dev->g, t->df_bn + o, dev->dfeat_bn + o, bytes)) return fail("the feature gradients");
    }
    if (c->triplet[k]) {   // on the task's global batch; this rank takes its rows of the gradient
        size_t *cnt = row_counts(t, Gk, (size_t)D * sizeof(float));
        ufo_comm_allgatherv(c->dev_comm, dev->feat + o, h->gx, cnt, "triplet features (device)");
        free(cnt);
        if (gpu_triplet(dev->g, h->gx, glabels, Gk, D, c->triplet_margin, h->gdx, &loss, NULL, NULL, NULL))
            return ufo_errorf("%s triplet on the GPU: %s", vit_task_name(k), gpu_error());
        stats->triplet[k] = loss;
        if (n > 0 && gpu_download(dev->g, t->df + o, h->gdx + (size_t)off * D, bytes))
            return fail("the feature gradients");
    }
    return gpu_sync(dev->g) ? fail("the heads on the GPU") : 0;
}

int ufo_heads_cuda_task_dp(ufo_trainer *t, int k, int lo, int n, int Gk, int off, const int32_t *labels,
                           const int32_t *glabels, ufo_step_stats *stats, double *loss_sum, double *correct_sum) {
    // A device failure is this rank's alone: end the job rather than leave the others in a collective.
    if (task_dp(t, k, lo, n, Gk, off, labels, glabels, stats, loss_sum, correct_sum))
        ufo_comm_abort(t->comm, 1, "step %ld: %s", t->step, ufo_error());
    return 0;
}

void ufo_heads_cuda_allreduce(ufo_trainer *t) {
    ufo_heads_cuda *h = t->dev_heads;
    const size_t bucket = (size_t)1 << 23;   // trainer.c's GRAD_BUCKET (MPI counts are ints)
    // The stream has written the gradients before the device group's stream reads them.
    if (gpu_sync(ctx(t))) ufo_comm_abort(t->comm, 1, "the classifiers' gradients: %s", gpu_error());
    for (int k = 0; k < UFO_NUM_TASKS; k++) {   // replicated classifiers; a shard's dW is complete already
        if (!t->dev_task[k] || t->sharded[k]) continue;
        for (size_t o = h->off[k]; o < h->off[k + 1]; o += bucket)
            ufo_comm_allreduce_sum_f32(t->cfg.dev_comm, h->grad + o, h->off[k + 1] - o < bucket ? h->off[k + 1] - o : bucket,
                                       "classifier gradient all-reduce (device)");
    }
}

int ufo_heads_cuda_step(ufo_trainer *t, float lr) {
    ufo_heads_cuda *h = t->dev_heads;
    if (!h->nseg) return 0;
    if (!h->any_shard)
        return ufo_sgd_step_device(ctx(t), h->cls, h->grad, h->mom, h->part, h->part_n, h->n, h->seg, h->nseg, lr,
                                   &t->cfg.sgd, NULL);
    // A sharded classifier is clipped by the norm of the whole tensor: the
    // shards' sums of squares over the host group (zero_step's pattern);
    // every rank calls this, so a device failure ends the job.
    double sums[UFO_NUM_TASKS], given[UFO_NUM_TASKS];
    if (ufo_sgd_sumsq_device(ctx(t), h->grad, h->part, h->part_n, h->n, h->seg, h->nseg, sums))
        ufo_comm_abort(t->comm, 1, "step %ld: %s", t->step, ufo_error());
    ufo_comm_allreduce_sum_f64(t->comm, sums, (size_t)h->nseg, "Partial-FC gradient norm (GPU)");
    for (int s = 0, i = 0; s < t->ncls_seg; s++) {   // h->seg is t->cls_seg's device heads, in order
        int k = t->cls_seg_task[s];
        if (!t->dev_task[k]) continue;
        given[i] = t->sharded[k] ? sqrt(sums[i]) : -1;   // -1: the SGD's own norm
        i++;
    }
    return ufo_sgd_step_device_ex(ctx(t), h->cls, h->grad, h->mom, h->part, h->part_n, h->n, h->seg, h->nseg, lr,
                                  &t->cfg.sgd, NULL, given);
}

#else   // built without CUDA: a CUDA trainer cannot start, so none of this runs

#define NO_CUDA "this ufo was built without CUDA"
int ufo_heads_cuda_init(ufo_trainer *t) { return ufo_errorf(NO_CUDA); }
void ufo_heads_cuda_free(ufo_trainer *t) {}
int ufo_heads_cuda_to_device(ufo_trainer *t) { return 0; }
int ufo_heads_cuda_to_host(const ufo_trainer *t) { return 0; }
int ufo_heads_cuda_begin(ufo_trainer *t) { return ufo_errorf(NO_CUDA); }
int ufo_heads_cuda_task(ufo_trainer *t, int k, int lo, int n, const int32_t *labels, ufo_step_stats *stats) {
    return ufo_errorf(NO_CUDA);
}
int ufo_heads_cuda_backward(ufo_trainer *t, const int counts[UFO_NUM_TASKS]) { return ufo_errorf(NO_CUDA); }
int ufo_heads_cuda_task_dp(ufo_trainer *t, int k, int lo, int n, int Gk, int off, const int32_t *labels,
                           const int32_t *glabels, ufo_step_stats *stats, double *loss_sum, double *correct_sum) {
    return ufo_errorf(NO_CUDA);
}
void ufo_heads_cuda_allreduce(ufo_trainer *t) {}
int ufo_heads_cuda_step(ufo_trainer *t, float lr) { return ufo_errorf(NO_CUDA); }

#endif
