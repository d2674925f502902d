// Reference backward of the attention core, per (batch, head), in double:
//   P  = softmax(q k^T * scale)            (recomputed from qkv)
//   dV = P^T dO
//   dP = dO V^T
//   dS = P * (dP - rowsum(dP * P)) * scale (gradient w.r.t. q k^T)
//   dQ = dS K,  dK = dS^T Q
#include "kernels/ref/ref.h"
#include <math.h>
#include <stdlib.h>

void ref_attention_backward(float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd) {
    size_t row = (size_t)3 * H * hd, orow = (size_t)H * hd, tt = (size_t)T * T;
    double scale = 1.0 / sqrt((double)hd);
    double *p = malloc((tt ? tt : 1) * sizeof *p);
    double *ds = malloc((tt ? tt : 1) * sizeof *ds);
    if (!p || !ds) abort();   // a reference: tests only use small shapes
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * row;
            const float *q = base + (size_t)h * hd;
            const float *k = q + (size_t)H * hd, *v = q + (size_t)2 * H * hd;
            const float *dO = dout + (size_t)b * T * orow + (size_t)h * hd;
            float *dq = dqkv + (size_t)b * T * row + (size_t)h * hd;
            float *dk = dq + (size_t)H * hd, *dv = dq + (size_t)2 * H * hd;
            for (int i = 0; i < T; i++) {
                double *pr = p + (size_t)i * T, mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)q[i * row + e] * k[j * row + e];
                    pr[j] = d * scale;
                    if (pr[j] > mx) mx = pr[j];
                }
                for (int j = 0; j < T; j++) {
                    pr[j] = exp(pr[j] - mx);
                    sum += pr[j];
                }
                for (int j = 0; j < T; j++) pr[j] /= sum;
                // dP row, then dS row
                double *dsr = ds + (size_t)i * T, dot = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)dO[i * orow + e] * v[j * row + e];
                    dsr[j] = d;
                    dot += d * pr[j];
                }
                for (int j = 0; j < T; j++) dsr[j] = pr[j] * (dsr[j] - dot) * scale;
            }
            for (int j = 0; j < T; j++)
                for (int e = 0; e < hd; e++) {
                    double sv = 0, sk = 0;
                    for (int i = 0; i < T; i++) {
                        sv += p[(size_t)i * T + j] * dO[i * orow + e];
                        sk += ds[(size_t)i * T + j] * q[i * row + e];
                    }
                    dv[j * row + e] = (float)sv;
                    dk[j * row + e] = (float)sk;
                }
            for (int i = 0; i < T; i++)
                for (int e = 0; e < hd; e++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) s += ds[(size_t)i * T + j] * k[j * row + e];
                    dq[i * row + e] = (float)s;
                }
        }
    free(p);
    free(ds);
}
