// The task heads' losses on the GPU: CosFace (train/cosface.h) and batch-hard
// triplet (train/triplet.h), one process or (CosFace) Partial-FC sharded, for the
// CUDA trainer (train/heads_cuda.c). Same algorithms and fp32 expressions as
// the host versions, so the two agree to rounding (tests/cuda/test_cuda_ops.c
// checks them against ufo_cosface / ufo_triplet):
//
// CosFace, blocked over classes (the face head: 93,431 x 1024, n up to 1024;
// the [n, classes] logits are never held, only [n, block]):
//   pass 1 per block: Z = f_hat W_blk^T (cuBLAS fp32), then one thread block
//     per row: the label cos, the largest other cos below / above the label's
//     index (top-1, ties to the lower class) and the online log-sum-exp of the
//     other columns (running max and sum in double, as cosface.c);
//   loss per row (log1p of sum_{j!=y} exp(z_j - z_y)), downloaded (n doubles
//     and two flags per row: the "small download") and summed on the host in
//     row order, so den (n, or the non-zero count) is the host's;
//   pass 2 per block: Z again, dcos' = s (softmax - onehot) / den / ||W_j||,
//     d f_hat += dcos' W_blk and dW_blk += (I - w_hat w_hat^T)(dcos'^T f_hat)
//     by rows; finally df = (I - f_hat f_hat^T) d f_hat / ||f|| per row.
//   exp is expf clamped like train/fexp.h's (0 below -87, at most exp(88)).
//
// Triplet: the Gram matrix x x^T (cuBLAS), one thread per anchor mines over
// the row with fast-reid's fp32 expressions (no FMA contraction, so the
// diagonal is exactly sqrt(1e-12) and ties fall as on the host: first index);
// the per-anchor results come down (n is a task's rows: small), the loss, the
// soft margin's overflow fallback and the two pair weights per anchor are the
// host's double arithmetic, and one thread per dx element adds its pairs'
// terms in the host's order (anchor by anchor: deterministic, no atomics).
//
// Scratch: the context's (gpu_ensure_scratch); gpu_gemm in fp32 does not use it.
#include "kernels/cuda/gpu_internal.h"
#include "kernels/ref/cosface_shards.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

namespace {

constexpr int kThreads = 256;   // a multiple of 32 (the block reductions below)
unsigned blocks_for(size_t n) { return (unsigned)((n + kThreads - 1) / kThreads); }
size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

constexpr double kNormEps = 1e-12;   // F.normalize's clamp
constexpr float kSqMin = 1e-12f;     // triplet's clamp of the squared distance

// train/fexp.h's range: 0 below -87 (NaN included), at most exp(88).
__device__ __forceinline__ float clamped_exp(float x) { return x >= -87.0f ? expf(fminf(x, 88.0f)) : 0.0f; }

// Sum / max over the thread block, the result in every thread. Starts with a
// barrier, so consecutive calls may reuse the shared slots.
__device__ double block_sum(double v) {
    __shared__ double sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ float block_max(float v) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    v = l < nw ? sh[l] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// One block per row: out[r] = 1 / max(||x_r||, 1e-12), big[r] = ||x_r|| > 1e-12 (norm in double).
__global__ void inv_norms_kernel(float *out, unsigned char *big, const float *x, int D) {
    const float *v = x + (size_t)blockIdx.x * D;
    double ss = 0;
    for (int k = threadIdx.x; k < D; k += blockDim.x) ss += (double)v[k] * v[k];
    ss = block_sum(ss);
    if (threadIdx.x == 0) {
        double nrm = sqrt(ss);
        out[blockIdx.x] = (float)(1.0 / (nrm > kNormEps ? nrm : kNormEps));
        big[blockIdx.x] = nrm > kNormEps;
    }
}

// fn = f * rf (per row), and the per-row pass-1 state reset.
__global__ void cos_init_kernel(float *fn, const float *f, const float *rf, int n, int D, double *M, double *S,
                                float *cy, float *zy, float *lo_max, float *hi_max) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)n * D) fn[i] = f[i] * rf[i / D];
    if (i < (size_t)n) {
        M[i] = -INFINITY, S[i] = 0;
        cy[i] = 0, zy[i] = 0;
        lo_max[i] = hi_max[i] = -INFINITY;
    }
}

