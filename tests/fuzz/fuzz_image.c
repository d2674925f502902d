// libFuzzer target: ufo_image_decode (JPEG/PNG by magic, EXIF orientation,
// conversion to RGB) on arbitrary bytes, then a small resize and the CHW
// normalisation on success. A failure leaves one error line naming the input
// and an empty image; a success gives w*h*3 readable bytes. Image sizes are
// capped (4 Mpixel, 4096 per side) so that a 20-byte header cannot ask for
// gigabytes: the cap is the same code path as the real limits, only lower.
#include "base/error.h"
#include "image/image.h"
#include "image/image_internal.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        ufo_image_set_limits(4096, 4L << 20);
        init = 1;
    }
    ufo_image img;
    ufo_error_clear();
    if (ufo_image_decode(data, size, "fuzz", &img) != 0) {
        const char *e = ufo_error();
        if (strchr(e, '\n') || strncmp(e, "fuzz: ", 6) != 0 || img.rgb || img.w || img.h) abort();
        return 0;
    }
    if (!img.rgb || img.w <= 0 || img.h <= 0 || (long)img.w * img.h > (4L << 20)) abort();
    volatile uint8_t acc = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h * 3; i++) acc ^= img.rgb[i];
    (void)acc;
    ufo_image r;
    // small targets both ways: down-scaling and up-scaling paths
    int ow = 1 + (int)(size % 13), oh = 1 + (int)((size / 13) % 11);
    if (ufo_image_resize_bicubic(&img, ow, oh, &r) != 0) abort();
    float chw[3 * 13 * 11];
    ufo_image_to_chw(&r, chw);
    for (int i = 0; i < 3 * ow * oh; i++)
        if (!(chw[i] >= -1.0f && chw[i] <= 1.0f)) abort();
    ufo_image_free(&r);
    ufo_image_free(&img);
    return 0;
}
