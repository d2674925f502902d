// The task heads on the GPU (see heads_cuda.h).
#include "train/heads_cuda.h"
#include "base/error.h"
#include "train/pfc.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Task k's head runs on the device when it is trained (Partial-FC sampled
// and sharded ones too).
static int device_task(const ufo_trainer *t, int k) { return t->cfg.classes[k] > 0; }

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
    int seg_task[UFO_NUM_TASKS], nseg;
    double *part;                       // norm pieces of the SGD
    size_t part_n;
    float *gx, *gdx;                    // data parallel: a task's gathered features [G, D], their gradient
    int any_shard, any_sampled;         // a device head is Partial-FC sharded / sampled
    // Partial-FC sampled heads: a step's kept rows of this rank (row indices
    // in the task's classifier: host hrows, device rows), gathered into Wc,
    // their gradient dWc (rows_cap rows at most); the labels as positions in
    // kept[] (hlab, batch_cap).
    int *rows, *hrows;
    int32_t *hlab;
    float *Wc, *dWc, *hWc, *hdWc;       // hWc, hdWc: a shard keeping no class runs on the host
    size_t rows_cap;
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
        int k = t->cls_seg_task[s], rows = t->shard_hi[k] - t->shard_lo[k];
        if (!t->dev_task[k]) continue;
        h->any_shard |= t->sharded[k];
        h->any_sampled |= t->sampled[k];
        if (t->sampled[k] && (size_t)rows > h->rows_cap) h->rows_cap = (size_t)rows;
        h->seg_task[h->nseg] = k;
        h->seg[h->nseg] = t->cls_seg[s];
        h->seg[h->nseg++].offset = h->off[k];
    }
    size_t bytes = (h->n ? h->n : 1) * sizeof(float), D = (size_t)t->model->cfg.dim, rc = h->rows_cap + 1;
    h->part_n = h->n / SGD_CHUNK + (size_t)h->nseg + 1;
    if (!(h->cls = gpu_malloc(dev->g, bytes)) || !(h->grad = gpu_malloc(dev->g, bytes)) ||
        !(h->mom = gpu_malloc(dev->g, bytes)) || !(h->part = gpu_malloc(dev->g, h->part_n * sizeof(double))))
        return fail("the classifiers on the GPU");
    if (h->any_sampled) {
        size_t bc = (size_t)t->cfg.batch_cap + 1;
        if (!(h->rows = gpu_malloc(dev->g, rc * sizeof(int))) || !(h->Wc = gpu_malloc(dev->g, rc * D * sizeof(float))) ||
            !(h->dWc = gpu_malloc(dev->g, rc * D * sizeof(float))))
            return fail("the sampled classifier rows on the GPU");
        h->hrows = malloc(rc * sizeof(int)), h->hlab = malloc(bc * sizeof(int32_t));
        if (t->comm) h->hWc = malloc(rc * D * sizeof(float)), h->hdWc = malloc(rc * D * sizeof(float));
        if (!h->hrows || !h->hlab || (t->comm && (!h->hWc || !h->hdWc)))
            return ufo_errorf("out of memory for the sampled heads");
    }
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
        gpu_free(dev->g, h->rows);
        gpu_free(dev->g, h->Wc);
        gpu_free(dev->g, h->dWc);
    }
    free(h->hrows), free(h->hlab), free(h->hWc), free(h->hdWc);
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

// ---- Partial-FC sampled heads (pfc.h; trainer.c's ufo_pfc_cosface on the device) ----
// The step's kept classes (t->kept[k], drawn by trainer.c's pfc_draw on every
// rank alike) that are this rank's rows, [*klo, *klo + *nk) of kept[], go up
// as row indices (h->rows); gather_kept also gathers their rows of the
// classifier into h->Wc and zeroes h->dWc for their gradient.
static int upload_kept(ufo_trainer *t, int k, int *klo, int *nk) {
    ufo_heads_cuda *h = t->dev_heads;
    int hi;
    ufo_pfc_range(t->kept[k], t->nkept[k], t->shard_lo[k], t->shard_hi[k], klo, &hi);
    *nk = hi - *klo;
    for (int j = 0; j < *nk; j++) h->hrows[j] = t->kept[k][*klo + j] - t->shard_lo[k];
    return *nk && gpu_upload(ctx(t), h->rows, h->hrows, (size_t)*nk * sizeof(int)) ? fail("the kept classifier rows") : 0;
}

