// `ufo train`: a recipe, end to end. Loads the training sets of each task,
// builds (or loads) the model, and runs the multi-task loop with its data
// pipeline, progress line, CSV log, periodic evaluation, atomic checkpoints
// (resumable exactly) and a PNG of the loss curves.
//
// Files in out_dir: last.safetensors (checkpoint: model, classifiers,
// momentum, step, RNG and sampler state, the recipe), model.safetensors (the
// model alone, at the end: what `ufo embed` / `ufo eval` take), log.csv,
// loss.png, eval.json (the last evaluation), recipe.ini (the recipe used).
#pragma once
#include "train/recipe.h"

typedef struct {
    const char *out_dir;
    const char *resume;   // a last.safetensors to continue from, or NULL
    int quiet;
    long stop_after;      // > 0: checkpoint and stop after this step (train in chunks)
    int cuda;             // 1: train on the GPU (VIT_BACKEND_CUDA; evaluation stays on the CPU)
    struct ufo_comm *dev_comm;   // with cuda under mpirun: the NCCL group (the CLI makes it), or NULL
} ufo_train_run_opts;

int ufo_train_run(const ufo_recipe *r, const ufo_train_run_opts *o);
// The recipe stored in a checkpoint (to resume without --config).
int ufo_train_recipe_from_checkpoint(const char *path, ufo_recipe *r);
