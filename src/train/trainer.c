// The training step and its checkpoints. See trainer.h.
#include "train/trainer.h"
#include "base/error.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "model/vit_io.h"
#include "train/heads_cuda.h"
#include "train/pfc.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ufo_train_config_default(ufo_train_config *c, const int classes[UFO_NUM_TASKS], long total_steps) {
    memset(c, 0, sizeof *c);
    static const float s[UFO_NUM_TASKS] = {50, 30, 20, 30}, m[UFO_NUM_TASKS] = {0.3f, 0.2f, 0.2f, 0.2f};
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        c->classes[t] = classes[t];
        c->cos_s[t] = s[t];
        c->cos_m[t] = m[t];
        c->triplet[t] = t != UFO_TASK_FACE;
    }
    c->drop_path = 0.2f;
    c->bn_momentum = 0.1f;
    c->weight_decay = 1e-4f;
    ufo_sgd_defaults(&c->sgd);
    ufo_lr_schedule_default(&c->lr, 0.2, total_steps);
    c->backend = VIT_BACKEND_CPU;
    c->prec = UFO_PREC_FP32;
    c->batch_cap = 64;
}

// Classifier k's rows on this rank: all of them, or its Partial-FC shard.
static void plan_shards(ufo_trainer *t) {
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        int C = t->cfg.classes[k];
        t->sharded[k] = t->size > 1 && t->cfg.shard_classes_above > 0 && C > t->cfg.shard_classes_above && C >= t->size;
        t->shard_lo[k] = 0, t->shard_hi[k] = C;
        if (t->sharded[k]) ufo_comm_split(C, t->size, t->rank, &t->shard_lo[k], &t->shard_hi[k]);
    }
}

int ufo_trainer_init(ufo_trainer *t, vit_model *m, const ufo_train_config *cfg) {
    memset(t, 0, sizeof *t);
    t->model = m;
    t->cfg = *cfg;
    t->comm = cfg->comm && cfg->comm->size > 1 ? cfg->comm : NULL;
    t->rank = t->comm ? t->comm->rank : 0;
    t->size = t->comm ? t->comm->size : 1;
    // A rank holds at most its share of every task's rows.
    int D = m->cfg.dim, gcap = cfg->batch_cap;
    int cap = t->size == 1 ? gcap : (gcap + t->size - 1) / t->size + UFO_NUM_TASKS;
    if (cap > gcap) cap = gcap;
    plan_shards(t);
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (cfg->classes[k] < 0) return ufo_errorf("task %s: %d classes", vit_task_name(k), cfg->classes[k]);
        t->cls_off[k + 1] = t->cls_off[k] + (size_t)(t->shard_hi[k] - t->shard_lo[k]) * D;
    }
    size_t ncls = t->cls_off[UFO_NUM_TASKS];
    if (cfg->backend == VIT_BACKEND_CUDA && t->comm && (!cfg->dev_comm || cfg->dev_comm->size != t->size))
        return ufo_errorf("data-parallel training on CUDA needs NCCL (this ufo was built without it): "
                          "run one process, or train with --device cpu under mpirun");
    const double rate = cfg->pfc_sample_rate;
    if (!(rate >= 0 && rate <= 1)) return ufo_errorf("Partial-FC sample rate %g is outside (0, 1]", rate);
    if (cfg->zero < 0 || cfg->zero > 1) return ufo_errorf("ZeRO stage %d: only stage 1 (or 0, off) exists", cfg->zero);
    int nkept_cap = UFO_NUM_TASKS;   // classifier update segments: at most one per kept row
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        t->sampled[k] = rate > 0 && rate < 1 && cfg->shard_classes_above > 0 && cfg->classes[k] > cfg->shard_classes_above;
        nkept_cap += t->shard_hi[k] - t->shard_lo[k];
    }
    t->zero = t->comm && cfg->zero;
    size_t nf = m->n_floats;
    t->zlo = t->zero ? nf * (size_t)t->rank / (size_t)t->size : 0;
    t->zhi = t->zero ? nf * (size_t)(t->rank + 1) / (size_t)t->size : nf;
    if (vit_train_init(&t->st, m, cfg->backend, cfg->prec, cap, cfg->recompute)) return -1;
    if (vit_train_optimizer_init(&t->st, t->zlo, t->zhi)) {
        vit_train_free(&t->st);
        return -1;
    }
    t->st.comm = t->comm;
    t->cls = ufo_alloc((ncls ? ncls : 1) * sizeof(float));
    t->cls_grad = ufo_calloc((ncls ? ncls : 1) * sizeof(float));
    t->cls_mom = ufo_calloc((ncls ? ncls : 1) * sizeof(float));
    t->mom = ufo_calloc((t->zhi - t->zlo + 1) * sizeof(float));
    t->df = ufo_alloc((size_t)cap * D * sizeof(float));
    t->df_bn = ufo_alloc((size_t)cap * D * sizeof(float));
    t->drop = ufo_alloc((size_t)m->cfg.depth * 2 * cap * sizeof(float));
    t->seg = calloc((size_t)m->n_params, sizeof *t->seg);
    t->cls_seg = calloc(UFO_NUM_TASKS, sizeof *t->cls_seg);
    int dp_ok = 1;
    for (int k = 0; k < UFO_NUM_TASKS; k++)
        if (t->sampled[k]) dp_ok &= (t->kept[k] = malloc(sizeof(int) * (size_t)cfg->classes[k])) != NULL;
    t->step_seg = calloc((size_t)nkept_cap, sizeof *t->step_seg);
    t->step_given = calloc((size_t)nkept_cap, sizeof *t->step_given);
    dp_ok &= t->step_seg && t->step_given;
    if (t->zero) {   // CUDA: the gradient slice is on the device (vit_train_device's grad_slice)
        if (!vit_train_device_of(&t->st)) t->zgrad = ufo_alloc((t->zhi - t->zlo + 1) * sizeof(float));
        t->zseg = calloc((size_t)m->n_params + 1, sizeof *t->zseg);
        t->zseg_of = calloc((size_t)m->n_params + 1, sizeof *t->zseg_of);
        dp_ok &= (t->zgrad || vit_train_device_of(&t->st)) && t->zseg && t->zseg_of;
    }
    if (t->comm) {
        t->gx = ufo_alloc((size_t)gcap * D * sizeof(float));
        t->gdx = ufo_alloc((size_t)gcap * D * sizeof(float));
        t->gdrop = ufo_alloc((size_t)m->cfg.depth * 2 * gcap * sizeof(float));
        t->glab = ufo_alloc((size_t)gcap * sizeof(int32_t));
        dp_ok = t->gx && t->gdx && t->gdrop && t->glab;
    }
    if (!t->cls || !t->cls_grad || !t->cls_mom || !t->mom || !t->df || !t->df_bn || !t->drop || !t->seg ||
        !t->cls_seg || !dp_ok) {
        ufo_trainer_free(t);
        return ufo_errorf("out of memory for the trainer");
    }
    // Every parameter tensor is one SGD segment (per-tensor clipping), decay on all.
    // BatchNorm running statistics live in the parameter buffer but are not trained.
    for (int i = 0; i < m->n_params; i++)
        if (m->table[i].kind != P_BN_MEAN && m->table[i].kind != P_BN_VAR)
            t->seg[t->nseg++] = (ufo_sgd_segment){m->table[i].offset, m->table[i].numel, cfg->weight_decay, 1.0f};
    // ZeRO: the parts of the segments inside this rank's slice.
    for (int i = 0; t->zero && i < t->nseg; i++) {
        size_t a = t->seg[i].offset, b = a + t->seg[i].size;
        a = a > t->zlo ? a : t->zlo, b = b < t->zhi ? b : t->zhi;
        if (a >= b) continue;
        t->zseg[t->nzseg] = t->seg[i];
        t->zseg[t->nzseg].offset = a - t->zlo, t->zseg[t->nzseg].size = b - a;
        t->zseg_of[t->nzseg++] = i;
    }
    for (int k = 0; k < UFO_NUM_TASKS; k++)
        if (cfg->classes[k]) {
            t->cls_seg_task[t->ncls_seg] = k;
            t->cls_seg[t->ncls_seg++] = (ufo_sgd_segment){t->cls_off[k], t->cls_off[k + 1] - t->cls_off[k],
                                                          cfg->weight_decay, 1.0f};
        }
    ufo_rng_seed(&t->rng, cfg->seed);
    ufo_rng init;
    ufo_rng_seed(&init, cfg->seed ^ 0x636c6173736966ull);  // "classif"
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (!cfg->classes[k]) continue;
        if (!t->sharded[k]) {
            ufo_cosface_init(t->cls + t->cls_off[k], cfg->classes[k], D, &init);
            continue;
        }
        // A shard keeps its rows of the whole tensor's draws (the stream goes on
        // for the next task exactly as in one process).
        float *w = t->cls + t->cls_off[k];
        for (size_t r = 0; r < (size_t)cfg->classes[k]; r++)
            for (int d = 0; d < D; d++) {
                float v = (float)(0.001 * ufo_rng_normal(&init));
                if ((int)r >= t->shard_lo[k] && (int)r < t->shard_hi[k]) w[(r - t->shard_lo[k]) * D + d] = v;
            }
    }
    if (ufo_heads_cuda_wanted(t) && ufo_heads_cuda_init(t)) {   // the heads on the GPU too
        ufo_trainer_free(t);
        return -1;
    }
    return 0;
}

