// Batch-hard triplet loss, as fast-reid's functional triplet_loss(embedding,
// targets, margin, norm_feat=False, hard_mining=True) and UFO's Paddle port
// of it (SPEC section 4: on the PRE-BN feature, margin 0 => soft margin).
//
//   dist[i][j] = sqrt(max(||x_i||^2 + ||x_j||^2 - 2 x_i.x_j, 1e-12))  (fp32)
//   is_pos[i][j] = label_i == label_j     (includes j == i)
//   ap_i = max_j dist[i][j] * is_pos[i][j]
//   an_i = min_j dist[i][j] * is_neg[i][j] + is_pos[i][j] * 1e9
//   margin == 0:  loss = mean_i log(1 + exp(-(an_i - ap_i)))  (F.soft_margin_loss, y = 1);
//                 if that is +inf in fp32 (some ap_i - an_i > ~88.72, where
//                 fp32 exp overflows), fast-reid falls back to
//                 margin_ranking_loss(an, ap, 1, margin = 0.3)
//   margin > 0:   loss = mean_i max(0, ap_i - an_i + margin)
//
// Consequences of those exact semantics, all reproduced:
//   - the anchor is its own positive: an anchor whose label appears once gets
//     ap_i = dist[i][i] = sqrt(1e-12) = 1e-6 (no gradient: the clamp is active);
//   - an anchor with no negative gets an_i = 1e9 (loss term ~0, no gradient);
//   - ties take the first index (torch.max / torch.min along a dim), and the
//     gradient flows to that index only;
//   - the clamp passes gradient where the squared distance is >= 1e-12.
// The squared norms are taken from the diagonal of the same Gram matrix
// (x x^T, oneDNN sgemm), so dist[i][i] is exactly sqrt(1e-12); PyTorch's
// separate pow().sum() leaves fp32 rounding noise there (~1e-3 for |x|^2
// ~ 100), which is noise, not semantics.
#pragma once
#include <stdint.h>

typedef struct {
    double loss;
    int fallback;   // 1: the soft margin overflowed and margin ranking (0.3) was used
    double dist_ap_mean, dist_an_mean;   // for the training log (an = 1e9 rows included)
} ufo_triplet_result;

// x [n, D] (pre-BN features), labels [n]. dx [n, D] is WRITTEN (NULL: skip).
// pos_idx / neg_idx [n] (may be NULL) receive the mined indices.
// Returns 0, or -1 with ufo_error set (sizes, allocation, oneDNN).
int ufo_triplet(const float *x, const int32_t *labels, int n, int D, float margin, float *dx, int *pos_idx,
                int *neg_idx, ufo_triplet_result *res);