// Pass 1 on block [c0, c0 + nb), one thread block per row (cosface.c's loop body).
// Z [n, nb] holds f_hat . W_j on entry and cos_j (the label's -inf) on return.
__global__ void cos_pass1_kernel(float *Z, const float *rw, const int *lab, int nb, int c0, float s, float m,
                                 double *M, double *S, float *cy, float *zy, float *lo_max, float *hi_max) {
    const int i = blockIdx.x;
    float *zr = Z + (size_t)i * nb;
    const float *rwb = rw + c0;
    const int yl = lab[i] - c0;   // the label's column in this block, or outside [0, nb)
    const int yb = yl < 0 ? -1 : yl > nb ? nb : yl;
    float lo = -INFINITY, hi = -INFINITY;
    for (int j = threadIdx.x; j < nb; j += blockDim.x) {
        float c = zr[j] * rwb[j];
        if (j == yb) {   // the label is out of the "others" (one thread owns it)
            cy[i] = c;
            zy[i] = s * (c - m);
            c = -INFINITY;
        }
        zr[j] = c;
        if (j < yb) lo = fmaxf(lo, c);
        else hi = fmaxf(hi, c);
    }
    lo = block_max(lo);
    hi = block_max(hi);
    const float cm = lo > hi ? lo : hi;
    const double Mold = M[i], Sold = S[i];
    if (cm == -INFINITY) {   // the block held only the label column (the same branch in every thread)
        if (threadIdx.x == 0) {
            if (lo > lo_max[i]) lo_max[i] = lo;
            if (hi > hi_max[i]) hi_max[i] = hi;
        }
        return;
    }
    const double bm = (double)(s * cm);   // = max_j s * cos_j
    const double Mnew = bm > Mold ? bm : Mold;
    const float mi = (float)Mnew;
    double acc = 0;
    for (int j = threadIdx.x; j < nb; j += blockDim.x) acc += (double)clamped_exp(s * zr[j] - mi);
    acc = block_sum(acc);   // its barriers order every thread's read of M[i], S[i] before the write
    if (threadIdx.x == 0) {
        if (lo > lo_max[i]) lo_max[i] = lo;
        if (hi > hi_max[i]) hi_max[i] = hi;
        S[i] = (bm > Mold ? Sold * exp(Mold - bm) : Sold) + acc;
        M[i] = Mnew;
    }
}

// Per row: the loss log1p(T), T = sum_{j!=y} exp(z_j - z_y), its non-zero and
// top-1 flags, and what pass 2 needs (lse = z_y + loss, softmax_y - 1).
__global__ void cos_loss_kernel(double *li, int *flags, float *lse, float *dlab, const double *M, const double *S,
                                const float *cy, const float *zy, const float *lo_max, const float *hi_max, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double T = S[i] > 0 ? S[i] * exp(M[i] - (double)zy[i]) : 0.0;
    double l = log1p(T);
    li[i] = l;
    flags[i] = (T > 0x1p-24 ? 1 : 0) | (cy[i] > lo_max[i] && cy[i] >= hi_max[i] ? 2 : 0);
    lse[i] = (float)((double)zy[i] + l);
    dlab[i] = (float)(-T / (1.0 + T));
}

// Pass 2 on block [c0, c0 + nb): Z (f_hat . W_j) -> dcos' = s (softmax - onehot) / den / ||W_j||.
__global__ void cos_pass2_kernel(float *Z, const float *rw, const int *lab, const float *lse, const float *dlab, int n,
                                 int nb, int c0, float s, float coef) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * nb) return;
    int i = (int)(e / nb), j = (int)(e % nb);
    float r = rw[c0 + j];
    float v = lab[i] - c0 == j ? dlab[i] * coef * r : clamped_exp(s * (Z[e] * r) - lse[i]) * coef * r;
    Z[e] = v;
}