static int gather_kept(ufo_trainer *t, int k, int *klo, int *nk) {
    ufo_heads_cuda *h = t->dev_heads;
    int D = t->model->cfg.dim;
    if (upload_kept(t, k, klo, nk)) return -1;
    if (*nk && (gpu_gather_rows(ctx(t), h->Wc, h->cls + h->off[k], h->rows, *nk, D) ||
                gpu_zero(ctx(t), h->dWc, (size_t)*nk * D * sizeof(float))))
        return fail("the kept classifier rows");
    return 0;
}

// h->hlab = labels as positions in kept[] (every label is among them).
static int kept_labels(const ufo_trainer *t, int k, const int32_t *labels, int n) {
    for (int i = 0; i < n; i++) {
        int p, q;
        ufo_pfc_range(t->kept[k], t->nkept[k], labels[i], labels[i] + 1, &p, &q);
        if (q != p + 1) return ufo_errorf("Partial-FC: label %d of sample %d is not among the kept classes", (int)labels[i], i);
        t->dev_heads->hlab[i] = p;
    }
    return 0;
}

// The compact gradient rows are added into the classifier's (rows not kept: += 0).
static int scatter_kept(ufo_trainer *t, int k, int nk) {
    ufo_heads_cuda *h = t->dev_heads;
    if (gpu_scatter_add_rows(ctx(t), h->grad + h->off[k], h->dWc, h->rows, nk, t->model->cfg.dim))
        return fail("the kept classifier rows' gradient");
    return 0;
}

// One process, or a replicated head's rows of the batch: CosFace over
// classes (all) or, sampled, the kept ones.
static int task_cosface(ufo_trainer *t, int k, const float *f, const int32_t *labels, int n, double den, float *df,
                        double *loss, int *correct) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    const float *W = h->cls + h->off[k];
    float *dW = h->grad + h->off[k];
    int classes = c->classes[k], klo = 0, nk = 0;
    if (t->sampled[k]) {
        if (gather_kept(t, k, &klo, &nk) || kept_labels(t, k, labels, n)) return -1;
        W = h->Wc, dW = h->dWc, labels = h->hlab, classes = nk;
    }
    if (gpu_cosface(ctx(t), f, W, labels, n, t->model->cfg.dim, classes, c->cos_s[k], c->cos_m[k], 0, 0, den, df, dW,
                    loss, correct, NULL))
        return ufo_errorf("%s CosFace on the GPU: %s", vit_task_name(k), gpu_error());
    return t->sampled[k] ? scatter_kept(t, k, nk) : 0;
}

int ufo_heads_cuda_task(ufo_trainer *t, int k, int lo, int n, const int32_t *labels, ufo_step_stats *stats) {
    const ufo_train_config *c = &t->cfg;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    int D = t->model->cfg.dim;
    size_t o = (size_t)lo * D;
    double loss;
    int correct;
    if (task_cosface(t, k, dev->feat_bn + o, labels, n, 0.0, dev->dfeat_bn + o, &loss, &correct)) return -1;
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

// gpu_cosface_sharded over h->gx (Gk rows) with this rank's classes
// [klo, klo + nk) of total, d f into h->gdx.
static int sharded_device(ufo_trainer *t, int k, const float *W, const int32_t *lab, int Gk, int nk, int klo,
                          int total, float *dW, ufo_step_stats *stats) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    gpu_cosface_shard sh = {shard_allreduce, shard_allreduce_device, t, klo, total};
    double loss;
    int correct;
    if (gpu_cosface_sharded(ctx(t), h->gx, W, lab, Gk, t->model->cfg.dim, nk, c->cos_s[k], c->cos_m[k], 0, 0, 0.0,
                            h->gdx, dW, &loss, &correct, NULL, &sh))
        return ufo_errorf("%s CosFace (sharded) on the GPU: %s", vit_task_name(k), gpu_error());
    stats->cosface[k] = loss, stats->accuracy[k] = (double)correct / Gk;
    return 0;
}

