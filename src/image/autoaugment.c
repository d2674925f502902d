// AutoAugment's operations, bit-exact with Pillow 9.4 on RGB8 images, and the
// "original" ImageNet policy as fast-reid's timm-derived autoaugment.py
// defines it (see augment.h).
//
// Pillow sources followed (9.4.0):
//  - Image.transform / Image.rotate (PIL/Image.py), libImaging/Geometry.c:
//    ImagingTransformAffine -> ImagingGenericTransform + affine_transform +
//    bilinear_filter32RGB / bicubic_filter32RGB for BILINEAR / BICUBIC;
//    ImagingScaleAffine / affine_fixed (16.16) / the float loop for NEAREST;
//    ImagingRotate90/180/270 for rotate's fast paths.
//  - ImageOps.autocontrast / equalize / invert / posterize / solarize
//    (Python LUTs, applied per band by Image.point).
//  - ImageEnhance: Image.blend(degenerate, image, factor) = libImaging/Blend.c
//    in single precision; Color's degenerate convert("L").convert("RGB")
//    (Convert.c rgb2l: (19595 R + 38470 G + 7471 B + 0x8000) >> 16);
//    Contrast's int(mean(L) + 0.5) (ImageStat, double); Sharpness's
//    ImageFilter.SMOOTH through Filter.c ImagingFilter3x3 (float kernel
//    k / 13, + 0.5, clip8).
// The double and float expressions are written in Pillow's evaluation order
// and FP contraction is switched off for this file (the library is built
// with -march=x86-64-v3, where GCC would otherwise fuse them into FMAs and
// change the rounding; Debian's Pillow is built for baseline x86-64).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "image/augment.h"
#include "base/error.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t UFO_AA_FILL[3] = {128, 128, 128};

static int check_img(const ufo_image *img, const char *what) {
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return ufo_errorf("%s: empty image", what);
    return 0;
}

static uint8_t *alloc_like(const ufo_image *img, const char *what) {
    uint8_t *p = malloc((size_t)img->w * img->h * 3);
    if (!p) ufo_errorf("%s: out of memory for a %dx%d image", what, img->w, img->h);
    return p;
}

static void replace(ufo_image *img, uint8_t *rgb) {
    free(img->rgb);
    img->rgb = rgb;
}

// ---------------------------------------------------------------------------
// Geometry.c

// COORD saturates where Pillow's (int) cast would overflow (undefined; on
// x86 it gives INT_MIN): either way the pixel is outside the image.
#define COORD(v) ((v) < 0.0 ? -1 : (v) >= 2147483647.0 ? INT_MAX : ((int)(v)))
#define FLOOR(v) ((v) < 0.0 ? ((int)floor(v)) : ((int)(v)))

static inline int xclip(int x, int n) { return x < 0 ? 0 : x < n ? x : n - 1; }

// bilinear_filter32RGB. Returns 0 when (xin, yin) is outside the image.
static int bilinear_rgb(uint8_t *out, const ufo_image *im, double xin, double yin) {
    const int W = im->w, H = im->h;
    if (xin < 0.0 || xin >= W || yin < 0.0 || yin >= H) return 0;
    xin -= 0.5;
    yin -= 0.5;
    int x = FLOOR(xin), y = FLOOR(yin);
    double dx = xin - x, dy = yin - y;
    const int x0 = xclip(x, W) * 3, x1 = xclip(x + 1, W) * 3;
    const uint8_t *r0 = im->rgb + (size_t)xclip(y, H) * W * 3;
    const int has1 = y + 1 >= 0 && y + 1 < H;
    const uint8_t *r1 = has1 ? im->rgb + (size_t)(y + 1) * W * 3 : NULL;
    for (int b = 0; b < 3; b++) {
        double v1, v2;
        v1 = r0[x0 + b] + (r0[x1 + b] - r0[x0 + b]) * dx;
        if (has1) v2 = r1[x0 + b] + (r1[x1 + b] - r1[x0 + b]) * dx;
        else v2 = v1;
        v1 = v1 + (v2 - v1) * dy;
        out[b] = (uint8_t)v1;
    }
    return 1;
}

