// Position-embedding resampling for a model run at another input size than it
// was trained at (timm's resample_abs_pos_embed): the class token is kept, the
// g0 x g0 grid is resized to g1 x g1 with PyTorch's antialiased bicubic.
#include "model/vit.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Cubic convolution kernel with a = -0.5 (what PyTorch's antialias path uses).
static double cubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

// Weights for resizing a line of n_in samples to n_out: out[i] = sum_k w[i][k] in[first[i] + k].
static void line_weights(int n_in, int n_out, int *first, int *count, double *w, int maxk) {
    double scale = (double)n_in / n_out;
    double support = scale >= 1 ? 2 * scale : 2, inv = scale >= 1 ? 1 / scale : 1;
    for (int i = 0; i < n_out; i++) {
        double center = scale * (i + 0.5);
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > n_in) hi = n_in;
        if (hi - lo > maxk) hi = lo + maxk;
        double total = 0;
        for (int k = 0; k < hi - lo; k++) total += w[i * maxk + k] = cubic((k + lo - center + 0.5) * inv);
        for (int k = 0; k < hi - lo; k++) w[i * maxk + k] = total != 0 ? w[i * maxk + k] / total : 0;
        first[i] = lo;
        count[i] = hi - lo;
    }
}

void vit_resample_pos_embed(float *dst, const float *src, int g0, int g1, int dim) {
    memcpy(dst, src, dim * sizeof(float));  // class token
    int maxk = (int)ceil(2 * 2.0 * (g0 > g1 ? (double)g0 / g1 : 1)) + 2;
    int *first = malloc(sizeof(int) * g1), *count = malloc(sizeof(int) * g1);
    double *w = malloc(sizeof(double) * g1 * maxk);
    double *tmp = malloc(sizeof(double) * g0 * g1 * dim);  // rows resized along x: [g0][g1][dim]
    line_weights(g0, g1, first, count, w, maxk);
    const float *grid = src + dim;
    for (int y = 0; y < g0; y++)
        for (int x = 0; x < g1; x++)
            for (int d = 0; d < dim; d++) {
                double s = 0;
                for (int k = 0; k < count[x]; k++) s += w[x * maxk + k] * grid[((size_t)y * g0 + first[x] + k) * dim + d];
                tmp[((size_t)y * g1 + x) * dim + d] = s;
            }
    for (int y = 0; y < g1; y++)
        for (int x = 0; x < g1; x++)
            for (int d = 0; d < dim; d++) {
                double s = 0;
                for (int k = 0; k < count[y]; k++) s += w[y * maxk + k] * tmp[((size_t)(first[y] + k) * g1 + x) * dim + d];
                dst[dim + ((size_t)y * g1 + x) * dim + d] = (float)s;
            }
    free(first);
    free(count);
    free(w);
    free(tmp);
}
