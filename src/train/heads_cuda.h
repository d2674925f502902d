// The task heads on the GPU, for the CUDA trainer in one process (no data
// parallelism, no Partial-FC sampling; sharding needs several processes): the
// classifiers, their gradient and SGD momentum live on the device next to the
// model's, CosFace and triplet run there (kernels/cuda/gpu_losses.cu: the
// contracts of train/cosface.h and train/triplet.h), their feature gradients
// go straight into the backward (vit_train_backward_device), and the
// classifiers' SGD is ufo_sgd_step_device with the host step's segments (one
// per task: per-tensor clipping as on the CPU). Nothing of the heads crosses
// PCIe during a step except the labels and the per-row loss values.
//
// t->cls / t->cls_mom / t->cls_grad are then current on the host only after
// ufo_heads_cuda_to_host (ufo_trainer_sync_host and ufo_trainer_save call it;
// ufo_trainer_load uploads what it read). Every other configuration keeps the
// heads on the host (t->dev_heads NULL), and so does UFO_CUDA_HEADS=cpu.
// Internal to src/train/trainer.c.
#pragma once
#include "train/trainer.h"

// 1 when t (initialised up to its classifiers) should keep its heads on the device.
int ufo_heads_cuda_wanted(const ufo_trainer *t);
// Device buffers, filled from t->cls / t->cls_mom; sets t->dev_heads and
// t->st.feat_on_device. On failure t->dev_heads may be half made: ufo_heads_cuda_free.
int ufo_heads_cuda_init(ufo_trainer *t);
void ufo_heads_cuda_free(ufo_trainer *t);
// t->cls, t->cls_mom -> device (after loading a checkpoint). No-op without device heads.
int ufo_heads_cuda_to_device(ufo_trainer *t);
// Device -> t->cls, t->cls_mom, t->cls_grad. No-op without device heads.
int ufo_heads_cuda_to_host(const ufo_trainer *t);
// After vit_train_forward: every task's losses into stats (as ufo_trainer_grad),
// the classifier gradients (zeroed first), then the backward.
int ufo_heads_cuda_grad(ufo_trainer *t, const int counts[UFO_NUM_TASKS], const int32_t *labels,
                        ufo_step_stats *stats);
// The classifiers' SGD step at learning rate lr.
int ufo_heads_cuda_step(ufo_trainer *t, float lr);