// The BICUBIC macro of Geometry.c (a = -1 cubic convolution). The 8-bit
// pass computes p2..p4 in int; every such int is small, so double
// arithmetic on the converted values gives the same numbers.
static inline double cubic(double v1, double v2, double v3, double v4, double d) {
    double p1 = v2;
    double p2 = -v1 + v3;
    double p3 = 2 * (v1 - v2) + v3 - v4;
    double p4 = -v1 + v2 - v3 + v4;
    return p1 + d * (p2 + d * (p3 + d * p4));
}

// bicubic_filter32RGB.
static int bicubic_rgb(uint8_t *out, const ufo_image *im, double xin, double yin) {
    const int W = im->w, H = im->h;
    if (xin < 0.0 || xin >= W || yin < 0.0 || yin >= H) return 0;
    xin -= 0.5;
    yin -= 0.5;
    int x = FLOOR(xin), y = FLOOR(yin);
    double dx = xin - x, dy = yin - y;
    x--;
    y--;
    const size_t stride = (size_t)W * 3;
    const int xs[4] = {xclip(x, W) * 3, xclip(x + 1, W) * 3, xclip(x + 2, W) * 3, xclip(x + 3, W) * 3};
    const uint8_t *rows[4];
    int has[4];
    rows[0] = im->rgb + (size_t)xclip(y, H) * stride;
    for (int k = 1; k < 4; k++) {
        has[k] = y + k >= 0 && y + k < H;
        rows[k] = has[k] ? im->rgb + (size_t)(y + k) * stride : NULL;
    }
    for (int b = 0; b < 3; b++) {
        double v[4];
        const uint8_t *in = rows[0] + b;  // YCLIP'd first row
        v[0] = cubic(in[xs[0]], in[xs[1]], in[xs[2]], in[xs[3]], dx);
        for (int k = 1; k < 4; k++) {
            if (has[k]) {
                in = rows[k] + b;
                v[k] = cubic(in[xs[0]], in[xs[1]], in[xs[2]], in[xs[3]], dx);
            } else {
                v[k] = v[k - 1];
            }
        }
        double r = cubic(v[0], v[1], v[2], v[3], dy);
        out[b] = r <= 0.0 ? 0 : r >= 255.0 ? 255 : (uint8_t)r;
    }
    return 1;
}

// ImagingGenericTransform with affine_transform; `out` is pre-filled.
static void affine_generic(const ufo_image *src, const double a[6], ufo_resample rs, uint8_t *out) {
    const int W = src->w, H = src->h;
    const double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5];
    for (int y = 0; y < H; y++) {
        uint8_t *o = out + (size_t)y * W * 3;
        for (int x = 0; x < W; x++, o += 3) {
            double xin = x + 0.5, yin = y + 0.5;
            double xx = a0 * xin + a1 * yin + a2;
            double yy = a3 * xin + a4 * yin + a5;
            if (rs == UFO_RESAMPLE_BICUBIC) bicubic_rgb(o, src, xx, yy);
            else bilinear_rgb(o, src, xx, yy);
        }
    }
}

static inline void put_px(uint8_t *out, const ufo_image *src, int xin, int yin) {
    memcpy(out, src->rgb + ((size_t)yin * src->w + xin) * 3, 3);
}

// ImagingScaleAffine (NEAREST, a1 == a3 == 0).
static int affine_scale(const ufo_image *src, const double a[6], uint8_t *out) {
    const int W = src->w, H = src->h;  // output size == input size
    int *xintab = calloc((size_t)W, sizeof(int));
    if (!xintab) return ufo_errorf("affine: out of memory");
    double xo = a[2] + a[0] * 0.5, yo = a[5] + a[4] * 0.5;
    int xmin = W, xmax = 0;
    for (int x = 0; x < W; x++) {
        int xin = COORD(xo);
        if (xin >= 0 && xin < W) {
            xmax = x + 1;
            if (x < xmin) xmin = x;
            xintab[x] = xin;
        }
        xo += a[0];
    }
    for (int y = 0; y < H; y++) {
        int yi = COORD(yo);
        if (yi >= 0 && yi < H)
            for (int x = xmin; x < xmax; x++) put_px(out + ((size_t)y * W + x) * 3, src, xintab[x], yi);
        yo += a[4];
    }
    free(xintab);
    return 0;
}

