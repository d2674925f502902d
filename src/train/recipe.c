// The recipe parser: one table lists every field (section, key, type, where
// it lives, what it means), so parsing, printing and documentation agree.
#include "train/recipe.h"
#include "base/error.h"
#include "base/file.h"
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_INT, F_LONG, F_DOUBLE, F_STR, F_BOOL } ftype;

typedef struct {
    const char *section, *key;
    ftype type;
    size_t offset, size;   // size: for strings
    const char *choices;   // for strings with a fixed set of values, "a|b|c"
    const char *doc;
} field;

#define FLD(sec, key, type, member, choices, doc) {sec, key, type, offsetof(ufo_recipe, member), sizeof(((ufo_recipe *)0)->member), choices, doc}

static const field fields[] = {
    FLD("model", "preset", F_STR, preset, "tiny|small|base|large", "ViT size: tiny 192/12/3, small 384/12/6, base 768/12/12, large 1024/24/16"),
    FLD("model", "img_size", F_INT, img_size, NULL, "input size (square)"),
    FLD("model", "patch_size", F_INT, patch_size, NULL, "patch size"),
    FLD("model", "dim", F_INT, dim, NULL, "embed dim (0: the preset's)"),
    FLD("model", "depth", F_INT, depth, NULL, "blocks (0: the preset's)"),
    FLD("model", "num_heads", F_INT, num_heads, NULL, "attention heads (0: the preset's)"),
    FLD("model", "mlp_hidden", F_INT, mlp_hidden, NULL, "MLP width (0: 4 x dim)"),
    FLD("model", "init", F_STR, init, NULL, "start from these weights (timm/ufo safetensors or paddle); empty: random init"),
    FLD("model", "drop_path", F_DOUBLE, drop_path, NULL, "stochastic depth rate of the last block (0.1 over-fits person and product)"),
    FLD("data", "root", F_STR, root, NULL, "dataset root; empty: $FASTREID_DATASETS"),
    FLD("data", "face", F_STR, sets[0], NULL, "face training sets (comma separated); empty: task not trained"),
    FLD("data", "person", F_STR, sets[1], NULL, "person training sets"),
    FLD("data", "vehicle", F_STR, sets[2], NULL, "vehicle training sets"),
    FLD("data", "product", F_STR, sets[3], NULL, "product training sets"),
    FLD("data", "batch_face", F_INT, batch[0], NULL, "face images per step"),
    FLD("data", "batch_person", F_INT, batch[1], NULL, "person images per step"),
    FLD("data", "batch_vehicle", F_INT, batch[2], NULL, "vehicle images per step"),
    FLD("data", "batch_product", F_INT, batch[3], NULL, "product images per step"),
    FLD("data", "batch_scale", F_DOUBLE, batch_scale, NULL, "multiplies every batch, for smaller machines"),
    FLD("data", "instances", F_INT, instances, NULL, "K of the P x K identity sampler (person, vehicle, product)"),
    FLD("data", "batch_mix", F_STR, batch_mix, "heterogeneous|homogeneous", "every batch holds all tasks (the seed's choice), or one task per batch"),
    FLD("data", "workers", F_INT, workers, NULL, "decode + augmentation threads"),
    FLD("augment", "pad", F_INT, pad, NULL, "padding before the random crop back to size"),
    FLD("augment", "flip", F_DOUBLE, flip, NULL, "horizontal flip probability"),
    FLD("augment", "autoaugment", F_DOUBLE, autoaugment, NULL, "probability of applying AutoAugment (ImageNet policy, fill 128)"),
    FLD("augment", "random_erasing", F_DOUBLE, random_erasing, NULL, "random erasing probability (one box, random values)"),
    FLD("loss", "cosface_s_face", F_DOUBLE, cos_s[0], NULL, "CosFace scale, face"),
    FLD("loss", "cosface_m_face", F_DOUBLE, cos_m[0], NULL, "CosFace margin, face"),
    FLD("loss", "cosface_s_person", F_DOUBLE, cos_s[1], NULL, "CosFace scale, person"),
    FLD("loss", "cosface_m_person", F_DOUBLE, cos_m[1], NULL, "CosFace margin, person"),
    FLD("loss", "cosface_s_vehicle", F_DOUBLE, cos_s[2], NULL, "CosFace scale, vehicle"),
    FLD("loss", "cosface_m_vehicle", F_DOUBLE, cos_m[2], NULL, "CosFace margin, vehicle"),
    FLD("loss", "cosface_s_product", F_DOUBLE, cos_s[3], NULL, "CosFace scale, product"),
    FLD("loss", "cosface_m_product", F_DOUBLE, cos_m[3], NULL, "CosFace margin, product"),
    FLD("loss", "triplet_face", F_BOOL, triplet[0], NULL, "add the batch-hard triplet loss for face"),
    FLD("loss", "triplet_person", F_BOOL, triplet[1], NULL, "add the triplet loss for person"),
    FLD("loss", "triplet_vehicle", F_BOOL, triplet[2], NULL, "add the triplet loss for vehicle"),
    FLD("loss", "triplet_product", F_BOOL, triplet[3], NULL, "add the triplet loss for product"),
    FLD("loss", "triplet_margin", F_DOUBLE, triplet_margin, NULL, "0: soft margin log(1 + exp(d_ap - d_an))"),
    FLD("loss", "cosface_nonzero_mean", F_BOOL, cosface_nonzero_mean, NULL, "divide by the count of non-zero losses (fast-reid) instead of the batch"),
    FLD("optim", "lr", F_DOUBLE, lr, NULL, "base learning rate (SGD)"),
    FLD("optim", "momentum", F_DOUBLE, momentum, NULL, "SGD momentum"),
    FLD("optim", "weight_decay", F_DOUBLE, weight_decay, NULL, "L2 decay on every parameter"),
    FLD("optim", "clip_norm", F_DOUBLE, clip_norm, NULL, "per-tensor gradient norm limit (0: off)"),
    FLD("optim", "clip_mode", F_STR, clip_mode, "paddle|torch|none", "paddle: c / max(norm, c) (the original); torch: clip_grad_norm_ per tensor"),
    FLD("optim", "warmup", F_DOUBLE, warmup, NULL, "linear warmup from 0, as a fraction of the steps"),
    FLD("optim", "min_lr_ratio", F_DOUBLE, min_lr_ratio, NULL, "cosine decays to this fraction of lr"),
    FLD("optim", "steps", F_LONG, steps, NULL, "training steps"),
    FLD("run", "precision", F_STR, precision, "fp32|bf16", "matmul precision (bf16: fp32 master weights)"),
    FLD("run", "seed", F_LONG, seed, NULL, "seed of every random stream"),
    FLD("run", "recompute", F_BOOL, recompute, NULL, "recompute activations per block in the backward (less memory)"),
    FLD("run", "log_every", F_INT, log_every, NULL, "steps between log lines"),
    FLD("run", "checkpoint_every", F_INT, checkpoint_every, NULL, "steps between checkpoints (0: only at the end)"),
    FLD("run", "shard_classes_above", F_INT, shard_classes_above, NULL, "under mpirun: a classifier with more classes is split by class over the ranks (Partial-FC); 0: never"),
    FLD("run", "pfc_sample_rate", F_DOUBLE, pfc_sample_rate, NULL, "Partial-FC class sampling of the classifiers above shard_classes_above (also in one process): each step's softmax over the batch's classes plus random others, max(positives, ceil(rate x classes)); rows not drawn are not updated; 1: off"),
    FLD("run", "zero", F_INT, zero, NULL, "under mpirun (CPU or CUDA): 1 = ZeRO stage 1, each rank keeps the SGD momentum of its slice of the model (gradients reduce-scattered, parameters all-gathered); 0: off"),
    FLD("run", "eval_every", F_INT, eval_every, NULL, "steps between evaluations (0: only at the end)"),
    FLD("run", "eval_datasets", F_STR, eval_datasets, NULL, "ufo eval sets to score, comma separated; empty: none"),
    FLD("run", "eval_root", F_STR, eval_root, NULL, "root of the evaluation sets; empty: the data root"),
    FLD("run", "eval_heads", F_STR, eval_heads, NULL, "DATASET=TASK pairs, comma separated, overriding the released heads (e.g. Market1501=person)"),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

void ufo_recipe_defaults(ufo_recipe *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->preset, sizeof r->preset, "large");
    r->img_size = 384, r->patch_size = 16, r->drop_path = 0.2;
    snprintf(r->sets[0], UFO_RECIPE_STR, "MS1M-V3");
    snprintf(r->sets[1], UFO_RECIPE_STR, "Market1501,MSMT17");
    snprintf(r->sets[2], UFO_RECIPE_STR, "VeRi,VehicleID,VeRiWild");
    snprintf(r->sets[3], UFO_RECIPE_STR, "SOP");
    r->batch[0] = 1024, r->batch[1] = 512, r->batch[2] = 512, r->batch[3] = 512;
    r->batch_scale = 1, r->instances = 4, r->workers = 2;
    r->shard_classes_above = 50000;
    r->pfc_sample_rate = 1.0;   // the seed's face head (MS1M-V3, 93,431 classes) shards; the others do not
    snprintf(r->batch_mix, sizeof r->batch_mix, "heterogeneous");
    r->pad = 10, r->flip = 0.5, r->autoaugment = 0.5, r->random_erasing = 0.5;
    static const double s[4] = {50, 30, 20, 30}, m[4] = {0.3, 0.2, 0.2, 0.2};
    for (int t = 0; t < 4; t++) r->cos_s[t] = s[t], r->cos_m[t] = m[t], r->triplet[t] = t != 0;
    r->lr = 0.2, r->momentum = 0.9, r->weight_decay = 1e-4, r->clip_norm = 5.0, r->warmup = 0.1, r->min_lr_ratio = 0.02;
    snprintf(r->clip_mode, sizeof r->clip_mode, "paddle");
    r->steps = 100000;
    snprintf(r->precision, sizeof r->precision, "fp32");
    r->log_every = 20, r->checkpoint_every = 1000, r->eval_every = 5000;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static const field *find(const char *section, const char *key) {
    for (size_t i = 0; i < NFIELDS; i++)
        if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key)) return &fields[i];
    return NULL;
}