void ufo_trainer_free(ufo_trainer *t) {
    ufo_heads_cuda_free(t);   // before the device context goes
    vit_train_free(&t->st);
    float *bufs[] = {t->cls, t->cls_grad, t->cls_mom, t->mom, t->df, t->df_bn, t->drop, t->gx, t->gdx, t->gdrop};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) ufo_free(bufs[i]);
    ufo_free(t->glab);
    ufo_free(t->zgrad);
    for (int k = 0; k < UFO_NUM_TASKS; k++) free(t->kept[k]);
    free(t->step_seg);
    free(t->step_given);
    free(t->zseg);
    free(t->zseg_of);
    free(t->seg);
    free(t->cls_seg);
    memset(t, 0, sizeof *t);
}

static double uniform(void *rng) { return ufo_rng_uniform(rng); }

// ---- Partial-FC class sampling -------------------------------------------------

// This step's kept classes of task k from the global batch's labels (pfc.h).
// Test hook: UFO_TEST_PFC_DUMP=FILE makes rank 0 append "step task C: labels | kept".
static int pfc_draw(ufo_trainer *t, int k, const int32_t *glabels, int G) {
    int nk = ufo_pfc_sample(t->cfg.classes[k], t->cfg.pfc_sample_rate, glabels, G, t->cfg.seed, t->step, k, t->kept[k]);
    if (nk < 0) return ufo_error_wrap("%s classifier", vit_task_name(k));
    t->nkept[k] = nk;
    const char *dump = getenv("UFO_TEST_PFC_DUMP");
    FILE *f = dump && t->rank == 0 ? fopen(dump, "a") : NULL;
    if (f) {
        fprintf(f, "%ld %d %d:", t->step, k, t->cfg.classes[k]);
        for (int i = 0; i < G; i++) fprintf(f, " %d", (int)glabels[i]);
        fprintf(f, " |");
        for (int i = 0; i < nk; i++) fprintf(f, " %d", t->kept[k][i]);
        fprintf(f, "\n");
        fclose(f);
    }
    return 0;
}