// One block per class row j of the block: dW_j += g_j - (w_j . g_j) / ||w_j||^2 w_j
// (G [nb, D] = dcos'^T f_hat; a row with norm <= 1e-12 gets g_j alone, as cosface.c).
__global__ void cos_dw_kernel(float *dW, const float *G, const float *W, const float *rw, const unsigned char *wbig,
                              int D) {
    const size_t j = blockIdx.x;
    const float *g = G + j * D, *w = W + j * D;
    float *dw = dW + j * D;
    double dot = 0;
    for (int k = threadIdx.x; k < D; k += blockDim.x) dot += (double)w[k] * g[k];
    dot = block_sum(dot);
    const float c = wbig[j] ? rw[j] * rw[j] * (float)dot : 0.0f;
    for (int k = threadIdx.x; k < D; k += blockDim.x) dw[k] += g[k] - c * w[k];
}

// One block per row: df = (d f_hat - f_hat (f_hat . d f_hat)) / max(||f||, 1e-12).
__global__ void cos_df_kernel(float *df, const float *dfn, const float *fn, const float *rf, const unsigned char *fbig,
                              int D) {
    const size_t i = blockIdx.x;
    const float *u = fn + i * D, *gr = dfn + i * D;
    double dot = 0;
    for (int k = threadIdx.x; k < D; k += blockDim.x) dot += (double)u[k] * gr[k];
    dot = block_sum(dot);
    const float d = fbig[i] ? (float)dot : 0.0f, r = rf[i];
    for (int k = threadIdx.x; k < D; k += blockDim.x) df[i * D + k] = r * (gr[k] - u[k] * d);
}

// One thread per anchor: triplet.c's mining, in its fp32 expressions (the
// _rn intrinsics keep nvcc from contracting them into FMAs).
__global__ void triplet_mine_kernel(const float *G, const int *lab, int n, float *ap, float *an, int *pi, int *ni,
                                    float *sqp, float *sqn) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float gi = G[(size_t)i * n + i];
    float bp = 0, bn = 0, sp = 0, sn = 0;
    int ip = -1, in = -1;
    for (int j = 0; j < n; j++) {
        float sq = __fsub_rn(__fadd_rn(gi, G[(size_t)j * n + j]), __fmul_rn(2.0f, G[(size_t)i * n + j]));
        float d = sqrtf(sq < kSqMin ? kSqMin : sq);
        int pos = lab[j] == lab[i];
        float vp = pos ? d : 0.0f;      // dist * is_pos
        float vn = pos ? 1e9f : d;      // dist * is_neg + is_pos * 1e9
        if (ip < 0 || vp > bp) bp = vp, ip = j, sp = sq;
        if (in < 0 || vn < bn) bn = vn, in = j, sn = sq;
    }
    ap[i] = bp, an[i] = bn, pi[i] = ip, ni[i] = in, sqp[i] = sp, sqn[i] = sn;
}

// One thread per dx element (r, c): the terms of every anchor's (at most two)
// pairs that involve row r, in anchor order: +w (x_r - x_j) as the anchor,
// -w (x_i - x_r) as the mined index. sel / w [n][2]; w = 0 marks no gradient.
__global__ void triplet_dx_kernel(float *dx, const float *x, const int *sel, const float *w, int n, int D) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (size_t)n * D) return;
    const int r = (int)(e / D), c = (int)(e % D);
    float acc = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++) {
            const float wk = w[2 * i + k];
            const int j = sel[2 * i + k];
            if (wk == 0.0f || (i != r && j != r)) continue;
            const float t = wk * (x[(size_t)i * D + c] - x[(size_t)j * D + c]);
            acc = i == r ? acc + t : acc - t;
        }
    dx[e] = acc;
}

}  // namespace

// ---- CosFace ------------------------------------------------------------------------