static int section_known(const char *section) {
    for (size_t i = 0; i < NFIELDS; i++)
        if (!strcmp(fields[i].section, section)) return 1;
    return 0;
}

// Parses value into the field; `where` prefixes errors ("file:line").
static int set_field(ufo_recipe *r, const field *f, const char *value, const char *where) {
    char *p = (char *)r + f->offset, *end;
    errno = 0;
    switch (f->type) {
    case F_INT: case F_LONG: {
        long v = strtol(value, &end, 10);
        if (!*value || *end || errno || v < 0 || (f->type == F_INT && v > 2147483647L))
            return ufo_errorf("%s: %s.%s: expected a non-negative integer, got '%s'", where, f->section, f->key, value);
        if (f->type == F_INT) *(int *)p = (int)v;
        else *(long *)p = v;
        return 0;
    }
    case F_DOUBLE: {
        double v = strtod(value, &end);
        if (!*value || *end || errno || v != v || v < 0)
            return ufo_errorf("%s: %s.%s: expected a non-negative number, got '%s'", where, f->section, f->key, value);
        *(double *)p = v;
        return 0;
    }
    case F_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes")) *(int *)p = 1;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no")) *(int *)p = 0;
        else return ufo_errorf("%s: %s.%s: expected true or false, got '%s'", where, f->section, f->key, value);
        return 0;
    case F_STR:
        if (strlen(value) >= f->size)
            return ufo_errorf("%s: %s.%s: value longer than %zu characters", where, f->section, f->key, f->size - 1);
        if (f->choices) {
            int ok = 0;
            const char *c = f->choices;
            while (*c && !ok) {
                size_t n = strcspn(c, "|");
                ok = strlen(value) == n && !strncmp(c, value, n);
                c += n + (c[n] == '|');
            }
            if (!ok) return ufo_errorf("%s: %s.%s: expected one of %s, got '%s'", where, f->section, f->key, f->choices, value);
        }
        snprintf(p, f->size, "%s", value);
        return 0;
    }
    return -1;
}