// Task k's CosFace on this rank's classifier rows (classes of them), over the
// kept classes when sampled.
static int task_cosface(ufo_trainer *t, int k, const float *f, const int32_t *lab, int n, int classes,
                        const ufo_cosface_opts *co, float *df, ufo_cosface_result *cr) {
    int D = t->model->cfg.dim;
    const float *W = t->cls + t->cls_off[k];
    float *dW = t->cls_grad + t->cls_off[k];
    if (t->sampled[k]) return ufo_pfc_cosface(f, W, lab, n, D, classes, co, t->kept[k], t->nkept[k], df, dW, cr);
    return ufo_cosface(f, W, lab, n, D, classes, co, df, dW, cr);
}

// ---- data parallel helpers -------------------------------------------------------

// Global rows per task (G) and this rank's offset in each task's rows (off);
// the local counts must be this rank's ufo_comm_split share.
static void global_counts(ufo_trainer *t, const int counts[UFO_NUM_TASKS], int G[UFO_NUM_TASKS],
                          int off[UFO_NUM_TASKS]) {
    double g[UFO_NUM_TASKS];
    for (int k = 0; k < UFO_NUM_TASKS; k++) g[k] = counts[k];
    ufo_comm_allreduce_sum_f64(t->comm, g, UFO_NUM_TASKS, "batch sizes");
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        int hi;
        G[k] = (int)g[k];
        ufo_comm_split(G[k], t->size, t->rank, &off[k], &hi);
        if (hi - off[k] != counts[k])
            ufo_comm_abort(t->comm, 1, "trainer: %d %s rows on this rank, expected %d of the global %d", counts[k],
                           vit_task_name(k), hi - off[k], G[k]);
    }
}

// dst [G rows] = every rank's rows of task k, in rank order (= global order).
static void gather_rows(ufo_trainer *t, const void *src, size_t row_bytes, int Gk, void *dst, const char *what) {
    size_t *cnt = ufo_comm_split_counts(t->comm, Gk, row_bytes);
    ufo_comm_allgatherv(t->comm, src, dst, cnt, what);
    free(cnt);
}

// Drop-path scales of this rank's rows: those the single process draws for
// the same global sample indices.
static void local_drop(ufo_trainer *t, const int counts[UFO_NUM_TASKS], const int G[UFO_NUM_TASKS],
                       const int off[UFO_NUM_TASKS], int n, int N) {
    vit_drop_path_scales(&t->model->cfg, t->cfg.drop_path, N, uniform, &t->rng, t->gdrop);
    for (int l = 0; l < 2 * t->model->cfg.depth; l++)
        for (int k = 0, lo = 0, glo = 0; k < UFO_NUM_TASKS; lo += counts[k], glo += G[k], k++)
            for (int i = 0; i < counts[k]; i++)
                t->drop[(size_t)l * n + lo + i] = t->gdrop[(size_t)l * N + glo + off[k] + i];
}

// ZeRO's collectives go bucket by bucket: for the bucket starting at o,
// counts[r] = how many of its values lie in rank r's slice (times `unit`);
// returns where this rank's part of the bucket starts (in the flat buffer).
static size_t slice_counts(const ufo_trainer *t, size_t o, size_t unit, size_t *counts) {
    size_t n = t->model->n_floats, end = n - o < UFO_GRAD_BUCKET ? n : o + UFO_GRAD_BUCKET;
    for (int r = 0; r < t->size; r++) {
        size_t a = n * (size_t)r / (size_t)t->size, b = n * (size_t)(r + 1) / (size_t)t->size;
        a = a > o ? a : o, b = b < end ? b : end;
        counts[r] = a < b ? (b - a) * unit : 0;
    }
    return o < t->zlo ? t->zlo : o > t->zhi ? t->zhi : o;
}

// ZeRO's buffers, on the host or (CUDA) on the device with the device group.
typedef struct {
    ufo_comm *comm;
    float *params, *grads, *zgrad, *mom;   // zgrad, mom: this rank's slice
    void *gpu;                             // CUDA: the device context (else NULL)
} zero_bufs;

static zero_bufs zero_bufs_of(ufo_trainer *t) {
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (dev) return (zero_bufs){t->cfg.dev_comm, dev->params, dev->grads, dev->grad_slice, dev->mom, dev->g};
    return (zero_bufs){t->comm, t->model->params, t->st.grads, t->zgrad, t->mom, NULL};
}

// ZeRO: zgrad = the sum over ranks of this rank's slice of the gradients,
// bucket by bucket (MPI counts are ints).
static void reduce_scatter_grads(ufo_trainer *t) {
    zero_bufs z = zero_bufs_of(t);
    size_t n = t->model->n_floats, *cnt = malloc(sizeof(size_t) * t->size);
    if (!cnt) ufo_comm_abort(t->comm, 1, "out of memory");
    for (size_t o = 0; o < n; o += UFO_GRAD_BUCKET) {
        size_t a = slice_counts(t, o, 1, cnt);
        ufo_comm_reduce_scatter_sum_f32(z.comm, z.grads + o, z.zgrad + (a - t->zlo), cnt,
                                        "gradient reduce-scatter (ZeRO)");
    }
    free(cnt);
}

// CUDA backward's grads_ready: block by block, from the last one down, each
// block's gradients are all-reduced on the NCCL stream while the GPU goes on
// with the blocks before it. The ranges arrive adjacent, descending.
static void queue_block_grads(void *ctx, size_t lo, size_t hi, void *ready) {
    ufo_trainer *t = ctx;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (t->q_lo != t->q_hi && hi != t->q_lo)
        ufo_comm_abort(t->comm, 1, "trainer: gradient range [%zu, %zu) is not next to [%zu, %zu)", lo, hi, t->q_lo,
                       t->q_hi);
    if (t->q_lo == t->q_hi) t->q_hi = hi;
    t->q_lo = lo;
    ufo_comm_allreduce_sum_f32_queued(t->cfg.dev_comm, dev->grads + lo, hi - lo, ready,
                                      "gradient all-reduce (device, overlapped)");
}

