// Batch-hard triplet loss (see triplet.h for the contract).
#include "train/triplet.h"
#include "base/error.h"
#include "base/mem.h"
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <string.h>

#define SQ_MIN 1e-12f

int ufo_triplet(const float *x, const int32_t *labels, int n, int D, float margin, float *dx, int *pos_idx,
                int *neg_idx, ufo_triplet_result *res) {
    if (n <= 0 || D <= 0) return ufo_errorf("triplet: bad sizes n=%d D=%d", n, D);
    if (!(margin >= 0)) return ufo_errorf("triplet: margin must be >= 0 (got %g)", (double)margin);
    float *G = ufo_alloc((size_t)n * n * sizeof(float));
    float *dist = ufo_alloc((size_t)n * n * sizeof(float));
    int *pi = ufo_alloc((size_t)n * sizeof(int)), *ni = ufo_alloc((size_t)n * sizeof(int));
    float *ap = ufo_alloc((size_t)n * sizeof(float)), *an = ufo_alloc((size_t)n * sizeof(float));
    int rc = -1;
    if (!G || !dist || !pi || !ni || !ap || !an) {
        ufo_error_wrap("triplet scratch (n=%d)", n);
        goto done;
    }
    dnnl_status_t st = dnnl_sgemm('N', 'T', n, n, D, 1.0f, x, D, x, D, 0.0f, G, n);
    if (st != dnnl_success) {
        ufo_errorf("triplet: oneDNN sgemm failed (status %d)", (int)st);
        goto done;
    }

    // Distances and mining, one anchor per row; the fp32 expressions follow
    // fast-reid's (xx + yy) - 2 xy, clamp, sqrt, dist * is_pos, dist * is_neg + is_pos * 1e9.
#pragma omp parallel for schedule(static) if (n >= 64)
    for (int i = 0; i < n; i++) {
        float *dr = dist + (int64_t)i * n;
        const float gi = G[(int64_t)i * n + i];
        float bp = 0, bn = 0;
        int ip = -1, in = -1;
        for (int j = 0; j < n; j++) {
            float sq = (gi + G[(int64_t)j * n + j]) - 2.0f * G[(int64_t)i * n + j];
            float d = sqrtf(sq < SQ_MIN ? SQ_MIN : sq);
            dr[j] = d;
            int pos = labels[j] == labels[i];
            float vp = pos ? d : 0.0f;          // dist * is_pos
            float vn = pos ? 1e9f : d;          // dist * is_neg + is_pos * 1e9
            if (ip < 0 || vp > bp) bp = vp, ip = j;
            if (in < 0 || vn < bn) bn = vn, in = j;
        }
        ap[i] = bp;
        an[i] = bn;
        pi[i] = ip;
        ni[i] = in;
    }

    // Loss and dL/d(ap_i), dL/d(an_i).
    int fallback = 0;
    if (margin == 0) {
        for (int i = 0; i < n; i++) {
            float t = -(an[i] - ap[i]);   // -input * target in fp32
            if (isinf(expf(t))) fallback = 1;
        }
    }
    const float m = margin > 0 ? margin : 0.3f;
    double total = 0, sap = 0, san = 0;
    for (int i = 0; i < n; i++) {
        sap += ap[i];
        san += an[i];
        double xi = (double)(an[i] - ap[i]);
        double g;   // dL/d(an_i) * n; dL/d(ap_i) = -g / n
        if (margin == 0 && !fallback) {
            // log(1 + exp(-x)), stably; d/dx = -1 / (1 + exp(x)).
            total += xi > 0 ? log1p(exp(-xi)) : -xi + log1p(exp(xi));
            g = -1.0 / (1.0 + exp(xi));
        } else {
            double h = (double)(ap[i] - an[i]) + (double)m;   // margin ranking, y = 1
            total += h > 0 ? h : 0;
            g = h >= 0 ? -1.0 : 0.0;
        }
        ap[i] = (float)(-g / n);   // reuse: gradients of ap / an
        an[i] = (float)(g / n);
    }
    if (res) {
        res->loss = total / n;
        res->fallback = fallback;
        res->dist_ap_mean = sap / n;
        res->dist_an_mean = san / n;
    }
    if (pos_idx) memcpy(pos_idx, pi, (size_t)n * sizeof(int));
    if (neg_idx) memcpy(neg_idx, ni, (size_t)n * sizeof(int));

    if (dx) {
        // d dist / d x_i = (x_i - x_j) / dist (clamp inactive, i != j), and the
        // opposite for x_j. At most two pairs per anchor, so pairs are applied
        // one by one, in anchor order (deterministic, no cancellation).
        memset(dx, 0, (size_t)n * D * sizeof(float));
        for (int i = 0; i < n; i++) {
            const int sel[2] = {pi[i], ni[i]};
            const float gd[2] = {ap[i], an[i]};
            for (int k = 0; k < 2; k++) {
                int j = sel[k];
                if (j == i || gd[k] == 0) continue;   // self: d sq / d x_i = 0 exactly
                if (k == 1 && labels[j] == labels[i]) continue;   // an = 1e9 (no negative): no gradient
                float sq = (G[(int64_t)i * n + i] + G[(int64_t)j * n + j]) - 2.0f * G[(int64_t)i * n + j];
                if (!(sq >= SQ_MIN)) continue;   // the clamp passes gradient only for sq >= 1e-12
                const float w = gd[k] / dist[(int64_t)i * n + j];
                const float *xi = x + (int64_t)i * D, *xj = x + (int64_t)j * D;
                float *di = dx + (int64_t)i * D, *dj = dx + (int64_t)j * D;
                for (int c = 0; c < D; c++) {
                    float t = w * (xi[c] - xj[c]);
                    di[c] += t;
                    dj[c] -= t;
                }
            }
        }
    }
    rc = 0;
done:
    ufo_free(G);
    ufo_free(dist);
    ufo_free(pi);
    ufo_free(ni);
    ufo_free(ap);
    ufo_free(an);
    return rc;
}
