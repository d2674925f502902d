// Reference linear and patch embedding (a patch embedding is a strided conv,
// written out directly rather than through im2col so it checks the im2col).
#include "kernels/ref/ref.h"

// y[i, j] = b[j] + sum_k x[i, k] w[j, k]. Each output is one double dot product
// in plain k order; four outputs at a time only to overlap the add latencies.
void ref_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * in;
        float *yr = y + (size_t)i * out;
        int j = 0;
        for (; j + 4 <= out; j += 4) {
            const float *w0 = w + (size_t)j * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int k = 0; k < in; k++) {
                double xv = xr[k];
                s0 += xv * w0[k];
                s1 += xv * w1[k];
                s2 += xv * w2[k];
                s3 += xv * w3[k];
            }
            yr[j + 0] = (float)(s0 + (b ? b[j + 0] : 0.0));
            yr[j + 1] = (float)(s1 + (b ? b[j + 1] : 0.0));
            yr[j + 2] = (float)(s2 + (b ? b[j + 2] : 0.0));
            yr[j + 3] = (float)(s3 + (b ? b[j + 3] : 0.0));
        }
        for (; j < out; j++) {
            const float *wr = w + (size_t)j * in;
            double s = 0;
            for (int k = 0; k < in; k++) s += (double)xr[k] * wr[k];
            yr[j] = (float)(s + (b ? b[j] : 0.0));
        }
    }
}

void ref_patch_embed(float *y, const float *img, const float *w, const float *b, int B, int H, int W,
                     int p, int C) {
    int gh = H / p, gw = W / p;
    for (int bi = 0; bi < B; bi++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                float *yt = y + (((size_t)bi * gh + py) * gw + px) * C;
                for (int c = 0; c < C; c++) {
                    double s = b ? b[c] : 0.0;
                    for (int ch = 0; ch < 3; ch++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++) {
                                float iv = img[(((size_t)bi * 3 + ch) * H + (size_t)py * p + ky) * W +
                                               (size_t)px * p + kx];
                                float wv = w[(((size_t)c * 3 + ch) * p + ky) * p + kx];
                                s += (double)iv * wv;
                            }
                    yt[c] = (float)s;
                }
            }
}
