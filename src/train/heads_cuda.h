// The task heads on the GPU, for the CUDA trainer: the classifiers of the
// heads (of a sharded one: this rank's shard), their gradient and SGD
// momentum live on the device next to the model's, their CosFace and
// triplet run there (kernels/cuda/gpu_losses.cu: the contracts of
// train/cosface.h and train/triplet.h), and their classifiers' SGD is
// ufo_sgd_step_device with the host step's segments (one per task: per-tensor
// clipping as on the CPU). A Partial-FC sampled head (pfc.h; t->kept[k]
// drawn on the host by trainer.c's pfc_draw) gathers its kept rows into a
// compact matrix for CosFace (labels and, sharded, class_lo / total_classes
// as positions in kept[]), adds the gradient rows back, and its SGD steps
// only the kept rows (one launch over their row list), clipped by the task
// gradient's whole norm (trainer.c's sampled_classifier_step). A sharded step where some shard
// keeps no class runs that CosFace on the host (gpu_cosface_sharded needs a
// class per shard).
//
// One process: the feature gradients go straight into the backward
// (vit_train_backward_device); nothing of the device heads crosses PCIe during
// a step except the labels and the per-row loss values.
// Data parallel (t->comm; ufo_heads_cuda_task_dp): the same losses as the host
// path (trainer.c's task_losses_dp): CosFace on this rank's rows over the
// global row count, triplet on the task's features all-gathered over the
// device group (t->cfg.dev_comm) and labels over the host group, the
// classifiers' gradients summed over the device group
// (ufo_heads_cuda_allreduce), the same SGD on every rank. A Partial-FC
// sharded head (t->sharded[k]) keeps trainer.c's sharded semantics
// (gpu_cosface_sharded): the task's post-BN rows of all ranks gathered over
// the device group, this rank's shard of the classes, the per-row softmax
// state all-reduced over t->comm and d f_hat over the device group, this
// rank's rows of df back; its dW is complete (not all-reduced), its SGD
// clipped by the whole tensor's norm (the shards' sums of squares over
// t->comm). Sync BN runs on the host (vit_train.h), so the post-BN features
// go up and both feature gradients come down ([n, D] each);
// t->st.feat_on_device stays 0.
//
// t->dev_task[k] says which heads are on the device. Their rows of t->cls /
// t->cls_mom / t->cls_grad are current on the host only after
// ufo_heads_cuda_to_host (ufo_trainer_sync_host and ufo_trainer_save call it;
// ufo_trainer_load uploads what it read). UFO_CUDA_HEADS=cpu keeps every head
// on the host (t->dev_heads NULL). Internal to src/train/trainer.c.
#pragma once
#include "train/trainer.h"

// 1 when t (initialised up to its classifiers) should keep some heads on the device.
int ufo_heads_cuda_wanted(const ufo_trainer *t);
// Device buffers for the heads not sampled, filled from t->cls / t->cls_mom;
// sets t->dev_heads, t->dev_task and (all heads on the device)
// t->st.feat_on_device. On failure: ufo_heads_cuda_free.
int ufo_heads_cuda_init(ufo_trainer *t);
void ufo_heads_cuda_free(ufo_trainer *t);
// t->cls, t->cls_mom -> device (after loading a checkpoint). No-op without device heads.
int ufo_heads_cuda_to_device(ufo_trainer *t);
// Device -> t->cls, t->cls_mom, t->cls_grad (the device heads' rows). No-op without device heads.
int ufo_heads_cuda_to_host(const ufo_trainer *t);
// One step's gradient, after vit_train_forward: begin (zero the device heads'
// classifier and feature gradients), then per device head its losses into
// stats (rows [lo, lo + n) of the batch, labels of those rows), then the
// backward with the host heads' feature gradients (t->df, t->df_bn rows)
// uploaded into their rows.
int ufo_heads_cuda_begin(ufo_trainer *t);
int ufo_heads_cuda_task(ufo_trainer *t, int k, int lo, int n, const int32_t *labels, ufo_step_stats *stats);
int ufo_heads_cuda_backward(ufo_trainer *t, const int counts[UFO_NUM_TASKS]);
// Data parallel: task k's losses with this rank's n rows at lo (labels: theirs)
// of Gk global rows, off = this rank's first among them, glabels = the task's
// gathered labels (with triplet). CosFace's loss and correct count go to
// *loss_sum / *correct_sum (the trainer sums them over the ranks), the
// triplet's to stats; the feature gradients of these rows come down into
// t->df / t->df_bn for the host's sync-BN backward. Every rank must call it
// (the triplet's features are gathered over t->cfg.dev_comm); a device
// failure ends the job (ufo_comm_abort), as the others would wait for this rank.
int ufo_heads_cuda_task_dp(ufo_trainer *t, int k, int lo, int n, int Gk, int off, const int32_t *labels,
                           const int32_t *glabels, ufo_step_stats *stats, double *loss_sum, double *correct_sum);
// Data parallel: the device heads' classifier gradients summed over the device group.
void ufo_heads_cuda_allreduce(ufo_trainer *t);
// The device heads' classifier SGD step at learning rate lr.
int ufo_heads_cuda_step(ufo_trainer *t, float lr);
