// Embedding an evaluation set: images decoded and preprocessed on worker
// threads while the model runs on the previous batch, with an optional
// on-disk feature cache that also makes an interrupted run resumable.
#pragma once
#include "data/dataset.h"
#include "model/vit.h"

typedef struct {
    int batch;              // images per forward pass (>= 1)
    int workers;            // decode threads (>= 1)
    const char *cache_dir;  // NULL: no cache
    const char *model_id;   // identifies the model in cache keys (path + size + mtime)
    const char *precision;  // "fp32" / "bf16", part of the cache key
    int quiet;              // no progress line
    int flip;               // 1: test-time flip (vit_forward_tta); part of the cache key
} ufo_embed_opts;

// feats [s->n, m->cfg.dim] in the set's image order, embedded with `task`
// (-1: backbone). With a cache: a complete cached file is loaded instead of
// embedding; otherwise rows done so far are saved every few minutes to
// "<key>.partial.npy" and a later run resumes from them. *from_cache is set
// to 1 when nothing had to be embedded.
int ufo_embed_set(vit_model *m, const ufo_eval_set *s, int task, const ufo_embed_opts *o, float *feats,
                  int *from_cache);