static inline int check_fixed(const double a[6], int x, int y) {
    return fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

// affine_fixed: NEAREST in 16.16 fixed point.
static void affine_fixed(const ufo_image *src, const double a[6], uint8_t *out) {
    const int W = src->w, H = src->h;
#define FIX(v) FLOOR((v) * 65536.0 + 0.5)
    int a0 = FIX(a[0]), a1 = FIX(a[1]), a3 = FIX(a[3]), a4 = FIX(a[4]);
    int a2 = FIX(a[2] + a[0] * 0.5 + a[1] * 0.5);
    int a5 = FIX(a[5] + a[3] * 0.5 + a[4] * 0.5);
#undef FIX
    for (int y = 0; y < H; y++) {
        int xx = a2, yy = a5;
        uint8_t *o = out + (size_t)y * W * 3;
        for (int x = 0; x < W; x++, o += 3) {
            int xin = xx >> 16;
            if (xin >= 0 && xin < W) {
                int yin = yy >> 16;
                if (yin >= 0 && yin < H) put_px(o, src, xin, yin);
            }
            xx += a0;
            yy += a3;
        }
        a2 += a1;
        a5 += a4;
    }
}

// The floating-point NEAREST loop (images too large for 16.16).
static void affine_float(const ufo_image *src, const double a[6], uint8_t *out) {
    const int W = src->w, H = src->h;
    double xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    double yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (int y = 0; y < H; y++) {
        double xx = xo, yy = yo;
        uint8_t *o = out + (size_t)y * W * 3;
        for (int x = 0; x < W; x++, o += 3) {
            int xin = COORD(xx);
            if (xin >= 0 && xin < W) {
                int yin = COORD(yy);
                if (yin >= 0 && yin < H) put_px(o, src, xin, yin);
            }
            xx += a[0];
            yy += a[3];
        }
        xo += a[1];
        yo += a[4];
    }
}

int ufo_pil_affine(ufo_image *img, const double a[6], ufo_resample rs, const uint8_t fill[3]) {
    if (check_img(img, "affine")) return -1;
    if (rs != UFO_RESAMPLE_NEAREST && rs != UFO_RESAMPLE_BILINEAR && rs != UFO_RESAMPLE_BICUBIC)
        return ufo_errorf("affine: unknown resampling filter %d", (int)rs);
    for (int i = 0; i < 6; i++)
        if (!isfinite(a[i])) return ufo_errorf("affine: coefficient a%d is not finite", i);
    uint8_t *out = alloc_like(img, "affine");
    if (!out) return -1;
    const size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) memcpy(out + 3 * i, fill, 3);  // Image.new(mode, size, fillcolor)
    if (rs != UFO_RESAMPLE_NEAREST) {
        affine_generic(img, a, rs, out);
    } else if (a[1] == 0 && a[3] == 0) {
        if (affine_scale(img, a, out)) {
            free(out);
            return -1;
        }
    } else if (check_fixed(a, 0, 0) && check_fixed(a, img->w, img->h) && check_fixed(a, 0, img->h) &&
               check_fixed(a, img->w, 0)) {
        affine_fixed(img, a, out);
    } else {
        affine_float(img, a, out);
    }
    replace(img, out);
    return 0;
}

// Transpose.ROTATE_90 / 180 / 270 (counter-clockwise), out size swapped for 90/270.
static int transpose_rotate(ufo_image *img, int quarter_turns) {
    const int W = img->w, H = img->h;
    uint8_t *out = alloc_like(img, "rotate");
    if (!out) return -1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const uint8_t *p = img->rgb + ((size_t)y * W + x) * 3;
            size_t o;
            if (quarter_turns == 1) o = (size_t)(W - 1 - x) * H + y;               // ROTATE_90
            else if (quarter_turns == 2) o = (size_t)(H - 1 - y) * W + (W - 1 - x);  // ROTATE_180
            else o = (size_t)x * H + (H - 1 - y);                                   // ROTATE_270
            memcpy(out + o * 3, p, 3);
        }
    if (quarter_turns != 2) {
        img->w = H;
        img->h = W;
    }
    replace(img, out);
    return 0;
}

