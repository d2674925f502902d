// SGD with momentum, L2 weight decay and per-tensor gradient-norm clipping,
// over flat fp32 buffers (the trainer's contiguous parameter, gradient and
// momentum buffers) cut into tensor segments.
//
// Per segment, in this order (UFO's Paddle optimiser and PyTorch agree on it:
// clip the raw gradient, then add the decay inside the step):
//   g    = grad * clip_scale                       (clip_scale below)
//   d    = g + wd * p                              (L2 decay, coupled)
//   buf  = momentum * buf + d                      (dampening 0, no Nesterov)
//   p    = p - lr * lr_mult * buf
// The momentum buffer must start zeroed: then the first step gives buf = d,
// exactly PyTorch's buf = clone(d_p) and Paddle's velocity = 0 * mu + d.
//
// Clipping, per segment, norm = ||grad||_2 (accumulated in double):
//   UFO_CLIP_PADDLE  scale = c / max(norm, c), i.e. 1 when norm <= c, else c / norm.
//                    paddle.nn.ClipGradByNorm(c) (clip_by_norm op), which is what
//                    UFO's solver/build.py passes to paddle.optimizer.Momentum:
//                    the original training. The default.
//   UFO_CLIP_TORCH   scale = min(1, c / (norm + 1e-6)): torch.nn.utils.clip_grad_norm_
//                    called on each parameter alone (detectron2's per-parameter
//                    "norm" clipping); differs from Paddle's by ~1e-6 / norm.
//   UFO_CLIP_NONE    scale = 1.
// SPEC section 4: momentum 0.9, wd 1e-4 on every tensor, clip 5.0.
//
// Deterministic and independent of the thread count: the norms are summed in
// fixed chunks in a fixed order; the update is element-wise.
#pragma once
#include <stddef.h>

typedef enum { UFO_CLIP_PADDLE = 0, UFO_CLIP_TORCH, UFO_CLIP_NONE } ufo_clip_mode;

typedef struct {
    size_t offset, size;   // elements, into the flat buffers
    float weight_decay;    // L2 coefficient of this tensor (SPEC: 1e-4 everywhere)
    float lr_mult;         // learning-rate multiplier (Paddle ParamAttr learning_rate); 1 normally
} ufo_sgd_segment;

typedef struct {
    float momentum;        // 0.9
    float clip_norm;       // 5.0; <= 0 disables clipping
    ufo_clip_mode clip;
} ufo_sgd_opts;

// Fills SPEC's defaults: momentum 0.9, clip 5.0 Paddle-style.
void ufo_sgd_defaults(ufo_sgd_opts *o);

// One step over nseg segments. grad is read only (the clip scale is applied on
// the fly). norms (may be NULL) receives each segment's gradient L2 norm
// before clipping. Segments must lie inside the buffers and not overlap.
// Returns 0, or -1 with ufo_error set (bad segment, non-finite gradient norm:
// nothing is updated then).
int ufo_sgd_step(float *param, const float *grad, float *mom, size_t total, const ufo_sgd_segment *seg, int nseg,
                 float lr, const ufo_sgd_opts *opts, double *norms);
// The same, with the clipping norm of segment t taken from given[t] when
// given[t] >= 0 (a tensor split over ranks: the norm of the whole tensor).
int ufo_sgd_step_ex(float *param, const float *grad, float *mom, size_t total, const ufo_sgd_segment *seg, int nseg,
                    float lr, const ufo_sgd_opts *opts, double *norms, const double *given);
// Sum of squares of g[0..n) (double), summed as the step's norms are.
double ufo_sgd_sumsq(const float *g, size_t n);

// The same step on device buffers (the CUDA trainer, model/vit_train.h's
// vit_train_device: param, grad, mom, part/part_n scratch), same arithmetic:
// per-segment norms summed in double over the same CHUNK-sized pieces (each
// piece reduced on the GPU, the pieces added in order on the host), the same
// clip scales computed on the host, then one element-wise kernel per segment.
// The norms agree with ufo_sgd_step's to double rounding, the update to fp32
// rounding (FMA contraction may differ). Built without CUDA: an error.
int ufo_sgd_step_device(void *gpu_ctx, float *param, const float *grad, float *mom, double *part, size_t part_n,
                        size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                        double *norms);
// ufo_sgd_step_ex's `given` norms for the device step (ZeRO: a tensor split over ranks).
int ufo_sgd_step_device_ex(void *gpu_ctx, float *param, const float *grad, float *mom, double *part, size_t part_n,
                           size_t total, const ufo_sgd_segment *seg, int nseg, float lr, const ufo_sgd_opts *opts,
                           double *norms, const double *given);
// The device step of the rows rows[0..nrows) (device ints, distinct) of one
// [*, cols] tensor, clipped by the given norm of that tensor's gradient: a
// Partial-FC sampled classifier's kept rows in one launch (its rows not kept
// keep weights and momentum).
int ufo_sgd_step_device_rows(void *gpu_ctx, float *param, const float *grad, float *mom, const int *rows, int nrows,
                             int cols, float weight_decay, float lr_mult, float lr, const ufo_sgd_opts *opts,
                             double norm);
// sums[t] = ufo_sgd_sumsq of segment t of a device gradient (same pieces as the step's norms).
int ufo_sgd_sumsq_device(void *gpu_ctx, const float *grad, double *part, size_t part_n, size_t total,
                         const ufo_sgd_segment *seg, int nseg, double *sums);
