// Images as the model sees them: decode (libjpeg-turbo, libpng), EXIF
// orientation, grey/palette/alpha -> RGB, Pillow-exact BICUBIC resize, and
// normalisation to float CHW. Pillow semantics throughout (SPEC section 3).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *rgb;   // interleaved RGB8, h rows of w*3 bytes
} ufo_image;

// Decodes a JPEG or PNG file (by content, not extension), applies the EXIF
// orientation as Pillow's ImageOps.exif_transpose does, converts to RGB the
// way Pillow's Image.convert("RGB") does (grey repeated, palette expanded,
// alpha dropped). Errors name the file.
int ufo_image_load(const char *path, ufo_image *img);
// Same from bytes in memory; `name` is used in error messages.
int ufo_image_decode(const void *buf, size_t n, const char *name, ufo_image *img);
// Pillow's Image.resize((ow, oh), Image.BICUBIC), bit-exact.
int ufo_image_resize_bicubic(const ufo_image *src, int ow, int oh, ufo_image *dst);
// out[3, h, w] = (x - 127.5) / 127.5
void ufo_image_to_chw(const ufo_image *img, float *out);
void ufo_image_free(ufo_image *img);
// load + resize to (w, h) + to_chw, the whole test-time preprocessing.
int ufo_preprocess_file(const char *path, int w, int h, float *out);
