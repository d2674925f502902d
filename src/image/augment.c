// The training transform (see augment.h for the order and its sources).
#include "image/augment.h"
#include "base/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ufo_aug_defaults(ufo_aug_opts *o, int size) {
    memset(o, 0, sizeof *o);
    o->size = size;
    o->do_autoaug = 1;
    o->autoaug_p = 0.5;
    o->do_pad_crop = 1;
    o->pad = 10;
    o->do_flip = 1;
    o->flip_p = 0.5;
    o->do_erase = 1;
    o->erase_p = 0.5;
    o->erase_area_min = 0.02;
    o->erase_area_max = 1.0 / 3.0;
    o->erase_aspect_min = 0.3;
    o->erase_aspect_max = 1.0 / 0.3;
}

// random.randint(lo, hi), inclusive, unbiased.
static int rand_int(ufo_rng *rng, int lo, int hi) {
    const uint64_t n = (uint64_t)((int64_t)hi - lo) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = ufo_rng_next(rng);
    while (r >= limit);
    return lo + (int)(r % n);
}

// random.uniform(a, b)
static double rand_uniform(ufo_rng *rng, double a, double b) { return a + (b - a) * ufo_rng_uniform(rng); }

static int check_opts(const ufo_aug_opts *o) {
    if (!o) return ufo_errorf("augment: no options");
    if (o->size <= 0 || o->size > 65535) return ufo_errorf("augment: invalid output size %d", o->size);
    if (o->do_pad_crop && (o->pad < 0 || o->pad > 65535)) return ufo_errorf("augment: invalid pad %d", o->pad);
    const double ps[3] = {o->autoaug_p, o->flip_p, o->erase_p};
    for (int i = 0; i < 3; i++)
        if (!(ps[i] >= 0 && ps[i] <= 1)) return ufo_errorf("augment: probability %g not in [0, 1]", ps[i]);
    if (o->do_erase) {
        if (!(o->erase_area_min > 0 && o->erase_area_min <= o->erase_area_max && o->erase_area_max <= 1))
            return ufo_errorf("augment: erase area range [%g, %g] invalid", o->erase_area_min, o->erase_area_max);
        if (!(o->erase_aspect_min > 0 && o->erase_aspect_min <= o->erase_aspect_max && isfinite(o->erase_aspect_max)))
            return ufo_errorf("augment: erase aspect range [%g, %g] invalid", o->erase_aspect_min,
                              o->erase_aspect_max);
    }
    return 0;
}

// timm RandomErasing._erase on out[3][S][S], mode 'pixel', one box.
static void random_erase(float *out, int S, const ufo_aug_opts *o, ufo_rng *rng, ufo_aug_trace *t) {
    if (ufo_rng_uniform(rng) > o->erase_p) return;
    const double area = (double)S * S;
    const double la = log(o->erase_aspect_min), lb = log(o->erase_aspect_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        t->erase_attempts = attempt + 1;
        const double frac = rand_uniform(rng, o->erase_area_min, o->erase_area_max);
        const double target = frac * area;  // "/ count" with count = 1
        const double aspect = exp(rand_uniform(rng, la, lb));
        const int h = (int)nearbyint(sqrt(target * aspect));  // int(round(.)): half to even
        const int w = (int)nearbyint(sqrt(target / aspect));
        if (w < S && h < S) {
            const int top = rand_int(rng, 0, S - h);
            const int left = rand_int(rng, 0, S - w);
            const size_t plane = (size_t)S * S;
            for (int c = 0; c < 3; c++)
                for (int y = top; y < top + h; y++)
                    for (int x = left; x < left + w; x++)
                        out[c * plane + (size_t)y * S + x] = (float)ufo_rng_normal(rng);
            t->erased = 1;
            t->erase_area = frac;
            t->erase_aspect = aspect;
            t->erase_top = top;
            t->erase_left = left;
            t->erase_h = h;
            t->erase_w = w;
            return;
        }
    }
}

int ufo_augment_ex(const ufo_image *src, const ufo_aug_opts *o, ufo_rng *rng, float *out_chw,
                   ufo_aug_trace *trace) {
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0) return ufo_errorf("augment: empty source image");
    if (check_opts(o)) return -1;
    if (!rng || !out_chw) return ufo_errorf("augment: no rng or output buffer");
    ufo_aug_trace t;
    memset(&t, 0, sizeof t);
    const int S = o->size;

    // 1. AutoAugment on the decoded image
    ufo_image aa = {0, 0, NULL};
    const ufo_image *cur = src;
    if (o->do_autoaug && ufo_rng_uniform(rng) < o->autoaug_p) {
        const size_t n = (size_t)src->w * src->h * 3;
        aa.w = src->w;
        aa.h = src->h;
        aa.rgb = malloc(n);
        if (!aa.rgb) return ufo_errorf("augment: out of memory (%dx%d)", src->w, src->h);
        memcpy(aa.rgb, src->rgb, n);
        if (ufo_autoaugment(&aa, rng, &t.aa)) {
            ufo_image_free(&aa);
            return -1;
        }
        t.autoaug = 1;
        cur = &aa;
    }
    // 2. bicubic resize
    ufo_image rs;
    int rc = ufo_image_resize_bicubic(cur, S, S, &rs);
    ufo_image_free(&aa);
    if (rc) return ufo_error_wrap("augment");
    // 3. pad + random crop (paddle RandomCrop: row offset first)
    int oy = 0, ox = 0;
    if (o->do_pad_crop && o->pad > 0) {
        t.crop_y = rand_int(rng, 0, 2 * o->pad);
        t.crop_x = rand_int(rng, 0, 2 * o->pad);
        oy = t.crop_y - o->pad;
        ox = t.crop_x - o->pad;
    }
    // 4. horizontal flip of the crop
    if (o->do_flip && ufo_rng_uniform(rng) < o->flip_p) t.flipped = 1;
    // 5. normalise to CHW; the padding is 0, i.e. -1 after normalisation
    const size_t plane = (size_t)S * S;
    for (int y = 0; y < S; y++) {
        const int sy = y + oy;
        for (int x = 0; x < S; x++) {
            const int cx = t.flipped ? S - 1 - x : x;
            const int sx = cx + ox;
            const size_t o_i = (size_t)y * S + x;
            if (sy < 0 || sy >= S || sx < 0 || sx >= S) {
                for (int c = 0; c < 3; c++) out_chw[c * plane + o_i] = (0.0f - 127.5f) / 127.5f;
            } else {
                const uint8_t *p = rs.rgb + ((size_t)sy * S + sx) * 3;
                for (int c = 0; c < 3; c++) out_chw[c * plane + o_i] = ((float)p[c] - 127.5f) / 127.5f;
            }
        }
    }
    ufo_image_free(&rs);
    // 6. random erasing in normalised units
    if (o->do_erase) random_erase(out_chw, S, o, rng, &t);
    if (trace) *trace = t;
    return 0;
}

int ufo_augment(const ufo_image *src, const ufo_aug_opts *o, ufo_rng *rng, float *out_chw) {
    return ufo_augment_ex(src, o, rng, out_chw, NULL);
}
