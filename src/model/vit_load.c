// Loading a vit_model from named tensors: recognise the naming, infer the
// architecture, then copy every tensor of the parameter table exactly once
// from the file into the parameter buffer (converting dtype, transposing
// Paddle's [in, out] linear weights, resampling pos_embed if asked).
#include "model/vit_io.h"
#include "base/error.h"
#include "base/mem.h"
#include "formats/paddle.h"
#include "formats/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NAMING_UFO, NAMING_PADDLE } naming;

int vit_open_tensor_file(const char *path, ufo_tensor_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ufo_errorf("%s: cannot open model file", path);
    unsigned char head[9] = {0};
    size_t got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    // safetensors first: its 8-byte header length may well start with 0x80.
    if (got == 9 && head[8] == '{') return ufo_safetensors_open(path, f);
    if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return ufo_paddle_load(path, f);
    return ufo_errorf("%s: not a model file (expected safetensors or a paddle.save pickle)", path);
}

// The file's name for ufo parameter p under naming n.
static void file_name(naming n, const vit_param *p, char *out, size_t cap) {
    if (n == NAMING_UFO) {
        snprintf(out, cap, "%s", p->name);
        return;
    }
    if (p->kind >= P_BN_W) {
        static const char *suffix[4] = {"weight", "bias", "_mean", "_variance"};
        snprintf(out, cap, "heads.task%d.bottleneck.0.%s", p->block + 1, suffix[p->kind - P_BN_W]);
        return;
    }
    snprintf(out, cap, "backbone.%s", p->name);
}

static int paddle_transposed(naming n, const vit_param *p) {
    return n == NAMING_PADDLE && p->is_matrix && p->kind != P_PATCH_W;
}

static const ufo_tensor_entry *find(const ufo_tensor_file *f, naming n, const char *ufo_name) {
    char name[96];
    snprintf(name, sizeof name, "%s%s", n == NAMING_PADDLE ? "backbone." : "", ufo_name);
    return ufo_tensor_file_find(f, name);
}

static int meta_int(const ufo_tensor_file *f, const char *key, int *v) {
    const char *s = ufo_tensor_file_meta(f, key);
    if (!s) return 0;
    char *end;
    long x = strtol(s, &end, 10);
    if (*s == 0 || *end || x <= 0 || x > 1 << 20) return ufo_errorf("bad metadata %s='%s'", key, s);
    *v = (int)x;
    return 1;
}

// Architecture from shapes (and metadata where shapes cannot tell).
static int infer_config(const ufo_tensor_file *f, naming n, const vit_load_options *o, vit_config *c,
                        int *file_grid) {
    const ufo_tensor_entry *cls = find(f, n, "cls_token"), *pos = find(f, n, "pos_embed");
    const ufo_tensor_entry *pw = find(f, n, "patch_embed.proj.weight");
    const ufo_tensor_entry *fc1 = find(f, n, "blocks.0.mlp.fc1.weight");
    if (!cls || !pos || !pw || !fc1)
        return ufo_errorf("missing backbone tensor '%s%s'", n == NAMING_PADDLE ? "backbone." : "",
                          !cls ? "cls_token" : !pos ? "pos_embed" : !pw ? "patch_embed.proj.weight"
                                                                        : "blocks.0.mlp.fc1.weight");
    memset(c, 0, sizeof *c);
    c->ln_eps = 1e-6f;
    c->bn_eps = 1e-5f;
    if (cls->ndim != 3 || pos->ndim != 3 || pw->ndim != 4 || fc1->ndim != 2)
        return ufo_errorf("unexpected rank of cls_token/pos_embed/patch_embed/fc1 tensors");
    c->dim = (int)cls->shape[2];
    c->patch_size = (int)pw->shape[2];
    c->mlp_hidden = (int)(n == NAMING_PADDLE ? fc1->shape[1] : fc1->shape[0]);
    char name[64];
    for (c->depth = 0; c->depth < 1024; c->depth++) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", c->depth);
        if (!find(f, n, name)) break;
    }
    int64_t T = pos->shape[1];
    int g = (int)llround(sqrt((double)(T - 1)));
    if (T < 2 || (int64_t)g * g != T - 1)
        return ufo_errorf("pos_embed has %lld tokens: not 1 + a square grid", (long long)T);
    *file_grid = g;
    c->img_size = g * c->patch_size;
    int r;
    if ((r = meta_int(f, "img_size", &c->img_size)) < 0) return -1;
    if (r && c->img_size != g * c->patch_size)
        return ufo_errorf("metadata img_size %d disagrees with pos_embed (%d tokens)", c->img_size, (int)T);
    if (o && o->img_size) c->img_size = o->img_size;
    if (o && o->num_heads) c->heads = o->num_heads;
    else if ((r = meta_int(f, "num_heads", &c->heads)) < 0) return -1;
    else if (!r) {
        if (c->dim % 64) return ufo_errorf("cannot infer heads for dim %d (not a multiple of 64): give num_heads", c->dim);
        c->heads = c->dim / 64;
    }
    const char *eps = ufo_tensor_file_meta(f, "ln_eps");
    if (eps) c->ln_eps = strtof(eps, NULL);
    if ((eps = ufo_tensor_file_meta(f, "bn_eps"))) c->bn_eps = strtof(eps, NULL);
    if (c->img_size % c->patch_size)
        return ufo_errorf("image size %d is not a multiple of the patch size %d", c->img_size, c->patch_size);
    return vit_config_check(c);
}

