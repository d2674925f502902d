// Reference backward of the linear layer and of the patch embedding (the
// patch embedding written as the strided convolution it is, not via im2col,
// so it checks the fast path's im2col). Double accumulators throughout.
#include "kernels/ref/ref.h"
#include <stdlib.h>

void ref_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                         int in, int out) {
    if (dx) {
        // dx[i, k] = sum_j dy[i, j] w[j, k]
        double *acc = malloc((size_t)(in > 0 ? in : 1) * sizeof *acc);
        if (!acc) abort();   // a reference: tests only use small shapes
        for (int i = 0; i < n; i++) {
            const float *dyr = dy + (size_t)i * out;
            for (int k = 0; k < in; k++) acc[k] = 0;
            for (int j = 0; j < out; j++) {
                double g = dyr[j];
                const float *wr = w + (size_t)j * in;
                for (int k = 0; k < in; k++) acc[k] += g * wr[k];
            }
            float *dxr = dx + (size_t)i * in;
            for (int k = 0; k < in; k++) dxr[k] = (float)acc[k];
        }
        free(acc);
    }
    if (dw) {
        // dw[j, k] += sum_i dy[i, j] x[i, k]
        for (int j = 0; j < out; j++)
            for (int k = 0; k < in; k++) {
                double s = 0;
                for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * out + j] * x[(size_t)i * in + k];
                dw[(size_t)j * in + k] = (float)(dw[(size_t)j * in + k] + s);
            }
    }
    if (db) {
        for (int j = 0; j < out; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * out + j];
            db[j] = (float)(db[j] + s);
        }
    }
}

void ref_patch_embed_backward(float *dw, float *db, const float *dy, const float *img, int B, int H, int W, int p,
                              int C) {
    int gh = H / p, gw = W / p;
    size_t ntok = (size_t)gh * gw;
    if (dw) {
        for (int c = 0; c < C; c++)
            for (int ch = 0; ch < 3; ch++)
                for (int ky = 0; ky < p; ky++)
                    for (int kx = 0; kx < p; kx++) {
                        double s = 0;
                        for (int bi = 0; bi < B; bi++)
                            for (int py = 0; py < gh; py++)
                                for (int px = 0; px < gw; px++) {
                                    double g = dy[(((size_t)bi * gh + py) * gw + px) * C + c];
                                    float iv = img[(((size_t)bi * 3 + ch) * H + (size_t)py * p + ky) * W +
                                                   (size_t)px * p + kx];
                                    s += g * iv;
                                }
                        size_t o = (((size_t)c * 3 + ch) * p + ky) * p + kx;
                        dw[o] = (float)(dw[o] + s);
                    }
    }
    if (db) {
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (size_t t = 0; t < (size_t)B * ntok; t++) s += dy[t * C + c];
            db[c] = (float)(db[c] + s);
        }
    }
}
