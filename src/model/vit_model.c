// Model lifetime: the parameter buffer, the fast path's packed weights, and
// the activation buffers.
#include "model/vit.h"
#include "base/error.h"
#include "base/mem.h"
#include <stdlib.h>
#include <string.h>

float **vit_param_slot(vit_weights *w, const vit_param *p) {
    vit_block_weights *b = p->block >= 0 && p->kind >= P_LN1_W && p->kind <= P_FC2_B ? &w->blocks[p->block] : NULL;
    switch (p->kind) {
    case P_CLS_TOKEN: return &w->cls_token;
    case P_POS_EMBED: return &w->pos_embed;
    case P_PATCH_W: return &w->patch_w;
    case P_PATCH_B: return &w->patch_b;
    case P_LN1_W: return &b->ln1_w;
    case P_LN1_B: return &b->ln1_b;
    case P_QKV_W: return &b->qkv_w;
    case P_QKV_B: return &b->qkv_b;
    case P_PROJ_W: return &b->proj_w;
    case P_PROJ_B: return &b->proj_b;
    case P_LN2_W: return &b->ln2_w;
    case P_LN2_B: return &b->ln2_b;
    case P_FC1_W: return &b->fc1_w;
    case P_FC1_B: return &b->fc1_b;
    case P_FC2_W: return &b->fc2_w;
    case P_FC2_B: return &b->fc2_b;
    case P_NORM_W: return &w->norm_w;
    case P_NORM_B: return &w->norm_b;
    case P_BN_W: case P_BN_B: case P_BN_MEAN: case P_BN_VAR: return &w->bn[p->block][p->kind - P_BN_W];
    default: return NULL;
    }
}

int vit_alloc(vit_model *m, const vit_config *c, unsigned head_mask) {
    memset(m, 0, sizeof *m);
    if (vit_config_check(c) != 0) return -1;
    m->cfg = *c;
    m->head_mask = head_mask;
    m->n_params = vit_param_table(c, head_mask, &m->table, &m->n_floats);
    if (m->n_params < 0) return -1;
    m->w.blocks = calloc((size_t)c->depth, sizeof *m->w.blocks);
    m->params = ufo_calloc(m->n_floats * sizeof(float));
    if (!m->w.blocks || !m->params) {
        vit_free(m);
        return ufo_errorf("out of memory for %zu parameters", m->n_floats);
    }
    for (int i = 0; i < m->n_params; i++) *vit_param_slot(&m->w, &m->table[i]) = m->params + m->table[i].offset;
    return 0;
}

static void free_linears(cpu_linear **l, int n) {
    if (!l) return;
    for (int i = 0; i < n; i++) cpu_linear_free(l[i]);
    free(l);
}

static void release_fast_path(vit_model *m) {
    cpu_linear_free(m->patch);
    free_linears(m->qkv, m->cfg.depth);
    free_linears(m->proj, m->cfg.depth);
    free_linears(m->fc1, m->cfg.depth);
    free_linears(m->fc2, m->cfg.depth);
    m->patch = NULL;
    m->qkv = m->proj = m->fc1 = m->fc2 = NULL;
}

int vit_prepare(vit_model *m, vit_backend backend, ufo_precision prec) {
    release_fast_path(m);
    vit_cuda_release(m);
    m->backend = backend;
    m->prec = prec;
    if (backend == VIT_BACKEND_REF) return 0;
    if (backend == VIT_BACKEND_CUDA) {
        if (vit_cuda_prepare(m, prec) == 0) return 0;
        m->backend = VIT_BACKEND_REF;  // a usable (slow) state rather than a half-built one
        return -1;
    }
    const vit_config *c = &m->cfg;
    int D = c->dim, Hd = c->mlp_hidden, p = c->patch_size, L = c->depth;
    m->qkv = calloc(L, sizeof(cpu_linear *));
    m->proj = calloc(L, sizeof(cpu_linear *));
    m->fc1 = calloc(L, sizeof(cpu_linear *));
    m->fc2 = calloc(L, sizeof(cpu_linear *));
    if (!m->qkv || !m->proj || !m->fc1 || !m->fc2) goto oom;
    if (!(m->patch = cpu_linear_create(m->w.patch_w, m->w.patch_b, 3 * p * p, D, prec))) goto fail;
    for (int l = 0; l < L; l++) {
        vit_block_weights *b = &m->w.blocks[l];
        if (!(m->qkv[l] = cpu_linear_create(b->qkv_w, b->qkv_b, D, 3 * D, prec)) ||
            !(m->proj[l] = cpu_linear_create(b->proj_w, b->proj_b, D, D, prec)) ||
            !(m->fc1[l] = cpu_linear_create(b->fc1_w, b->fc1_b, D, Hd, prec)) ||
            !(m->fc2[l] = cpu_linear_create(b->fc2_w, b->fc2_b, Hd, D, prec)))
            goto fail;
    }
    return 0;
oom:
    ufo_errorf("out of memory preparing the model");
fail:
    release_fast_path(m);
    return -1;
}

void vit_free(vit_model *m) {
    release_fast_path(m);
    vit_cuda_release(m);
    ufo_free(m->params);
    ufo_free(m->act);
    free(m->table);
    free(m->w.blocks);
    memset(m, 0, sizeof *m);
}

int vit_with_heads(const vit_model *src, unsigned head_mask, vit_model *dst) {
    if (vit_alloc(dst, &src->cfg, head_mask)) return -1;
    for (int i = 0; i < dst->n_params; i++) {
        const vit_param *p = &dst->table[i];
        float *d = dst->params + p->offset;
        int found = 0;
        for (int j = 0; j < src->n_params && !found; j++)
            if (!strcmp(src->table[j].name, p->name)) {
                memcpy(d, src->params + src->table[j].offset, p->numel * sizeof(float));
                found = 1;
            }
        if (!found) {  // a new BNNeck: identity at first
            float v = (p->kind == P_BN_W || p->kind == P_BN_VAR) ? 1.0f : 0.0f;
            for (size_t k = 0; k < p->numel; k++) d[k] = v;
        }
    }
    return 0;
}
