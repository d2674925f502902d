// Random ViT parameters for the CUDA tests, drawn with rand_buf.h's frand
// (include it first): weights large enough that every op matters (timm's 0.02
// init makes blocks nearly the identity), norms and BNNecks away from identity.
#pragma once
#include "model/vit.h"

static void randomize_vit(vit_model *m, float wscale) {
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->table[i];
        float *d = m->params + p->offset;
        for (size_t k = 0; k < p->numel; k++) {
            float r = frand();
            switch (p->kind) {
            case P_LN1_W: case P_LN2_W: case P_NORM_W: case P_BN_W: d[k] = 1.0f + 0.2f * r; break;
            case P_BN_VAR: d[k] = 0.6f + 0.4f * r; break;
            case P_CLS_TOKEN: case P_POS_EMBED: d[k] = 0.5f * r; break;
            default: d[k] = wscale * r;
            }
        }
    }
}
