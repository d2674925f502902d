// Internal to vit_train.c: its CUDA backend (vit_train_cuda.c). Each returns
// 0, or -1 with ufo_error set; built without CUDA, init fails with one line.
#pragma once
#include "model/vit_train.h"

typedef struct vit_train_cuda vit_train_cuda;

int vit_train_cuda_init(vit_train_state *st);    // st->m, prec, recompute, cap set
void vit_train_cuda_free(vit_train_state *st);
void vit_train_cuda_zero_grad(vit_train_state *st);
// st->n and st->seg set by the caller.
int vit_train_cuda_forward(vit_train_state *st, const float *images, const float *drop, float bn_momentum);
int vit_train_cuda_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn);
// The same with device buffers (vit_train_backward_device).
int vit_train_cuda_backward_device(vit_train_state *st, const float *d_feat, const float *d_feat_bn);
// Sync BN (data parallel), whose forward and backward run on the host:
// dir 0: every trained BNNeck's gamma, beta, running mean and variance, device
// -> m->params; dir 1: the running mean and variance, m->params -> device.
int vit_train_cuda_bn_params(vit_train_state *st, int dir);
// Device gradient of the parameter at host pointer `param` (into m->params),
// n values from there on, += vals (host).
int vit_train_cuda_add_grads(vit_train_state *st, const float *param, const float *vals, size_t n);