// Python's round(x, 15): correctly rounded to 15 decimals (glibc's printf
// rounds exactly, like CPython's dtoa mode 3).
static double round15(double x) {
    if (!isfinite(x) || x == 0.0) return x;
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

int ufo_pil_rotate(ufo_image *img, double degrees, ufo_resample rs, const uint8_t fill[3]) {
    if (check_img(img, "rotate")) return -1;
    if (!isfinite(degrees)) return ufo_errorf("rotate: angle is not finite");
    // angle % 360.0 with Python's sign convention
    double angle = fmod(degrees, 360.0);
    if (angle != 0.0) {
        if (angle < 0) angle += 360.0;
    } else {
        angle = 0.0;
    }
    if (angle == 0) return 0;  // self.copy()
    if (angle == 180) return transpose_rotate(img, 2);
    if ((angle == 90 || angle == 270) && img->w == img->h) return transpose_rotate(img, angle == 90 ? 1 : 3);
    const double w = img->w, h = img->h;
    const double cx = w / 2.0, cy = h / 2.0;
    const double deg_to_rad = 3.141592653589793238462643383279502884 / 180.0;  // CPython's degToRad
    const double rad = -(angle * deg_to_rad);
    double m[6] = {round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)), 0.0};
    const double tx = -cx - 0, ty = -cy - 0;
    const double m2 = m[0] * tx + m[1] * ty + m[2];
    const double m5 = m[3] * tx + m[4] * ty + m[5];
    m[2] = m2 + cx;
    m[5] = m5 + cy;
    return ufo_pil_affine(img, m, rs, fill);
}

// ---------------------------------------------------------------------------
// ImageOps

static void apply_luts(ufo_image *img, const uint8_t lut[3][256]) {
    const size_t n = (size_t)img->w * img->h;
    uint8_t *p = img->rgb;
    for (size_t i = 0; i < n; i++, p += 3) {
        p[0] = lut[0][p[0]];
        p[1] = lut[1][p[1]];
        p[2] = lut[2][p[2]];
    }
}

static void apply_lut(ufo_image *img, const uint8_t lut[256]) {
    const size_t n = (size_t)img->w * img->h * 3;
    for (size_t i = 0; i < n; i++) img->rgb[i] = lut[img->rgb[i]];
}

static void histograms(const ufo_image *img, long long h[3][256]) {
    memset(h, 0, sizeof(long long) * 3 * 256);
    const size_t n = (size_t)img->w * img->h;
    const uint8_t *p = img->rgb;
    for (size_t i = 0; i < n; i++, p += 3) {
        h[0][p[0]]++;
        h[1][p[1]]++;
        h[2][p[2]]++;
    }
}

int ufo_pil_autocontrast(ufo_image *img) {
    if (check_img(img, "autocontrast")) return -1;
    long long h[3][256];
    uint8_t lut[3][256];
    histograms(img, h);
    for (int b = 0; b < 3; b++) {
        int lo, hi;
        for (lo = 0; lo < 255 && !h[b][lo]; lo++) {}
        for (hi = 255; hi > 0 && !h[b][hi]; hi--) {}
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[b][i] = (uint8_t)i;
        } else {
            double scale = 255.0 / (hi - lo);
            double offset = -lo * scale;
            for (int i = 0; i < 256; i++) {
                int ix = (int)(i * scale + offset);
                lut[b][i] = (uint8_t)(ix < 0 ? 0 : ix > 255 ? 255 : ix);
            }
        }
    }
    apply_luts(img, lut);
    return 0;
}

