// One multi-task training step of the AllInOne model (SPEC section 4): a
// heterogeneous batch (every task's images in one backbone pass), per task a
// BNNeck in training mode, CosFace on the post-BN feature and (where enabled)
// batch-hard triplet on the pre-BN feature, losses summed with weight 1, then
// SGD with momentum, L2 decay and per-tensor clipping on every parameter,
// classifiers included, at the warmup + cosine learning rate of the step.
//
// Data parallel (cfg.comm with several ranks): every rank passes its slice of
// the global batch, per task t the rows ufo_comm_split(G_t, size, rank) of the
// task's G_t global rows (what ufo_loader gives a rank). The step is the one
// a single process would take on the global batch, up to fp32 summation
// order: drop-path draws are the global batch's (each rank keeps those of its
// global sample indices), BNNecks are synchronised, batch-hard triplet runs on
// the all-gathered features and labels of the task (each rank takes back the
// gradient rows of its own samples), losses are divided by the global batch,
// so the gradients of the ranks are SUMMED (bucketed all-reduce over the
// contiguous gradient buffer) and then clipped per tensor. A classifier with
// more than cfg.shard_classes_above classes is split by class over the ranks
// (Partial-FC, see cosface.h): each rank keeps, updates and checkpoints (via
// rank 0) only classes [shard_lo, shard_hi).
#pragma once
#include "base/rng.h"
#include "dist/comm.h"
#include "model/vit_train.h"
#include "train/cosface.h"
#include "train/lr_schedule.h"
#include "train/sgd.h"
#include "train/triplet.h"

typedef struct {
    int classes[UFO_NUM_TASKS];      // 0: task not trained
    float cos_s[UFO_NUM_TASKS], cos_m[UFO_NUM_TASKS];
    int triplet[UFO_NUM_TASKS];      // 1: add the triplet loss (person, vehicle, product)
    float triplet_margin;            // 0: soft margin (SPEC)
    float drop_path;                 // rate of the last block (0.2 in the seed)
    float bn_momentum;               // 0.1 (PyTorch convention)
    float weight_decay;              // 1e-4 on every tensor
    ufo_sgd_opts sgd;
    ufo_lr_schedule lr;
    vit_backend backend;
    ufo_precision prec;
    int recompute;
    int batch_cap;                   // largest batch (sum over tasks; the GLOBAL batch when data parallel)
    uint64_t seed;                   // classifier init and drop path
    ufo_comm *comm;                  // NULL or size 1: one process
    int shard_classes_above;         // data parallel: shard classifiers with more classes; 0: never
    ufo_comm *dev_comm;              // data parallel with CUDA: the same ranks over DEVICE buffers
                                     // (NCCL, src/dist/cuda): the model's gradient all-reduce
} ufo_train_config;

// SPEC's recipe for the given tasks' class counts: s/m per head, triplet on all
// but face, drop path 0.2, SGD 0.9 / 1e-4 / clip 5, lr 0.2 warmup 10% cosine to 2%.
void ufo_train_config_default(ufo_train_config *c, const int classes[UFO_NUM_TASKS], long total_steps);

typedef struct {
    vit_model *model;                // owned by the caller; trained in place
    ufo_train_config cfg;
    vit_train_state st;
    float *cls, *cls_grad, *cls_mom; // classifiers, task t at cls_off[t]: [classes[t], D]
    size_t cls_off[UFO_NUM_TASKS + 1];
    float *mom;                      // momentum of the model parameters [model->n_floats]
    ufo_sgd_segment *seg, *cls_seg;
    int nseg, ncls_seg;
    float *df, *df_bn, *drop;        // per-step scratch
    long step;                       // steps done
    ufo_rng rng;                     // drop path draws
    // Data parallel (size 1: none of this is used).
    ufo_comm *comm;
    int rank, size;
    int sharded[UFO_NUM_TASKS], shard_lo[UFO_NUM_TASKS], shard_hi[UFO_NUM_TASKS];  // classes held
    int cls_seg_task[UFO_NUM_TASKS];
    float *gx, *gdx, *gdrop;         // gathered task features / their gradients, global drop-path scales
    int32_t *glab;
} ufo_trainer;

typedef struct {
    double loss;                     // sum over tasks
    double cosface[UFO_NUM_TASKS], triplet[UFO_NUM_TASKS], accuracy[UFO_NUM_TASKS];
    double lr;
    long step;                       // the step just taken (0-based)
} ufo_step_stats;

// Classifiers are initialised N(0, 0.001^2) from cfg.seed.
int ufo_trainer_init(ufo_trainer *t, vit_model *m, const ufo_train_config *cfg);
void ufo_trainer_free(ufo_trainer *t);
// images [n, 3, S, S] grouped by task (counts[t] of task t, in task order),
// labels [n] class ids within each task.
int ufo_trainer_step(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                     ufo_step_stats *stats);
// Forward + losses + backward only (gradients left in t->st.grads / t->cls_grad,
// all-reduced when data parallel; with CUDA the model's gradients are on the
// device: vit_train_grads_to_host), no update.
int ufo_trainer_grad(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                     ufo_step_stats *stats);

// Checkpoints: one safetensors file (written atomically) with the model in
// ufo naming, the classifiers ("classifier.<task>.weight"), every momentum
// buffer ("optimizer.momentum.<name>"), and in the metadata the step, the RNG
// state and the training configuration. `extra_keys/vals` add metadata
// (e.g. the data sampler's state). Loading checks that the file matches the
// trainer's model and classifier shapes and refuses anything else.
// CUDA (cfg.backend VIT_BACKEND_CUDA): the model's parameters, gradients and
// momentum live on the GPU during training (the classifiers, CosFace and
// triplet stay on the host); this copies the parameters to model->params and
// the momentum to t->mom (before saving or evaluating the model). A no-op on
// the CPU. Save and load do it themselves.
int ufo_trainer_sync_host(ufo_trainer *t);

int ufo_trainer_save(const ufo_trainer *t, const char *path, const char *const *extra_keys,
                     const char *const *extra_vals, int n_extra);
int ufo_trainer_load(ufo_trainer *t, const char *path);