int ufo_recipe_load(ufo_recipe *r, const char *path) {
    char *text;
    if (ufo_read_file(path, &text, NULL)) return -1;
    int rc = ufo_recipe_parse(r, text, path);
    free(text);
    return rc;
}

int ufo_recipe_parse(ufo_recipe *r, char *text, const char *path) {
    char section[64] = "", where[1100];
    int lineno = 0, rc = 0;
    // strtok_r would skip empty lines and so miscount; walk the lines by hand.
    char *line = text;
    while (line && rc == 0) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *s = line;
        for (char *c = s; *c; c++)
            if (*c == '#' || *c == ';') {  // comment to the end of the line
                *c = 0;
                break;
            }
        s = trim(s);
        if (*s == 0) {
        } else if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1]) rc = ufo_errorf("%s: expected '[section]', got '%s'", where, s);
            else {
                *close = 0;
                snprintf(section, sizeof section, "%s", trim(s + 1));
                if (!section_known(section))
                    rc = ufo_errorf("%s: unknown section [%s] (model, data, augment, loss, optim, run)", where, section);
            }
        } else {
            char *eq = strchr(s, '=');
            if (!eq) rc = ufo_errorf("%s: expected 'key = value', got '%s'", where, s);
            else if (!section[0]) rc = ufo_errorf("%s: '%s' before any [section]", where, s);
            else {
                *eq = 0;
                char *key = trim(s), *value = trim(eq + 1);
                const field *f = find(section, key);
                if (!f) rc = ufo_errorf("%s: unknown key '%s' in [%s] (ufo train --print-recipe lists them)", where, key, section);
                else rc = set_field(r, f, value, where);
            }
        }
        line = next;
    }
    return rc;
}