namespace {

// Partial-FC: kernels/ref/cosface_shards.h (train/cosface.c's combine) on
// host copies of the per-row state, over the caller's callback.
int shard_reduce(void *ctx, double *buf, size_t n, int op_max) {
    const gpu_cosface_shard *sh = (const gpu_cosface_shard *)ctx;
    if (sh->allreduce(sh->ctx, buf, n, 1, op_max))
        return gpu_fail("cosface: Partial-FC %s all-reduce failed", op_max ? "max" : "sum");
    return 0;
}

// Host memory of a call, freed on every return (after the stream has read it:
// every path that uploads from it waits for the stream before returning 0).
struct HostMem {
    void *p = nullptr;
    ~HostMem() { free(p); }
};

}  // namespace

extern "C" int gpu_cosface_sharded(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D,
                                   int classes, float s, float m, int block, int nonzero_mean, double den, float *df,
                                   float *dW, double *loss, int *correct, int *nonzero, const gpu_cosface_shard *sh) {
    if (n <= 0 || D <= 0 || classes <= 0)
        return gpu_fail("cosface: bad sizes n=%d D=%d classes=%d", n, D, classes);
    if (!(s > 0)) return gpu_fail("cosface: scale s must be > 0 (got %g)", (double)s);
    const int c_lo = sh ? sh->class_lo : 0, all = sh ? sh->total_classes : classes;
    if (sh && (!sh->allreduce || c_lo < 0 || c_lo + classes > all))
        return gpu_fail("cosface: shard [%d, %d) outside %d classes (or no all-reduce)", c_lo, c_lo + classes, all);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= all)
            return gpu_fail("cosface: label %d of sample %d is outside [0, %d)", labels[i], i, all);
    // Sharded: the labels relative to the shard (outside [0, classes) when
    // another rank owns them) and the per-row state's host copies.
    HostMem hm;
    int *hlab = nullptr;
    double *hM = nullptr, *hS = nullptr, *hbuf = nullptr;
    float *hcy = nullptr, *hzy = nullptr, *hlo = nullptr, *hhi = nullptr;
    if (sh) {
        if (!(hm.p = malloc((size_t)n * (4 + 8 * 2 + 4 * 4 + 8 * 3))))
            return gpu_fail("cosface: out of host memory (n=%d)", n);
        hM = (double *)hm.p, hS = hM + n, hbuf = hS + n;
        hcy = (float *)(hbuf + 3 * (size_t)n), hzy = hcy + n, hlo = hzy + n, hhi = hlo + n;
        hlab = (int *)(hhi + n);
        for (int i = 0; i < n; i++) hlab[i] = labels[i] - c_lo;
        labels = hlab;
    }
    const int want = block > 0 ? block : 8192;   // cosface.h's UFO_COSFACE_BLOCK
    const int blk = want < classes ? want : classes;
    const size_t nD = (size_t)n * D, C = (size_t)classes;
    // Scratch, carved in 256-byte pieces, in the order taken below.
    const size_t v4 = (size_t)n * 4, v8 = (size_t)n * 8;
    const size_t sz[] = {v4,     v4,                        // lab, flags
                         nD * 4, v4, C * 4, v4 * blk,       // fn, rf, rw, Z
                         v4,     v4, v4,    v4, v4, v4,     // zy, cy, lo_max, hi_max, lse, dlab
                         (size_t)n, C, v8, v8,              // fbig, wbig, M, S
                         nD * 4, (size_t)blk * D * 4, v8};  // dfn, Gb, li
    size_t used = 0;
    for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) used += align256(sz[k]);
    if (gpu_ensure_scratch(g, used)) return -1;
    char *cur = (char *)g->scratch;
    int next = 0;
    auto take = [&]() {
        char *q = cur;
        cur += align256(sz[next++]);
        return (void *)q;
    };
    int *lab = (int *)take(), *flags = (int *)take();
    float *fn = (float *)take(), *rf = (float *)take(), *rw = (float *)take(), *Z = (float *)take();
    float *zy = (float *)take(), *cy = (float *)take(), *lo_max = (float *)take(), *hi_max = (float *)take();
    float *lse = (float *)take(), *dlab = (float *)take();
    unsigned char *fbig = (unsigned char *)take(), *wbig = (unsigned char *)take();
    double *M = (double *)take(), *S = (double *)take();
    float *dfn = (float *)take(), *Gb = (float *)take();
    double *li = (double *)take();

    cudaStream_t st = g->stream;
    if (gpu_upload(g, lab, labels, (size_t)n * 4)) return -1;
    inv_norms_kernel<<<(unsigned)n, kThreads, 0, st>>>(rf, fbig, f, D);
    inv_norms_kernel<<<(unsigned)C, kThreads, 0, st>>>(rw, wbig, W, D);
    cos_init_kernel<<<blocks_for(nD), kThreads, 0, st>>>(fn, f, rf, n, D, M, S, cy, zy, lo_max, hi_max);
    if (gpu_check_launch("cosface norms")) return -1;

    // ---- Pass 1.
    for (int c0 = 0; c0 < classes; c0 += blk) {
        const int nb = classes - c0 < blk ? classes - c0 : blk;
        if (gpu_gemm(g, Z, fn, W + (size_t)c0 * D, n, nb, D, 0, 1, 0.0f, GPU_F32)) return -1;
        cos_pass1_kernel<<<(unsigned)n, kThreads, 0, st>>>(Z, rw, lab, nb, c0, s, m, M, S, cy, zy, lo_max, hi_max);
        if (gpu_check_launch("cosface pass 1")) return -1;
    }
    if (sh) {   // the per-row state down, reduced over the shards, back up
        if (gpu_download(g, hM, M, v8) || gpu_download(g, hS, S, v8) || gpu_download(g, hcy, cy, v4) ||
            gpu_download(g, hlo, lo_max, v4) || gpu_download(g, hhi, hi_max, v4) || gpu_sync(g))
            return -1;
        if (cosface_combine_shards(n, s, m, hM, hS, hcy, hzy, hlo, hhi, hbuf, shard_reduce, (void *)sh)) return -1;
        if (gpu_upload(g, M, hM, v8) || gpu_upload(g, S, hS, v8) || gpu_upload(g, cy, hcy, v4) ||
            gpu_upload(g, zy, hzy, v4) || gpu_upload(g, lo_max, hlo, v4) || gpu_upload(g, hi_max, hhi, v4))
            return -1;
    }
    cos_loss_kernel<<<blocks_for((size_t)n), kThreads, 0, st>>>(li, flags, lse, dlab, M, S, cy, zy, lo_max, hi_max, n);
    if (gpu_check_launch("cosface loss")) return -1;

    // ---- Loss: the per-row values, summed on the host in row order (as cosface.c).
    double *hl = (double *)malloc((size_t)n * 8);
    int *hf = (int *)malloc((size_t)n * 4);
    if (!hl || !hf) {
        free(hl), free(hf);
        return gpu_fail("cosface: out of host memory (n=%d)", n);
    }
    int rc = gpu_download(g, hl, li, (size_t)n * 8) || gpu_download(g, hf, flags, (size_t)n * 4) || gpu_sync(g) ? -1 : 0;
    double total = 0;
    int nz = 0, corr = 0;
    for (int i = 0; i < n && rc == 0; i++) total += hl[i], nz += hf[i] & 1, corr += hf[i] >> 1 & 1;
    free(hl), free(hf);
    if (rc) return -1;
    if (!isfinite(total)) return gpu_fail("cosface: the loss is not finite (NaN or Inf in the features or class weights)");
    const double dn = den > 0 ? den : nonzero_mean ? (nz > 0 ? nz : 1) : n;
    if (loss) *loss = total / dn;
    if (correct) *correct = corr;
    if (nonzero) *nonzero = nz;
    if (!df && !dW) return 0;

    // ---- Pass 2.
    const float coef = (float)(s / dn);
    for (int c0 = 0; c0 < classes; c0 += blk) {
        const int nb = classes - c0 < blk ? classes - c0 : blk;
        const float *Wb = W + (size_t)c0 * D;
        if (gpu_gemm(g, Z, fn, Wb, n, nb, D, 0, 1, 0.0f, GPU_F32)) return -1;
        cos_pass2_kernel<<<blocks_for((size_t)n * nb), kThreads, 0, st>>>(Z, rw, lab, lse, dlab, n, nb, c0, s, coef);
        if (gpu_check_launch("cosface pass 2")) return -1;
        if (df && gpu_gemm(g, dfn, Z, Wb, n, D, nb, 0, 0, c0 == 0 ? 0.0f : 1.0f, GPU_F32)) return -1;   // dcos' W_blk
        if (dW) {
            if (gpu_gemm(g, Gb, Z, fn, nb, D, n, 1, 0, 0.0f, GPU_F32)) return -1;   // dcos'^T f_hat
            cos_dw_kernel<<<(unsigned)nb, kThreads, 0, st>>>(dW + (size_t)c0 * D, Gb, Wb, rw + c0, wbig + c0, D);
            if (gpu_check_launch("cosface dW")) return -1;
        }
    }
    if (df && sh) {   // d f_hat is the sum of every shard's columns
        if (gpu_sync(g)) return -1;
        if (sh->allreduce_device) {
            if (sh->allreduce_device(sh->ctx, dfn, nD)) return gpu_fail("cosface: Partial-FC d feature all-reduce failed");
        } else {
            HostMem hd;
            if (!(hd.p = malloc(nD * 4))) return gpu_fail("cosface: out of host memory (n=%d, D=%d)", n, D);
            if (gpu_download(g, hd.p, dfn, nD * 4) || gpu_sync(g)) return -1;
            if (sh->allreduce(sh->ctx, hd.p, nD, 0, 0)) return gpu_fail("cosface: Partial-FC d feature all-reduce failed");
            if (gpu_upload(g, dfn, hd.p, nD * 4) || gpu_sync(g)) return -1;
        }
    }
    if (df) {
        cos_df_kernel<<<(unsigned)n, kThreads, 0, st>>>(df, dfn, fn, rf, fbig, D);
        if (gpu_check_launch("cosface df")) return -1;
    }
    return 0;
}