int ufo_pil_equalize(ufo_image *img) {
    if (check_img(img, "equalize")) return -1;
    long long h[3][256];
    uint8_t lut[3][256];
    histograms(img, h);
    for (int b = 0; b < 3; b++) {
        long long total = 0, last = 0;
        int nonzero = 0;
        for (int i = 0; i < 256; i++)
            if (h[b][i]) {
                nonzero++;
                total += h[b][i];
                last = h[b][i];
            }
        long long step = nonzero <= 1 ? 0 : (total - last) / 255;
        if (!step) {
            for (int i = 0; i < 256; i++) lut[b][i] = (uint8_t)i;
        } else {
            long long n = step / 2;
            for (int i = 0; i < 256; i++) {
                long long v = n / step;  // never above 255: n < total - last + step / 2
                lut[b][i] = (uint8_t)(v > 255 ? 255 : v);
                n += h[b][i];
            }
        }
    }
    apply_luts(img, lut);
    return 0;
}

int ufo_pil_invert(ufo_image *img) {
    if (check_img(img, "invert")) return -1;
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(255 - i);
    apply_lut(img, lut);
    return 0;
}

int ufo_pil_posterize(ufo_image *img, int bits) {
    if (check_img(img, "posterize")) return -1;
    if (bits < 0 || bits > 8) return ufo_errorf("posterize: bits %d not in 0..8", bits);
    const int mask = ~((1 << (8 - bits)) - 1);
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(i & mask);
    apply_lut(img, lut);
    return 0;
}

int ufo_pil_solarize(ufo_image *img, double threshold) {
    if (check_img(img, "solarize")) return -1;
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (uint8_t)(i < threshold ? i : 255 - i);
    apply_lut(img, lut);
    return 0;
}

int ufo_pil_solarize_add(ufo_image *img, int add, double threshold) {
    if (check_img(img, "solarize_add")) return -1;
    uint8_t lut[256];
    for (int i = 0; i < 256; i++) {
        int v = i;
        if (i < threshold) v = i + add > 255 ? 255 : i + add;
        lut[i] = (uint8_t)(v < 0 ? 0 : v);  // timm feeds Image.point, which needs 0..255
    }
    apply_lut(img, lut);
    return 0;
}

// ---------------------------------------------------------------------------
// ImageEnhance

// Image.blend(degenerate, image, factor) -> image (Blend.c, alpha as float).
static void blend_into(const uint8_t *deg, ufo_image *img, double factor) {
    const float alpha = (float)factor;
    const size_t n = (size_t)img->w * img->h * 3;
    uint8_t *p = img->rgb;
    if (alpha == 0.0f) {
        memcpy(p, deg, n);
    } else if (alpha == 1.0f) {
        return;
    } else if (alpha >= 0 && alpha <= 1.0f) {
        for (size_t i = 0; i < n; i++) {
            float v = (float)(int)deg[i] + alpha * (float)((int)p[i] - (int)deg[i]);
            p[i] = (uint8_t)v;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float t = (float)(int)deg[i] + alpha * (float)((int)p[i] - (int)deg[i]);
            p[i] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
        }
    }
}

