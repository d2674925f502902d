// Reference LayerNorm, BatchNorm (inference), exact GELU and add.
#include "kernels/ref/ref.h"
#include <math.h>

void ref_layernorm(float *y, const float *x, const float *g, const float *b, int n, int c, float eps) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c;
        float *yr = y + (size_t)i * c;
        double mean = 0, var = 0;
        for (int k = 0; k < c; k++) mean += xr[k];
        mean /= c;
        for (int k = 0; k < c; k++) {
            double d = xr[k] - mean;
            var += d * d;
        }
        var /= c;
        double inv = 1.0 / sqrt(var + (double)eps);
        for (int k = 0; k < c; k++) yr[k] = (float)((xr[k] - mean) * inv * g[k] + b[k]);
    }
}

void ref_batchnorm(float *y, const float *x, const float *g, const float *b, const float *mean,
                   const float *var, int n, int c, float eps) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            size_t o = (size_t)i * c + k;
            double inv = 1.0 / sqrt((double)var[k] + (double)eps);
            y[o] = (float)(((double)x[o] - mean[k]) * inv * g[k] + b[k]);
        }
}

void ref_gelu(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v * 0.5 * (1.0 + erf(v * M_SQRT1_2)));
    }
}

void ref_add(float *y, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a[i];
}
