// The CUDA emulator's own test: that it runs CUDA as a GPU does where our
// kernels depend on it (barriers, shuffles, shared memory, PTX mma.sync with
// the ISA's register layouts, cuBLAS and cuBLASLt against plain loops), and
// that it stops, with one line naming the kernel, on what a GPU would get
// wrong or undefined: a host pointer passed to a kernel, a deadlocked
// barrier, a shuffle or an mma.sync with an exited lane, too much shared
// memory, a GEMM operand past its allocation; and that shared memory reads as
// NaN until written.
// Built by tools/cuda_emu_build.sh through the same rewrite as the backend.
#include "kernels/cuda/gpu_mma.cuh"
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures, checks;
#define CHECK(c, ...)                                  \
    do {                                               \
        checks++;                                      \
        if (!(c)) {                                    \
            failures++;                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                       \
            printf("\n");                              \
        }                                              \
    } while (0)

template <typename T>
static T *dev(size_t n) {
    T *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    return p;
}

// --- kernels that must give a GPU's results ----------------------------------------

// Tree sum over a block through shared memory: every step needs the barrier.
__global__ void block_sum(float *out, const float *x) {
    __shared__ float s[256];
    s[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// Butterfly sum over a warp, and a rotate through shared memory.
__global__ void warp_ops(float *sum, float *rot, const float *x) {
    __shared__ float s[64];
    float v = x[threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    sum[threadIdx.x] = v;
    s[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    rot[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

// One mma.sync m16n8k16 (gpu_mma.cuh): every lane loads its registers where
// the PTX ISA's fragment tables put them (A 16 x 16 row-major, B 16 x 8 with
// element (k, n) at b[k * 8 + n], C = D 16 x 8) and stores its four outputs.
// `quit` lanes return first: the instruction needs all 32.
__global__ void ptx_mma(float *d, const float *a, const float *b, const float *c, int quit) {
    int lane = threadIdx.x, g = lane / 4, t = lane % 4;
    if (lane < quit) return;
    uint32_t ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 4; i++) {
        int row = g + (i % 2) * 8, col = 2 * t + (i / 2) * 8;   // a[i]: (row, col), (row, col + 1)
        ra[i] = pack_bf16(a[row * 16 + col], a[row * 16 + col + 1]);
        rc[i] = c[(g + (i / 2) * 8) * 8 + 2 * t + i % 2];         // c[i]: row g (+8), col 2t (+1)
    }
    for (int i = 0; i < 2; i++) rb[i] = pack_bf16(b[(2 * t + i * 8) * 8 + g], b[(2 * t + i * 8 + 1) * 8 + g]);
    mma_bf16_16816(rd, ra, rb, rc);
    for (int i = 0; i < 4; i++) d[(g + (i / 2) * 8) * 8 + 2 * t + i % 2] = rd[i];
}

__global__ void read_shared_first(float *out) {
    __shared__ float s[32];
    out[threadIdx.x] = s[threadIdx.x];
}

__global__ void touch(float *p) { p[threadIdx.x] = 1.0f; }

// --- kernels the emulator must refuse ---------------------------------------------------

__global__ void divergent_barriers(float *p) {
    if (threadIdx.x < 16) __syncwarp();
    else __syncthreads();
    p[threadIdx.x] = 0;
}

__global__ void shuffle_from_exited(float *p) {
    if (threadIdx.x >= 16) return;
    p[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 16);
}

__global__ void too_much_shared(float *p) {
    __shared__ float big[13 * 1024];  // 52 KiB
    big[threadIdx.x] = 0;
    p[threadIdx.x] = big[threadIdx.x];
}

// Runs f in a child; passes if the child aborts and its stderr has `want`.
template <typename F>
static void expect_abort(const char *what, const char *want, F f) {
    int fds[2];
    if (pipe(fds)) abort();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        f();
        _exit(0);
    }
    close(fds[1]);
    char buf[2048] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool aborted = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
    CHECK(aborted && strstr(buf, want) && strstr(buf, "cuda emulator:"), "%s: want abort with \"%s\", got %s: %s",
          what, want, aborted ? "abort" : "no abort", buf);
    printf("  %-44s stopped: %s", what, buf);
}

static void test_semantics() {
    float h[1024], out[64];
    for (int i = 0; i < 1024; i++) h[i] = (float)((i * 37) % 101) - 50.0f;
    float *x = dev<float>(1024), *o = dev<float>(64), *o2 = dev<float>(64);
    cudaMemcpy(x, h, sizeof h, cudaMemcpyHostToDevice);
    block_sum<<<4, 256>>>(o, x);
    cudaMemcpy(out, o, 4 * sizeof(float), cudaMemcpyDeviceToHost);
    for (int b = 0; b < 4; b++) {
        float want = 0;
        for (int i = 0; i < 256; i++) want += h[b * 256 + i];
        CHECK(out[b] == want, "block_sum block %d: %g, want %g", b, out[b], want);
    }
    warp_ops<<<1, 64>>>(o, o2, x);
    float rot[64];
    cudaMemcpy(out, o, sizeof out, cudaMemcpyDeviceToHost);
    cudaMemcpy(rot, o2, sizeof rot, cudaMemcpyDeviceToHost);
    for (int t = 0; t < 64; t++) {
        float want = 0;
        for (int i = t / 32 * 32; i < t / 32 * 32 + 32; i++) want += h[i];
        CHECK(out[t] == want, "warp sum lane %d: %g, want %g", t, out[t], want);
        CHECK(rot[t] == h[(t + 1) % 64], "rotate %d", t);
    }
    read_shared_first<<<1, 32>>>(o);
    cudaMemcpy(out, o, 32 * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(isnan(out[0]) && isnan(out[31]), "shared memory is not poisoned at block start");
    touch<<<0, 32>>>(o);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "an empty grid launched");
    CHECK(cudaGetLastError() == cudaSuccess, "the launch error is not cleared by reading it");
    touch<<<1, 2048>>>(o);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "2048 threads per block launched");
    printf("  barriers, shuffles, shared memory, launch errors: as on a GPU\n");
    cudaFree(x), cudaFree(o), cudaFree(o2);
}

// PTX mma.sync with the ISA's register layouts vs plain loops (values exact in bf16).
static void test_ptx_mma() {
    float a[256], b[128], c[128], d[128];
    for (int i = 0; i < 256; i++) a[i] = (float)(i % 11) - 5.0f;
    for (int i = 0; i < 128; i++) b[i] = (float)(i % 7) * 0.25f, c[i] = (float)i;
    float *da = dev<float>(256), *db = dev<float>(128), *dc = dev<float>(128), *dd = dev<float>(128);
    cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice);
    cudaMemcpy(dc, c, sizeof c, cudaMemcpyHostToDevice);
    ptx_mma<<<1, 32>>>(dd, da, db, dc, 0);
    cudaMemcpy(d, dd, sizeof d, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float want = c[i * 8 + j];
            for (int k = 0; k < 16; k++) want += a[i * 16 + k] * b[k * 8 + j];
            bad += d[i * 8 + j] != want;
        }
    CHECK(bad == 0, "mma.sync m16n8k16: %d of 128 wrong", bad);
    printf("  mma.sync m16n8k16 bf16 (PTX fragment layouts) == plain loops\n");
    expect_abort("mma.sync with lanes that have exited", "needs all 32 lanes",
                 [&] { ptx_mma<<<1, 32>>>(dd, da, db, dc, 3); });
    cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
}

// C (m x n, column-major) = op(A) op(B) (+ bias) through cuBLAS and cuBLASLt vs plain loops.
static void test_gemm() {
    const int m = 13, n = 7, k = 9;
    float A[k * m], B[n * k], C[m * n], ref[m * n], bias[m];
    for (int i = 0; i < k * m; i++) A[i] = (float)((i * 5) % 11) - 5.0f;
    for (int i = 0; i < n * k; i++) B[i] = (float)((i * 3) % 7) - 3.0f;
    for (int i = 0; i < m; i++) bias[i] = (float)i;
    // A stored k x m (op T), B stored k x n (op N): C(i, j) = sum_l A[i * k + l] B[j * k + l]
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0;
            for (int l = 0; l < k; l++) s += A[i * k + l] * B[j * k + l];
            ref[j * m + i] = s;
        }
    float *dA = dev<float>(k * m), *dB = dev<float>(n * k), *dC = dev<float>(m * n), *dbias = dev<float>(m);
    cudaMemcpy(dA, A, sizeof A, cudaMemcpyHostToDevice);
    cudaMemcpy(dB, B, sizeof B, cudaMemcpyHostToDevice);
    cudaMemcpy(dbias, bias, sizeof bias, cudaMemcpyHostToDevice);
    cublasHandle_t h;
    cublasCreate(&h);
    float one = 1, zero = 0;
    CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_32F, k, dB, CUDA_R_32F, k, &zero, dC,
                       CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
          "cublasGemmEx");
    cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost);
    CHECK(!memcmp(C, ref, sizeof C), "cublasGemmEx T,N != plain loops");
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasOperation_t ta = CUBLAS_OP_T;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &dbias, sizeof dbias);
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, k, m, k);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m);
    CHECK(cublasLtMatmul(lt, op, &one, dA, la, dB, lb, &zero, dC, lc, dC, lc, nullptr, nullptr, 0, 0) ==
              CUBLAS_STATUS_SUCCESS,
          "cublasLtMatmul");
    cudaMemcpy(C, dC, sizeof C, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) bad += C[j * m + i] != ref[j * m + i] + bias[i];
    CHECK(bad == 0, "cublasLtMatmul with the bias epilogue: %d of %d wrong", bad, m * n);
    printf("  cublasGemmEx and cublasLtMatmul (+bias) == plain loops\n");
    expect_abort("GEMM operand past its allocation", "not inside one live device allocation", [&] {
        cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_32F, k + 1, dB, CUDA_R_32F, k, &zero, dC,
                     CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cublasLtDestroy(lt);
    cublasDestroy(h);
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dbias);
}

static void test_refusals() {
    float *o = dev<float>(64);
    static float host[64];
    expect_abort("host pointer as a kernel argument", "is not device memory", [&] { touch<<<1, 32>>>(host); });
    expect_abort("freed device memory as a kernel argument", "is not device memory", [&] {
        float *p = dev<float>(32);
        cudaFree(p);
        touch<<<1, 32>>>(p);
    });
    expect_abort("__syncwarp and __syncthreads in one warp", "deadlock", [&] { divergent_barriers<<<1, 32>>>(o); });
    expect_abort("shuffle from an exited lane", "has exited", [&] { shuffle_from_exited<<<1, 32>>>(o); });
    expect_abort("52 KiB of static shared memory", "48 KiB", [&] { too_much_shared<<<1, 32>>>(o); });
    expect_abort("device memory copied as host memory", "device memory where host memory was named", [&] {
        cudaMemcpy(o, o, 4, cudaMemcpyHostToDevice);
    });
    cudaFree(o);
}

int main() {
    printf("test_emu: the CUDA emulator against a GPU's semantics\n");
    test_semantics();
    test_ptx_mma();
    test_gemm();
    test_refusals();
    printf("test_emu: %d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}
