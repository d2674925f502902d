// The fp32 similarity screen of the exact kNN metrics on the GPU (see
// screen_cuda.h and eval/nn_internal.h's precision contract).
//
// Strict fp32: gpu_gemm (kernels/cuda/gpu_train.cu) is cublasGemmEx with
// CUDA_R_32F operands and CUBLAS_COMPUTE_32F, and gpu_ctx.cu never calls
// cublasSetMathMode, so the handle keeps CUBLAS_DEFAULT_MATH: no TF32 (that
// takes CUBLAS_COMPUTE_32F_FAST_TF32 or CUBLAS_TF32_TENSOR_OP_MATH;
// NVIDIA_TF32_OVERRIDE can only turn TF32 off). cuBLAS sums in its own
// order (tiles, split-K, FMA), which ufo_nn_eps covers. The one outside
// switch to other arithmetic, CUBLAS_EMULATE_SINGLE_PRECISION (cuBLAS's
// BF16x9 emulation of fp32 on Blackwell: nine partial products a term, a
// bound gamma_d does not cover), makes create fail. eval/nn_common.c also
// spot-checks every block against double products, and
// tests/cuda/test_cuda_knn.c checks every value on a real GPU.
#include "model/screen_cuda.h"
#include "base/error.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include <limits.h>

struct cuda_screen {
    int device;
    gpu_ctx *g;            // created by the first begin
    float *dB, *dA, *dC;   // this call's gallery, query block, similarity block
    size_t capA, capC;     // floats in dA, dC
    int64_t n;
    int d;
    double t0;
    cuda_screen_stats st;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int fail(const char *what) { return ufo_errorf("kNN screen on the GPU: %s: %s", what, gpu_error()); }

cuda_screen *cuda_screen_create(int device) {
    const char *emu = getenv("CUBLAS_EMULATE_SINGLE_PRECISION");
    if (emu && *emu && strcmp(emu, "0")) {
        ufo_errorf("kNN screen on the GPU: CUBLAS_EMULATE_SINGLE_PRECISION=%s is not strict fp32 "
                   "(unset it to screen on the GPU)", emu);
        return NULL;
    }
    cuda_screen *s = calloc(1, sizeof *s);
    if (!s) ufo_errorf("out of memory");
    else s->device = device;
    return s;
}

static void free_bufs(cuda_screen *s) {
    if (s->g) {
        gpu_free(s->g, s->dB);
        gpu_free(s->g, s->dA);
        gpu_free(s->g, s->dC);
    }
    s->dB = s->dA = s->dC = NULL;
    s->capA = s->capC = 0;
}

void cuda_screen_free(cuda_screen *s) {
    if (!s) return;
    free_bufs(s);
    if (s->g) gpu_ctx_free(s->g);
    free(s);
}

// Returns 1 (decline: the CPU screens this call) when the gallery does not
// fit in device memory; the metric result is the same either way.
int cuda_screen_begin(void *ctx, const float *B, int64_t n, int d) {
    cuda_screen *s = ctx;
    s->t0 = now_s();
    if (n > INT_MAX || d < 1) return ufo_errorf("kNN screen on the GPU: %lld x %d gallery is too large",
                                                (long long)n, d);
    if (!s->g && !(s->g = gpu_ctx_create(s->device))) return fail("creating the CUDA context");
    s->n = n, s->d = d;
    size_t bytes = (size_t)n * d * sizeof(float);
    if (!(s->dB = gpu_malloc(s->g, bytes))) {
        s->st.declined++;
        return 1;
    }
    if (gpu_upload(s->g, s->dB, B, bytes)) return fail("uploading the gallery");
    s->st.calls++;
    return 0;
}

// Device buffers grow to the largest block (the first one: later blocks of a
// call are no larger) and stay until the call ends. NULL: out of device memory.
static float *ensure(cuda_screen *s, float **p, size_t *cap, size_t floats) {
    if (floats <= *cap) return *p;
    gpu_free(s->g, *p);
    *cap = 0;
    if (!(*p = gpu_malloc(s->g, floats * sizeof(float)))) return NULL;
    *cap = floats;
    return *p;
}

int cuda_screen_block(void *ctx, const float *A, int64_t m, int64_t col0, int64_t ncols, float *C) {
    cuda_screen *s = ctx;
    if (m <= 0 || ncols <= 0) return 0;
    if (m > INT_MAX || col0 < 0 || col0 + ncols > s->n)
        return ufo_errorf("kNN screen on the GPU: block of %lld rows x columns [%lld, %lld) of %lld",
                          (long long)m, (long long)col0, (long long)(col0 + ncols), (long long)s->n);
    int d = s->d;
    if (!ensure(s, &s->dA, &s->capA, (size_t)m * d) || !ensure(s, &s->dC, &s->capC, (size_t)m * ncols)) {
        s->st.cpu_blocks++;   // no room beside the gallery: the CPU screens this block
        return 1;
    }
    // C [m, ncols] = A [m, d] . B[col0 .., :]^T  (B stored [n, d]: transB).
    if (gpu_upload(s->g, s->dA, A, (size_t)m * d * sizeof(float)) ||
        gpu_gemm(s->g, s->dC, s->dA, s->dB + (size_t)col0 * d, (int)m, (int)ncols, d, 0, 1, 0.0f, GPU_F32) ||
        gpu_download(s->g, C, s->dC, (size_t)m * ncols * sizeof(float)) || gpu_sync(s->g))
        return fail("similarity block");
    s->st.macs += (double)m * ncols * d;
    return 0;
}

void cuda_screen_end(void *ctx) {
    cuda_screen *s = ctx;
    if (s->g) gpu_sync(s->g);   // nothing in flight touches the buffers freed below
    free_bufs(s);
    s->st.seconds += now_s() - s->t0;
}

void cuda_screen_get_stats(const cuda_screen *s, cuda_screen_stats *st) { *st = s->st; }

const char *cuda_screen_device(const cuda_screen *s) { return s->g ? gpu_device_name(s->g) : ""; }

#else  // built without CUDA

struct cuda_screen {
    int unused;
};

cuda_screen *cuda_screen_create(int device) {
    ufo_errorf("this ufo was built without CUDA (rebuild with the CUDA toolkit's nvcc on PATH)");
    return NULL;
}
void cuda_screen_free(cuda_screen *s) {}
int cuda_screen_begin(void *ctx, const float *B, int64_t n, int d) { return ufo_errorf("built without CUDA"); }
int cuda_screen_block(void *ctx, const float *A, int64_t m, int64_t col0, int64_t ncols, float *C) {
    return ufo_errorf("built without CUDA");
}
void cuda_screen_end(void *ctx) {}
void cuda_screen_get_stats(const cuda_screen *s, cuda_screen_stats *st) { memset(st, 0, sizeof *st); }
const char *cuda_screen_device(const cuda_screen *s) { return ""; }

#endif