static inline uint8_t rgb2l(const uint8_t *p) {
    return (uint8_t)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

int ufo_pil_color(ufo_image *img, double factor) {
    if (check_img(img, "color")) return -1;
    if (!isfinite(factor)) return ufo_errorf("color: factor is not finite");
    uint8_t *deg = alloc_like(img, "color");
    if (!deg) return -1;
    const size_t n = (size_t)img->w * img->h;
    for (size_t i = 0; i < n; i++) {
        uint8_t l = rgb2l(img->rgb + 3 * i);
        deg[3 * i] = deg[3 * i + 1] = deg[3 * i + 2] = l;
    }
    blend_into(deg, img, factor);
    free(deg);
    return 0;
}

int ufo_pil_contrast(ufo_image *img, double factor) {
    if (check_img(img, "contrast")) return -1;
    if (!isfinite(factor)) return ufo_errorf("contrast: factor is not finite");
    const size_t n = (size_t)img->w * img->h;
    long long hist[256] = {0};
    for (size_t i = 0; i < n; i++) hist[rgb2l(img->rgb + 3 * i)]++;
    double sum = 0.0;  // ImageStat: layer_sum += j * h[j] in double, in order
    long long count = 0;
    for (int j = 0; j < 256; j++) {
        sum += (double)(j * hist[j]);
        count += hist[j];
    }
    const int mean = (int)(sum / (double)count + 0.5);
    uint8_t *deg = alloc_like(img, "contrast");
    if (!deg) return -1;
    memset(deg, mean, n * 3);
    blend_into(deg, img, factor);
    free(deg);
    return 0;
}

int ufo_pil_brightness(ufo_image *img, double factor) {
    if (check_img(img, "brightness")) return -1;
    if (!isfinite(factor)) return ufo_errorf("brightness: factor is not finite");
    uint8_t *deg = calloc((size_t)img->w * img->h, 3);
    if (!deg) return ufo_errorf("brightness: out of memory");
    blend_into(deg, img, factor);
    free(deg);
    return 0;
}

// image.filter(ImageFilter.SMOOTH): Filter.c ImagingFilter3x3, RGB branch.
static void smooth(const ufo_image *img, uint8_t *out) {
    const int W = img->w, H = img->h;
    const size_t stride = (size_t)W * 3;
    if (W < 3 || H < 3) {  // ImagingFilter: image smaller than the kernel -> copy
        memcpy(out, img->rgb, stride * H);
        return;
    }
    float k[9];
    const float taps[9] = {1, 1, 1, 1, 5, 1, 1, 1, 1};
    const float divisor = 13.0f;
    for (int i = 0; i < 9; i++) k[i] = taps[i] / divisor;
    const float offset = (float)(0.0f + 0.5);
    memcpy(out, img->rgb, stride);
    for (int y = 1; y < H - 1; y++) {
        const uint8_t *in_1 = img->rgb + (size_t)(y - 1) * stride;
        const uint8_t *in0 = img->rgb + (size_t)y * stride;
        const uint8_t *in1 = img->rgb + (size_t)(y + 1) * stride;
        uint8_t *o = out + (size_t)y * stride;
        memcpy(o, in0, 3);
        for (int x = 1; x < W - 1; x++)
            for (int b = 0; b < 3; b++) {
                const int c = x * 3 + b;
                float ss = offset;
                ss += (float)in1[c - 3] * k[0] + (float)in1[c] * k[1] + (float)in1[c + 3] * k[2];
                ss += (float)in0[c - 3] * k[3] + (float)in0[c] * k[4] + (float)in0[c + 3] * k[5];
                ss += (float)in_1[c - 3] * k[6] + (float)in_1[c] * k[7] + (float)in_1[c + 3] * k[8];
                o[c] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : (uint8_t)ss;
            }
        memcpy(o + (size_t)(W - 1) * 3, in0 + (size_t)(W - 1) * 3, 3);
    }
    memcpy(out + (size_t)(H - 1) * stride, img->rgb + (size_t)(H - 1) * stride, stride);
}

int ufo_pil_sharpness(ufo_image *img, double factor) {
    if (check_img(img, "sharpness")) return -1;
    if (!isfinite(factor)) return ufo_errorf("sharpness: factor is not finite");
    uint8_t *deg = alloc_like(img, "sharpness");
    if (!deg) return -1;
    smooth(img, deg);
    blend_into(deg, img, factor);
    free(deg);
    return 0;
}

// ---------------------------------------------------------------------------
// AutoAugment

static const char *const OP_NAMES[UFO_AA_NUM_OPS] = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
};

const char *ufo_aa_op_name(ufo_aa_op op) {
    return (unsigned)op < UFO_AA_NUM_OPS ? OP_NAMES[op] : "?";
}

int ufo_aa_op_signed(ufo_aa_op op) {
    return op == UFO_AA_ROTATE || op == UFO_AA_SHEAR_X || op == UFO_AA_SHEAR_Y || op == UFO_AA_TRANSLATE_X ||
           op == UFO_AA_TRANSLATE_Y;
}

int ufo_aa_op_geometric(ufo_aa_op op) { return ufo_aa_op_signed(op); }

