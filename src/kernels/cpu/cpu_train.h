// The fast CPU path for training: a general matmul on oneDNN (weights change
// every step, so nothing is pre-packed), a training forward linear on it, and
// the backward of every op of the model. Same semantics and layouts as the
// backward contracts in kernels/ref/ref.h: parameter gradients ACCUMULATE (+=),
// input gradients are WRITTEN (=), a NULL gradient pointer skips that gradient.
// bf16 precision = bf16 matmul operands (rounded from the fp32 arrays on the
// fly: fp32 master weights), fp32 accumulation, fp32 results; element-wise and
// reduction work always runs in fp32.
// Functions returning int return 0, or -1 with ufo_error set.
#pragma once
#include "kernels/cpu/cpu.h"
#include <stddef.h>
#include <stdint.h>

// C[M, N] = op(A) op(B) + beta * C, all row-major fp32.
//   op(A) is [M, K]: A is stored [M, K], or [K, M] when transA (A^T is used).
//   op(B) is [K, N]: B is stored [K, N], or [N, K] when transB.
// beta 0 never reads C (it may hold NaN). One oneDNN matmul primitive per
// distinct (M, N, K, transA, transB, beta, prec), kept in a small LRU cache.
// bf16: A and B are rounded to bf16 into scratch first; C stays fp32.
// Thread-safe (callers are serialised; oneDNN parallelises inside).
int cpu_gemm(float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB, float beta,
             ufo_precision prec);

// The same with operands already in the precision's type (prec FP32: float
// arrays; prec BF16: uint16_t bf16 arrays), plus an optional fp32 bias [N]
// added to every row and an optional exact GELU:
//   C = gelu?( op(A) op(B) + bias + beta * C )
int cpu_gemm_ex(float *C, const void *A, const void *B, const float *bias, int M, int N, int K, int transA,
                int transB, float beta, int gelu, ufo_precision prec);

// Training forward of a linear layer with the same post-ops as cpu_linear
// (y = x W^T + b; GELU: y = gelu(x W^T + b); RESIDUAL: y += x W^T + b), with
// w [out, in] used as it is (no packing). b may be NULL.
int cpu_linear_train_forward(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                             cpu_post_op post, ufo_precision prec);

// ---- bf16 training with activations kept in bf16.
// The bf16 training step keeps the bf16 copy of every linear's input that the
// forward makes (LayerNorm and GELU write it directly) and reuses it for the
// weight gradient, and rounds each output gradient once, summing its columns
// for the bias gradient in the same pass. Same rounding as the functions
// above: results match cpu_linear_train_forward / cpu_linear_backward with
// prec BF16 given the fp32 arrays these bf16 copies were rounded from.

// cpu_linear_train_forward with prec BF16 and x already rounded: xb [n, in] bf16.
int cpu_linear_train_forward_bf16(float *y, const uint16_t *xb, const float *w, const float *b, int n, int in,
                                  int out, cpu_post_op post);

// fc1 of the bf16 training forward with its GELU: gb = bf16(gelu(xb W^T + b)),
// gd = bf16(gelu'(xb W^T + b)) ([n, out] each), the results of
// cpu_linear_train_forward_bf16 followed by cpu_gelu_bf16. On the AMX path in
// one pass (the pre-activation never reaches memory); elsewhere through
// scratch [n, out] fp32, which the caller provides.
int cpu_linear_gelu_train_forward_bf16(uint16_t *gb, uint16_t *gd, const uint16_t *xb, const float *w, const float *b,
                                       int n, int in, int out, float *scratch);
// The qkv linear of the bf16 training forward when the attention reads bf16:
// yb = bf16(xb W^T + b) [n, out], the result of cpu_linear_train_forward_bf16
// rounded; on the AMX path in one pass, elsewhere through the caller's scratch
// [n, out] fp32.
int cpu_linear_train_forward_bf16_out(uint16_t *yb, const uint16_t *xb, const float *w, const float *b, int n, int in,
                                      int out, float *scratch);

// cpu_linear_backward with prec BF16, the input already rounded (xb [n, in]),
// and the output gradient given either as fp32 dy [n, out] (rounded here; each
// row i times rowscale[i / per_scale] first when rowscale is not NULL: drop
// path; db += its column sums in the same pass) or already rounded, dyb [n, out]
// (then dy, rowscale and db must be NULL: the caller summed the bias gradient).
int cpu_linear_backward_bf16(float *dx, float *dw, float *db, const float *dy, const float *rowscale, long per_scale,
                             const uint16_t *dyb, const uint16_t *xb, const float *w, int n, int in, int out);

// cpu_attention_backward with prec BF16, the gradient written rounded,
// dqkvb [B, T, 3, H, hd] bf16 (=), and db [3 H hd] += its column sums (the qkv
// linear's bias gradient; db may be NULL): no fp32 dqkv is ever written.
int cpu_attention_backward_bf16(uint16_t *dqkvb, float *db, const float *dout, const float *qkv, int B, int T, int H,
                                int hd);
// The same from a bf16 qkv (as the qkv matmul wrote it with
// cpu_linear_train_forward_bf16_out; the attention rounds q, k, v to bf16 in
// any case, so the results are those of the fp32 qkv it was rounded from).
// The AMX path only: call when cpu_attention_io_ok(T, hd).
int cpu_attention_backward_bf16_qkvb(uint16_t *dqkvb, float *db, const float *dout, const uint16_t *qkvb, int B, int T,
                                     int H, int hd);
