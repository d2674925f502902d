// CosFace (large margin cosine) classifier loss, as fast-reid's / UFO's
// CosSoftmax head followed by cross-entropy:
//
//   f_hat = f / max(||f||, 1e-12)          (F.normalize of the post-BN feature)
//   w_hat = W / max(||W_j||, 1e-12)        (per class row)
//   cos   = f_hat w_hat^T                  [n, classes]
//   z     = s * (cos - m * onehot(label))
//   loss  = (1/den) * sum_i CE(z_i, label_i),  CE = logsumexp(z_i) - z_i,label
//
// den = n by default ("plain cross-entropy", SPEC section 4). The original
// fast-reid / UFO cross_entropy_loss divides the summed loss by the number of
// samples whose fp32 loss is not exactly zero (max(count, 1)), which only
// differs once samples are classified with a margin of ~17/s in cos; that
// behaviour is `nonzero_mean = 1`. A sample's fp32 loss is exactly zero when
// 1 + sum_{j != y} exp(z_j - z_y) rounds to 1.0f, i.e. when that sum is
// <= 2^-24; that is the test used here (fp32 summation order can move the
// boundary by an ulp).
//
// Scales to the face head (93,431 x 1024, n = 1024): classes are processed in
// blocks of `block` columns, the [n, classes] logits are never held. Pass 1
// runs the [n, D] x [D, block] products (oneDNN sgemm, OpenMP inside) and an
// online log-sum-exp per row; pass 2 recomputes each block, forms
// dcos = s * (softmax - onehot) / den and back-propagates through both
// normalisations: d f = (I - f_hat f_hat^T) d f_hat / ||f|| (and the same per
// W row; a row with norm <= 1e-12 gets d/eps, as torch's clamp_min does).
// Scratch: n*block + block*D + 2*n*D + classes floats (face head, block 8192:
// 72 MB), plus what oneDNN's sgemm packs internally.
//
// Accuracy is top-1 of cos (before the margin), ties to the lower class
// index: fast-reid's log_accuracy on pred_class_logits = s * cos.
//
// Data parallel (src/train/trainer.c): `den` > 0 replaces the divisor, so a
// rank's slice of a global batch gives its share of the global mean.
//
// Class-sharded (Partial-FC, insightface): with `shard` set, W holds only the
// classes [class_lo, class_lo + classes) of total_classes, and f / labels are
// the WHOLE batch, the same on every rank of the group. Each rank runs both
// passes on its columns; between them the per-row running max and sum of
// the softmax (max, then rescaled sum), the label cos (from the owning rank)
// and the top-1 maxima are all-reduced, so the loss is the global one on every
// rank; d f_hat is all-reduced before the projection (every rank gets df of
// every row); dW is the shard's own, complete (no further reduction).
#pragma once
#include "base/rng.h"
#include "dist/comm.h"
#include <stdint.h>

typedef struct {
    float s, m;        // scale and margin (face 50 / 0.3, others per SPEC section 1)
    int block;         // classes per block; <= 0: UFO_COSFACE_BLOCK
    int nonzero_mean;  // 1: divide by the count of non-zero per-sample losses (fast-reid/UFO)
    double den;        // > 0: divide the summed loss by this instead (nonzero_mean ignored)
    ufo_comm *shard;   // non-NULL: W is this rank's shard of the classes (see above)
    int class_lo, total_classes;
} ufo_cosface_opts;

#define UFO_COSFACE_BLOCK 8192

typedef struct {
    double loss;       // the value above
    double accuracy;   // fraction of rows whose argmax cos is the label
    int nonzero;       // samples whose fp32 loss would be non-zero (see above)
    int correct;       // rows whose argmax cos is the label
} ufo_cosface_result;

// f [n, D], W [classes, D], labels [n] in [0, classes).
// df [n, D] is WRITTEN, dW [classes, D] is ACCUMULATED (+=); either may be
// NULL to skip it (both NULL: forward only, one pass). Deterministic for a
// given thread count. Returns 0, or -1 with ufo_error set (bad label, sizes,
// allocation, oneDNN failure).
int ufo_cosface(const float *f, const float *W, const int32_t *labels, int n, int D, int classes,
                const ufo_cosface_opts *opts, float *df, float *dW, ufo_cosface_result *res);

// W [classes, D] ~ N(0, 0.001^2) (UFO's Normal(std=0.001) initialiser).
void ufo_cosface_init(float *W, int classes, int D, ufo_rng *rng);