int ufo_aa_apply(ufo_image *img, ufo_aa_op op, double arg, ufo_resample rs) {
    switch (op) {
    case UFO_AA_AUTOCONTRAST: return ufo_pil_autocontrast(img);
    case UFO_AA_EQUALIZE: return ufo_pil_equalize(img);
    case UFO_AA_INVERT: return ufo_pil_invert(img);
    case UFO_AA_ROTATE: return ufo_pil_rotate(img, arg, rs, UFO_AA_FILL);
    case UFO_AA_POSTERIZE:
        if (arg >= 8) return check_img(img, "posterize");  // timm: bits_to_keep >= 8 -> unchanged
        return ufo_pil_posterize(img, arg < 0 ? 0 : (int)arg);
    case UFO_AA_SOLARIZE: return ufo_pil_solarize(img, arg);
    case UFO_AA_SOLARIZE_ADD: return ufo_pil_solarize_add(img, (int)arg, 128);
    case UFO_AA_COLOR: return ufo_pil_color(img, arg);
    case UFO_AA_CONTRAST: return ufo_pil_contrast(img, arg);
    case UFO_AA_BRIGHTNESS: return ufo_pil_brightness(img, arg);
    case UFO_AA_SHARPNESS: return ufo_pil_sharpness(img, arg);
    case UFO_AA_SHEAR_X: {
        const double a[6] = {1, arg, 0, 0, 1, 0};
        return ufo_pil_affine(img, a, rs, UFO_AA_FILL);
    }
    case UFO_AA_SHEAR_Y: {
        const double a[6] = {1, 0, 0, arg, 1, 0};
        return ufo_pil_affine(img, a, rs, UFO_AA_FILL);
    }
    case UFO_AA_TRANSLATE_X: {
        const double a[6] = {1, 0, arg, 0, 1, 0};
        return ufo_pil_affine(img, a, rs, UFO_AA_FILL);
    }
    case UFO_AA_TRANSLATE_Y: {
        const double a[6] = {1, 0, 0, 0, 1, arg};
        return ufo_pil_affine(img, a, rs, UFO_AA_FILL);
    }
    default: return ufo_errorf("autoaugment: unknown op %d", (int)op);
    }
}

#define MAX_LEVEL 10.0
#define TRANSLATE_CONST 57.0  // fast-reid's _HPARAMS_DEFAULT translate_const

double ufo_aa_level_to_arg(ufo_aa_op op, double level, int negate) {
    level = level < 0 ? 0 : level > MAX_LEVEL ? MAX_LEVEL : level;
    double v;
    switch (op) {
    case UFO_AA_ROTATE: v = (level / MAX_LEVEL) * 30.0; break;
    case UFO_AA_SHEAR_X:
    case UFO_AA_SHEAR_Y: v = (level / MAX_LEVEL) * 0.3; break;
    case UFO_AA_TRANSLATE_X:
    case UFO_AA_TRANSLATE_Y: v = (level / MAX_LEVEL) * TRANSLATE_CONST; break;
    case UFO_AA_COLOR:
    case UFO_AA_CONTRAST:
    case UFO_AA_BRIGHTNESS:
    case UFO_AA_SHARPNESS: return (level / MAX_LEVEL) * 1.8 + 0.1;
    case UFO_AA_POSTERIZE: return (double)((int)((level / MAX_LEVEL) * 4) + 4);  // PosterizeOriginal
    case UFO_AA_SOLARIZE: return (double)(int)((level / MAX_LEVEL) * 256);
    case UFO_AA_SOLARIZE_ADD: return (double)(int)((level / MAX_LEVEL) * 110);
    default: return 0.0;
    }
    return negate ? -v : v;
}

