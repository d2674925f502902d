// The parameter table: every tensor of the model, its ufo name, shape and
// place in the one contiguous buffer. Loading, saving, counting and training
// all walk this table, so the model's structure is written down exactly once.
#include "model/vit.h"
#include "base/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *task_names[UFO_NUM_TASKS] = {"face", "person", "vehicle", "product"};

const char *vit_task_name(int task) {
    return (task >= 0 && task < UFO_NUM_TASKS) ? task_names[task] : "backbone";
}

int vit_task_from_name(const char *s) {
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        if (strcmp(s, task_names[t]) == 0) return t;
    return -1;
}

int vit_config_preset(const char *name, int img_size, int patch_size, vit_config *c) {
    static const struct { const char *name; int dim, depth, heads; } presets[] = {
        {"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(name, presets[i].name) == 0) {
            *c = (vit_config){.img_size = img_size, .patch_size = patch_size, .dim = presets[i].dim,
                              .depth = presets[i].depth, .heads = presets[i].heads,
                              .mlp_hidden = 4 * presets[i].dim, .ln_eps = 1e-6f, .bn_eps = 1e-5f};
            return vit_config_check(c);
        }
    return ufo_errorf("unknown model preset '%s' (tiny, small, base, large)", name);
}

int vit_config_check(const vit_config *c) {
    if (c->patch_size < 1 || c->patch_size > 64)
        return ufo_errorf("patch size %d out of range [1, 64]", c->patch_size);
    if (c->img_size < c->patch_size || c->img_size > 4096 || c->img_size % c->patch_size)
        return ufo_errorf("image size %d must be a multiple of the patch size %d (and <= 4096)",
                          c->img_size, c->patch_size);
    if (c->dim < 1 || c->dim > 16384 || c->depth < 1 || c->depth > 256 || c->mlp_hidden < 1 ||
        c->mlp_hidden > 65536)
        return ufo_errorf("model size out of range: dim %d, depth %d, mlp %d", c->dim, c->depth,
                          c->mlp_hidden);
    if (c->heads < 1 || c->dim % c->heads)
        return ufo_errorf("embed dim %d is not divisible by %d heads", c->dim, c->heads);
    return 0;
}

static void add(vit_param *t, int *n, size_t *off, vit_param_kind kind, int block, int is_matrix,
                const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    vit_param *p = &t[(*n)++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->block = block;
    p->is_matrix = is_matrix;
    snprintf(p->name, sizeof p->name, "%s", name);
    int64_t d[4] = {d0, d1, d2, d3};
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = d[i];
        p->numel *= (size_t)d[i];
    }
    p->offset = *off;
    *off += (p->numel + 15) / 16 * 16;  // keep every tensor 64-byte aligned
}

int vit_param_table(const vit_config *c, unsigned head_mask, vit_param **table, size_t *total) {
    int cap = 4 + 12 * c->depth + 2 + 4 * UFO_NUM_TASKS, n = 0;
    vit_param *t = malloc(sizeof *t * cap);
    if (!t) return ufo_errorf("out of memory");
    size_t off = 0;
    int64_t D = c->dim, Hd = c->mlp_hidden, T = vit_tokens(c), p = c->patch_size;
    char name[64];
    add(t, &n, &off, P_CLS_TOKEN, -1, 0, "cls_token", 3, 1, 1, D, 0);
    add(t, &n, &off, P_POS_EMBED, -1, 0, "pos_embed", 3, 1, T, D, 0);
    add(t, &n, &off, P_PATCH_W, -1, 1, "patch_embed.proj.weight", 4, D, 3, p, p);
    add(t, &n, &off, P_PATCH_B, -1, 0, "patch_embed.proj.bias", 1, D, 0, 0, 0);
    static const struct { vit_param_kind kind; const char *suffix; int matrix, out, in; } blk[] = {
        // out / in: 0 = D, 1 = 3D, 2 = mlp hidden; in < 0: a vector of `out`
        {P_LN1_W, "norm1.weight", 0, 0, -1},     {P_LN1_B, "norm1.bias", 0, 0, -1},
        {P_QKV_W, "attn.qkv.weight", 1, 1, 0},   {P_QKV_B, "attn.qkv.bias", 0, 1, -1},
        {P_PROJ_W, "attn.proj.weight", 1, 0, 0}, {P_PROJ_B, "attn.proj.bias", 0, 0, -1},
        {P_LN2_W, "norm2.weight", 0, 0, -1},     {P_LN2_B, "norm2.bias", 0, 0, -1},
        {P_FC1_W, "mlp.fc1.weight", 1, 2, 0},    {P_FC1_B, "mlp.fc1.bias", 0, 2, -1},
        {P_FC2_W, "mlp.fc2.weight", 1, 0, 2},    {P_FC2_B, "mlp.fc2.bias", 0, 0, -1},
    };
    int64_t width[3] = {D, 3 * D, Hd};
    for (int b = 0; b < c->depth; b++)
        for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
            snprintf(name, sizeof name, "blocks.%d.%s", b, blk[i].suffix);
            if (blk[i].in < 0)
                add(t, &n, &off, blk[i].kind, b, 0, name, 1, width[blk[i].out], 0, 0, 0);
            else
                add(t, &n, &off, blk[i].kind, b, 1, name, 2, width[blk[i].out], width[blk[i].in], 0, 0);
        }
    add(t, &n, &off, P_NORM_W, -1, 0, "norm.weight", 1, D, 0, 0, 0);
    add(t, &n, &off, P_NORM_B, -1, 0, "norm.bias", 1, D, 0, 0, 0);
    static const char *bn_suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int task = 0; task < UFO_NUM_TASKS; task++) {
        if (!(head_mask >> task & 1)) continue;
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "heads.%s.%s", task_names[task], bn_suffix[k]);
            add(t, &n, &off, (vit_param_kind)(P_BN_W + k), task, 0, name, 1, D, 0, 0, 0);
        }
    }
    *table = t;
    *total = off;
    return n;
}