// Attention for the class token's query only (token 0 of each image; the
// training's last block, whose other rows feed nothing): out [B, H*hd] = the
// rows of token 0 of cpu_attention's output, from qkv [B, T, 3, H, hd] (fp32,
// or bf16 when qkv_bf16, which needs prec BF16). bf16 rounds as the AMX kernels.
int cpu_attention_cls(float *out, const void *qkv, int qkv_bf16, int B, int T, int H, int hd, ufo_precision prec);
// Its gradient w.r.t. qkv given dout [B, H*hd], written for every row (the
// queries of the other tokens get zeros): into dqkv (fp32), or into dqkvb
// (bf16) with its column sums added to db when db is not NULL.
int cpu_attention_cls_backward(float *dqkv, uint16_t *dqkvb, float *db, const float *dout, const void *qkv,
                               int qkv_bf16, int B, int T, int H, int hd, ufo_precision prec);
// LayerNorm backward with a residual gradient added: dx = LN'(dy) + res
// (cpu_layernorm_backward otherwise; res must not alias dx).
int cpu_layernorm_backward_add(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g,
                               const float *res, int n, int c, float eps);
// fp32 -> bf16, round to nearest even, OpenMP-parallel (the cpu_internal.h
// function, declared here too for the model's training pass).
void cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
// y = bf16(LayerNorm(x)) (cpu_layernorm's arithmetic, rounded; no fp32 output).
int cpu_layernorm_bf16(uint16_t *y, const float *x, const float *g, const float *b, int n, int c, float eps);
// The same, written in the packed layout when packed is 1 (cpu.h).
int cpu_layernorm_bf16_ex(uint16_t *y, const float *x, const float *g, const float *b, int n, int c, float eps,
                          int packed);
// y = bf16(gelu(x)) (cpu_gelu's arithmetic, rounded) and, if dgelu is not
// NULL, dgelu = bf16(gelu'(x)) (cpu_gelu_backward's derivative, rounded).
void cpu_gelu_bf16(uint16_t *y, uint16_t *dgelu, const float *x, size_t n);
// GELU backward [n, c] from the saved rounded derivative: g = dy * dgelu (fp32
// products), dxb = bf16(g), and db[j] += sum_i g[i, j] (summed like
// cpu_colsum_acc): the bias gradient of the linear before the GELU, same pass.
int cpu_gelu_backward_bf16(uint16_t *dxb, float *db, const float *dy, const uint16_t *dgelu, int n, int c);

// y = x W^T + b:  dx[n, in] = dy W;  dw[out, in] += dy^T x;  db[out] += sum_n dy.
// Any of dx, dw, db may be NULL.
int cpu_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                        int in, int out, ufo_precision prec);

// LayerNorm backward (mean and rstd recomputed from x): dx =, dg +=, db +=.
int cpu_layernorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *g, int n,
                           int c, float eps);

// dx[i] = dy[i] * gelu'(x[i]) (exact erf GELU). dx may alias dy.
void cpu_gelu_backward(float *dx, const float *dy, const float *x, size_t n);

// Gradient of cpu_attention w.r.t. qkv [B, T, 3, H, hd] (=), given dout [B, T, H*hd].
// fp32: per-(batch, head) sgemms; bf16: batched bf16 matmuls, fp32 softmax and dS.
int cpu_attention_backward(float *dqkv, const float *dout, const float *qkv, int B, int T, int H, int hd,
                           ufo_precision prec);

// BatchNorm1d in training mode, the contract of ref_batchnorm_train.
void cpu_batchnorm_train(float *y, float *mean, float *rstd, const float *x, const float *g, const float *b,
                         float *running_mean, float *running_var, int n, int c, float eps, float momentum);
// dx =, dg +=, db +=  (the contract of ref_batchnorm_backward)
void cpu_batchnorm_backward(float *dx, float *dg, float *db, const float *dy, const float *x, const float *mean,
                            const float *rstd, const float *g, int n, int c);

// Patch embedding parameters (im2col + cpu_gemm): dw [C, 3, p, p] +=, db [C] +=,
// from dy [B, (H/p)*(W/p), C] and img [B, 3, H, W].
int cpu_patch_embed_backward(float *dw, float *db, const float *dy, const float *img, int B, int H, int W, int p,
                             int C, ufo_precision prec);

// ---- Internals shared by cpu_gemm.c, cpu_backward.c and cpu_gemm_amx.c.

// A grow-only scratch buffer of the calling thread (slots 0..CPU_TRAIN_SLOTS-1),
// 64-byte aligned, contents undefined; valid until the same slot is asked for
// again on this thread. NULL (ufo_error set) when allocation fails. Slots 0-5
// hold the training kernels' bf16 copies (live across the matmuls they feed);
// CPU_SCRATCH_AMX_A and _B are the AMX matmul's packed operands.
#define CPU_TRAIN_SLOTS 8
enum { CPU_SCRATCH_AMX_A = 6, CPU_SCRATCH_AMX_B = 7 };
void *cpu_train_scratch(int slot, size_t bytes);
// db[j] += sum_i dy[i, j] over dy [n, c] (OpenMP; deterministic for a given thread count).
int cpu_colsum_acc(float *db, const float *dy, long n, int c);
