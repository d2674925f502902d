// The image module's entry points: format detection, limits, file loading,
// normalisation to CHW floats and the whole test-time preprocessing.
#include "image/image_internal.h"
#include "base/error.h"
#include "base/file.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic long max_side = UFO_IMAGE_MAX_SIDE_DEFAULT;
static _Atomic long max_pixels = UFO_IMAGE_MAX_PIXELS_DEFAULT;

void ufo_image_set_limits(long side, long pixels) {
    max_side = side > 0 ? side : UFO_IMAGE_MAX_SIDE_DEFAULT;
    max_pixels = pixels > 0 ? pixels : UFO_IMAGE_MAX_PIXELS_DEFAULT;
}

int ufo_image_check_size(const char *name, const char *fmt, long w, long h) {
    if (w <= 0 || h <= 0) return ufo_errorf("%s: corrupt %s: image size %ldx%ld", name, fmt, w, h);
    long side = max_side, pixels = max_pixels;
    if (w > side || h > side)
        return ufo_errorf("%s: %s image too large: %ldx%ld (limit %ld per side)", name, fmt, w, h, side);
    if (w * h > pixels)  // w, h <= side <= 65535 here: no overflow
        return ufo_errorf("%s: %s image too large: %ldx%ld = %ld pixels (limit %ld, Pillow's "
                          "decompression-bomb threshold)", name, fmt, w, h, w * h, pixels);
    return 0;
}

int ufo_image_decode(const void *buf, size_t n, const char *name, ufo_image *img) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = buf;
    img->w = img->h = 0;
    img->rgb = NULL;
    if (!name) name = "<memory>";
    int orientation = 1, rc;
    if (b && n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        rc = ufo_decode_jpeg(b, n, name, img, &orientation);
    else if (b && n >= 8 && memcmp(b, png_sig, 8) == 0)
        rc = ufo_decode_png(b, n, name, img, &orientation);
    else
        return ufo_errorf("%s: not a JPEG or PNG image", name);
    if (rc == 0 && orientation != 1) rc = ufo_image_orient(img, orientation, name);
    if (rc != 0) ufo_image_free(img);
    return rc;
}

int ufo_image_load(const char *path, ufo_image *img) {
    img->w = img->h = 0;
    img->rgb = NULL;
    ufo_mapped m;
    if (ufo_map_file(path, &m) != 0) return -1;
    int rc = ufo_image_decode(m.data, m.size, path, img);
    ufo_unmap(&m);
    return rc;
}

void ufo_image_free(ufo_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

void ufo_image_to_chw(const ufo_image *img, float *out) {
    const size_t plane = (size_t)img->w * img->h;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) {
            float x = (float)img->rgb[3 * i + c];
            out[c * plane + i] = (x - 127.5f) / 127.5f;
        }
}

int ufo_preprocess_file(const char *path, int w, int h, float *out) {
    ufo_image src, dst;
    if (ufo_image_load(path, &src) != 0) return -1;
    int rc = ufo_image_resize_bicubic(&src, w, h, &dst);
    ufo_image_free(&src);
    if (rc != 0) return ufo_error_wrap("%s", path);
    ufo_image_to_chw(&dst, out);
    ufo_image_free(&dst);
    return 0;
}
