// Training recipes: a human-editable INI file ("[section]", "key = value",
// comments with '#' or ';'). Every field has a documented default (see
// ufo_recipe_fields / `ufo train --print-recipe`); an unknown section or key,
// or a value that does not parse, is an error naming the file, line and key.
#pragma once
#include <stdio.h>

#define UFO_RECIPE_STR 512

typedef struct {
    // [model]
    char preset[32];           // tiny | small | base | large
    int img_size, patch_size;
    int dim, depth, num_heads, mlp_hidden;   // 0: the preset's
    char init[UFO_RECIPE_STR]; // weights to start from (timm/ufo safetensors, paddle), "" = random
    double drop_path;
    // [data]
    char root[UFO_RECIPE_STR]; // "" = $FASTREID_DATASETS
    char sets[4][UFO_RECIPE_STR];    // per task (face, person, vehicle, product): comma-separated training sets
    int batch[4];              // images per step per task
    double batch_scale;        // multiplies every batch (rounded to a multiple of instances)
    int instances;             // K of the P x K sampler
    char batch_mix[16];        // heterogeneous | homogeneous
    int workers;               // decode/augment threads
    // [augment]
    int pad;
    double flip, autoaugment, random_erasing;
    // [loss]
    double cos_s[4], cos_m[4];
    int triplet[4];            // 1: CosFace + triplet for that task
    double triplet_margin;
    int cosface_nonzero_mean;  // 1: fast-reid's divisor (non-zero losses), 0: plain mean
    // [optim]
    double lr, momentum, weight_decay, clip_norm, warmup, min_lr_ratio;
    char clip_mode[16];        // paddle | torch | none
    long steps;
    // [run]
    char precision[8];         // fp32 | bf16
    long seed;
    int recompute;
    int log_every, checkpoint_every, eval_every;
    int shard_classes_above;   // mpirun: Partial-FC for classifiers with more classes (0: never)
    double pfc_sample_rate;    // (0, 1]: Partial-FC class sampling of those classifiers (1: off)
    int zero;                  // mpirun: 1 = ZeRO stage 1 (momentum sharded over the ranks), 0 = off
    char eval_datasets[UFO_RECIPE_STR];  // ufo eval names, "" = none
    char eval_root[UFO_RECIPE_STR];      // "" = the data root
    char eval_heads[UFO_RECIPE_STR];     // "DATASET=TASK,...": heads other than the released defaults
} ufo_recipe;

void ufo_recipe_defaults(ufo_recipe *r);  // the seed's recipe (SPEC section 4)
// Reads `path` over the current values of r (call ufo_recipe_defaults first).
int ufo_recipe_load(ufo_recipe *r, const char *path);
// The same from text in memory (modified in place); `name` is used in errors.
int ufo_recipe_parse(ufo_recipe *r, char *text, const char *name);
// Sets one field from "section.key=value" (command-line overrides).
int ufo_recipe_set(ufo_recipe *r, const char *assignment);
// Writes every field with its documentation, as a loadable recipe file.
void ufo_recipe_print(const ufo_recipe *r, FILE *out);
