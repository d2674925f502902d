// Evaluation metrics of SPEC section 5, one header per family:
//   eval/verify.h  10-fold face verification (insightface protocol)
//   eval/reid.h    re-identification CMC / mAP / mINP (fast-reid protocol)
//   eval/recall.h  SOP Recall@K, leave-one-out
#pragma once
#include <stdint.h>
#include "eval/recall.h"
#include "eval/reid.h"
#include "eval/verify.h"

// Query rows per block of the ReID / SOP similarity computations (0 = auto:
// about 256 MB of fp32 similarities per block). Results never depend on it;
// tests set it small to exercise the blocking. Also read from the environment
// variable UFO_METRICS_BLOCK when the setter was not used. Not thread-safe.
void ufo_metrics_set_block_rows(int rows);

// A pluggable similarity screen for the ReID and SOP metrics (the fp32 pass
// of eval/nn_internal.h that oneDNN runs by default). `ufo eval --device
// cuda` installs the GPU one (model/screen_cuda.h); eval never calls a backend
// itself. Contract: every value is an fp32 inner product, fp32 products and
// fp32 (or fused multiply-add) additions in ANY order, no TF32, no bf16.
// ufo_nn_eps bounds the error of every such order, so the metrics stay those
// of the double-precision matrix, bit for bit, whichever screen ran.
// Callbacks return 0, or -1 after ufo_errorf; a few values of every block
// are checked against double products (an error when one is off by more).
typedef struct {
    // One metric call: B [n, d] (the gallery; for SOP every item) stays valid
    // and unchanged until `end`, so a device keeps it resident across blocks.
    // 1: declined (say, no room on the device): oneDNN screens this call.
    int (*begin)(void *ctx, const float *B, int64_t n, int d);
    // C[i * ncols + j] = A[i, :] . B[col0 + j, :] for i < m, j < ncols (C dense).
    // 1: declined, oneDNN screens this block.
    int (*block)(void *ctx, const float *A, int64_t m, int64_t col0, int64_t ncols, float *C);
    // After every begin (failed ones too): frees what the call took.
    void (*end)(void *ctx);
    void *ctx;
} ufo_metrics_screen;

// Installs a copy of *s, or with NULL goes back to oneDNN only. Not
// thread-safe against running metrics; a metric call that finds the screen
// in use by another thread screens on the CPU.
void ufo_metrics_set_screen(const ufo_metrics_screen *s);
// When an installed screen runs a metric call: environment variable
// UFO_METRICS_GPU = always | never | auto (default). auto: when the call's
// products (queries x columns x d, half of n x n x d for SOP) reach
// UFO_METRICS_SCREEN_MIN_MACS: below that the transfers and the launch cost
// more than oneDNN's whole screen (Market-1501 at d = 768: 4e10).
#define UFO_METRICS_SCREEN_MIN_MACS (1.0 * (1 << 30))
// UFO_METRICS_GPU read: 0 never, 1 auto, 2 always; -1 after ufo_errorf when
// it is something else (the CLI checks it before embedding anything).
int ufo_metrics_screen_mode(void);
