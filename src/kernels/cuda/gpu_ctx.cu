// CUDA backend, host side: device probing, the context (stream, cuBLAS
// handles, workspace, scratch), memory, the cuBLASLt linear and the attention
// built from two strided-batched GEMMs around an fp32 softmax.
#include "kernels/cuda/gpu_internal.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static thread_local char g_err[512];

const char *gpu_error(void) { return g_err; }

int gpu_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return -1;
}

int gpu_check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return 0;
    return gpu_fail("CUDA error in %s: %s", what, cudaGetErrorString(err));
}

int gpu_check_launch(const char *what) { return gpu_check(cudaGetLastError(), what); }

static int blas_check(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return 0;
    return gpu_fail("cuBLAS error in %s: %s", what, cublasGetStatusString(st));
}

int gpu_device_count(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return gpu_fail("no CUDA device visible (cudaGetDeviceCount: %s)", cudaGetErrorString(err));
    }
    if (n <= 0) return gpu_fail("no CUDA device visible (cudaGetDeviceCount: 0 devices)");
    return n;
}

const char *gpu_device_name(const gpu_ctx *g) { return g->name; }

void gpu_ctx_free(gpu_ctx *g) {
    if (!g) return;
    cudaSetDevice(g->device);
    if (g->stream) cudaStreamSynchronize(g->stream);
    for (int i = 0; i < g->n_plans; i++) {
        gpu_lin_plan *p = &g->plans[i];
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->c);
        cublasLtMatmulDescDestroy(p->op);
    }
    for (int i = 0; i < GPU_EVENTS; i++)
        if (g->events[i]) cudaEventDestroy(g->events[i]);
    cudaFree(g->ws);
    cudaFree(g->scratch);
    cudaFree(g->cols);
    if (g->lt) cublasLtDestroy(g->lt);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g);
}

gpu_ctx *gpu_ctx_create(int device) {
    int n = gpu_device_count();
    if (n < 0) return NULL;
    if (device < 0 || device >= n) {
        gpu_fail("CUDA device %d does not exist (%d visible)", device, n);
        return NULL;
    }
    gpu_ctx *g = (gpu_ctx *)calloc(1, sizeof *g);
    if (!g) {
        gpu_fail("out of memory");
        return NULL;
    }
    g->device = device;
    cudaDeviceProp prop;
    if (gpu_check(cudaSetDevice(device), "cudaSetDevice") ||
        gpu_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties") ||
        gpu_check(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking), "cudaStreamCreate") ||
        blas_check(cublasCreate(&g->blas), "cublasCreate") ||
        blas_check(cublasSetStream(g->blas, g->stream), "cublasSetStream") ||
        blas_check(cublasLtCreate(&g->lt), "cublasLtCreate")) {
        gpu_ctx_free(g);
        return NULL;
    }
    snprintf(g->name, sizeof g->name, "%s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
             prop.totalGlobalMem / 1073741824.0);
    if (prop.major < 8) {
        gpu_fail("%s: ufo's CUDA backend needs compute capability 8.0 or newer (bf16)", g->name);
        gpu_ctx_free(g);
        return NULL;
    }
    // Flash attention (where it applies: bf16, head dim 64) unless asked for the
    // GEMM path, which stores the T x T scores (tens of GB of traffic per ViT-L batch).
    const char *att = getenv("UFO_CUDA_ATTENTION");
    g->flash = !(att && !strcmp(att, "gemm"));
    g->chunk_bytes = (size_t)1 << 30;
    g->ws_bytes = (size_t)32 << 20;  // cuBLASLt's recommendation for Hopper
    if (gpu_check(cudaMalloc(&g->ws, g->ws_bytes), "cudaMalloc (cuBLASLt workspace)")) {
        gpu_ctx_free(g);
        return NULL;
    }
    return g;
}

int gpu_sync(gpu_ctx *g) { return gpu_check(cudaStreamSynchronize(g->stream), "cudaStreamSynchronize"); }

void *gpu_record_event(gpu_ctx *g) {
    cudaEvent_t *e = &g->events[g->next_event];
    if (!*e && gpu_check(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreate")) return NULL;
    if (gpu_check(cudaEventRecord(*e, g->stream), "cudaEventRecord")) return NULL;
    g->next_event = (g->next_event + 1) % GPU_EVENTS;
    return (void *)*e;
}

void *gpu_malloc(gpu_ctx *g, size_t bytes) {
    void *p = NULL;
    if (gpu_check(cudaSetDevice(g->device), "cudaSetDevice")) return NULL;
    cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError();
        gpu_fail("out of GPU memory: %.1f MiB more requested (%s)", bytes / 1048576.0, cudaGetErrorString(err));
        return NULL;
    }
    return p;
}

void gpu_free(gpu_ctx *g, void *p) {
    if (!p) return;
    cudaStreamSynchronize(g->stream);  // nothing queued may still use it
    cudaFree(p);
}

void *gpu_host_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t err = cudaMallocHost(&p, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        cudaGetLastError();
        gpu_fail("cannot allocate %.1f MiB of pinned host memory (%s)", bytes / 1048576.0, cudaGetErrorString(err));
        return NULL;
    }
    return p;
}