#define S(op, p, l) {UFO_AA_##op, p, l}
// auto_augment_policy_original (timm; fast-reid/VIMER copy), PosterizeOriginal as POSTERIZE.
const ufo_aa_step UFO_AA_POLICY_ORIGINAL[UFO_AA_NUM_SUBPOLICIES][2] = {
    {S(POSTERIZE, 0.4, 8), S(ROTATE, 0.6, 9)},
    {S(SOLARIZE, 0.6, 5), S(AUTOCONTRAST, 0.6, 5)},
    {S(EQUALIZE, 0.8, 8), S(EQUALIZE, 0.6, 3)},
    {S(POSTERIZE, 0.6, 7), S(POSTERIZE, 0.6, 6)},
    {S(EQUALIZE, 0.4, 7), S(SOLARIZE, 0.2, 4)},
    {S(EQUALIZE, 0.4, 4), S(ROTATE, 0.8, 8)},
    {S(SOLARIZE, 0.6, 3), S(EQUALIZE, 0.6, 7)},
    {S(POSTERIZE, 0.8, 5), S(EQUALIZE, 1.0, 2)},
    {S(ROTATE, 0.2, 3), S(SOLARIZE, 0.6, 8)},
    {S(EQUALIZE, 0.6, 8), S(POSTERIZE, 0.4, 6)},
    {S(ROTATE, 0.8, 8), S(COLOR, 0.4, 0)},
    {S(ROTATE, 0.4, 9), S(EQUALIZE, 0.6, 2)},
    {S(EQUALIZE, 0.0, 7), S(EQUALIZE, 0.8, 8)},
    {S(INVERT, 0.6, 4), S(EQUALIZE, 1.0, 8)},
    {S(COLOR, 0.6, 4), S(CONTRAST, 1.0, 8)},
    {S(ROTATE, 0.8, 8), S(COLOR, 1.0, 2)},
    {S(COLOR, 0.8, 8), S(SOLARIZE, 0.8, 7)},
    {S(SHARPNESS, 0.4, 7), S(INVERT, 0.6, 8)},
    {S(SHEAR_X, 0.6, 5), S(EQUALIZE, 1.0, 9)},
    {S(COLOR, 0.4, 0), S(EQUALIZE, 0.6, 3)},
    {S(EQUALIZE, 0.4, 7), S(SOLARIZE, 0.2, 4)},
    {S(SOLARIZE, 0.6, 5), S(AUTOCONTRAST, 0.6, 5)},
    {S(INVERT, 0.6, 4), S(EQUALIZE, 1.0, 8)},
    {S(COLOR, 0.6, 4), S(CONTRAST, 1.0, 8)},
    {S(EQUALIZE, 0.8, 8), S(EQUALIZE, 0.6, 3)},
};
#undef S

static uint64_t rng_below(ufo_rng *rng, uint64_t n) {  // uniform in [0, n), n >= 1
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = ufo_rng_next(rng);
    while (r >= limit);
    return r % n;
}

int ufo_autoaugment(ufo_image *img, ufo_rng *rng, ufo_aa_trace *trace) {
    if (check_img(img, "autoaugment")) return -1;
    ufo_aa_trace t = {0};
    t.subpolicy = (int)rng_below(rng, UFO_AA_NUM_SUBPOLICIES);  // random.choice(policy)
    for (int s = 0; s < 2; s++) {
        const ufo_aa_step *st = &UFO_AA_POLICY_ORIGINAL[t.subpolicy][s];
        // AugmentOp.__call__: skipped when prob < 1 and random() > prob
        if (st->prob < 1.0 && ufo_rng_uniform(rng) > st->prob) continue;
        int negate = 0;
        if (ufo_aa_op_signed(st->op)) negate = ufo_rng_uniform(rng) > 0.5;  // _randomly_negate
        double arg = ufo_aa_level_to_arg(st->op, st->level, negate);
        ufo_resample rs = UFO_RESAMPLE_BILINEAR;
        if (ufo_aa_op_geometric(st->op))  // random.choice((BILINEAR, BICUBIC))
            rs = rng_below(rng, 2) ? UFO_RESAMPLE_BICUBIC : UFO_RESAMPLE_BILINEAR;
        if (ufo_aa_apply(img, st->op, arg, rs)) return ufo_error_wrap("autoaugment %s", ufo_aa_op_name(st->op));
        t.applied[s] = 1;
        t.arg[s] = arg;
        t.rs[s] = rs;
    }
    if (trace) *trace = t;
    return 0;
}
