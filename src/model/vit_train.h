// The training pass of the AllInOne model: forward with saved activations,
// per-sample drop path, BNNeck heads in training mode on each task's slice of
// a heterogeneous batch, and the backward into one gradient buffer laid out
// like the parameter buffer (vit_param_table). Losses live in src/train.
//
// Data parallel: with `comm` set (size > 1) the rows are this rank's slice of
// a global batch whose task t has total[t] rows (set before the forward), and
// the BNNecks are synchronised (sync BN): the per-feature sum and the sum of
// squared deviations are all-reduced in the forward, the two per-feature
// reductions (sum dy, sum dy * x_hat) in the backward, so the statistics are
// the global batch's. gamma/beta gradients stay local partial sums (the
// trainer's gradient all-reduce adds them up).
//
// CUDA (backend VIT_BACKEND_CUDA, vit_train_cuda.c): the same pass, op for op,
// on the GPU. The parameters (fp32 master copy), the gradients, the
// optimiser's momentum and every activation live on the device for the whole
// run; st->grads is NULL and m->params is current only after
// vit_train_to_host. The BNNecks run on the device too; after each forward
// the [n, D] features st->feat / st->feat_bn are copied to the host for the
// losses (src/train, CPU), and the backward uploads their [n, D] gradients,
// unless the losses run on the device as well (st->feat_on_device and
// vit_train_backward_device: the trainer's device heads, train/heads_cuda.c).
// Data parallel (`comm`, one GPU per process: vit_train_cuda_local_device):
// sync BN runs on the host (the [n, D] features are there anyway; the
// BNNecks' parameters come down and their running statistics go back up each
// step); the trainer all-reduces the device gradients over a device group.
// The optimiser's state on the device is made by vit_train_optimizer_init,
// for the whole model or (ZeRO stage 1) for one rank's slice of it.
#pragma once
#include "dist/comm.h"
#include "model/vit.h"

typedef struct {
    vit_model *m;          // parameters (fp32 master) and config
    vit_backend backend;   // REF: plain-C kernels; CPU: oneDNN (prec below)
    ufo_precision prec;
    int recompute;         // 1: keep only each block's input; recompute the rest in backward
    float *grads;          // [m->n_floats], same layout as m->params; accumulated by backward
    // Batch of the last forward.
    int n, cap;
    int seg[UFO_NUM_TASKS + 1];   // images of task t are rows [seg[t], seg[t+1])
    const float *images;          // caller's, must stay alive until backward
    const float *drop;            // [depth][2][n] per-sample residual scales, or NULL
    // Saved activations (see vit_train.c for which are kept in recompute mode).
    float *x_in, *qkv, *att, *x_mid, *f1;   // att, f1: fp32 path only; qkv NULL with qkvb
    // bf16 path (CPU backend, prec BF16): the bf16 inputs of the block's linears,
    // made once in the forward and reused for the weight gradients, and GELU's
    // derivative (rounded) in place of the fp32 pre-GELU activation f1.
    uint16_t *ln1b, *attb, *ln2b, *gb, *gd;   // [R, D] x 3, [R, mlp_hidden] x 2
    // bf16 path where the attention runs on AMX: qkv kept in bf16 [R, 3D] instead of
    // fp32 (the attention rounds q, k, v to bf16 in any case: the same results).
    uint16_t *qkvb;
    float *cls;            // [n, D] class tokens before the final LayerNorm
    float *feat;           // [n, D] after the final LayerNorm: the pre-BN feature (triplet)
    float *feat_bn;        // [n, D] after each task's BNNeck (CosFace)
    float *bn_mean, *bn_rstd;     // [UFO_NUM_TASKS][D] batch statistics of the last forward
    float *scratch;        // working buffers
    size_t scratch_floats;
    ufo_comm *comm;        // NULL or size 1: the batch is the whole batch
    int total[UFO_NUM_TASKS];   // rows of task t over all ranks (comm only)
    double *bn_acc;        // [3 D] sync BN accumulators
    struct vit_train_cuda *cu;    // CUDA backend's device state (NULL otherwise)
    // CUDA backward: called as soon as one block's parameter gradients are
    // final, with their range [lo, hi) of the flat buffer and `ready`, an event
    // of the device stream marking them written (gpu_record_event), so the
    // caller can start their all-reduce while the earlier blocks' backward
    // runs. NULL: not called. The CPU backends never call it.
    void (*grads_ready)(void *ctx, size_t lo, size_t hi, void *ready);
    void *grads_ready_ctx;
    int feat_on_device;    // CUDA, not synced: 1 = the forward leaves feat / feat_bn on the device
                           // only (vit_train_device's), for losses that run there
} vit_train_state;

