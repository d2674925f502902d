// CosFace loss, blocked over classes (see cosface.h for the contract).
//
// Numerics. For row i with label y, the loss is log1p(T_i) where
// T_i = sum_{j != y} exp(z_ij - z_iy): the label column is kept out of the
// running sum (S_i, relative to the running max M_i of the other columns),
// so a well classified row keeps its tiny T_i instead of losing it in
// "1 + tiny", and softmax_y - 1 = -T/(1+T) has no cancellation.
// cos_ij is formed as (f_hat_i . W_j) / max(||W_j||, 1e-12): the sgemm runs on
// the raw W, so no normalised copy of W is ever made.
#include "train/cosface.h"
#include "base/error.h"
#include "base/mem.h"
#include "kernels/ref/cosface_shards.h"
#include "train/fexp.h"
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <string.h>

#define NORM_EPS 1e-12

static int sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float beta, float *C, int64_t ldc) {
    dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    if (st != dnnl_success) return ufo_errorf("cosface: oneDNN sgemm failed (status %d)", (int)st);
    return 0;
}

// out[r] = 1 / max(||x_r||, 1e-12); big[r] = ||x_r|| > 1e-12 (norms in double).
static void inv_norms(float *out, unsigned char *big, const float *x, int64_t rows, int D) {
#pragma omp parallel for schedule(static) if (rows * D > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *v = x + r * D;
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int k = 0; k < D; k++) ss += (double)v[k] * v[k];
        double nrm = sqrt(ss);
        out[r] = (float)(1.0 / (nrm > NORM_EPS ? nrm : NORM_EPS));
        if (big) big[r] = nrm > NORM_EPS;
    }
}

static int comm_reduce(void *ctx, double *buf, size_t n, int op_max) {
    return op_max ? ufo_comm_allreduce_max_f64(ctx, buf, n, "Partial-FC softmax max")
                  : ufo_comm_allreduce_sum_f64(ctx, buf, n, "Partial-FC softmax sum");
}

// Partial-FC: kernels/ref/cosface_shards.h over the ranks of the group.
static int combine_shards(ufo_comm *c, int n, float s, float m, double *M, double *S, float *cy, float *zy,
                          float *lo_max, float *hi_max) {
    double *buf = ufo_alloc((size_t)n * 3 * sizeof(double));
    if (!buf) return ufo_errorf("cosface: out of memory (Partial-FC, n=%d)", n);
    int rc = cosface_combine_shards(n, s, m, M, S, cy, zy, lo_max, hi_max, buf, comm_reduce, c);
    ufo_free(buf);
    return rc;
}