int ufo_recipe_set(ufo_recipe *r, const char *assignment) {
    char buf[UFO_RECIPE_STR + 128];
    snprintf(buf, sizeof buf, "%s", assignment);
    char *eq = strchr(buf, '='), *dot = strchr(buf, '.');
    if (!eq || !dot || dot > eq) return ufo_errorf("override '%s': expected section.key=value", assignment);
    *eq = 0, *dot = 0;
    const field *f = find(trim(buf), trim(dot + 1));
    if (!f) return ufo_errorf("override '%s': unknown key", assignment);
    return set_field(r, f, trim(eq + 1), "override");
}

void ufo_recipe_print(const ufo_recipe *r, FILE *out) {
    const char *section = "";
    for (size_t i = 0; i < NFIELDS; i++) {
        const field *f = &fields[i];
        if (strcmp(f->section, section)) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", f->section);
            section = f->section;
        }
        const char *p = (const char *)r + f->offset;
        char val[UFO_RECIPE_STR + 32];
        switch (f->type) {
        case F_INT: snprintf(val, sizeof val, "%d", *(const int *)p); break;
        case F_LONG: snprintf(val, sizeof val, "%ld", *(const long *)p); break;
        case F_DOUBLE: snprintf(val, sizeof val, "%g", *(const double *)p); break;
        case F_BOOL: snprintf(val, sizeof val, "%s", *(const int *)p ? "true" : "false"); break;
        case F_STR: snprintf(val, sizeof val, "%s", p); break;
        }
        fprintf(out, "# %s%s%s\n%s = %s\n", f->doc, f->choices ? ": " : "", f->choices ? f->choices : "", f->key, val);
    }
}
