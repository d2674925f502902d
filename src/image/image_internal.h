// Internals shared by the image module's files (not part of the public
// contract in image.h). Decoders produce RGB8 the way Pillow's
// Image.convert("RGB") does and report the EXIF orientation; image.c applies
// it. Every function returns 0 / -1 with ufo_errorf, like the rest of ufo.
#pragma once
#include "image/image.h"
#include <stddef.h>
#include <stdint.h>

// Size limits, checked from the header before any pixel buffer is allocated.
// Defaults: 65535 per side (the JPEG maximum) and Pillow's decompression-bomb
// error threshold, 2 * Image.MAX_IMAGE_PIXELS = 178956970 pixels, so that every
// image Pillow refuses is refused here too.
#define UFO_IMAGE_MAX_SIDE_DEFAULT 65535L
#define UFO_IMAGE_MAX_PIXELS_DEFAULT 178956970L
// Lowers the limits process-wide (the fuzz target uses this to keep memory
// small); call before decoding, not concurrently with it. 0 restores a default.
void ufo_image_set_limits(long max_side, long max_pixels);
// 0 if w x h is within the limits, else -1 with "<name>: ..." as the error.
int ufo_image_check_size(const char *name, const char *fmt, long w, long h);

// Decoders: fill img (img->rgb malloc'd) and *orientation (1..8; 1 when
// absent or unusable). On failure img is left empty.
int ufo_decode_jpeg(const uint8_t *buf, size_t n, const char *name, ufo_image *img, int *orientation);
int ufo_decode_png(const uint8_t *buf, size_t n, const char *name, ufo_image *img, int *orientation);

// EXIF: the Orientation (0x0112) of IFD0 of a TIFF structure ("II*\0" or
// "MM\0*" header; an optional leading "Exif\0\0" is skipped), with Pillow's
// reading of the value. Returns -1 when the tag is absent (or the EXIF is
// unreadable), 0 when it is present but not one of 1..8 as Pillow would see
// it, else the value.
int ufo_exif_orientation(const uint8_t *data, size_t n);
// PNG text forms of the same, as Pillow's Image.getexif reads them:
// "Raw profile type exif" (ImageMagick's hex dump) and the XMP packet's
// tiff:Orientation. Same return convention.
int ufo_exif_orientation_raw_profile(const char *text, size_t n);
int ufo_xmp_orientation(const char *text, size_t n);

// Applies orientation 2..8 as PIL.ImageOps.exif_transpose does (1: no-op).
int ufo_image_orient(ufo_image *img, int orientation, const char *name);

// Pillow's cmyk2rgb on an Adobe-inverted CMYK JPEG row, and grey -> RGB.
void ufo_row_cmyk_inverted_to_rgb(const uint8_t *in, uint8_t *out, int w);
void ufo_row_grey_to_rgb(const uint8_t *in, uint8_t *out, int w);
