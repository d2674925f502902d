// EXIF orientation applied as PIL.ImageOps.exif_transpose does it:
//   2 FLIP_LEFT_RIGHT  3 ROTATE_180  4 FLIP_TOP_BOTTOM  5 TRANSPOSE
//   6 ROTATE_270 (90 degrees clockwise)  7 TRANSVERSE  8 ROTATE_90
// Pure pixel permutations, so exact by construction.
#include "image/image_internal.h"
#include "base/error.h"
#include <stdlib.h>
#include <string.h>

int ufo_image_orient(ufo_image *img, int o, const char *name) {
    if (o < 2 || o > 8) return 0;
    const int W = img->w, H = img->h;
    const int swap = o >= 5;
    const int ow = swap ? H : W, oh = swap ? W : H;
    uint8_t *dst = malloc((size_t)W * H * 3);
    if (!dst) return ufo_errorf("%s: out of memory rotating a %dx%d image", name, W, H);
    const uint8_t *src = img->rgb;
    for (int y = 0; y < oh; y++) {
        uint8_t *d = dst + (size_t)y * ow * 3;
        for (int x = 0; x < ow; x++) {
            int sx, sy;  // source pixel of output pixel (x, y)
            switch (o) {
            case 2: sx = W - 1 - x; sy = y; break;
            case 3: sx = W - 1 - x; sy = H - 1 - y; break;
            case 4: sx = x; sy = H - 1 - y; break;
            case 5: sx = y; sy = x; break;
            case 6: sx = y; sy = H - 1 - x; break;
            case 7: sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break;  // 8
            }
            memcpy(d + 3 * x, src + ((size_t)sy * W + sx) * 3, 3);
        }
    }
    free(img->rgb);
    img->rgb = dst;
    img->w = ow;
    img->h = oh;
    return 0;
}