// 1 when some rank's shard keeps no class of task k this step (the same
// answer on every rank: kept[] and the shards are).
static int some_shard_empty(const ufo_trainer *t, int k) {
    for (int r = 0; r < t->size; r++) {
        int lo, hi, a, b;
        ufo_comm_split(t->cfg.classes[k], t->size, r, &lo, &hi);
        ufo_pfc_range(t->kept[k], t->nkept[k], lo, hi, &a, &b);
        if (a == b) return 1;
    }
    return 0;
}

// The device CosFace needs a class per shard; a step where some shard keeps
// none (rare: few classes per shard, a low rate) runs the host's sharded
// CosFace (which allows an empty shard) on every rank: the gathered features
// and the kept rows come down, d f and the rows' gradient go back up.
static int empty_shard_host(ufo_trainer *t, int k, int klo, int nk, int Gk, ufo_step_stats *stats) {
    ufo_heads_cuda *h = t->dev_heads;
    const ufo_train_config *c = &t->cfg;
    size_t D = (size_t)t->model->cfg.dim;
    if (gpu_download(ctx(t), t->gx, h->gx, (size_t)Gk * D * sizeof(float)) ||
        (nk && gpu_download(ctx(t), h->hWc, h->Wc, (size_t)nk * D * sizeof(float))) || gpu_sync(ctx(t)))
        return fail("the sampled classifier rows to the host");
    memset(h->hdWc, 0, ((size_t)nk + 1) * D * sizeof(float));
    ufo_cosface_opts co = {.s = c->cos_s[k], .m = c->cos_m[k], .shard = t->comm, .class_lo = klo,
                           .total_classes = t->nkept[k]};
    ufo_cosface_result cr;
    if (ufo_cosface(t->gx, h->hWc, h->hlab, Gk, (int)D, nk, &co, t->gdx, h->hdWc, &cr))
        return ufo_error_wrap("%s CosFace (sharded, sampled)", vit_task_name(k));
    stats->cosface[k] = cr.loss, stats->accuracy[k] = cr.accuracy;
    if (gpu_upload(ctx(t), h->gdx, t->gdx, (size_t)Gk * D * sizeof(float)) ||
        (nk && gpu_upload(ctx(t), h->dWc, h->hdWc, (size_t)nk * D * sizeof(float))))
        return fail("the sampled classifier gradient to the GPU");
    return 0;
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
    // task_dp's upload of this rank's rows must be complete before the device group's stream reads them.
    if (gpu_sync(dev->g)) return fail("the features to the GPU");
    size_t *cnt = ufo_comm_split_counts(t->comm, Gk, (size_t)D * sizeof(float));
    ufo_comm_allgatherv(c->dev_comm, dev->feat_bn + o, h->gx, cnt, "Partial-FC features (device)");
    free(cnt);
    // Sampled: the softmax over the kept classes of every shard, class ids
    // (this shard's first, the total, the labels) become positions in kept[]
    // (ufo_pfc_cosface's rewrite).
    const float *W = h->cls + h->off[k];
    float *dW = h->grad + h->off[k];
    const int32_t *lab = t->glab;
    int klo = t->shard_lo[k], nk = t->shard_hi[k] - t->shard_lo[k], total = c->classes[k];
    if (t->sampled[k]) {
        if (gather_kept(t, k, &klo, &nk) || kept_labels(t, k, t->glab, Gk)) return -1;
        W = h->Wc, dW = h->dWc, lab = h->hlab, total = t->nkept[k];
        if (some_shard_empty(t, k)) {
            if (empty_shard_host(t, k, klo, nk, Gk, stats)) return -1;
        } else if (sharded_device(t, k, W, lab, Gk, nk, klo, total, dW, stats))
            return -1;
        if (scatter_kept(t, k, nk)) return -1;
    } else if (sharded_device(t, k, W, lab, Gk, nk, klo, total, dW, stats))
        return -1;
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
    if (n > 0 && gpu_upload(dev->g, dev->feat_bn + o, t->st.feat_bn + o, bytes)) return fail("the features to the GPU");
    if (t->sharded[k]) {
        if (sharded_cosface(t, k, lo, n, Gk, off, stats)) return -1;
    } else if (n > 0) {   // CosFace on this rank's rows, divided by the global row count
        if (task_cosface(t, k, dev->feat_bn + o, labels, n, (double)Gk, dev->dfeat_bn + o, &loss, &correct)) return -1;
        *loss_sum = loss, *correct_sum = correct;
        if (gpu_download(dev->g, t->df_bn + o, dev->dfeat_bn + o, bytes)) return fail("the feature gradients");
    }
    if (c->triplet[k]) {   // on the task's global batch; this rank takes its rows of the gradient
        size_t *cnt = ufo_comm_split_counts(t->comm, Gk, (size_t)D * sizeof(float));
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
    const size_t bucket = UFO_GRAD_BUCKET;
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
    // trainer.c's classifier steps on the device, clipped per task: a head
    // neither sharded nor sampled by its own norm (the pieces ufo_sgd_step_device
    // sums); a sampled head's rows not kept keep their weights and momentum,
    // and it is clipped by the norm of the task's whole gradient: its rows not
    // kept are 0 (zeroed each step, the kept rows' gradient added in), so one
    // sum of squares over the task's block is the kept rows'. A sharded
    // classifier is clipped by the whole tensor's norm, the shards' sums over
    // the host group (zero_step's pattern).
    int D = t->model->cfg.dim, ns = 0;
    double sums[UFO_NUM_TASKS] = {0}, norm[UFO_NUM_TASKS], given[UFO_NUM_TASKS];
    ufo_sgd_segment seg[UFO_NUM_TASKS];
    // Every rank calls this when sharded, so a device failure ends the job.
    if (ufo_sgd_sumsq_device(ctx(t), h->grad, h->part, h->part_n, h->n, h->seg, h->nseg, sums)) {
        if (!h->any_shard) return -1;
        ufo_comm_abort(t->comm, 1, "step %ld: %s", t->step, ufo_error());
    }
    if (h->any_shard) {   // the shards' parts; a replicated head's sum is whole on every rank already
        double part[UFO_NUM_TASKS];
        for (int i = 0; i < h->nseg; i++) part[i] = t->sharded[h->seg_task[i]] ? sums[i] : 0;
        ufo_comm_allreduce_sum_f64(t->comm, part, (size_t)h->nseg, "Partial-FC gradient norm (GPU)");
        for (int i = 0; i < h->nseg; i++)
            if (t->sharded[h->seg_task[i]]) sums[i] = part[i];
    }
    for (int i = 0; i < h->nseg; i++) {   // all checked before anything moves, as one host step
        norm[i] = sqrt(sums[i]);
        if (!isfinite(norm[i]))
            return ufo_errorf("sgd: the %s classifier's gradient is not finite", vit_task_name(h->seg_task[i]));
        if (!t->sampled[h->seg_task[i]]) seg[ns] = h->seg[i], given[ns++] = norm[i];
    }
    if (ns && ufo_sgd_step_device_ex(ctx(t), h->cls, h->grad, h->mom, h->part, h->part_n, h->n, seg, ns, lr,
                                     &t->cfg.sgd, NULL, given))
        return -1;
    for (int i = 0; i < h->nseg; i++) {   // the sampled heads: their kept rows of this rank, one launch each
        int k = h->seg_task[i], klo, nk;
        size_t o = h->off[k];
        if (!t->sampled[k]) continue;
        if (upload_kept(t, k, &klo, &nk)) return -1;
        if (nk && ufo_sgd_step_device_rows(ctx(t), h->cls + o, h->grad + o, h->mom + o, h->rows, nk, D,
                                           h->seg[i].weight_decay, h->seg[i].lr_mult, lr, &t->cfg.sgd, norm[i]))
            return ufo_error_wrap("the %s classifier's kept rows", vit_task_name(k));
    }
    return 0;
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