static unsigned detect_heads(const ufo_tensor_file *f, naming n) {
    unsigned mask = 0;
    char name[96];
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        if (n == NAMING_PADDLE) snprintf(name, sizeof name, "heads.task%d.bottleneck.0.weight", t + 1);
        else snprintf(name, sizeof name, "heads.%s.weight", vit_task_name(t));
        if (ufo_tensor_file_find(f, name)) mask |= 1u << t;
    }
    return mask;
}

static void shape_str(char *out, size_t cap, const int64_t *shape, int ndim) {
    int k = snprintf(out, cap, "[");
    for (int i = 0; i < ndim && k < (int)cap; i++) k += snprintf(out + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < (int)cap) snprintf(out + k, cap - k, "]");
}

// Copies one tensor into its slot, converting dtype and layout.
static int load_param(vit_model *m, const vit_param *p, const ufo_tensor_entry *e, naming n, int file_grid,
                      const char *fname) {
    int64_t want[4];
    memcpy(want, p->shape, sizeof want);
    int transposed = paddle_transposed(n, p);
    if (transposed) want[0] = p->shape[1], want[1] = p->shape[0];
    int resample = p->kind == P_POS_EMBED && file_grid != vit_grid(&m->cfg);
    if (resample) want[1] = 1 + (int64_t)file_grid * file_grid;
    int ok = e->ndim == p->ndim && ufo_dtype_is_float(e->dtype);
    for (int i = 0; ok && i < p->ndim; i++) ok = e->shape[i] == want[i];
    if (!ok) {
        char got[96], exp[96];
        shape_str(got, sizeof got, e->shape, e->ndim);
        shape_str(exp, sizeof exp, want, p->ndim);
        return ufo_errorf("tensor '%s' is %s %s, expected float %s", fname, ufo_dtype_name(e->dtype), got, exp);
    }
    float *dst = m->params + p->offset;
    size_t numel = (size_t)ufo_tensor_numel(e);
    if (!transposed && !resample) {
        ufo_convert_to_f32(dst, e->data, e->dtype, numel);
        return 0;
    }
    float *tmp = ufo_alloc(numel * sizeof(float));
    if (!tmp) return -1;
    ufo_convert_to_f32(tmp, e->data, e->dtype, numel);
    if (transposed) {  // file [in, out] -> ours [out, in]
        size_t in = (size_t)e->shape[0], out = (size_t)e->shape[1];
        for (size_t i = 0; i < in; i++)
            for (size_t o = 0; o < out; o++) dst[o * in + i] = tmp[i * out + o];
    } else {
        vit_resample_pos_embed(dst, tmp, file_grid, vit_grid(&m->cfg), m->cfg.dim);
    }
    ufo_free(tmp);
    return 0;
}

// Keys that belong to neither the table nor the known extras are reported,
// as the original loader prints unexpected keys.
static int is_known_extra(const char *name) {
    static const char *extras[] = {"StructuredToParameterName@@", "head.weight", "head.bias", NULL};
    for (int i = 0; extras[i]; i++)
        if (strcmp(name, extras[i]) == 0) return 1;
    return 0;
}

int vit_from_tensors(vit_model *m, ufo_tensor_file *f, const char *path, const vit_load_options *o) {
    naming n = ufo_tensor_file_find(f, "backbone.cls_token") ? NAMING_PADDLE : NAMING_UFO;
    vit_config c;
    int file_grid;
    if (infer_config(f, n, o, &c, &file_grid)) return ufo_error_wrap("%s", path);
    if (vit_alloc(m, &c, detect_heads(f, n))) return ufo_error_wrap("%s", path);
    char *used = calloc((size_t)f->n + 1, 1);
    if (!used) {
        vit_free(m);
        return ufo_errorf("out of memory");
    }
    char fname[96];
    for (int i = 0; i < m->n_params; i++) {
        const vit_param *p = &m->table[i];
        file_name(n, p, fname, sizeof fname);
        const ufo_tensor_entry *e = ufo_tensor_file_find(f, fname);
        if (!e) {
            ufo_errorf("%s: missing tensor '%s'", path, fname);
            goto fail;
        }
        used[e - f->items] = 1;
        if (load_param(m, p, e, n, file_grid, fname)) {
            ufo_error_wrap("%s", path);
            goto fail;
        }
        ufo_tensor_file_release(f, (int)(e - f->items));
    }
    int unexpected = 0;
    for (int i = 0; i < f->n; i++)
        if (!used[i] && !is_known_extra(f->items[i].name)) {
            if (o && o->verbose) fprintf(stderr, "ufo: %s: unexpected key '%s' (ignored)\n", path, f->items[i].name);
            unexpected++;
        }
    if (unexpected && o && o->verbose) fprintf(stderr, "ufo: %s: %d unexpected keys ignored\n", path, unexpected);
    free(used);
    return 0;
fail:
    free(used);
    vit_free(m);
    return -1;
}

int vit_load(vit_model *m, const char *path, const vit_load_options *o) {
    vit_load_options none = {0};
    if (!o) o = &none;
    ufo_tensor_file f;
    if (vit_open_tensor_file(path, &f)) return -1;
    int rc = vit_from_tensors(m, &f, path, o);
    ufo_tensor_file_free(&f);
    return rc;
}

int vit_describe(const ufo_tensor_file *f, const vit_load_options *o, vit_config *c, unsigned *head_mask,
                 const char **naming_name) {
    naming n = ufo_tensor_file_find(f, "backbone.cls_token") ? NAMING_PADDLE : NAMING_UFO;
    int g;
    if (infer_config(f, n, o, c, &g)) return -1;
    *head_mask = detect_heads(f, n);
    *naming_name = n == NAMING_PADDLE ? "paddle" : "ufo";
    return 0;
}