// The CUDA backend's device buffers, for the optimiser (train/sgd.h's
// ufo_sgd_step_device) and the tests. params, grads: [m->n_floats] in the
// layout of m->params; mom: the momentum of params [mom_lo, mom_hi) (all of
// them unless ZeRO); grad_slice: ZeRO only (else NULL), the summed gradients
// of that slice, which the trainer's reduce-scatter writes; part: part_n
// doubles of scratch for gradient norms.
// feat, feat_bn: [cap, D] the last forward's features (rows as st->feat);
// dfeat, dfeat_bn: [cap, D] free for the losses' feature gradients (the
// backward's own input buffers: vit_train_backward_device copies nothing).
typedef struct {
    struct gpu_ctx *g;
    float *params, *grads, *mom, *grad_slice;
    size_t mom_lo, mom_hi;
    double *part;
    size_t part_n;
    float *feat, *feat_bn, *dfeat, *dfeat_bn;
} vit_train_device;

int vit_train_init(vit_train_state *st, vit_model *m, vit_backend backend, ufo_precision prec, int batch_cap,
                   int recompute);
void vit_train_free(vit_train_state *st);
void vit_train_zero_grad(vit_train_state *st);

// Per-block drop-path scales for a batch (timm's DropPath): block l's rate is
// rate * l / (depth - 1); each sample keeps a residual branch with probability
// 1 - rate_l, scaled by 1 / (1 - rate_l), else 0. drop [depth][2][n] (attention
// branch, then MLP branch). u(i) supplies uniform [0, 1) draws.
void vit_drop_path_scales(const vit_config *c, float rate, int n, double (*u)(void *), void *ctx, float *drop);

// images [n, 3, S, S]; counts[t] images of task t, in task order (sum = n).
// BatchNorm of task t runs in training mode on its rows (if the model has that
// head and counts[t] > 1), updating its running statistics with bn_momentum.
// drop: NULL = no drop path. Writes st->feat and st->feat_bn.
int vit_train_forward(vit_train_state *st, const float *images, int n, const int counts[UFO_NUM_TASKS],
                      const float *drop, float bn_momentum);
// d_feat [n, D] (gradient w.r.t. the pre-BN feature, e.g. from triplet; may be NULL)
// and d_feat_bn [n, D] (w.r.t. the BNNeck output, e.g. from CosFace; may be NULL).
// Accumulates into st->grads.
int vit_train_backward(vit_train_state *st, const float *d_feat, const float *d_feat_bn);
// CUDA, BNNecks not synchronised: the same with d_feat / d_feat_bn DEVICE
// buffers [n, D] (d_feat NULL: zero; d_feat_bn may be NULL), e.g. the device's
// dfeat / dfeat_bn. Fails on the other backends and under sync BN.
int vit_train_backward_device(vit_train_state *st, const float *d_feat, const float *d_feat_bn);

// CUDA backend only (the CPU backends: NULL / no-ops returning 0).
const vit_train_device *vit_train_device_of(const vit_train_state *st);
// The GPU this process trains on: the node-local MPI rank (Open MPI, MPICH,
// Slurm variables) modulo the visible devices; 0 outside mpirun.
int vit_train_cuda_local_device(void);
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" ("" on the CPU backends).
const char *vit_train_device_name(const vit_train_state *st);
// The attention kernel of the CUDA training pass: "flash" or "gemm" ("" on the CPU backends).
const char *vit_train_attention(const vit_train_state *st);
// CUDA backend: the device momentum (zeroed) of parameters [lo, hi) of the
// flat buffer, [0, m->n_floats) for the whole model; a proper slice (ZeRO
// stage 1) also gets grad_slice. Call once, after vit_train_init and before
// the first step; the CPU backends keep no optimiser state: a no-op.
int vit_train_optimizer_init(vit_train_state *st, size_t lo, size_t hi);
// Device parameters -> m->params, and device momentum -> mom [mom_hi - mom_lo] unless NULL.
int vit_train_to_host(const vit_train_state *st, float *mom);
// m->params -> device parameters, and mom [mom_hi - mom_lo] -> device momentum (NULL: zeroed).
int vit_train_to_device(vit_train_state *st, const float *mom);
// Device gradients -> grads [m->n_floats] (the CPU backends copy st->grads).
int vit_train_grads_to_host(const vit_train_state *st, float *grads);