extern "C" int gpu_cosface(gpu_ctx *g, const float *f, const float *W, const int *labels, int n, int D, int classes,
                           float s, float m, int block, int nonzero_mean, double den, float *df, float *dW,
                           double *loss, int *correct, int *nonzero) {
    return gpu_cosface_sharded(g, f, W, labels, n, D, classes, s, m, block, nonzero_mean, den, df, dW, loss, correct,
                               nonzero, nullptr);
}

// ---- Triplet ------------------------------------------------------------------------

extern "C" int gpu_triplet(gpu_ctx *g, const float *x, const int *labels, int n, int D, float margin, float *dx,
                           double *loss, int *fallback, double *dist_ap_mean, double *dist_an_mean) {
    if (n <= 0 || D <= 0) return gpu_fail("triplet: bad sizes n=%d D=%d", n, D);
    if (!(margin >= 0)) return gpu_fail("triplet: margin must be >= 0 (got %g)", (double)margin);
    const size_t nn = (size_t)n * n, v = align256((size_t)n * 4);
    // Scratch: Gram [n, n], then nine per-anchor arrays of n 4-byte values
    // (labels, ap, an, pi, ni, sqp, sqn, and sel, w of two per anchor).
    if (gpu_ensure_scratch(g, align256(nn * 4) + 11 * v)) return -1;
    char *p = (char *)g->scratch;
    float *Gm = (float *)p;
    p += align256(nn * 4);
    int *lab = (int *)p, *pi = (int *)(p + 3 * v), *ni = (int *)(p + 4 * v), *sel = (int *)(p + 7 * v);
    float *ap = (float *)(p + v), *an = (float *)(p + 2 * v), *sqp = (float *)(p + 5 * v), *sqn = (float *)(p + 6 * v);
    float *w = (float *)(p + 9 * v);
    if (gpu_upload(g, lab, labels, (size_t)n * 4) || gpu_gemm(g, Gm, x, x, n, n, D, 0, 1, 0.0f, GPU_F32)) return -1;
    triplet_mine_kernel<<<blocks_for((size_t)n), kThreads, 0, g->stream>>>(Gm, lab, n, ap, an, pi, ni, sqp, sqn);
    if (gpu_check_launch("triplet mining")) return -1;
    // Host: the six per-anchor arrays (one allocation), then triplet.c's loss.
    float *h = (float *)malloc((size_t)n * 4 * 10);
    if (!h) return gpu_fail("triplet: out of host memory (n=%d)", n);
    float *hap = h, *han = h + n, *hsqp = h + 2 * n, *hsqn = h + 3 * n, *hw = h + 4 * n;
    int *hpi = (int *)(h + 6 * n), *hni = (int *)(h + 7 * n), *hsel = (int *)(h + 8 * n);
    if (gpu_download(g, hap, ap, (size_t)n * 4) || gpu_download(g, han, an, (size_t)n * 4) ||
        gpu_download(g, hsqp, sqp, (size_t)n * 4) || gpu_download(g, hsqn, sqn, (size_t)n * 4) ||
        gpu_download(g, hpi, pi, (size_t)n * 4) || gpu_download(g, hni, ni, (size_t)n * 4) || gpu_sync(g)) {
        free(h);
        return -1;
    }
    int fb = 0;
    if (margin == 0)
        for (int i = 0; i < n; i++)
            if (isinf(expf(-(han[i] - hap[i])))) fb = 1;
    const float mg = margin > 0 ? margin : 0.3f;
    double total = 0, sap = 0, san = 0;
    for (int i = 0; i < n; i++) {
        sap += hap[i];
        san += han[i];
        double xi = (double)(han[i] - hap[i]), gr;   // gr = dL/d(an_i) * n; dL/d(ap_i) = -gr / n
        if (margin == 0 && !fb) {
            total += xi > 0 ? log1p(exp(-xi)) : -xi + log1p(exp(xi));
            gr = -1.0 / (1.0 + exp(xi));
        } else {
            double hm = (double)(hap[i] - han[i]) + (double)mg;
            total += hm > 0 ? hm : 0;
            gr = hm >= 0 ? -1.0 : 0.0;
        }
        // The pair weights d loss / d dist / dist (triplet.c's skips give 0).
        const int sl[2] = {hpi[i], hni[i]};
        const float gd[2] = {(float)(-gr / n), (float)(gr / n)}, sq[2] = {hsqp[i], hsqn[i]}, d[2] = {hap[i], han[i]};
        for (int k = 0; k < 2; k++) {
            int j = sl[k];
            int skip = j == i || gd[k] == 0 || (k == 1 && labels[j] == labels[i]) || !(sq[k] >= kSqMin);
            hsel[2 * i + k] = j;
            hw[2 * i + k] = skip ? 0.0f : gd[k] / d[k];
        }
    }
    if (loss) *loss = total / n;
    if (fallback) *fallback = fb;
    if (dist_ap_mean) *dist_ap_mean = sap / n;
    if (dist_an_mean) *dist_an_mean = san / n;
    int rc = 0;
    if (dx) {
        rc = gpu_upload(g, sel, hsel, (size_t)n * 8) || gpu_upload(g, w, hw, (size_t)n * 8) ? -1 : 0;
        if (rc == 0) {
            triplet_dx_kernel<<<blocks_for((size_t)n * D), kThreads, 0, g->stream>>>(dx, x, sel, w, n, D);
            rc = gpu_check_launch("triplet dx");
        }
        // The uploads read pageable host memory: wait before freeing it.
        if (rc == 0) rc = gpu_sync(g);
    }
    free(h);
    return rc;
}
