// cpu_attention_cls: attention for the class token's query only, forward
// and backward. The training's last block needs nothing else: the features
// are the class tokens of its output, so its other rows feed nothing, while
// keys and values still come from every token. One (image, head) is T dot
// products of length hd each way: plain loops the compiler vectorises, with
// OpenMP over the (image, head) pairs.
//
// bf16 (prec UFO_PREC_BF16) rounds as the fused AMX kernels do: q, k, v and
// dO to bf16, products summed in fp32, the softmax in fp32, P and dS rounded
// to bf16 where they are multiplied (P unnormalised in the forward, the row
// sum applied to the output). fp32 rounds nothing.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_train.h"
#include "base/error.h"
#include "base/mem.h"
#include "tensor/dtype.h"
#include <math.h>
#include <omp.h>
#include <string.h>

// Element i of row `row` (fp32 or bf16 storage), as the precision sees it.
static inline float get(const void *x, int x_bf16, size_t i, int rnd) {
    if (x_bf16) return ufo_bf16_to_f32(((const uint16_t *)x)[i]);
    float v = ((const float *)x)[i];
    return rnd ? ufo_bf16_to_f32(ufo_f32_to_bf16(v)) : v;
}
static inline float rnd_if(float v, int rnd) { return rnd ? ufo_bf16_to_f32(ufo_f32_to_bf16(v)) : v; }

static int check(const char *fn, int B, int T, int H, int hd, ufo_precision prec, int qkv_bf16) {
    if (B < 0 || T < 1 || H < 1 || hd < 1 || hd > 1024)
        return ufo_errorf("%s: bad shape B=%d T=%d H=%d hd=%d", fn, B, T, H, hd);
    if (prec != UFO_PREC_FP32 && prec != UFO_PREC_BF16) return ufo_errorf("%s: bad precision %d", fn, (int)prec);
    if (qkv_bf16 && prec != UFO_PREC_BF16) return ufo_errorf("%s: a bf16 qkv goes with bf16", fn);
    return 0;
}

// Per (image, head): q (hd), the scores -> P (T), fp32 scratch.
int cpu_attention_cls(float *out, const void *qkv, int qkv_bf16, int B, int T, int H, int hd, ufo_precision prec) {
    if (check("cpu_attention_cls", B, T, H, hd, prec, qkv_bf16)) return -1;
    const int rnd = prec == UFO_PREC_BF16, C = H * hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *buf = ufo_alloc((size_t)omp_get_max_threads() * (T + 2 * hd) * sizeof(float));
    if (!buf) return ufo_error_wrap("cpu_attention_cls scratch");
#pragma omp parallel for schedule(static) if ((long)B * H * T * hd > 65536)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *p = buf + (size_t)omp_get_thread_num() * (T + 2 * hd), *q = p + T, *o = q + hd;
        const size_t base = (size_t)b * T * 3 * C;
        for (int d = 0; d < hd; d++) q[d] = get(qkv, qkv_bf16, base + (size_t)h * hd + d, rnd);
        float mx = -INFINITY;
        for (int j = 0; j < T; j++) {
            const size_t k0 = base + (size_t)j * 3 * C + C + (size_t)h * hd;
            float s = 0;
            for (int d = 0; d < hd; d++) s += q[d] * get(qkv, qkv_bf16, k0 + d, rnd);
            p[j] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0;
        for (int j = 0; j < T; j++) {
            float e = expf(scale * (p[j] - mx));
            sum += e;
            p[j] = rnd_if(e, rnd);
        }
        for (int d = 0; d < hd; d++) o[d] = 0;
        for (int j = 0; j < T; j++) {
            const size_t v0 = base + (size_t)j * 3 * C + 2 * C + (size_t)h * hd;
            for (int d = 0; d < hd; d++) o[d] += p[j] * get(qkv, qkv_bf16, v0 + d, rnd);
        }
        float *dst = out + (size_t)b * C + (size_t)h * hd;
        for (int d = 0; d < hd; d++) dst[d] = o[d] / sum;
    }
    ufo_free(buf);
    return 0;
}