static void allreduce_grads(ufo_trainer *t) {
    size_t n = t->zero ? 0 : t->model->n_floats;   // ZeRO: the model's part is reduce-scattered
    if (t->zero) reduce_scatter_grads(t);
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (dev && n) {   // CUDA: the device buffer over the device group (NCCL); the blocks' are queued already
        ufo_comm *dc = t->cfg.dev_comm;
        ufo_comm_wait(dc, "gradient all-reduce (device, overlapped)");
        ufo_comm_allreduce_sum_f32(dc, dev->grads, t->q_lo, "gradient all-reduce (device, embedding)");
        ufo_comm_allreduce_sum_f32(dc, dev->grads + t->q_hi, n - t->q_hi, "gradient all-reduce (device, heads)");
    }
    for (size_t o = 0; o < n && !dev; o += UFO_GRAD_BUCKET)
        ufo_comm_allreduce_sum_f32(t->comm, t->st.grads + o, n - o < UFO_GRAD_BUCKET ? n - o : UFO_GRAD_BUCKET,
                                   "gradient all-reduce");
    if (t->dev_heads) ufo_heads_cuda_allreduce(t);   // CUDA: the device heads' classifiers, over the device group
    for (int k = 0; k < UFO_NUM_TASKS; k++)   // replicated classifiers; shards are complete already
        if (t->cfg.classes[k] && !t->sharded[k] && !t->dev_task[k])
            for (size_t o = t->cls_off[k]; o < t->cls_off[k + 1]; o += UFO_GRAD_BUCKET) {
                size_t len = t->cls_off[k + 1] - o < UFO_GRAD_BUCKET ? t->cls_off[k + 1] - o : UFO_GRAD_BUCKET;
                ufo_comm_allreduce_sum_f32(t->comm, t->cls_grad + o, len, "classifier gradient all-reduce");
            }
}

// One task's losses when data parallel: lo = its first local row, cnt local
// rows, Gk global rows, off = this rank's offset in them. red[k] / red[4 + k]
// collect the replicated CosFace's loss share and correct count.
static int task_losses_dp(ufo_trainer *t, int k, int lo, int cnt, int Gk, int off, const int32_t *labels,
                          ufo_step_stats *stats, double *red) {
    const ufo_train_config *c = &t->cfg;
    int D = t->model->cfg.dim;
    int need_gather = t->sharded[k] || c->triplet[k] || t->sampled[k];
    if (need_gather) gather_rows(t, labels + lo, sizeof(int32_t), Gk, t->glab, "task labels");
    if (t->sampled[k] && pfc_draw(t, k, t->glab, Gk)) return -1;   // on the host, device heads too
    if (t->dev_task[k])   // CUDA: this head on the device (train/heads_cuda.h)
        return ufo_heads_cuda_task_dp(t, k, lo, cnt, Gk, off, labels + lo, t->glab, stats, &red[k],
                                      &red[UFO_NUM_TASKS + k]);
    ufo_cosface_opts co = {.s = c->cos_s[k], .m = c->cos_m[k]};
    ufo_cosface_result cr;
    if (t->sharded[k]) {
        gather_rows(t, t->st.feat_bn + (size_t)lo * D, sizeof(float) * D, Gk, t->gx, "Partial-FC features");
        co.shard = t->comm, co.class_lo = t->shard_lo[k], co.total_classes = c->classes[k];
        if (task_cosface(t, k, t->gx, t->glab, Gk, t->shard_hi[k] - t->shard_lo[k], &co, t->gdx, &cr))
            return ufo_error_wrap("%s CosFace (sharded)", vit_task_name(k));
        memcpy(t->df_bn + (size_t)lo * D, t->gdx + (size_t)off * D, (size_t)cnt * D * sizeof(float));
        stats->cosface[k] = cr.loss, stats->accuracy[k] = cr.accuracy;
    } else if (cnt > 0) {
        co.den = Gk;
        if (task_cosface(t, k, t->st.feat_bn + (size_t)lo * D, labels + lo, cnt, c->classes[k], &co,
                         t->df_bn + (size_t)lo * D, &cr))
            return ufo_error_wrap("%s CosFace", vit_task_name(k));
        red[k] = cr.loss, red[UFO_NUM_TASKS + k] = cr.correct;
    }
    if (c->triplet[k]) {
        gather_rows(t, t->st.feat + (size_t)lo * D, sizeof(float) * D, Gk, t->gx, "triplet features");
        ufo_triplet_result tr;
        if (ufo_triplet(t->gx, t->glab, Gk, D, c->triplet_margin, t->gdx, NULL, NULL, &tr))
            return ufo_error_wrap("%s triplet", vit_task_name(k));
        memcpy(t->df + (size_t)lo * D, t->gdx + (size_t)off * D, (size_t)cnt * D * sizeof(float));
        stats->triplet[k] = tr.loss;
    }
    return 0;
}