int ufo_cosface(const float *f, const float *W, const int32_t *labels, int n, int D, int classes,
                const ufo_cosface_opts *opts, float *df, float *dW, ufo_cosface_result *res) {
    ufo_comm *shard = opts->shard && opts->shard->size > 1 ? opts->shard : NULL;
    // A shard may hold no class (Partial-FC sampling can keep none of a
    // rank's): it still takes part in the collectives.
    if (n <= 0 || D <= 0 || classes < 0 || (classes == 0 && !shard))
        return ufo_errorf("cosface: bad sizes n=%d D=%d classes=%d", n, D, classes);
    if (!(opts->s > 0)) return ufo_errorf("cosface: scale s must be > 0 (got %g)", (double)opts->s);
    const int all = shard ? opts->total_classes : classes, c_lo = shard ? opts->class_lo : 0;
    if (shard && (c_lo < 0 || c_lo + classes > all))
        return ufo_errorf("cosface: shard [%d, %d) outside %d classes", c_lo, c_lo + classes, all);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= all)
            return ufo_errorf("cosface: label %d of sample %d is outside [0, %d)", (int)labels[i], i, all);
    const int64_t C = classes;
    const int blk = classes == 0 ? 1
                                 : (int)(opts->block > 0 ? (opts->block < classes ? opts->block : classes)
                                                         : (UFO_COSFACE_BLOCK < classes ? UFO_COSFACE_BLOCK : classes));
    const float s = opts->s, m = opts->m;
    const int backward = df || dW;
    const float elo = train_fexp_lo();

    // Scratch.
    float *fn = ufo_alloc((size_t)n * D * sizeof(float));
    float *rf = ufo_alloc((size_t)n * sizeof(float));
    unsigned char *fbig = ufo_alloc((size_t)n);
    float *rw = ufo_alloc((size_t)C * sizeof(float));
    unsigned char *wbig = ufo_alloc((size_t)C);
    float *Z = ufo_alloc((size_t)n * blk * sizeof(float));
    double *M = ufo_alloc((size_t)n * sizeof(double)), *S = ufo_alloc((size_t)n * sizeof(double));
    float *zy = ufo_alloc((size_t)n * sizeof(float)), *cy = ufo_alloc((size_t)n * sizeof(float));
    float *lo_max = ufo_alloc((size_t)n * sizeof(float)), *hi_max = ufo_alloc((size_t)n * sizeof(float));
    float *lse = ufo_alloc((size_t)n * sizeof(float)), *dlab = ufo_alloc((size_t)n * sizeof(float));
    float *dfn = df ? ufo_alloc((size_t)n * D * sizeof(float)) : NULL;
    float *G = dW ? ufo_alloc((size_t)blk * D * sizeof(float)) : NULL;
    int rc = -1;
    if (!fn || !rf || !fbig || !rw || !wbig || !Z || !M || !S || !zy || !cy || !lo_max || !hi_max || !lse || !dlab ||
        (df && !dfn) || (dW && !G)) {
        ufo_error_wrap("cosface scratch (n=%d, D=%d, block=%d)", n, D, blk);
        goto done;
    }

    inv_norms(rf, fbig, f, n, D);
    inv_norms(rw, wbig, W, C, D);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < D; k++) fn[(int64_t)i * D + k] = f[(int64_t)i * D + k] * rf[i];
        M[i] = -INFINITY;
        S[i] = 0;
        lo_max[i] = hi_max[i] = -INFINITY;
        cy[i] = 0;   // sharded: only the rank owning the label writes it, the others add 0
    }

    // ---- Pass 1: label logits, running max and sum of the other columns, and
    // for top-1 the largest other cos before and after the label's index.
    for (int64_t c0 = 0; c0 < C; c0 += blk) {
        const int nb = (int)(C - c0 < blk ? C - c0 : blk);
        if (sgemm('N', 'T', n, nb, D, fn, D, W + c0 * D, D, 0.0f, Z, nb)) goto done;
        const float *rwb = rw + c0;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            float *zr = Z + (int64_t)i * nb;
            int64_t yl = labels[i] - c_lo - c0;   // label column in this block, or outside [0, nb)
            if (yl >= 0 && yl < nb) {
                cy[i] = zr[yl] * rwb[yl];
                zy[i] = s * (cy[i] - m);
            }
            const int yb = (int)(yl < 0 ? -1 : yl > nb ? nb : yl);
            float lo = -INFINITY, hi = -INFINITY;
#pragma omp simd reduction(max : lo, hi)
            for (int j = 0; j < nb; j++) {
                float c = j == yb ? -INFINITY : zr[j] * rwb[j];   // the label is out of the "others"
                zr[j] = c;
                float cl = j < yb ? c : -INFINITY, ch = j < yb ? -INFINITY : c;
                lo = cl > lo ? cl : lo;
                hi = ch > hi ? ch : hi;
            }
            if (lo > lo_max[i]) lo_max[i] = lo;
            if (hi > hi_max[i]) hi_max[i] = hi;
            const float cm = lo > hi ? lo : hi;
            if (cm == -INFINITY) continue;   // the block held only the label column
            const double bm = (double)(s * cm);   // = max_j s * cos_j (rounding is monotone)
            if (bm > M[i]) {
                S[i] *= exp(M[i] - bm);
                M[i] = bm;
            }
            const float mi = (float)M[i];
            double acc = 0;   // double lanes: a block sums up to thousands of terms
#pragma omp simd reduction(+ : acc)
            for (int j = 0; j < nb; j++) acc += (double)train_fexp(s * zr[j] - mi, elo);
            S[i] += acc;
        }
    }

    if (shard && combine_shards(shard, n, s, m, M, S, cy, zy, lo_max, hi_max)) goto done;

    // ---- Loss.
    double total = 0;
    int nonzero = 0, correct = 0;
    for (int i = 0; i < n; i++) {
        double T = S[i] > 0 ? S[i] * exp(M[i] - (double)zy[i]) : 0.0;   // sum_{j!=y} exp(z_j - z_y)
        double li = log1p(T);
        total += li;
        nonzero += T > 0x1p-24;
        correct += cy[i] > lo_max[i] && cy[i] >= hi_max[i];   // top-1, ties to the lower index
        lse[i] = (float)((double)zy[i] + li);
        dlab[i] = (float)(-T / (1.0 + T));   // softmax_y - 1
    }
    if (!isfinite(total)) {
        ufo_errorf("cosface: the loss is not finite (NaN or Inf in the features or class weights)");
        goto done;
    }
    const double den = opts->den > 0 ? opts->den : opts->nonzero_mean ? (nonzero > 0 ? nonzero : 1) : n;
    if (res) {
        res->loss = total / den;
        res->accuracy = (double)correct / n;
        res->nonzero = nonzero;
        res->correct = correct;
    }
    if (!backward) {
        rc = 0;
        goto done;
    }

    // ---- Pass 2: dcos' = s (softmax - onehot) / den / ||W_j|| per block, then
    // d f_hat += dcos' W_blk and dW_blk from dcos'^T f_hat.
    const float coef = (float)(s / den);
    for (int64_t c0 = 0; c0 < C; c0 += blk) {
        const int nb = (int)(C - c0 < blk ? C - c0 : blk);
        if (sgemm('N', 'T', n, nb, D, fn, D, W + c0 * D, D, 0.0f, Z, nb)) goto done;
        const float *rwb = rw + c0;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            float *zr = Z + (int64_t)i * nb;
            const float li = lse[i], sl = s, cf = coef;
#pragma omp simd
            for (int j = 0; j < nb; j++) {
                float z = sl * (zr[j] * rwb[j]);
                zr[j] = train_fexp(z - li, elo) * cf * rwb[j];
            }
            int64_t y = labels[i] - c_lo - c0;
            if (y >= 0 && y < nb) zr[y] = dlab[i] * coef * rwb[y];
        }
        if (df && sgemm('N', 'N', n, D, nb, Z, nb, W + c0 * D, D, c0 == 0 ? 0.0f : 1.0f, dfn, D)) goto done;
        if (dW) {
            if (sgemm('T', 'N', nb, D, n, Z, nb, fn, D, 0.0f, G, D)) goto done;
#pragma omp parallel for schedule(static)
            for (int j = 0; j < nb; j++) {
                const float *g = G + (int64_t)j * D, *w = W + (c0 + j) * D;
                float *dw = dW + (c0 + j) * D;
                float dot = 0;
#pragma omp simd reduction(+ : dot)
                for (int k = 0; k < D; k++) dot += w[k] * g[k];
                const float c = wbig[c0 + j] ? rwb[j] * rwb[j] * dot : 0.0f;
#pragma omp simd
                for (int k = 0; k < D; k++) dw[k] += g[k] - c * w[k];
            }
        }
    }
    if (df && C == 0) memset(dfn, 0, (size_t)n * D * sizeof(float));   // no column here: 0 to the sum
    // Sharded: d f_hat is the sum of every shard's columns.
    if (df && shard && ufo_comm_allreduce_sum_f32(shard, dfn, (size_t)n * D, "Partial-FC d feature")) goto done;
    if (df) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            const float *u = fn + (int64_t)i * D, *g = dfn + (int64_t)i * D;
            float *o = df + (int64_t)i * D;
            float dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int k = 0; k < D; k++) dot += u[k] * g[k];
            if (!fbig[i]) dot = 0;
            const float r = rf[i];
#pragma omp simd
            for (int k = 0; k < D; k++) o[k] = r * (g[k] - u[k] * dot);
        }
    }
    rc = 0;
done:
    ufo_free(fn);
    ufo_free(rf);
    ufo_free(fbig);
    ufo_free(rw);
    ufo_free(wbig);
    ufo_free(Z);
    ufo_free(M);
    ufo_free(S);
    ufo_free(zy);
    ufo_free(cy);
    ufo_free(lo_max);
    ufo_free(hi_max);
    ufo_free(lse);
    ufo_free(dlab);
    ufo_free(dfn);
    ufo_free(G);
    return rc;
}

void ufo_cosface_init(float *W, int classes, int D, ufo_rng *rng) {
    size_t total = (size_t)classes * (size_t)D;
    for (size_t k = 0; k < total; k++) W[k] = (float)(0.001 * ufo_rng_normal(rng));
}
