// Writing a model as ufo safetensors: tensors in table order with ufo names,
// the architecture as string metadata, so the file loads with no options.
#include "model/vit_io.h"
#include "base/error.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vit_save(const vit_model *m, const char *path, ufo_dtype dtype) {
    return vit_save_ex(m, path, dtype, NULL, 0, NULL, NULL, 0);
}

int vit_save_ex(const vit_model *m, const char *path, ufo_dtype dtype, const ufo_tensor_entry *extra, int n_extra,
                const char *const *extra_keys, const char *const *extra_vals, int n_extra_meta) {
    if (dtype != UFO_F32 && dtype != UFO_BF16 && dtype != UFO_F16)
        return ufo_errorf("cannot save a model as %s (F32, BF16 or F16)", ufo_dtype_name(dtype));
    const vit_config *c = &m->cfg;
    ufo_tensor_entry *e = calloc((size_t)m->n_params + n_extra, sizeof *e);
    void *conv = NULL;
    size_t es = ufo_dtype_size(dtype);
    if (dtype != UFO_F32) conv = ufo_alloc(m->n_floats * es);
    if (!e || (dtype != UFO_F32 && !conv)) {
        free(e);
        ufo_free(conv);
        return ufo_errorf("out of memory");
    }
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->table[i];
        e[i].name = (char *)p->name;
        e[i].dtype = dtype;
        e[i].ndim = p->ndim;
        memcpy(e[i].shape, p->shape, sizeof p->shape);
        e[i].nbytes = p->numel * es;
        if (dtype == UFO_F32) e[i].data = m->params + p->offset;
        else {
            void *dst = (char *)conv + p->offset * es;
            ufo_convert_from_f32(dst, dtype, m->params + p->offset, p->numel);
            e[i].data = dst;
        }
    }
    char vals[10][64], heads[64] = "";
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        if (m->head_mask >> t & 1)
            snprintf(heads + strlen(heads), sizeof heads - strlen(heads), "%s%s", heads[0] ? "," : "", vit_task_name(t));
    const char *keys[] = {"format", "img_size", "patch_size", "embed_dim", "depth", "num_heads",
                          "mlp_hidden", "ln_eps", "bn_eps", "heads"};
    snprintf(vals[0], 64, "ufo-vit-1");
    snprintf(vals[1], 64, "%d", c->img_size);
    snprintf(vals[2], 64, "%d", c->patch_size);
    snprintf(vals[3], 64, "%d", c->dim);
    snprintf(vals[4], 64, "%d", c->depth);
    snprintf(vals[5], 64, "%d", c->heads);
    snprintf(vals[6], 64, "%d", c->mlp_hidden);
    snprintf(vals[7], 64, "%g", c->ln_eps);
    snprintf(vals[8], 64, "%g", c->bn_eps);
    snprintf(vals[9], 64, "%s", heads);
    for (int i = 0; i < n_extra; i++) e[m->n_params + i] = extra[i];
    int nm = 10 + n_extra_meta;
    const char **mk = malloc(sizeof *mk * nm), **mv = malloc(sizeof *mv * nm);
    int rc = (!mk || !mv) ? ufo_errorf("out of memory") : 0;
    for (int i = 0; rc == 0 && i < nm; i++) {
        mk[i] = i < 10 ? keys[i] : extra_keys[i - 10];
        mv[i] = i < 10 ? vals[i] : extra_vals[i - 10];
    }
    if (rc == 0) rc = ufo_safetensors_write(path, e, m->n_params + n_extra, mk, mv, nm);
    free(mk);
    free(mv);
    free(e);
    ufo_free(conv);
    return rc;
}
