// Test-time flip: the embedding of an image averaged with that of its mirror
// image, fast-reid's TEST.FLIP. The original UFO evaluation has it and keeps
// it off (SPEC section 3), so ufo's defaults never use it; `--flip` asks.
#include "model/vit.h"
#include "base/error.h"
#include "base/mem.h"
#include <string.h>

// Mirrors every row of every channel of n [3, S, S] images in place: the
// preprocessed tensor is flipped, as torch.flip(x, dims=[3]) on the batch.
static void mirror_rows(float *x, int n, int S) {
    const long rows = (long)n * 3 * S;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float *p = x + r * S;
        for (int a = 0, b = S - 1; a < b; a++, b--) {
            float t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
    }
}

int vit_forward_tta(vit_model *m, float *images, int n, int task, int flip, float *out) {
    if (!flip || n <= 0) return vit_forward(m, images, n, task, out);
    const int D = m->cfg.dim;
    float *mirrored = ufo_alloc(sizeof(float) * (size_t)n * D);
    if (!mirrored) return -1;
    int rc = vit_forward(m, images, n, task, out);
    if (rc == 0) {
        mirror_rows(images, n, m->cfg.img_size);
        rc = vit_forward(m, images, n, task, mirrored);
    }
    if (rc == 0)
        for (size_t i = 0; i < (size_t)n * D; i++) out[i] = (out[i] + mirrored[i]) * 0.5f;
    ufo_free(mirrored);
    return rc;
}
