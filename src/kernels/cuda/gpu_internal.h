// Shared by the CUDA backend's two translation units (not part of its C interface).
#pragma once
#include "kernels/cuda/cuda_backend.h"
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

// One cached cuBLASLt plan per linear shape (descriptors + the chosen algorithm).
typedef struct {
    int rows, in, out, dt, y_dt, has_bias, accumulate;
    int bias_in_epilogue;  // 0: cuBLASLt had no algorithm with the bias epilogue; a kernel adds it
    int gemmex;            // 1: cuBLASLt had no algorithm at all (odd leading dims); plain cublasGemmEx
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gpu_lin_plan;

#define GPU_MAX_PLANS 64

struct gpu_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *ws;            // cuBLASLt workspace
    size_t ws_bytes;
    void *scratch;       // attention's q/k/v/scores/output, grown on demand
    size_t scratch_bytes;
    float *cols;         // the patch embedding backward's im2col, grown on demand (the
    size_t cols_bytes;   // scratch is taken by gpu_gemm's bf16 copies in the same call)
    gpu_lin_plan plans[GPU_MAX_PLANS];
    int n_plans;
    char name[320];
    int flash;           // attention: 1 = gpu_flash.cu where it applies (bf16, hd 64), 0 = GEMMs
    size_t chunk_bytes;  // attention: score buffers per chunk of images stay under this (>= 1 image)
    cudaEvent_t events[GPU_EVENTS];   // gpu_record_event's ring (made on first use)
    int next_event;
};

// Sets gpu_error() and returns -1.
int gpu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// 0 if err == cudaSuccess (also checks the last launch), else -1 naming `what`.
int gpu_check(cudaError_t err, const char *what);
int gpu_check_launch(const char *what);

// The context's scratch, grown (never shrunk) to at least `bytes`; contents undefined.
// One user at a time: the attention (forward or backward) or gpu_gemm's bf16 copies.
int gpu_ensure_scratch(gpu_ctx *g, size_t bytes);

// Launchers used by gpu_attention (gpu_kernels.cu).
// qkv [B, T, 3, H, hd] fp32 -> q, k, v [B, H, T, hd] in dt
// (qkv in qkv_dt; a bf16 qkv only with dt bf16)
void gpu_launch_split_qkv(cudaStream_t s, void *q, void *k, void *v, const void *qkv, gpu_dtype qkv_dt, int B, int T,
                          int H, int hd, gpu_dtype dt);
// rows of T fp32 scores -> softmax in dt (in place allowed for fp32)
void gpu_launch_softmax(cudaStream_t s, void *p, const float *scores, size_t rows, int T, gpu_dtype dt);
// o [B, H, T, hd] fp32 -> out [B, T, H*hd] in dt
void gpu_launch_merge_heads(cudaStream_t s, void *out, const float *o, int B, int T, int H, int hd, gpu_dtype dt);
// y[r, c] += b[c] (the bias when cuBLASLt cannot take it in its epilogue)
void gpu_launch_add_bias(cudaStream_t s, void *y, const void *b, gpu_dtype dt, int rows, int c);
// Where token t of head h of image b starts in q, k and v (in elements):
// base + b * img + h * head + t * row. Split heads [B*H, T, hd]: {H*T*hd,
// T*hd, hd}; straight from a qkv [B, T, 3, H, hd] (k, v at + H*hd, + 2*H*hd):
// {T*3*H*hd, hd, 3*H*hd}.
struct gpu_qkv_strides {
    size_t img, head, row;
};
// The split-heads layout's (gpu_launch_split_qkv's output).
inline gpu_qkv_strides gpu_split_strides(int T, int H, int hd) {
    return gpu_qkv_strides{(size_t)H * T * hd, (size_t)T * hd, (size_t)hd};
}
// Flash attention (gpu_flash.cu): q, k, v bf16 (laid out as `st` says) -> out
// [B, T, H*hd] in out_dt; stat_m, stat_l (or NULL): each row's max and sum
// [B*H, T], for the backward. Only hd == 64; returns -1 (nothing launched)
// otherwise. Every row must start 16-byte aligned.
int gpu_launch_flash(cudaStream_t s, void *out, const void *q, const void *k, const void *v, gpu_qkv_strides st,
                     int B, int T, int H, int hd, gpu_dtype out_dt, float *stat_m, float *stat_l);
// Its backward: q, k, v bf16 (laid out as `st` says), dout [B*H, T, hd] bf16,
// the forward's stat_m, stat_l and delta = rowsum(dout * out) [B*H, T] ->
// dqkv [B, T, 3, H, hd] fp32: dk, dv written (and into the bf16 twin dqkv16,
// or NULL), dq (zeroed by the caller) += its share from every key tile (the
// caller rounds dq into the twin after). Only hd == 64.
int gpu_launch_flash_backward(cudaStream_t s, float *dqkv, void *dqkv16, const void *q, const void *k, const void *v,
                              gpu_qkv_strides st, const void *dout, const float *stat_m, const float *stat_l,
                              const float *delta, int B, int T, int H, int hd);