static int grad_dp(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                   ufo_step_stats *stats) {
    const ufo_train_config *c = &t->cfg;
    int D = t->model->cfg.dim, n = 0, N = 0, G[UFO_NUM_TASKS], off[UFO_NUM_TASKS];
    global_counts(t, counts, G, off);
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (G[k] && !c->classes[k])
            return ufo_errorf("batch has %d %s images but that task is not trained", G[k], vit_task_name(k));
        n += counts[k], N += G[k];
    }
    const float *drop = NULL;
    if (c->drop_path > 0) {
        local_drop(t, counts, G, off, n, N);
        drop = t->drop;
    }
    memcpy(t->st.total, G, sizeof G);
    if (vit_train_forward(&t->st, images, n, counts, drop, c->bn_momentum)) return -1;
    if (t->dev_heads && ufo_heads_cuda_begin(t)) return -1;
    memset(t->df, 0, (size_t)n * D * sizeof(float));
    double red[2 * UFO_NUM_TASKS] = {0};
    for (int k = 0, lo = 0; k < UFO_NUM_TASKS; lo += counts[k], k++)
        if (G[k] && task_losses_dp(t, k, lo, counts[k], G[k], off[k], labels, stats, red)) return -1;
    ufo_comm_allreduce_sum_f64(t->comm, red, 2 * UFO_NUM_TASKS, "training statistics");
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (G[k] && !t->sharded[k]) stats->cosface[k] = red[k], stats->accuracy[k] = red[UFO_NUM_TASKS + k] / G[k];
        stats->loss += stats->cosface[k] + stats->triplet[k];
    }
    const vit_train_device *dev = vit_train_device_of(&t->st);
    t->q_lo = t->q_hi = 0;
    if (dev && !t->zero) t->st.grads_ready = queue_block_grads, t->st.grads_ready_ctx = t;
    int rc = vit_train_backward(&t->st, t->df, t->df_bn);
    t->st.grads_ready = NULL;
    if (rc) return -1;
    allreduce_grads(t);
    return 0;
}

// ---- the step ---------------------------------------------------------------------

int ufo_trainer_grad(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                     ufo_step_stats *stats) {
    const ufo_train_config *c = &t->cfg;
    int D = t->model->cfg.dim, n = 0;
    memset(stats, 0, sizeof *stats);
    stats->step = t->step;
    vit_train_zero_grad(&t->st);
    for (int k = 0; k < UFO_NUM_TASKS; k++)   // the device heads' gradients are zeroed there
        if (!t->dev_task[k])
            memset(t->cls_grad + t->cls_off[k], 0, (t->cls_off[k + 1] - t->cls_off[k]) * sizeof(float));
    memset(t->nkept, 0, sizeof t->nkept);   // a task without rows this step keeps (updates) no class
    if (t->comm) return grad_dp(t, images, counts, labels, stats);
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (counts[k] && !c->classes[k])
            return ufo_errorf("batch has %d %s images but that task is not trained", counts[k], vit_task_name(k));
        n += counts[k];
    }
    const float *drop = NULL;
    if (c->drop_path > 0) {
        vit_drop_path_scales(&t->model->cfg, c->drop_path, n, uniform, &t->rng, t->drop);
        drop = t->drop;
    }
    if (vit_train_forward(&t->st, images, n, counts, drop, c->bn_momentum)) return -1;
    if (t->dev_heads && ufo_heads_cuda_begin(t)) return -1;
    memset(t->df, 0, (size_t)n * D * sizeof(float));
    for (int k = 0, lo = 0; k < UFO_NUM_TASKS; lo += counts[k], k++) {
        if (!counts[k]) continue;
        if (t->sampled[k] && pfc_draw(t, k, labels + lo, counts[k])) return -1;   // on the host, device heads too
        if (t->dev_task[k]) {   // CUDA: this head on the device (train/heads_cuda.h)
            if (ufo_heads_cuda_task(t, k, lo, counts[k], labels + lo, stats)) return -1;
            continue;
        }
        ufo_cosface_opts co = {.s = c->cos_s[k], .m = c->cos_m[k]};
        ufo_cosface_result cr;
        if (task_cosface(t, k, t->st.feat_bn + (size_t)lo * D, labels + lo, counts[k], c->classes[k], &co,
                         t->df_bn + (size_t)lo * D, &cr))
            return ufo_error_wrap("%s CosFace", vit_task_name(k));
        stats->cosface[k] = cr.loss;
        stats->accuracy[k] = cr.accuracy;
        stats->loss += cr.loss;
        if (c->triplet[k]) {
            ufo_triplet_result tr;
            if (ufo_triplet(t->st.feat + (size_t)lo * D, labels + lo, counts[k], D, c->triplet_margin,
                            t->df + (size_t)lo * D, NULL, NULL, &tr))
                return ufo_error_wrap("%s triplet", vit_task_name(k));
            stats->triplet[k] = tr.loss;
            stats->loss += tr.loss;
        }
    }
    if (t->dev_heads) return ufo_heads_cuda_backward(t, counts);   // the host heads' rows go up
    return vit_train_backward(&t->st, t->df, t->df_bn);
}

// ZeRO: the update of this rank's slice, then every rank's slice to everyone.
// A tensor that spans slices is clipped by the norm of the whole: its parts'
// sums of squares are all-reduced (zeros from the ranks without a part).
// CUDA: the same on the device buffers; the norms' sums go over the host group.
static int zero_step(ufo_trainer *t, float lr) {
    zero_bufs z = zero_bufs_of(t);
    const vit_train_device *dev = vit_train_device_of(&t->st);
    size_t ns = (size_t)t->nzseg + 1, *cnt = malloc(sizeof(size_t) * t->size), n = t->model->n_floats;
    double *sums = calloc((size_t)t->nseg + 1, sizeof(double)), *given = calloc(ns, sizeof(double)),
           *part = calloc(ns, sizeof(double));
    if (!sums || !given || !part || !cnt) ufo_comm_abort(t->comm, 1, "out of memory (ZeRO step)");
    int rc = 0;
    if (dev) rc = ufo_sgd_sumsq_device(z.gpu, z.zgrad, dev->part, dev->part_n, t->zhi - t->zlo, t->zseg, t->nzseg, part);
    else
        for (int i = 0; i < t->nzseg; i++) part[i] = ufo_sgd_sumsq(z.zgrad + t->zseg[i].offset, t->zseg[i].size);
    // A device failure is this rank's alone: end the job rather than leave the others in the all-reduce.
    if (rc) ufo_comm_abort(t->comm, 1, "step %ld: %s", t->step, ufo_error());
    for (int i = 0; i < t->nzseg; i++) sums[t->zseg_of[i]] += part[i];
    ufo_comm_allreduce_sum_f64(t->comm, sums, (size_t)t->nseg, "gradient norms (ZeRO)");
    for (int i = 0; i < t->nzseg; i++) given[i] = sqrt(sums[t->zseg_of[i]]);
    if (dev)
        rc = ufo_sgd_step_device_ex(z.gpu, z.params + t->zlo, z.zgrad, z.mom, dev->part, dev->part_n, t->zhi - t->zlo,
                                    t->zseg, t->nzseg, lr, &t->cfg.sgd, NULL, given);
    else
        rc = ufo_sgd_step_ex(z.params + t->zlo, z.zgrad, z.mom, t->zhi - t->zlo, t->zseg, t->nzseg, lr, &t->cfg.sgd,
                             NULL, given);
    // Every rank failed alike (the norms are global); the parameters stay whole.
    // The all-gather runs in place: each rank's slice is already where it belongs.
    for (size_t o = 0; o < n && rc == 0; o += UFO_GRAD_BUCKET) {
        size_t a = slice_counts(t, o, sizeof(float), cnt);
        ufo_comm_allgatherv(z.comm, z.params + a, z.params + o, cnt, "parameter all-gather (ZeRO)");
    }
    free(sums);
    free(given);
    free(part);
    free(cnt);
    return rc;
}

