// Pillow 9.4's Image.resize((ow, oh), Image.BICUBIC) for RGB images,
// bit-exact: libImaging/Resample.c, ImagingResampleInner with the 8bpc passes.
//  - coefficients per output pixel from the bicubic kernel (a = -0.5) with
//    its support (2) scaled by the downscale factor, normalised to sum 1 in
//    double, then rounded to fixed point with PRECISION_BITS = 32 - 8 - 2;
//  - horizontal pass first (only over the rows the vertical pass reads), 8-bit
//    clipped result, then the vertical pass; a pass is skipped when that
//    dimension is unchanged; same size: a copy.
// The double arithmetic must round exactly as Pillow's (plain SSE2, no fused
// multiply-add), so FP contraction is switched off for this file: the library
// is built with -march=x86-64-v3, where GCC would otherwise emit FMAs.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "image/image_internal.h"
#include "base/error.h"
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;
    int *bounds;   // [out][2]: first input index, count
    int32_t *kk;   // [out][ksize] fixed-point coefficients
} coeffs;

// precompute_coeffs + normalize_coeffs_8bpc, for box (in0, in1) = (0, in_size).
static int precompute(int in_size, int out_size, coeffs *c) {
    const double support0 = 2.0;  // BICUBIC
    float in0 = 0.0f, in1 = (float)in_size;
    double scale, filterscale;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = support0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->bounds = malloc((size_t)out_size * 2 * sizeof(int));
    c->kk = malloc((size_t)out_size * ksize * sizeof(int32_t));
    double *k = malloc((size_t)ksize * sizeof(double));
    if (!c->bounds || !c->kk || !k) {
        free(c->bounds);
        free(c->kk);
        free(k);
        c->bounds = NULL;
        c->kk = NULL;
        return ufo_errorf("out of memory for resize coefficients (%d -> %d)", in_size, out_size);
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        int32_t *kq = c->kk + (size_t)xx * ksize;
        for (x = 0; x < ksize; x++)
            kq[x] = k[x] < 0 ? (int)(-0.5 + k[x] * (1 << PRECISION_BITS)) : (int)(0.5 + k[x] * (1 << PRECISION_BITS));
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    return 0;
}

static inline uint8_t clip8(int in) {
    int v = in >> PRECISION_BITS;  // arithmetic shift, as Pillow's lookup index
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// out: out_h rows of ow pixels; input rows y0 .. y0 + out_h - 1 of in (width iw).
static void resample_h(const uint8_t *in, int iw, int y0, uint8_t *out, int ow, int out_h, const coeffs *c) {
    for (int yy = 0; yy < out_h; yy++) {
        const uint8_t *row = in + (size_t)(yy + y0) * iw * 3;
        uint8_t *o = out + (size_t)yy * ow * 3;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = c->kk + (size_t)xx * c->ksize;
            int ss0 = 1 << (PRECISION_BITS - 1), ss1 = ss0, ss2 = ss0;
            const uint8_t *p = row + (size_t)xmin * 3;
            for (int x = 0; x < xmax; x++) {
                ss0 += p[3 * x] * k[x];
                ss1 += p[3 * x + 1] * k[x];
                ss2 += p[3 * x + 2] * k[x];
            }
            o[3 * xx] = clip8(ss0);
            o[3 * xx + 1] = clip8(ss1);
            o[3 * xx + 2] = clip8(ss2);
        }
    }
}

// Vertical pass over an image of width w; bounds are relative to `in`'s rows.
static void resample_v(const uint8_t *in, int w, uint8_t *out, int oh, const coeffs *c) {
    const size_t stride = (size_t)w * 3;
    int *acc = malloc(stride * sizeof(int));
    for (int yy = 0; yy < oh; yy++) {
        int ymin = c->bounds[yy * 2], ymax = c->bounds[yy * 2 + 1];
        const int32_t *k = c->kk + (size_t)yy * c->ksize;
        uint8_t *o = out + (size_t)yy * stride;
        if (acc) {  // row-at-a-time accumulation: same sums, cache friendly
            for (size_t i = 0; i < stride; i++) acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *r = in + (size_t)(y + ymin) * stride;
                const int32_t ky = k[y];
                for (size_t i = 0; i < stride; i++) acc[i] += r[i] * ky;
            }
            for (size_t i = 0; i < stride; i++) o[i] = clip8(acc[i]);
        } else {
            for (size_t i = 0; i < stride; i++) {
                int ss = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < ymax; y++) ss += in[(size_t)(y + ymin) * stride + i] * k[y];
                o[i] = clip8(ss);
            }
        }
    }
    free(acc);
}

int ufo_image_resize_bicubic(const ufo_image *src, int ow, int oh, ufo_image *dst) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0)
        return ufo_errorf("resize: empty source image");
    if (ow <= 0 || oh <= 0 || ow > 65535 || oh > 65535)
        return ufo_errorf("resize: invalid output size %dx%d", ow, oh);
    const int iw = src->w, ih = src->h;
    uint8_t *out = malloc((size_t)ow * oh * 3);
    if (!out) return ufo_errorf("out of memory resizing to %dx%d", ow, oh);
    if (iw == ow && ih == oh) {
        memcpy(out, src->rgb, (size_t)ow * oh * 3);
        dst->w = ow, dst->h = oh, dst->rgb = out;
        return 0;
    }
    const int need_h = iw != ow, need_v = ih != oh;
    coeffs cv = {0}, ch = {0};
    uint8_t *tmp = NULL;
    int rc = -1;
    if (precompute(ih, oh, &cv) != 0) goto done;
    const int ybox_first = cv.bounds[0];
    const int ybox_last = cv.bounds[oh * 2 - 2] + cv.bounds[oh * 2 - 1];
    const uint8_t *vin = src->rgb;  // input of the vertical pass
    int vw = iw;
    if (need_h) {
        if (precompute(iw, ow, &ch) != 0) goto done;
        // Only rows ybox_first .. ybox_last - 1 feed the vertical pass; shift
        // its bounds accordingly (as Pillow does). Without a vertical pass
        // the box is the whole image.
        const int rows = need_v ? ybox_last - ybox_first : ih;
        const int y0 = need_v ? ybox_first : 0;
        uint8_t *hout = need_v ? (tmp = malloc((size_t)ow * rows * 3)) : out;
        if (!hout) {
            ufo_errorf("out of memory resizing to %dx%d", ow, oh);
            goto done;
        }
        resample_h(src->rgb, iw, y0, hout, ow, rows, &ch);
        if (need_v)
            for (int i = 0; i < oh; i++) cv.bounds[i * 2] -= ybox_first;
        vin = hout;
        vw = ow;
    }
    if (need_v) resample_v(vin, vw, out, oh, &cv);
    dst->w = ow, dst->h = oh, dst->rgb = out;
    out = NULL;
    rc = 0;
done:
    free(out);
    free(tmp);
    free(cv.bounds);
    free(cv.kk);
    free(ch.bounds);
    free(ch.kk);
    return rc;
}
