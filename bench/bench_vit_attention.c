// Whole-model effect of the attention path: a randomly initialised ViT (bf16,
// batch N at its preset's size) runs interleaved forwards with the oneDNN and
// the AMX attention, switched in the same process, so that load from other
// processes hits both alike:
//   bench_vit_attention [PRESET [IMG [BATCH [ROUNDS]]]]   (default large 384 8 3)
// Prints every forward's seconds per image and the min per path.
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_attention_amx.h"
#include "model/vit.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "large";
    int img = argc > 2 ? atoi(argv[2]) : 384, batch = argc > 3 ? atoi(argv[3]) : 8;
    int rounds = argc > 4 ? atoi(argv[4]) : 3;
    vit_config c;
    if (img < 16 || batch < 1 || rounds < 1 || vit_config_preset(preset, img, 16, &c)) {
        fprintf(stderr, "usage: bench_vit_attention [tiny|small|base|large [IMG [BATCH [ROUNDS]]]] %s\n", ufo_error());
        return 2;
    }
    if (!cpu_has_amx()) {
        printf("no AMX on this CPU or OS: nothing to compare\n");
        return 0;
    }
    vit_model m;
    if (vit_alloc(&m, &c, 1u << UFO_TASK_VEHICLE)) return 1;
    vit_init_random(&m, 1);
    if (vit_prepare(&m, VIT_BACKEND_CPU, UFO_PREC_BF16)) return 1;
    size_t per = (size_t)3 * img * img;
    float *x = ufo_alloc(per * batch * sizeof(float)), *out = ufo_alloc((size_t)batch * c.dim * sizeof(float));
    if (!x || !out) return 1;
    for (size_t i = 0; i < per * batch; i++) x[i] = (float)((i * 7919) % 1000) / 500.0f - 1;
    const char *paths[2] = {"dnnl", "amx"};
    double best[2] = {INFINITY, INFINITY};
    for (int p = 0; p < 2; p++) {   // warm-up: primitives, packing, pages
        cpu_debug_attention_path(paths[p]);
        if (vit_forward(&m, x, batch, UFO_TASK_VEHICLE, out)) return 1;
    }
    for (int r = 0; r < rounds; r++)
        for (int p = 0; p < 2; p++) {
            cpu_debug_attention_path(paths[p]);
            double t0 = ufo_now();
            if (vit_forward(&m, x, batch, UFO_TASK_VEHICLE, out)) {
                fprintf(stderr, "%s\n", ufo_error());
                return 1;
            }
            double t = (ufo_now() - t0) / batch;
            if (t < best[p]) best[p] = t;
            printf("round %d  attention %-5s %.3f s/img\n", r, paths[p], t);
        }
    printf("ViT-%s/16 at %d, batch %d, bf16: min %.3f s/img with oneDNN attention, %.3f with AMX\n", preset, img,
           batch, best[0], best[1]);
    cpu_debug_attention_path(NULL);
    ufo_free(x), ufo_free(out);
    vit_free(&m);
    return 0;
}
