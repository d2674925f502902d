// Partial-FC's combine of the per-row CosFace softmax state over the class
// shards: the shards' (max, sum) pairs become the global ones, the label cos
// comes from the shard that owns it, and the top-1 maxima are global, so every
// shard ends with what one process holding all classes would have. One piece
// for train/cosface.c (over ufo_comm) and kernels/cuda/gpu_losses.cu's
// gpu_cosface_sharded (over its caller's callback, on host copies of the
// state), so the two agree bit for bit. Header-only: plain C that also
// compiles as C++, and no link order between libufo and the CUDA library.
//
// Per row i: M the running max of s * cos over this shard's non-label
// columns (-inf if none), S the sum of exp(s * cos - M), cy the label cos
// (0 on shards that do not own the label), lo_max / hi_max the top-1 maxima
// below / above the label's index; zy = s * (cy - m) is written.
// allreduce(ctx, buf, n, op_max) reduces n doubles over the shards (max when
// op_max, else sum) and returns 0 or -1; buf holds 3n doubles.
#pragma once
#include <math.h>
#include <stddef.h>

typedef int (*cosface_shards_allreduce)(void *ctx, double *buf, size_t n, int op_max);

static inline int cosface_combine_shards(int n, float s, float m, double *M, double *S, float *cy, float *zy,
                                         float *lo_max, float *hi_max, double *buf, cosface_shards_allreduce allreduce,
                                         void *ctx) {
    for (int i = 0; i < n; i++) buf[i] = M[i], buf[n + i] = lo_max[i], buf[2 * n + i] = hi_max[i];
    if (allreduce(ctx, buf, (size_t)n * 3, 1)) return -1;
    for (int i = 0; i < n; i++) {
        const double g = buf[i];   // -inf only if no shard has a non-label column
        S[i] = M[i] == -INFINITY ? 0.0 : S[i] * exp(M[i] - g);
        M[i] = g;
        lo_max[i] = (float)buf[n + i], hi_max[i] = (float)buf[2 * n + i];
        buf[i] = S[i], buf[n + i] = cy[i];
    }
    if (allreduce(ctx, buf, (size_t)n * 2, 0)) return -1;
    for (int i = 0; i < n; i++) {
        S[i] = buf[i];
        cy[i] = (float)buf[n + i];   // exact: one shard adds the value, the others 0
        zy[i] = s * (cy[i] - m);
    }
    return 0;
}