void gpu_host_free(void *p) {
    if (p) cudaFreeHost(p);
}

int gpu_upload(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    return gpu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g->stream), "upload");
}

int gpu_download(gpu_ctx *g, void *dst, const void *src, size_t bytes) {
    return gpu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g->stream), "download");
}

// --- linear (cuBLASLt) ---------------------------------------------------
//
// Row-major y[rows, out] = x[rows, in] W[out, in]^T is, read column-major,
// Y(out x rows) = op(W)(out x in) * X(in x rows) with W seen as an (in x out)
// column-major matrix transposed: TRANSA = T, TRANSB = N, ld = in, in, out.

static cudaDataType_t cuda_type(int dt) { return dt == GPU_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static int plan_build(gpu_ctx *g, gpu_lin_plan *p, int with_epilogue) {
    cudaDataType_t yt = cuda_type(p->y_dt);  // D (and the bias, its default type: D's)
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cudaDataType_t ab = cuda_type(p->dt);
    if (blas_check(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate") ||
        blas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA") ||
        blas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB"))
        return -1;
    if (with_epilogue) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;  // bias vector type = D's (fp32) by default
        if (blas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                       "EPILOGUE"))
            return -1;
    }
    if (blas_check(cublasLtMatrixLayoutCreate(&p->a, ab, p->in, p->out, p->in), "layout A") ||
        blas_check(cublasLtMatrixLayoutCreate(&p->b, ab, p->in, p->rows, p->in), "layout B") ||
        blas_check(cublasLtMatrixLayoutCreate(&p->c, yt, p->out, p->rows, p->out), "layout C"))
        return -1;
    cublasLtMatmulPreference_t pref;
    if (blas_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate")) return -1;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->ws_bytes,
                                         sizeof g->ws_bytes);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) return 1;  // no algorithm: the caller may retry without epilogue
    p->algo = res.algo;
    p->bias_in_epilogue = with_epilogue;
    return 0;
}

static void plan_destroy(gpu_lin_plan *p) {
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

static void plan_key(gpu_lin_plan *p, int rows, int in, int out, int dt, int y_dt, int has_bias, int accumulate) {
    p->rows = rows, p->in = in, p->out = out, p->dt = dt, p->y_dt = y_dt, p->has_bias = has_bias;
    p->accumulate = accumulate;
}

static gpu_lin_plan *plan_get(gpu_ctx *g, int rows, int in, int out, int dt, int y_dt, int has_bias,
                              int accumulate) {
    for (int i = 0; i < g->n_plans; i++) {
        gpu_lin_plan *p = &g->plans[i];
        if (p->rows == rows && p->in == in && p->out == out && p->dt == dt && p->y_dt == y_dt &&
            p->has_bias == has_bias && p->accumulate == accumulate)
            return p;
    }
    if (g->n_plans == GPU_MAX_PLANS) {  // a new batch shape after many: start over
        for (int i = 0; i < g->n_plans; i++) plan_destroy(&g->plans[i]);
        g->n_plans = 0;
    }
    gpu_lin_plan *p = &g->plans[g->n_plans];
    memset(p, 0, sizeof *p);
    plan_key(p, rows, in, out, dt, y_dt, has_bias, accumulate);
    int rc = plan_build(g, p, has_bias);
    if (rc == 1 && has_bias) {
        plan_destroy(p);
        plan_key(p, rows, in, out, dt, y_dt, has_bias, accumulate);
        rc = plan_build(g, p, 0);
    }
    if (rc == 1) {  // cuBLAS proper always has an algorithm
        plan_destroy(p);
        plan_key(p, rows, in, out, dt, y_dt, has_bias, accumulate);
        p->gemmex = 1;
        rc = 0;
    }
    if (rc != 0) {
        plan_destroy(p);
        return NULL;
    }
    g->n_plans++;
    return p;
}

// y = x W^T + b, plus r when r != NULL (r == y: in place).
static int linear(gpu_ctx *g, void *y, gpu_dtype y_dt, const void *r, const void *x, const void *w, const void *b,
                  int rows, int in, int out, gpu_dtype dt) {
    if (rows <= 0) return 0;
    if (y_dt == GPU_BF16 && dt != GPU_BF16) return gpu_fail("gpu_linear: a bf16 output needs bf16 operands");
    int accumulate = r != NULL;
    gpu_lin_plan *p = plan_get(g, rows, in, out, dt, y_dt, b != NULL, accumulate);
    if (!p) return -1;
    if (p->bias_in_epilogue && !p->gemmex &&
        blas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b),
                   "BIAS_POINTER"))
        return -1;
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    if (p->gemmex) {   // cublasGemmEx reads C from D: the residual goes there first
        if (r && r != y &&
            gpu_check(cudaMemcpyAsync(y, r, (size_t)rows * out * (y_dt == GPU_BF16 ? 2 : 4),
                                      cudaMemcpyDeviceToDevice, g->stream),
                      "linear residual copy"))
            return -1;
        cudaDataType_t ab = cuda_type(dt);
        if (blas_check(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &alpha, w, ab, in, x, ab, in,
                                    &beta, y, cuda_type(y_dt), out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "cublasGemmEx"))
            return -1;
    } else if (blas_check(cublasLtMatmul(g->lt, p->op, &alpha, w, p->a, x, p->b, &beta, r ? r : y, p->c, y, p->c,
                                         &p->algo, g->ws, g->ws_bytes, g->stream),   // C = r, D = y
                          "cublasLtMatmul")) {
        return -1;
    }
    if (b && !p->bias_in_epilogue) {
        gpu_launch_add_bias(g->stream, y, b, y_dt, rows, out);
        return gpu_check_launch("add_bias");
    }
    return 0;
}