// Classifier update when some are sampled, or some on the device (CUDA: those
// are skipped, ufo_heads_cuda_step updates them): only the kept rows of a sampled
// classifier are segments (a row not drawn keeps weights and momentum, see
// trainer.h), clipped by the norm of the task's whole gradient (its other rows
// are 0). The others as in ufo_trainer_step.
static int sampled_classifier_step(ufo_trainer *t, float lr) {
    int D = t->model->cfg.dim, ns = 0, first[UFO_NUM_TASKS + 1], any_shard = 0;
    double sums[UFO_NUM_TASKS] = {0};
    for (int s = 0; s < t->ncls_seg; s++) {
        int k = t->cls_seg_task[s];
        first[s] = ns;
        if (t->dev_task[k]) continue;   // CUDA: updated on the device (ufo_heads_cuda_step)
        any_shard |= t->sharded[k];
        if (!t->sampled[k]) {
            t->step_seg[ns++] = t->cls_seg[s];
            if (t->sharded[k]) sums[s] = ufo_sgd_sumsq(t->cls_grad + t->cls_seg[s].offset, t->cls_seg[s].size);
            continue;
        }
        int klo, khi;
        ufo_pfc_range(t->kept[k], t->nkept[k], t->shard_lo[k], t->shard_hi[k], &klo, &khi);
        for (int j = klo; j < khi;) {   // runs of consecutive kept rows
            int e = j + 1;
            while (e < khi && t->kept[k][e] == t->kept[k][e - 1] + 1) e++;
            ufo_sgd_segment g = t->cls_seg[s];
            g.offset = t->cls_off[k] + (size_t)(t->kept[k][j] - t->shard_lo[k]) * D;
            g.size = (size_t)(e - j) * D;
            sums[s] += ufo_sgd_sumsq(t->cls_grad + g.offset, g.size);
            t->step_seg[ns++] = g;
            j = e;
        }
    }
    first[t->ncls_seg] = ns;
    if (t->comm && any_shard) ufo_comm_allreduce_sum_f64(t->comm, sums, (size_t)t->ncls_seg, "Partial-FC gradient norm");
    for (int s = 0; s < t->ncls_seg; s++) {
        int k = t->cls_seg_task[s];
        double g = t->sampled[k] || t->sharded[k] ? sqrt(sums[s]) : -1;   // -1: the SGD's own norm
        for (int i = first[s]; i < first[s + 1]; i++) t->step_given[i] = g;
    }
    if (!ns) return 0;   // every head on the device
    return ufo_sgd_step_ex(t->cls, t->cls_grad, t->cls_mom, t->cls_off[UFO_NUM_TASKS], t->step_seg, ns, lr,
                           &t->cfg.sgd, NULL, t->step_given);
}

int ufo_trainer_step(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                     ufo_step_stats *stats) {
    if (ufo_trainer_grad(t, images, counts, labels, stats)) return -1;
    float lr = (float)ufo_lr_at(&t->cfg.lr, t->step);
    stats->lr = lr;
    const vit_train_device *dev = vit_train_device_of(&t->st);
    if (t->zero) {   // host or device buffers
        if (zero_step(t, lr)) return ufo_error_wrap("step %ld", t->step);
    } else if (dev) {   // CUDA: the model's parameters, gradients and momentum stay on the device
        if (ufo_sgd_step_device(dev->g, dev->params, dev->grads, dev->mom, dev->part, dev->part_n,
                                t->model->n_floats, t->seg, t->nseg, lr, &t->cfg.sgd, NULL))
            return ufo_error_wrap("step %ld", t->step);
    } else if (ufo_sgd_step(t->model->params, t->st.grads, t->mom, t->model->n_floats, t->seg, t->nseg, lr,
                            &t->cfg.sgd, NULL))
        return ufo_error_wrap("step %ld", t->step);
    // The device heads' classifiers: their segments, the device SGD.
    if (t->dev_heads && ufo_heads_cuda_step(t, lr)) return ufo_error_wrap("step %ld (classifiers)", t->step);
    int any_sampled = 0;
    for (int k = 0; k < UFO_NUM_TASKS; k++) any_sampled |= t->sampled[k];
    if (any_sampled || t->dev_heads) {   // (it skips the device heads: the sampled ones are left, if any)
        if (t->ncls_seg && sampled_classifier_step(t, lr)) return ufo_error_wrap("step %ld (classifiers)", t->step);
        t->step++;
        return 0;
    }
    // A sharded classifier is clipped by the norm of the whole tensor.
    double given[UFO_NUM_TASKS];
    int any = 0;
    for (int s = 0; s < t->ncls_seg; s++) {
        given[s] = t->sharded[t->cls_seg_task[s]] ? ufo_sgd_sumsq(t->cls_grad + t->cls_seg[s].offset, t->cls_seg[s].size) : 0;
        any |= t->sharded[t->cls_seg_task[s]];
    }
    if (any) {
        ufo_comm_allreduce_sum_f64(t->comm, given, t->ncls_seg, "Partial-FC gradient norm");
        for (int s = 0; s < t->ncls_seg; s++) given[s] = t->sharded[t->cls_seg_task[s]] ? sqrt(given[s]) : -1;
    }
    if (t->ncls_seg && ufo_sgd_step_ex(t->cls, t->cls_grad, t->cls_mom, t->cls_off[UFO_NUM_TASKS], t->cls_seg,
                                       t->ncls_seg, lr, &t->cfg.sgd, NULL, any ? given : NULL))
        return ufo_error_wrap("step %ld (classifiers)", t->step);
    t->step++;
    return 0;
}

