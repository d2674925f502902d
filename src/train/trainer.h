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
//
// Partial-FC class sampling (cfg.pfc_sample_rate < 1, pfc.h): a classifier
// with more than cfg.shard_classes_above classes (sharded or not, so one
// process and N take the same steps) runs each step's CosFace over the kept
// classes only: every label of the global batch plus uniform negatives,
// drawn from (seed, step, task, global labels). Only kept rows are updated:
// a row not drawn keeps its weights AND its momentum (no decay, no momentum
// step), as insightface's PartialFC (v1) does by swapping the sampled rows and
// their momentum in and out of the optimiser. (PartialFC_V2 indexes a dense
// Parameter instead, so torch's SGD decays every row and moves it by its old
// momentum although it had no gradient; we keep v1's rule: a class that was
// not in the softmax has no evidence for any move, and the update costs
// O(kept rows).) Its clipping norm is that of the whole (sparse) gradient.
//
// ZeRO stage 1 (cfg.zero, data parallel): rank r holds the SGD momentum of
// the model only for its slice [zlo, zhi) of the flat parameter buffer
// (ufo_comm_split of n_floats, as size_t). The gradients are reduce-scattered
// (each rank receives the sum of its slice, in zgrad; with CUDA the device's
// grad_slice, over the device group), the
// per-tensor clipping norms are the all-reduced sums of squares of each
// tensor's parts in every slice (a tensor may span slices), each rank updates
// its slice of the parameters, and the parameters are all-gathered. The
// classifiers are not part of it (sharded ones are split already; replicated
// ones are small). Checkpoints hold the full momentum (gathered by rank 0), so
// a ZeRO run resumes under any process count with ZeRO on or off.
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
    double pfc_sample_rate;          // < 1: Partial-FC class sampling (pfc.h) of the classifiers with
                                     // more than shard_classes_above classes, in one process too; 0 = 1 = off
    int zero;                        // 1: ZeRO stage 1 under mpirun (below); 0: off
} ufo_train_config;

// SPEC's recipe for the given tasks' class counts: s/m per head, triplet on all
// but face, drop path 0.2, SGD 0.9 / 1e-4 / clip 5, lr 0.2 warmup 10% cosine to 2%.
void ufo_train_config_default(ufo_train_config *c, const int classes[UFO_NUM_TASKS], long total_steps);

typedef struct ufo_heads_cuda ufo_heads_cuda;

typedef struct {
    vit_model *model;                // owned by the caller; trained in place
    ufo_train_config cfg;
    vit_train_state st;
    float *cls, *cls_grad, *cls_mom; // classifiers, task t at cls_off[t]: [classes[t], D]
    size_t cls_off[UFO_NUM_TASKS + 1];
    float *mom;                      // momentum of the model parameters [model->n_floats] (ZeRO: [zhi - zlo])
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
    // Partial-FC sampling: sampled[k], this step's kept classes (global ids, ascending).
    int sampled[UFO_NUM_TASKS], *kept[UFO_NUM_TASKS], nkept[UFO_NUM_TASKS];
    ufo_sgd_segment *step_seg;       // the classifier update's segments (kept row runs)
    double *step_given;
    // ZeRO stage 1: mom holds [zlo, zhi) only; zgrad that slice's summed gradient.
    int zero;
    size_t zlo, zhi;
    float *zgrad;
    ufo_sgd_segment *zseg;           // t->seg cut to the slice (offsets from zlo)
    int *zseg_of, nzseg;             // zseg[i] is a part of seg[zseg_of[i]]
    // CUDA, data parallel without ZeRO: [q_lo, q_hi) of the gradients whose
    // all-reduce the backward queued block by block (overlapped with it).
    size_t q_lo, q_hi;
    // CUDA (train/heads_cuda.h): the heads neither Partial-FC sampled nor sharded
    // (dev_task[k]) run on the device, their classifiers, gradients and momentum
    // live there; NULL: every head on the host.
    ufo_heads_cuda *dev_heads;
    int dev_task[UFO_NUM_TASKS];
} ufo_trainer;

// Floats per gradient collective (32 MB; MPI counts are ints).
#define UFO_GRAD_BUCKET ((size_t)1 << 23)

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
// device: vit_train_grads_to_host, and with device heads the classifiers'
// too: ufo_trainer_sync_host; with ZeRO only this rank's slice is summed,
// in t->zgrad), no update.
int ufo_trainer_grad(ufo_trainer *t, const float *images, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                     ufo_step_stats *stats);

// Checkpoints: one safetensors file (written atomically) with the model in
// ufo naming, the classifiers ("classifier.<task>.weight"), every momentum
// buffer ("optimizer.momentum.<name>"), and in the metadata the step, the RNG
// state and the training configuration. `extra_keys/vals` add metadata
// (e.g. the data sampler's state). Loading checks that the file matches the
// trainer's model and classifier shapes and refuses anything else.
// CUDA (cfg.backend VIT_BACKEND_CUDA): the model's parameters, gradients and
// momentum live on the GPU during training, and the heads that are neither
// Partial-FC sampled nor sharded too (their classifiers, CosFace and triplet:
// t->dev_heads, train/heads_cuda.h; the others stay on the host); this copies
// the parameters to model->params, the momentum to t->mom and the device
// heads' classifiers, momentum and gradient to t->cls, t->cls_mom, t->cls_grad
// (before saving or evaluating the model). A no-op on the CPU. Save and load
// do it themselves.
int ufo_trainer_sync_host(ufo_trainer *t);

int ufo_trainer_save(const ufo_trainer *t, const char *path, const char *const *extra_keys,
                     const char *const *extra_vals, int n_extra);
int ufo_trainer_load(ufo_trainer *t, const char *path);