int gpu_linear_out(gpu_ctx *g, void *y, gpu_dtype y_dt, const void *x, const void *w, const void *b, int rows, int in,
                   int out, gpu_dtype dt, int accumulate) {
    return linear(g, y, y_dt, accumulate ? y : NULL, x, w, b, rows, in, out, dt);
}

int gpu_linear(gpu_ctx *g, float *y, const void *x, const void *w, const float *b, int rows, int in, int out,
               gpu_dtype dt, int accumulate) {
    return linear(g, y, GPU_F32, accumulate ? y : NULL, x, w, b, rows, in, out, dt);
}

int gpu_linear_residual(gpu_ctx *g, float *y, const float *r, const void *x, const void *w, const float *b, int rows,
                        int in, int out, gpu_dtype dt) {
    return linear(g, y, GPU_F32, r, x, w, b, rows, in, out, dt);
}

// --- attention -------------------------------------------------------------
//
// Per image chunk: split qkv into q, k, v [B, H, T, hd] (in dt), scores
// S = q k^T * hd^-0.5 [B*H, T, T] fp32 (one strided-batched GEMM), softmax
// rows in fp32 (written in dt), o = P v [B, H, T, hd] fp32, heads merged into
// out [B, T, D]. Chunks keep the score matrix under g->chunk_bytes (1 GiB).

int gpu_ensure_scratch(gpu_ctx *g, size_t bytes) {
    if (bytes <= g->scratch_bytes) return 0;
    gpu_free(g, g->scratch);
    g->scratch = NULL;
    g->scratch_bytes = 0;
    if (!(g->scratch = gpu_malloc(g, bytes))) return -1;
    g->scratch_bytes = bytes;
    return 0;
}

static size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

void gpu_set_flash(gpu_ctx *g, int on) { g->flash = on; }

void gpu_set_attention_chunk_bytes(gpu_ctx *g, size_t bytes) { g->chunk_bytes = bytes; }

int gpu_uses_flash(const gpu_ctx *g, gpu_dtype dt, int hd) { return g->flash && dt == GPU_BF16 && hd == 64; }

int gpu_attention(gpu_ctx *g, void *out, const float *qkv, int B, int T, int H, int hd, gpu_dtype dt) {
    return gpu_attention_from(g, out, qkv, GPU_F32, B, T, H, hd, dt);
}

