// The ReID / SOP metrics' fp32 similarity screen on a GPU: the engine behind
// eval/metrics.h's ufo_metrics_screen (the CLI wires the two: model code
// does not see eval, eval does not see the backend). One metric call uploads
// its gallery once and keeps it resident while query blocks come and go;
// every device buffer is freed at the call's end. The CUDA context (stream,
// cuBLAS handles) is created at the first call and kept until the free.
// Built without CUDA, create fails with one line.
#pragma once
#include <stdint.h>

typedef struct cuda_screen cuda_screen;

typedef struct {
    int64_t calls;      // metric calls screened on the GPU
    int64_t declined;   // calls left to the CPU (device memory short)
    int64_t cpu_blocks; // blocks of GPU calls left to the CPU (device memory short)
    double macs;        // products computed (multiply-adds)
    double seconds;     // begin to end, uploads and downloads included
} cuda_screen_stats;

// Touches no GPU yet. NULL after ufo_errorf (no CUDA in this build, or a
// cuBLAS setting that breaks strict fp32).
cuda_screen *cuda_screen_create(int device);
void cuda_screen_free(cuda_screen *s);
// ufo_metrics_screen's callbacks, ctx = the cuda_screen.
int cuda_screen_begin(void *ctx, const float *B, int64_t n, int d);
int cuda_screen_block(void *ctx, const float *A, int64_t m, int64_t col0, int64_t ncols, float *C);
void cuda_screen_end(void *ctx);
void cuda_screen_get_stats(const cuda_screen *s, cuda_screen_stats *st);
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" once a call has run, else "".
const char *cuda_screen_device(const cuda_screen *s);
