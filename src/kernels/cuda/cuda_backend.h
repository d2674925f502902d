// The CUDA backend's plain-C interface: device probing, memory, and one
// function per ViT op on device buffers (same semantics and layouts as
// kernels/ref; every op here has a twin there and is tested against it in
// tests/cuda/test_cuda_ops.c). Built into the `ufo_cuda` library only when
// nvcc is found; libufo sees it only under UFO_HAVE_CUDA.
//
// Nothing here touches the GPU until it is called: a binary linked with it
// starts (and runs on the CPU) on a machine without a GPU or driver.
//
// Conventions: every function that can fail returns 0 / -1 (NULL for
// allocators) and leaves a one-line message in gpu_error() (thread-local).
// All work is queued on the context's one stream, in order; gpu_sync waits.
// Activations are fp32 unless a dtype argument says otherwise; GPU_BF16
// buffers hold bfloat16 (2 bytes per value, round-to-nearest-even).
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GPU_F32 = 0, GPU_BF16 = 1 } gpu_dtype;

typedef struct gpu_ctx gpu_ctx;

const char *gpu_error(void);

// Number of visible devices (> 0), or -1 with gpu_error() =
// "no CUDA device visible (cudaGetDeviceCount: <reason>)".
int gpu_device_count(void);
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" of the context's device.
const char *gpu_device_name(const gpu_ctx *g);

// A stream, cuBLAS/cuBLASLt handles and a workspace on device `device`.
gpu_ctx *gpu_ctx_create(int device);
void gpu_ctx_free(gpu_ctx *g);
int gpu_sync(gpu_ctx *g);
// A CUDA event (cudaEvent_t) recorded on the stream now: another stream (the
// NCCL transport's) can wait for the work queued so far. The context owns a
// ring of GPU_EVENTS; a waiter captures the event when its wait is queued
// (cudaStreamWaitEvent), so reuse after that is safe. NULL on failure.
#define GPU_EVENTS 8
void *gpu_record_event(gpu_ctx *g);

void *gpu_malloc(gpu_ctx *g, size_t bytes);
void gpu_free(gpu_ctx *g, void *p);
// Page-locked host memory: copies from it overlap with kernels.
void *gpu_host_alloc(size_t bytes);
void gpu_host_free(void *p);
// Asynchronous on the stream (pageable host memory makes them synchronous).
int gpu_upload(gpu_ctx *g, void *dst, const void *src, size_t bytes);
int gpu_download(gpu_ctx *g, void *dst, const void *src, size_t bytes);

// dst (bf16) = src (fp32), n values.
int gpu_to_bf16(gpu_ctx *g, void *dst, const float *src, size_t n);

// y[rows, out] (fp32) = x[rows, in] W[out, in]^T + b   (accumulate: y += ...)
// x and W both in `dt` (fp32: full fp32 math, no TF32; bf16: fp32 accumulation).
// cuBLASLt with the bias in its epilogue; b may be NULL.
int gpu_linear(gpu_ctx *g, float *y, const void *x, const void *w, const float *b, int rows, int in, int out,
               gpu_dtype dt, int accumulate);
// y = r + x W^T + b, r [rows, out] fp32 (a residual; may be y: accumulate):
// the residual stream's next value written without copying r first.
int gpu_linear_residual(gpu_ctx *g, float *y, const float *r, const void *x, const void *w, const float *b, int rows,
                        int in, int out, gpu_dtype dt);
// The same with y (and b, as cuBLASLt's bias epilogue takes it in D's type) in
// y_dt: bf16 (with dt bf16) halves the traffic of an output that only feeds
// another matmul's operand (the inference forward's qkv and fc1).
int gpu_linear_out(gpu_ctx *g, void *y, gpu_dtype y_dt, const void *x, const void *w, const void *b, int rows, int in,
                   int out, gpu_dtype dt, int accumulate);
// y = gelu(x) (exact erf form), x fp32, y in `dt` (may alias x when dt is fp32).
int gpu_gelu(gpu_ctx *g, void *y, const float *x, size_t n, gpu_dtype dt);
// The same from x in x_dt (fp32 math either way).
int gpu_gelu_from(gpu_ctx *g, void *y, const void *x, gpu_dtype x_dt, size_t n, gpu_dtype dt);
// LayerNorm over c values per row; row r of x starts at x + r * x_stride
// (x_stride = c for a dense matrix; T*c picks the class tokens). y dense, in `dt`.
int gpu_layernorm(gpu_ctx *g, void *y, const float *x, const float *gamma, const float *beta, int rows, int c,
                  size_t x_stride, float eps, gpu_dtype dt);