// The flash kernel (bf16 out): q, k, v read where they are in a bf16 qkv; an
// fp32 qkv is split into bf16 q, k, v in scratch first.
// stats (or NULL): each row's softmax max and sum, [2, B*H*T] (the training's, for the backward).
static int attention_flash(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                           float *stats) {
    size_t D = (size_t)H * hd;
    const void *q = qkv, *k = (const char *)qkv + D * 2, *v = (const char *)qkv + 2 * D * 2;
    gpu_qkv_strides st = {(size_t)T * 3 * D, (size_t)hd, 3 * D};
    if (qkv_dt != GPU_BF16) {
        size_t qkv_b = align256((size_t)B * T * D * 2);
        if (gpu_ensure_scratch(g, 3 * qkv_b)) return -1;
        char *base = (char *)g->scratch;
        gpu_launch_split_qkv(g->stream, base, base + qkv_b, base + 2 * qkv_b, qkv, qkv_dt, B, T, H, hd, GPU_BF16);
        if (gpu_check_launch("split_qkv")) return -1;
        q = base, k = base + qkv_b, v = base + 2 * qkv_b, st = gpu_split_strides(T, H, hd);
    }
    float *sm = stats, *sl = stats ? stats + (size_t)B * H * T : nullptr;
    if (gpu_launch_flash(g->stream, out, q, k, v, st, B, T, H, hd, GPU_BF16, sm, sl))
        return gpu_fail("flash attention: %d heads of dim %d is not supported", H, hd);
    return gpu_check_launch("flash attention");
}

int gpu_attention_from(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                       gpu_dtype dt) {
    if (B <= 0) return 0;
    if (qkv_dt == GPU_BF16 && dt != GPU_BF16) return gpu_fail("gpu_attention: a bf16 qkv needs bf16 attention");
    if (gpu_uses_flash(g, dt, hd)) return attention_flash(g, out, qkv, qkv_dt, B, T, H, hd, nullptr);
    size_t es = dt == GPU_BF16 ? 2 : 4, D = (size_t)H * hd;
    size_t per_img_scores = (size_t)H * T * T * sizeof(float);
    int chunk = (int)(g->chunk_bytes / per_img_scores);
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    size_t qkv_b = align256((size_t)chunk * T * D * es);
    size_t s_b = align256((size_t)chunk * per_img_scores);
    size_t p_b = dt == GPU_BF16 ? align256((size_t)chunk * H * T * T * 2) : 0;
    size_t o_b = align256((size_t)chunk * T * D * sizeof(float));
    if (gpu_ensure_scratch(g, 3 * qkv_b + s_b + p_b + o_b)) return -1;
    char *base = (char *)g->scratch;
    void *q = base, *k = base + qkv_b, *v = base + 2 * qkv_b;
    float *s = (float *)(base + 3 * qkv_b);
    void *pm = dt == GPU_BF16 ? (void *)(base + 3 * qkv_b + s_b) : (void *)s;
    float *o = (float *)(base + 3 * qkv_b + s_b + p_b);
    cudaDataType_t ab = cuda_type(dt);
    float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    long long tt = (long long)T * T, thd = (long long)T * hd;
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int nb = B - b0 < chunk ? B - b0 : chunk, batches = nb * H;
        const char *src = (const char *)qkv + (size_t)b0 * T * 3 * D * (qkv_dt == GPU_BF16 ? 2 : 4);
        gpu_launch_split_qkv(g->stream, q, k, v, src, qkv_dt, nb, T, H, hd, dt);
        if (gpu_check_launch("split_qkv")) return -1;
        // Column-major: S^T(j, i) = sum_d K(j, d) Q(i, d)  -> row-major S[i, j]
        if (blas_check(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, k, ab, hd, thd,
                                                  q, ab, hd, thd, &zero, s, CUDA_R_32F, T, tt, batches,
                                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "attention scores GEMM"))
            return -1;
        gpu_launch_softmax(g->stream, pm, s, (size_t)batches * T, T, dt);
        if (gpu_check_launch("softmax")) return -1;
        // Column-major: O^T(e, i) = sum_j V(j, e) P(i, j)  -> row-major O[i, e]
        if (blas_check(cublasGemmStridedBatchedEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &one, v, ab, hd, thd,
                                                  pm, ab, T, tt, &zero, o, CUDA_R_32F, hd, thd, batches,
                                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                       "attention output GEMM"))
            return -1;
        gpu_launch_merge_heads(g->stream, (char *)out + (size_t)b0 * T * D * es, o, nb, T, H, hd, dt);
        if (gpu_check_launch("merge_heads")) return -1;
    }
    return 0;
}

int gpu_attention_train(gpu_ctx *g, void *out, const void *qkv, gpu_dtype qkv_dt, int B, int T, int H, int hd,
                        gpu_dtype dt, float *stats) {
    if (B > 0 && stats && gpu_uses_flash(g, dt, hd))
        return attention_flash(g, out, qkv, qkv_dt, B, T, H, hd, stats);
    return gpu_attention_from(g, out, qkv, qkv_dt, B, T, H, hd, dt);
}
