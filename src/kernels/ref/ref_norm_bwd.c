// Reference backward of LayerNorm and exact GELU, and BatchNorm1d in training
// mode (forward with batch statistics + running-statistics update, backward).
// Everything in double, rounded once on the way out.
#include "kernels/ref/ref.h"
#include <math.h>
#include <stdlib.h>

// With xh = (x - mean) * rstd and dxh = dy * g (per row of c values):
//   dx = rstd * (dxh - mean(dxh) - xh * mean(dxh * xh))
//   dg += sum_rows dy * xh;   db += sum_rows dy
void ref_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g, int n,
                            int c, float eps) {
    double *gacc = calloc((size_t)(c > 0 ? c : 1), sizeof *gacc);
    double *bacc = calloc((size_t)(c > 0 ? c : 1), sizeof *bacc);
    if (!gacc || !bacc) abort();   // a reference: tests only use small shapes
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c, *dyr = dy + (size_t)i * c;
        double mean = 0, var = 0;
        for (int k = 0; k < c; k++) mean += xr[k];
        mean /= c;
        for (int k = 0; k < c; k++) var += (xr[k] - mean) * (xr[k] - mean);
        var /= c;
        double rstd = 1.0 / sqrt(var + (double)eps);
        double s1 = 0, s2 = 0;
        for (int k = 0; k < c; k++) {
            double xh = (xr[k] - mean) * rstd, dxh = (double)dyr[k] * g[k];
            s1 += dxh;
            s2 += dxh * xh;
            gacc[k] += (double)dyr[k] * xh;
            bacc[k] += dyr[k];
        }
        s1 /= c;
        s2 /= c;
        if (dx) {
            float *dxr = dx + (size_t)i * c;
            for (int k = 0; k < c; k++) {
                double xh = (xr[k] - mean) * rstd, dxh = (double)dyr[k] * g[k];
                dxr[k] = (float)(rstd * (dxh - s1 - xh * s2));
            }
        }
    }
    for (int k = 0; k < c; k++) {
        if (dg) dg[k] = (float)(dg[k] + gacc[k]);
        if (db) db[k] = (float)(db[k] + bacc[k]);
    }
    free(gacc);
    free(bacc);
}

// gelu(x) = x Phi(x)  =>  gelu'(x) = Phi(x) + x phi(x)
void ref_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
    const double inv_sqrt_2pi = 0.39894228040143267794;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        double d = 0.5 * (1.0 + erf(v * M_SQRT1_2)) + v * inv_sqrt_2pi * exp(-0.5 * v * v);
        dx[i] = (float)(dy[i] * d);
    }
}

// Per channel k: batch mean and biased variance over the n rows. The running
// variance takes the unbiased variance var * n / (n - 1); with n == 1 (where
// PyTorch refuses to train) it takes the biased one, 0. Any of mean, rstd,
// running_mean, running_var may be NULL to skip it.
void ref_batchnorm_train(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b,
                         float *running_mean, float *running_var, int n, int c, float eps, float momentum) {
    for (int k = 0; k < c; k++) {
        double m = 0, v = 0;
        for (int i = 0; i < n; i++) m += x[(size_t)i * c + k];
        m /= n;
        for (int i = 0; i < n; i++) {
            double d = x[(size_t)i * c + k] - m;
            v += d * d;
        }
        double var = v / n, r = 1.0 / sqrt(var + (double)eps);
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)i * c + k;
            y[o] = (float)((x[o] - m) * r * g[k] + b[k]);
        }
        if (mean) mean[k] = (float)m;
        if (rstd) rstd[k] = (float)r;
        double unbiased = n > 1 ? v / (n - 1) : var;
        if (running_mean) running_mean[k] = (float)((1.0 - momentum) * running_mean[k] + (double)momentum * m);
        if (running_var)
            running_var[k] = (float)((1.0 - momentum) * running_var[k] + (double)momentum * unbiased);
    }
}

// With xh = (x - mean) * rstd, per channel over the n rows:
//   dx = g * rstd * (dy - mean(dy) - xh * mean(dy * xh));  dg += sum dy * xh;  db += sum dy
void ref_batchnorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                            const float *rstd, const float *g, int n, int c) {
    for (int k = 0; k < c; k++) {
        double s1 = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            size_t o = (size_t)i * c + k;
            double xh = ((double)x[o] - mean[k]) * rstd[k];
            s1 += dy[o];
            s2 += dy[o] * xh;
        }
        if (dg) dg[k] = (float)(dg[k] + s2);
        if (db) db[k] = (float)(db[k] + s1);
        if (dx) {
            double a = s1 / n, bb = s2 / n, gr = (double)g[k] * rstd[k];
            for (int i = 0; i < n; i++) {
                size_t o = (size_t)i * c + k;
                double xh = ((double)x[o] - mean[k]) * rstd[k];
                dx[o] = (float)(gr * (dy[o] - a - xh * bb));
            }
        }
    }
}
