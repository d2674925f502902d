// Shared machinery of the exact nearest-neighbour metrics (reid.c, recall.c);
// not a public API.
//
// Precision contract (SPEC section 5, "distance 1 - cosine" / "inner product
// of normalised features"): a feature is L2-normalised in double and stored
// as fp32 (fast-reid normalises fp32 features in fp32; we round once, from
// double). The similarity of two such vectors is their inner product
// evaluated in double (every fp32 x fp32 product is exact in double, so it is
// the real inner product to ~1e-16), and every ranking decision is taken on
// that double value (distance = 1.0 - similarity for ReID), ties by index.
//
// Speed: an fp32 GEMM (oneDNN matmul, or an installed ufo_metrics_screen:
// the GPU) screens all pairs; its error is bounded by eps = gamma_d
// (|q| |g| <= 1) whatever its summation order, so a comparison of a screened
// value against a threshold is decided by the fp32 value unless the two lie
// within eps, and then the pair's similarity is recomputed in double. The
// result is the one of a full double-precision distance matrix, at fp32 GEMM
// speed.
#pragma once
#include "eval/metrics.h"
#include <stddef.h>
#include <stdint.h>

// L2-normalises n rows of x [n, d]: norm in double (floored at 1e-12 like
// torch's F.normalize), out = (float)(x / norm). Non-finite input is an error
// naming `what` and the row.
int ufo_nn_normalize_f32(const float *x, int64_t n, int d, float *out, const char *what);
// The double-precision inner product of two fp32 vectors (fixed order: the
// same pair always gives the same value).
double ufo_nn_dot_f64(const float *a, const float *b, int d);
// Bound on |fp32 GEMM inner product - ufo_nn_dot_f64| for vectors of norm <= 1
// (rounded unit vectors), d terms.
double ufo_nn_eps(int d);
// C[i * ldc + j] = A[i, :] . B[j, :] for i < m, j < n (strict fp32, oneDNN matmul or sgemm, threaded).
int ufo_nn_gemm_nt(const float *A, const float *B, int64_t m, int64_t n, int d, float *C, int64_t ldc);
// One metric call's screen: the installed ufo_metrics_screen (metrics.h) when
// UFO_METRICS_GPU and the size say so, else ufo_nn_gemm_nt. Columns are
// rows of B [n, d]; `macs` (the call's total products) decides auto mode.
typedef struct {
    const float *B;
    int64_t n;
    int d;
    int ext;                  // 1: scr (the installed screen) runs this call's blocks
    ufo_metrics_screen scr;
} ufo_nn_screen;
int ufo_nn_screen_begin(ufo_nn_screen *s, const float *B, int64_t n, int d, double macs);
// C [m, n - col0] dense: C[i, j] = A[i, :] . B[col0 + j, :].
int ufo_nn_screen_block(ufo_nn_screen *s, const float *A, int64_t m, int64_t col0, float *C);
void ufo_nn_screen_end(ufo_nn_screen *s);   // also after a failed begin
// Largest float <= x, smallest float >= x.
float ufo_nn_float_down(double x);
float ufo_nn_float_up(double x);
// Rows per block of similarities: ufo_metrics_set_block_rows / UFO_METRICS_BLOCK
// if set, else what fits in ~256 MB at `row_floats` floats a row; clamped to [1, max_rows].
int ufo_nn_block_rows(int64_t row_floats, int64_t max_rows);

// Indices grouped by integer label: order = 0..n-1 sorted by (label, index).
typedef struct {
    int n;
    int *order;
    int *key;   // key[k] = labels[order[k]] (sorted)
} ufo_nn_groups;
int ufo_nn_groups_build(const int *labels, int n, ufo_nn_groups *g);
// [*lo, *hi) in g->order: the items with this label, in index order.
void ufo_nn_groups_find(const ufo_nn_groups *g, int label, int *lo, int *hi);
int ufo_nn_groups_max(const ufo_nn_groups *g);   // size of the largest group
void ufo_nn_groups_free(ufo_nn_groups *g);