// ---- checkpoints ---------------------------------------------------------------

static ufo_tensor_entry entry(char *name, const float *data, int64_t d0, int64_t d1, const int64_t *shape, int ndim) {
    ufo_tensor_entry e = {.name = name, .dtype = UFO_F32, .data = data};
    if (shape) {
        e.ndim = ndim;
        memcpy(e.shape, shape, sizeof(int64_t) * ndim);
    } else {
        e.ndim = 2;
        e.shape[0] = d0;
        e.shape[1] = d1;
    }
    e.nbytes = sizeof(float) * (size_t)ufo_tensor_numel(&e);
    return e;
}

// Rank 0 gets the whole [classes, D] tensor of a sharded classifier buffer
// (full: NULL elsewhere). Every rank must call it.
static int gather_shards(const ufo_trainer *t, int k, const float *shard, float **full) {
    int D = t->model->cfg.dim, C = t->cfg.classes[k];
    *full = NULL;
    if (t->rank == 0) *full = ufo_alloc((size_t)C * D * sizeof(float));
    if (t->rank == 0 && !*full) ufo_comm_abort(t->comm, 1, "out of memory gathering the %s classifier", vit_task_name(k));
    size_t *cnt = ufo_comm_split_counts(t->comm, C, (size_t)D * sizeof(float));
    ufo_comm_gatherv(t->comm, shard, *full, cnt, 0, "checkpoint classifier shards");
    free(cnt);
    return 0;
}

// ZeRO: rank 0 gets the whole momentum buffer (NULL elsewhere). Every rank must call it.
static float *gather_momentum(const ufo_trainer *t) {
    size_t n = t->model->n_floats, *cnt = malloc(sizeof(size_t) * t->size);
    float *full = t->rank == 0 ? ufo_alloc(n * sizeof(float)) : NULL;
    if (!cnt || (t->rank == 0 && !full)) ufo_comm_abort(t->comm, 1, "out of memory gathering the momentum (ZeRO)");
    for (size_t o = 0; o < n; o += UFO_GRAD_BUCKET) {
        size_t a = slice_counts(t, o, sizeof(float), cnt);
        ufo_comm_gatherv(t->comm, t->mom + (a - t->zlo), full ? full + o : NULL, cnt, 0, "checkpoint momentum (ZeRO)");
    }
    free(cnt);
    return full;
}

int ufo_trainer_save(const ufo_trainer *t, const char *path, const char *const *extra_keys,
                     const char *const *extra_vals, int n_extra) {
    const vit_model *m = t->model;
    if (vit_train_to_host(&t->st, t->mom)) return -1;   // CUDA: the device holds the current values
    if (ufo_heads_cuda_to_host(t)) return -1;             // and the classifiers, with device heads
    float *zmom = t->zero ? gather_momentum(t) : NULL;
    const float *mom = zmom ? zmom : t->mom;
    int D = m->cfg.dim, n = 0, cap = 2 * UFO_NUM_TASKS + m->n_params;
    float *full[2 * UFO_NUM_TASKS] = {0};   // gathered shards (rank 0)
    for (int k = 0; k < UFO_NUM_TASKS; k++)
        if (t->cfg.classes[k] && t->sharded[k]) {
            gather_shards(t, k, t->cls + t->cls_off[k], &full[2 * k]);
            gather_shards(t, k, t->cls_mom + t->cls_off[k], &full[2 * k + 1]);
        }
    if (t->rank != 0) return 0;   // one writer
    ufo_tensor_entry *e = calloc((size_t)cap, sizeof *e);
    char (*names)[96] = calloc((size_t)cap, sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        ufo_free(zmom);
        for (int k = 0; k < 2 * UFO_NUM_TASKS; k++) ufo_free(full[k]);
        return ufo_errorf("out of memory");
    }
    for (int k = 0; k < UFO_NUM_TASKS; k++) {
        if (!t->cfg.classes[k]) continue;
        const float *w = full[2 * k] ? full[2 * k] : t->cls + t->cls_off[k];
        const float *mo = full[2 * k + 1] ? full[2 * k + 1] : t->cls_mom + t->cls_off[k];
        snprintf(names[n], 96, "classifier.%s.weight", vit_task_name(k));
        e[n] = entry(names[n], w, t->cfg.classes[k], D, NULL, 0), n++;
        snprintf(names[n], 96, "optimizer.momentum.classifier.%s.weight", vit_task_name(k));
        e[n] = entry(names[n], mo, t->cfg.classes[k], D, NULL, 0), n++;
    }
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->table[i];
        snprintf(names[n], 96, "optimizer.momentum.%s", p->name);
        e[n] = entry(names[n], mom + p->offset, 0, 0, p->shape, p->ndim), n++;
    }
    char vals[8][160];
    const char *keys[8 + 16];
    const char *vp[8 + 16];
    int nm = 0;
    keys[nm] = "train.step", snprintf(vals[nm], 160, "%ld", t->step), nm++;
    keys[nm] = "train.rng", snprintf(vals[nm], 160, "%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64,
                                     t->rng.s[0], t->rng.s[1], t->rng.s[2], t->rng.s[3]), nm++;
    keys[nm] = "train.classes", snprintf(vals[nm], 160, "%d,%d,%d,%d", t->cfg.classes[0], t->cfg.classes[1],
                                         t->cfg.classes[2], t->cfg.classes[3]), nm++;
    for (int i = 0; i < nm; i++) vp[i] = vals[i];
    for (int i = 0; i < n_extra && nm < 8 + 16; i++, nm++) keys[nm] = extra_keys[i], vp[nm] = extra_vals[i];
    int rc = vit_save_ex(m, path, UFO_F32, e, n, keys, vp, nm);
    free(e);
    free(names);
    for (int k = 0; k < 2 * UFO_NUM_TASKS; k++) ufo_free(full[k]);
    ufo_free(zmom);
    return rc;
}