// BatchNorm1d at inference, x, y [n, c] fp32 (may alias).
int gpu_batchnorm(gpu_ctx *g, float *y, const float *x, const float *gamma, const float *beta, const float *mean,
                  const float *var, int n, int c, float eps);
// Patch embedding's im2col: img [B, 3, H, W] fp32 -> cols [B * (H/p)*(W/p), 3*p*p]
// in `dt`, column order (channel, ky, kx) = the conv weight [C, 3, p, p] flattened,
// so the patch embedding is gpu_linear(cols, w as [C, 3*p*p]).
int gpu_im2col(gpu_ctx *g, void *cols, const float *img, int B, int H, int W, int p, gpu_dtype dt);
// x[b] = [cls; patches[b]] + pos_embed: x [B, T, D], patches [B, T-1, D], cls [D], pos [T, D].
int gpu_assemble_tokens(gpu_ctx *g, float *x, const float *patches, const float *cls, const float *pos, int B,
                        int T, int D);
// Same contract as ref_attention: qkv [B, T, 3, H, hd] fp32 -> out [B, T, H*hd] in `dt`.
// Scores and softmax in fp32; with bf16 the two matmuls take bf16 inputs
// (fp32 accumulation). Uses (and grows) the context's scratch memory.
int gpu_attention(gpu_ctx *g, void *out, const float *qkv, int B, int T, int H, int hd, gpu_dtype dt);
// The same from qkv in qkv_dt (bf16 only with dt bf16).
int gpu_attention_from(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                       gpu_dtype dt);
// The training's forward: gpu_attention_from, and with the flash kernel (bf16,
// head dim 64) also each row's softmax max and sum into stats [2, B*H*T] fp32
// (stats NULL, or another kernel: nothing written there), for
// gpu_attention_backward_saved.
int gpu_attention_train(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                        gpu_dtype dt, float *stats);
// Which attention gpu_attention runs for bf16 with head dim 64: 1 = the fused
// flash kernel (gpu_flash.cu; the default), 0 = the two cuBLAS GEMMs around a
// softmax kernel (also every other case: fp32, other head dims). A new context
// takes it from the environment: UFO_CUDA_ATTENTION=gemm | flash.
void gpu_set_flash(gpu_ctx *g, int on);
int gpu_uses_flash(const gpu_ctx *g, gpu_dtype dt, int hd);
// The attention (forward and backward) materialises scores for as many images
// at a time as fit in `bytes` (at least one; default 1 GiB). Tests make it small
// to exercise the chunking.
void gpu_set_attention_chunk_bytes(gpu_ctx *g, size_t bytes);

// ---- Training (gpu_train.cu): the backward contracts of kernels/ref/ref.h.
// Parameter gradients ACCUMULATE (+=), input gradients are WRITTEN (=), NULL
// skips a gradient. fp32 arrays; bf16 rounds matmul operands (fp32 accumulation).
// An input gradient's `*16` twin (NULL: none) receives the same values rounded
// to bf16, for a bf16 linear backward that takes it as its dy16.
// Used by the training pass (model/vit_train_cuda.c); each one tested op by op.

// C[M, N] = op(A) op(B) + beta * C, row-major fp32 (op(A) [M, K]: A stored [M, K],
// or [K, M] with transA; op(B) [K, N]: B stored [K, N], or [N, K] with transB).
int gpu_gemm(gpu_ctx *g, float *C, const float *A, const float *B, int M, int N, int K, int transA, int transB,
             float beta, gpu_dtype dt);
// db[j] += sum_i dy[i, j], dy [n, c]
int gpu_colsum_acc(gpu_ctx *g, float *db, const float *dy, size_t n, int c);
// y = x W^T + b:  dx = dy W;  dw += dy^T x;  db += colsum(dy). x and w are
// fp32, or (x_dt, w_dt = GPU_BF16, only with dt = GPU_BF16) already rounded
// to bf16 (a producer's bf16 output; a bf16 mirror of the weights). dy16:
// NULL, or (bf16 only) dy rounded to bf16 by its producer, so the GEMMs take
// it as it is (db still sums the fp32 dy).
int gpu_linear_backward(gpu_ctx *g, float *dx, float *dw, float *db, const float *dy, const void *dy16, const void *x,
                        gpu_dtype x_dt, const void *w, gpu_dtype w_dt, int n, int in, int out, gpu_dtype dt);
