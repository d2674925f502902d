// The training data pipeline: the batch plan (samplers, heterogeneous or
// homogeneous mixing) is drawn in step order on the calling thread; worker
// threads decode and augment the rows of the next few steps while the model
// trains on the current one. Augmentation randomness comes from a stream per
// (step, row), so batches do not depend on thread scheduling, and resuming
// from a saved state reproduces the same batches.
#pragma once
#include "data/sampler.h"
#include "data/trainset.h"
#include "image/augment.h"
#include "ufo.h"

typedef struct {
    const ufo_trainset *sets[UFO_NUM_TASKS];  // NULL: the task is not trained
    int count[UFO_NUM_TASKS];                 // rows per step (heterogeneous)
    int K[UFO_NUM_TASKS];                     // 0: random sampler; else P x K
    ufo_batch_mix mix;
    ufo_aug_opts aug;
    int workers;
    uint64_t seed;
    // Data parallel: every rank draws the same global plan and decodes only its
    // slice of each task's rows (ufo_comm_split of the task's count, so the
    // slices are disjoint and in rank order); a row's augmentation stream is
    // keyed by its GLOBAL row index, so the images are the single process's.
    // ranks <= 1: the whole batch.
    int rank, ranks;
} ufo_loader_opts;

typedef struct ufo_loader ufo_loader;

int ufo_loader_init(ufo_loader **L, const ufo_loader_opts *o);
// The next step's batch (this rank's slice): images [B, 3, S, S] grouped by task
// (counts[t] rows of task t, in task order), labels [B]. Valid until the next call.
int ufo_loader_next(ufo_loader *L, const float **images, int counts[UFO_NUM_TASKS], const int32_t **labels);
// State that makes a new loader continue exactly after the batches consumed so
// far: n words into w (w may be NULL to ask for n).
size_t ufo_loader_state(const ufo_loader *L, uint64_t *w);
// Only before the first ufo_loader_next.
int ufo_loader_restore(ufo_loader *L, const uint64_t *w, size_t n);
double ufo_loader_images_per_s(const ufo_loader *L);  // the pipeline's own throughput
int ufo_loader_global_batch(const ufo_loader *L);     // rows per step over all ranks
long ufo_loader_corrupt(const ufo_loader *L);         // images skipped as unreadable
void ufo_loader_free(ufo_loader *L);
