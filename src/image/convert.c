// Pillow's per-row colour conversions to RGB (libImaging/Convert.c).
#include "image/image_internal.h"

void ufo_row_grey_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
}

// JPEG CMYK is read with Pillow's "CMYK;I" rawmode (Adobe polarity: stored
// values inverted), then Convert.c's cmyk2rgb:
//   nk = 255 - k;  out = CLIP8(nk - MULDIV255(c, nk))
// with MULDIV255(a, b) = ((a*b + 128) >> 8) + a*b + 128) >> 8.
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}
void ufo_row_cmyk_inverted_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++) {
        const uint8_t *p = in + 4 * x;
        int nk = p[3];  // 255 - (255 - stored k)
        for (int c = 0; c < 3; c++) {
            int v = nk - muldiv255(255 - p[c], nk);
            out[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}