// The bf16 training's fused element-wise passes (kernels/cpu/cpu_train.h's
// contracts, the same roundings as its bf16 path):
// y = bf16(gelu(x)), dgelu = bf16(gelu'(x)), x [n] fp32 (cpu_gelu_bf16).
int gpu_gelu_bf16(gpu_ctx *g, void *y, void *dgelu, const float *x, size_t n);
// dst [n, c] bf16 = round(g) with g[i, k] = dy[i, k] * rowscale[i / per] * mul[i, k]
// (fp32 products; rowscale NULL: 1, else the drop path's per-sample scale, per
// rows a sample; mul NULL: 1,
// else [n, c] bf16, GELU's saved derivative), and db [c] += the column sums of
// g (db NULL: none): a linear backward's dy16 and its bias gradient in one pass.
int gpu_grad_rows_bf16(gpu_ctx *g, void *dst, float *db, const float *dy, const void *mul, const float *rowscale,
                       size_t per, int n, int c);
// dx_accumulate 1: dx += (the block's residual gradient added in the same pass).
int gpu_layernorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy, const float *x,
                           const float *gamma, int n, int c, float eps, int dx_accumulate);
int gpu_gelu_backward(gpu_ctx *g, float *dx, const float *dy, const float *x, size_t n);
// dqkv [B, T, 3, H, hd] = d(attention)/d(qkv) given dout [B, T, H*hd] (scores recomputed).
int gpu_attention_backward(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const float *qkv, int B, int T,
                           int H, int hd, gpu_dtype dt);
// The same from qkv in qkv_dt (bf16 only with dt bf16: the training keeps
// qkv as the bf16 values the attention rounds it to anyway).
int gpu_attention_backward_from(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                gpu_dtype qkv_dt, int B, int T, int H, int hd, gpu_dtype dt);
// gpu_attention_backward_from given what gpu_attention_train saved: its output o
// ([B, T, H*hd] in dt, as the forward wrote it) and stats. With the flash kernel
// the forward is then not run again (delta = rowsum(dO * o) from o as saved);
// otherwise (o or stats NULL, or the GEMM attention) it is
// gpu_attention_backward_from.
int gpu_attention_backward_saved(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                                 gpu_dtype qkv_dt, const void *o, const float *stats, int B, int T, int H, int hd,
                                 gpu_dtype dt);
// Attention for the class token's query only (token 0 of each image; the
// training's last block, whose other rows feed nothing; gpu_attention_cls.cu):
// out [B, H*hd] in dt = token 0's rows of gpu_attention's output, from qkv
// [B, T, 3, H, hd] in qkv_dt (bf16 only with dt bf16; hd <= 256). Uses the
// context's scratch.
int gpu_attention_cls(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                      gpu_dtype dt);
// Its gradient given dout [B, H*hd]: dqkv (and dqkv16, or NULL) written for
// every row, the other tokens' queries zero.
int gpu_attention_cls_backward(gpu_ctx *g, float *dqkv, void *dqkv16, const float *dout, const void *qkv,
                               gpu_dtype qkv_dt, int B, int T, int H, int hd, gpu_dtype dt);
int gpu_batchnorm_train(gpu_ctx *g, float *y, float *mean, float *rstd, const float *x, const float *gamma,
                        const float *beta, float *running_mean, float *running_var, int n, int c, float eps,
                        float momentum);
int gpu_batchnorm_backward(gpu_ctx *g, float *dx, float *dg, float *db, const float *dy, const float *x,
                           const float *mean, const float *rstd, const float *gamma, int n, int c);
// dw [C, 3, p, p] +=, db [C] += from dy [B, P, C] and img [B, 3, H, W]
int gpu_patch_embed_backward(gpu_ctx *g, float *dw, float *db, const float *dy, const float *img, int B, int H, int W,
                             int p, int C, gpu_dtype dt);

// ---- Glue of the training pass and the optimiser (gpu_train.cu). All on the stream.
// dst (fp32) = src (bf16), n values.
int gpu_from_bf16(gpu_ctx *g, float *dst, const void *src, size_t n);
// Device-to-device copy and zero fill.
int gpu_copy(gpu_ctx *g, void *dst, const void *src, size_t bytes);
int gpu_zero(gpu_ctx *g, void *p, size_t bytes);
// dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < cols (fp32).
int gpu_copy_rows(gpu_ctx *g, float *dst, size_t dst_stride, const float *src, size_t src_stride, size_t rows,
                  size_t cols);
// The same for values in dt (strides in values).
int gpu_copy_rows_dt(gpu_ctx *g, void *dst, size_t dst_stride, const void *src, size_t src_stride, size_t rows,
                     size_t cols, gpu_dtype dt);
