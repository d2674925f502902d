// Plain-C fp32 reference of every op the ViT needs. Readable, single-threaded
// where that keeps it obvious, double accumulators where that keeps it honest.
// Every fast path (kernels/cpu, kernels/cuda) is tested against these.
// Layouts: row-major; linear weights [out, in] (PyTorch's), y = x W^T + b.
#pragma once
#include <stddef.h>

// y[n, out] = x[n, in] W[out, in]^T + b[out]   (b may be NULL)
void ref_linear(float *y, const float *x, const float *w, const float *b, int n, int in, int out);
// Per row of c values: (x - mean) / sqrt(var + eps) * g + b   (biased variance)
void ref_layernorm(float *y, const float *x, const float *g, const float *b, int n, int c, float eps);
// Exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))). In place allowed.
void ref_gelu(float *y, const float *x, size_t n);
// Multi-head self-attention core, no projections:
//   qkv [B, T, 3, H, hd] (the qkv linear's output columns are [q | k | v], each H heads of hd)
//   out [B, T, H*hd]     softmax(q k^T * hd^-0.5) v, heads concatenated
void ref_attention(float *out, const float *qkv, int B, int T, int H, int hd);
// BatchNorm1d at inference: (x - mean) / sqrt(var + eps) * g + b, x [n, c]
void ref_batchnorm(float *y, const float *x, const float *g, const float *b, const float *mean,
                   const float *var, int n, int c, float eps);
// Conv2d(3 -> C, kernel p, stride p) over img [B, 3, H, W] with w [C, 3, p, p], b [C];
// output tokens in raster order: y [B, (H/p)*(W/p), C]
void ref_patch_embed(float *y, const float *img, const float *w, const float *b, int B, int H, int W,
                     int p, int C);
// y[i] += a[i]
void ref_add(float *y, const float *a, size_t n);
