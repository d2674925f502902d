// Random initialisation of a fresh model, as timm initialises a ViT:
// truncated normal (std 0.02) for weights and tokens, zero biases, LayerNorm
// and BatchNorm at identity (running mean 0, variance 1).
#include "model/vit.h"
#include "base/rng.h"

void vit_init_random(vit_model *m, uint64_t seed) {
    ufo_rng r;
    ufo_rng_seed(&r, seed);
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->table[i];
        float *x = m->params + p->offset;
        float v = 0;
        int random = p->is_matrix || p->kind == P_CLS_TOKEN || p->kind == P_POS_EMBED;
        if (p->kind == P_LN1_W || p->kind == P_LN2_W || p->kind == P_NORM_W || p->kind == P_BN_W ||
            p->kind == P_BN_VAR)
            v = 1;
        for (size_t k = 0; k < p->numel; k++) x[k] = random ? (float)ufo_rng_trunc_normal(&r, 0.02) : v;
    }
}
