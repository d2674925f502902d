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

// ---- Backward (training). Conventions: parameter gradients ACCUMULATE (+=), so
// a step zeroes them once; input gradients are WRITTEN (=) unless noted; an
// input-gradient pointer may be NULL to skip it.

// y = x W^T + b:  dx[n,in] = dy W;  dw[out,in] += dy^T x;  db[out] += sum_n dy
void ref_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                         int in, int out);
// LayerNorm (biased variance, eps inside the sqrt): dx =, dg +=, db +=
void ref_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g, int n,
                            int c, float eps);
// dx[i] = dy[i] * gelu'(x[i]) (exact erf GELU)
void ref_gelu_backward(float *dx, const float *dy, const float *x, size_t n);
// Gradient of ref_attention w.r.t. its qkv input (softmax recomputed from qkv):
// dqkv [B, T, 3, H, hd] =, given dout [B, T, H*hd].
void ref_attention_backward(float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd);
// Patch embedding parameters: dw [C,3,p,p] +=, db [C] += from dy [B, P, C] (no image gradient).
void ref_patch_embed_backward(float *dw, float *db, const float *dy, const float *img, int B, int H, int W, int p,
                              int C);
// BatchNorm1d in training mode over x [n, c]: normalises with the batch mean and
// biased variance; updates running_mean/var with `momentum` (PyTorch convention,
// 0.1; running_var takes the UNBIASED batch variance); saves mean[c] and
// rstd[c] = 1/sqrt(var + eps) for the backward.
void ref_batchnorm_train(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b,
                         float *running_mean, float *running_var, int n, int c, float eps, float momentum);
// dx =, dg +=, db +=
void ref_batchnorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                            const float *rstd, const float *g, int n, int c);