// Copies values [from, from + n) of tensor `name` (exactly `numel` floats) into dst.
static int restore_part(const ufo_tensor_file *f, const char *path, const char *name, float *dst, size_t numel,
                        size_t from, size_t n) {
    const ufo_tensor_entry *e = ufo_tensor_file_find(f, name);
    if (!e) return ufo_errorf("%s: checkpoint has no '%s'", path, name);
    if (e->dtype != UFO_F32 || (size_t)ufo_tensor_numel(e) != numel)
        return ufo_errorf("%s: '%s' does not match this run (%s, %lld values, expected F32, %zu)", path, name,
                          ufo_dtype_name(e->dtype), (long long)ufo_tensor_numel(e), numel);
    memcpy(dst, (const float *)e->data + from, n * sizeof(float));
    return 0;
}

int ufo_trainer_load(ufo_trainer *t, const char *path) {
    ufo_tensor_file f;
    if (ufo_safetensors_open(path, &f)) return -1;
    vit_model *m = t->model;
    const char *cls = ufo_tensor_file_meta(&f, "train.classes"), *step = ufo_tensor_file_meta(&f, "train.step");
    const char *rng = ufo_tensor_file_meta(&f, "train.rng");
    char want[64];
    snprintf(want, sizeof want, "%d,%d,%d,%d", t->cfg.classes[0], t->cfg.classes[1], t->cfg.classes[2],
             t->cfg.classes[3]);
    int rc = 0;
    ufo_rng r;
    if (!cls || !step || !rng) rc = ufo_errorf("%s: not a ufo training checkpoint (no train.* metadata)", path);
    else if (strcmp(cls, want))
        rc = ufo_errorf("%s: checkpoint classes per task %s, this run has %s", path, cls, want);
    else if (sscanf(rng, "%" SCNx64 ":%" SCNx64 ":%" SCNx64 ":%" SCNx64, &r.s[0], &r.s[1], &r.s[2], &r.s[3]) != 4)
        rc = ufo_errorf("%s: bad train.rng metadata", path);
    // The model itself: shapes must match exactly (no resampling when resuming).
    vit_model loaded;
    vit_load_options lo = {.img_size = m->cfg.img_size, .num_heads = m->cfg.heads};
    if (rc == 0 && vit_from_tensors(&loaded, &f, path, &lo) == 0) {
        if (loaded.n_floats != m->n_floats || loaded.head_mask != m->head_mask || loaded.cfg.dim != m->cfg.dim ||
            loaded.cfg.depth != m->cfg.depth || loaded.cfg.mlp_hidden != m->cfg.mlp_hidden)
            rc = ufo_errorf("%s: the checkpoint's model does not match this run's", path);
        else memcpy(m->params, loaded.params, m->n_floats * sizeof(float));
        vit_free(&loaded);
    } else if (rc == 0) rc = -1;
    char name[128];
    for (int k = 0; rc == 0 && k < UFO_NUM_TASKS; k++) {
        if (!t->cfg.classes[k]) continue;
        // This rank's rows of the whole tensor (all of them unless sharded).
        size_t sz = t->cls_off[k + 1] - t->cls_off[k], all = (size_t)t->cfg.classes[k] * m->cfg.dim;
        size_t from = (size_t)t->shard_lo[k] * m->cfg.dim;
        snprintf(name, sizeof name, "classifier.%s.weight", vit_task_name(k));
        rc = restore_part(&f, path, name, t->cls + t->cls_off[k], all, from, sz);
        snprintf(name, sizeof name, "optimizer.momentum.classifier.%s.weight", vit_task_name(k));
        if (rc == 0) rc = restore_part(&f, path, name, t->cls_mom + t->cls_off[k], all, from, sz);
    }
    for (int i = 0; rc == 0 && i < m->n_params; i++) {
        snprintf(name, sizeof name, "optimizer.momentum.%s", m->table[i].name);
        // ZeRO: this rank's part of the tensor (maybe none; the entry is checked all the same).
        size_t a = m->table[i].offset, b = a + m->table[i].numel;
        a = a < t->zlo ? t->zlo : a > t->zhi ? t->zhi : a;
        b = b > t->zhi ? t->zhi : b < a ? a : b;
        rc = restore_part(&f, path, name, t->mom + (a - t->zlo), m->table[i].numel, a - m->table[i].offset, b - a);
    }
    if (rc == 0) {
        t->step = strtol(step, NULL, 10);
        t->rng = r;
    }
    ufo_tensor_file_free(&f);
    if (rc == 0) rc = vit_train_to_device(&t->st, t->mom);   // CUDA: the loaded values to the device
    if (rc == 0) rc = ufo_heads_cuda_to_device(t);
    return rc;
}

int ufo_trainer_sync_host(ufo_trainer *t) {
    return vit_train_to_host(&t->st, t->mom) || ufo_heads_cuda_to_host(t) ? -1 : 0;
}