int cpu_attention_cls_backward(float *dqkv, uint16_t *dqkvb, float *db, const float *dout, const void *qkv,
                               int qkv_bf16, int B, int T, int H, int hd, ufo_precision prec) {
    if (check("cpu_attention_cls_backward", B, T, H, hd, prec, qkv_bf16)) return -1;
    if (!dqkv == !dqkvb || (db && !dqkvb))
        return ufo_errorf("cpu_attention_cls_backward: give dqkv, or dqkvb (with db or not)");
    const int rnd = prec == UFO_PREC_BF16, C = H * hd;
    const size_t C3 = (size_t)3 * C;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const size_t per = (size_t)2 * T + 3 * (size_t)hd;
    float *buf = ufo_alloc((size_t)omp_get_max_threads() * per * sizeof(float));
    double *part = db ? ufo_calloc((size_t)B * C3 * sizeof(double)) : NULL;
    if (!buf || (db && !part)) {
        ufo_free(buf);
        return ufo_error_wrap("cpu_attention_cls_backward scratch");
    }
#pragma omp parallel for schedule(static) if ((long)B * H * T * hd > 65536)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        float *p = buf + (size_t)omp_get_thread_num() * per, *ds = p + T, *q = ds + T, *go = q + hd, *dq = go + hd;
        const size_t base = (size_t)b * T * C3;
        double *ps = part ? part + (size_t)b * C3 : NULL;
        for (int d = 0; d < hd; d++) {
            q[d] = get(qkv, qkv_bf16, base + (size_t)h * hd + d, rnd);
            go[d] = rnd_if(dout[(size_t)b * C + (size_t)h * hd + d], rnd);
            dq[d] = 0;
        }
        // P (fp32, normalised) and dP = dO v_j, then dS = P (dP - sum P dP) scale
        float mx = -INFINITY;
        for (int j = 0; j < T; j++) {
            const size_t r = base + (size_t)j * C3 + (size_t)h * hd;
            float s = 0, g = 0;
            for (int d = 0; d < hd; d++) {
                s += q[d] * get(qkv, qkv_bf16, r + C + d, rnd);
                g += go[d] * get(qkv, qkv_bf16, r + 2 * C + d, rnd);
            }
            p[j] = s;
            ds[j] = g;
            mx = s > mx ? s : mx;
        }
        float sum = 0, dot = 0;
        for (int j = 0; j < T; j++) sum += p[j] = expf(scale * (p[j] - mx));
        for (int j = 0; j < T; j++) {
            p[j] /= sum;
            dot += p[j] * ds[j];
        }
        for (int j = 0; j < T; j++) ds[j] = rnd_if(p[j] * (ds[j] - dot) * scale, rnd);
        // dq = sum dS_j k_j; dk_j = dS_j q; dv_j = P_j dO (P rounded where multiplied)
        for (int j = 0; j < T; j++) {
            const size_t r = base + (size_t)j * C3 + (size_t)h * hd;
            const float pj = rnd_if(p[j], rnd);
            for (int d = 0; d < hd; d++) dq[d] += ds[j] * get(qkv, qkv_bf16, r + C + d, rnd);
            for (int w = 1; w < 3; w++)
                for (int d = 0; d < hd; d++) {
                    float g = w == 1 ? ds[j] * q[d] : pj * go[d];
                    size_t at = r + (size_t)w * C + d;
                    if (dqkv) dqkv[at] = g;
                    else dqkvb[at] = ufo_f32_to_bf16(g);
                    if (ps) ps[(size_t)w * C + (size_t)h * hd + d] += g;
                }
            if (j > 0)   // only the class token has a query
                for (int d = 0; d < hd; d++) {
                    if (dqkv) dqkv[r + d] = 0;
                    else dqkvb[r + d] = 0;
                }
        }
        for (int d = 0; d < hd; d++) {
            size_t at = base + (size_t)h * hd + d;
            if (dqkv) dqkv[at] = dq[d];
            else dqkvb[at] = ufo_f32_to_bf16(dq[d]);
            if (ps) ps[(size_t)h * hd + d] += dq[d];
        }
    }
    if (part) {
        for (size_t k = 0; k < C3; k++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += part[(size_t)b * C3 + k];
            db[k] = (float)(db[k] + s);
        }
    }
    ufo_free(buf);
    ufo_free(part);
    return 0;
}
