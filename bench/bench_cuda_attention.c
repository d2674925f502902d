// The CUDA attention alone, bf16, both kernels, forward and backward, on one
// problem (default ViT-L/16 at 384, batch 32: B 32, T 577, H 16, hd 64):
//   bench_cuda_attention [B T H hd [iters]]
// Times (the stream synchronised around `iters` calls, after two warm-up calls):
//   flash fwd (qkv bf16)  the inference forward's call: q, k, v read in place
//   flash fwd (qkv fp32)  the training forward's: a split pass rounds qkv first
//   gemm fwd              two cuBLAS GEMMs around the softmax (scores stored)
//   flash bwd / gemm bwd  the training backward (flash: forward again for the
//                         row statistics, delta, the kernel, the head merge)
// and prints one JSON line: milliseconds per call and TFLOP/s, counting
// 4 B H T^2 hd FLOPs forward and 2.5x that backward (FlashAttention's
// convention: the two matmuls forward, five backward; softmax not counted).
// tools/gpu_check.sh runs it beside bench/bench_gpu_attention_torch.py (PyTorch's
// scaled_dot_product_attention on the same problem).
#include <stdio.h>
#include <stdlib.h>
#ifdef UFO_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct {
    gpu_ctx *g;
    int B, T, H, hd;
    float *qkv, *dout, *dqkv, *out;
    void *qkv16, *dqkv16;
} problem;

// One call of `what` (0, 1: flash forward from bf16 / fp32 qkv, 2: GEMM
// forward, 3, 4: backward, flash or GEMM as time_it set it); 0 or -1.
static int call(problem *p, int what) {
    switch (what) {
    case 0: return gpu_attention_from(p->g, p->out, p->qkv16, GPU_BF16, p->B, p->T, p->H, p->hd, GPU_BF16);
    case 1:
    case 2: return gpu_attention(p->g, p->out, p->qkv, p->B, p->T, p->H, p->hd, GPU_BF16);
    default: return gpu_attention_backward(p->g, p->dqkv, p->dqkv16, p->dout, p->qkv, p->B, p->T, p->H, p->hd, GPU_BF16);
    }
}

// Seconds per call of `what` (the index into main's names), or -1.
static double time_it(problem *p, int what, int iters) {
    gpu_set_flash(p->g, what == 0 || what == 1 || what == 3);
    for (int i = 0; i < 2; i++)
        if (call(p, what)) return -1;
    if (gpu_sync(p->g)) return -1;
    double t0 = now();
    for (int i = 0; i < iters; i++)
        if (call(p, what)) return -1;
    if (gpu_sync(p->g)) return -1;
    return (now() - t0) / iters;
}

int main(int argc, char **argv) {
    problem p = {0};
    p.B = 32, p.T = 577, p.H = 16, p.hd = 64;
    int iters = 10;
    if (argc >= 5) p.B = atoi(argv[1]), p.T = atoi(argv[2]), p.H = atoi(argv[3]), p.hd = atoi(argv[4]);
    if (argc >= 6) iters = atoi(argv[5]);
    if (p.B < 1 || p.T < 1 || p.H < 1 || p.hd != 64 || iters < 1) {
        fprintf(stderr, "usage: bench_cuda_attention [B T H 64 [iters]]  (the flash kernels take head dim 64)\n");
        return 2;
    }
    if (gpu_device_count() <= 0) {
        printf("SKIP: %s\n", gpu_error());
        return 77;
    }
    if (!(p.g = gpu_ctx_create(0))) {
        fprintf(stderr, "bench_cuda_attention: %s\n", gpu_error());
        return 1;
    }
    size_t nq = (size_t)p.B * p.T * 3 * p.H * p.hd, no = nq / 3;
    float *h = malloc(nq * sizeof(float));
    if (!h) return 1;
    srand(1);
    for (size_t i = 0; i < nq; i++) h[i] = (float)rand() / RAND_MAX * 2 - 1;
    if (!(p.qkv = gpu_malloc(p.g, nq * 4)) || !(p.dqkv = gpu_malloc(p.g, nq * 4)) ||
        !(p.dout = gpu_malloc(p.g, no * 4)) || !(p.out = gpu_malloc(p.g, no * 4)) ||
        !(p.qkv16 = gpu_malloc(p.g, nq * 2)) || !(p.dqkv16 = gpu_malloc(p.g, nq * 2)) ||
        gpu_upload(p.g, p.qkv, h, nq * 4) || gpu_upload(p.g, p.dout, h, no * 4) ||
        gpu_to_bf16(p.g, p.qkv16, p.qkv, nq) || gpu_sync(p.g)) {
        fprintf(stderr, "bench_cuda_attention: %s\n", gpu_error());
        return 1;
    }
    free(h);
    const char *names[] = {"flash_fwd_qkv_bf16", "flash_fwd_qkv_fp32", "gemm_fwd", "flash_bwd", "gemm_bwd"};
    double flop = 4.0 * p.B * p.H * (double)p.T * p.T * p.hd;
    printf("{\"device\": \"%s\", \"B\": %d, \"T\": %d, \"H\": %d, \"hd\": %d", gpu_device_name(p.g), p.B, p.T, p.H,
           p.hd);
    for (int w = 0; w < 5; w++) {
        double s = time_it(&p, w, iters);
        if (s < 0) {
            fprintf(stderr, "\nbench_cuda_attention: %s: %s\n", names[w], gpu_error());
            return 1;
        }
        double f = w >= 3 ? 2.5 * flop : flop;
        printf(", \"%s_ms\": %.3f, \"%s_tflops\": %.1f", names[w], s * 1e3, names[w], f / s / 1e12);
    }
    printf("}\n");
    gpu_ctx_free(p.g);
    return 0;
}
#else
int main(void) {
    printf("SKIP: this ufo was built without CUDA\n");
    return 77;
}
#endif