// Partial-FC's sampled classifier rows: `rows` is a DEVICE array of n row
// indices into the [*, D] matrix. gather: dst [n, D] (dense) = src[rows[j]];
// scatter_add: dst[rows[j]] += src [n, D] (the rows must be distinct).
int gpu_gather_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D);
int gpu_scatter_add_rows(gpu_ctx *g, float *dst, const float *src, const int *rows, int n, int D);
// Per-sample scaling of n samples of `per` values: dst[i] (+)= s[i / per] * src[i]
// (s NULL: 1; accumulate 0 writes, 1 adds). The drop-path residual scales.
int gpu_scale_rows(gpu_ctx *g, float *dst, const float *src, const float *s, size_t n, size_t per, int accumulate);
// dst[i] = base[i] + s[i / per] * src[i] (s NULL: 1; base NULL: 0): a
// drop-path residual written straight into the next buffer (base may be dst:
// accumulate), or a scaled drop-path gradient (base NULL).
int gpu_add_scaled_rows(gpu_ctx *g, float *dst, const float *base, const float *src, const float *s,
                        size_t n, size_t per);
// part[c] = sum of x[i]^2 over chunk c = [c * chunk, (c+1) * chunk) of x[0..n), in
// double (one block per chunk, fixed reduction tree: deterministic).
int gpu_sumsq_chunks(gpu_ctx *g, double *part, const float *x, size_t n, size_t chunk);
// SGD with momentum (train/sgd.h's update with the clip scale given):
//   d = grad * scale + weight_decay * param;  mom = momentum * mom + d;  param -= step * mom
int gpu_sgd_update(gpu_ctx *g, float *param, const float *grad, float *mom, size_t n, float scale,
                   float weight_decay, float momentum, float step);
// The same update on rows rows[0..nrows) (a device int array, distinct rows) of
// [*, cols] buffers; the other rows are untouched. One launch for a Partial-FC
// sampled classifier's kept rows (one launch per run of rows would be thousands).
int gpu_sgd_update_rows(gpu_ctx *g, float *param, const float *grad, float *mom, const int *rows, int nrows, int cols,
                        float scale, float weight_decay, float momentum, float step);

// ---- The task heads' losses (gpu_losses.cu): train/cosface.h's and train/triplet.h's
// contracts, one process. Features and weights are device buffers; the labels
// are HOST arrays (checked, then uploaded); the results come back to the host,
// so both wait for the stream before returning. Scratch: the context's.

// CosFace, unsharded: f [n, D], W [classes, D]; df [n, D] is WRITTEN, dW
// [classes, D] ACCUMULATED (+=), either NULL to skip it. Classes in blocks of
// `block` (<= 0: 8192). The summed loss is divided by den when den > 0, else
// by max(nonzero, 1) with nonzero_mean, else by n. *loss, *correct (top-1 of
// cos, ties to the lower class), *nonzero (samples whose fp32 loss is not 0).
int gpu_cosface(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D, int classes, float s,
                float m, int block, int nonzero_mean, double den, float *df, float *dW, double *loss, int *correct,
                int *nonzero);
// Partial-FC (class-sharded) CosFace, train/cosface.h's opts.shard semantics:
// W holds this rank's classes [class_lo, class_lo + classes) of total_classes,
// f and labels (GLOBAL class ids) are the whole batch, the same on every rank.
// The cross-rank reductions are the caller's (kernels know no process group):
// `allreduce` on HOST arrays in place (doubles or floats, max or sum; the
// per-row pass-1 state, a few times n values), `allreduce_device` a sum over
// a DEVICE buffer of floats in place (d f_hat, [n, D]; the stream's work is
// complete when it is called, the sum must be in the buffer when it returns:
// NCCL on the device group), or NULL: d f_hat comes down, `allreduce` sums
// it, it goes back up. Each returns 0, or non-zero (the call fails).
typedef struct {
    int (*allreduce)(void *ctx, void *buf, size_t n, int is_double, int op_max);
    int (*allreduce_device)(void *ctx, float *buf, size_t n);
    void *ctx;
    int class_lo, total_classes;
} gpu_cosface_shard;
// gpu_cosface with `sh` (NULL: gpu_cosface): the loss, *correct and *nonzero
// are the global batch's on every rank, df [n, D] every row's (d f_hat summed
// over the shards), dW [classes, D] the shard's own, complete. classes >= 1.
int gpu_cosface_sharded(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D, int classes,
                        float s, float m, int block, int nonzero_mean, double den, float *df, float *dW,
                        double *loss, int *correct, int *nonzero, const gpu_cosface_shard *sh);
// Batch-hard triplet: x [n, D] (pre-BN features); dx [n, D] is WRITTEN (NULL:
// skipped). margin 0: soft margin (*fallback = 1 when it overflowed and the
// margin ranking loss with 0.3 was used); > 0: hinge. Means of ap / an for the log.
int gpu_triplet(gpu_ctx *g, const float *x, const int *labels, int n, int D, float margin, float *dx, double *loss,
                int *fallback, double *dist_ap_mean, double *dist_an_mean);

#ifdef __cplusplus
}
#endif
