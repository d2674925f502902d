// Partial-FC negative-class sampling (insightface's `sample_rate`, Partial FC
// arXiv 2010.05222 / 2203.15565): a step's CosFace softmax runs over a subset
// of a large classifier's classes, every class that is a label of the GLOBAL
// batch (the positives) plus negatives drawn uniformly without replacement,
// max(positives, ceil(rate * C)) classes in all. Only the kept rows get a
// gradient, and the trainer updates only those (see trainer.h: a row not drawn
// keeps its weights AND its momentum, as insightface's PartialFC v1 does).
//
// The draw is a function of (seed, step, task, the global labels) alone:
// every rank draws the same set whatever the process count, and a resumed run
// draws what the uninterrupted one would (no RNG state to checkpoint).
#pragma once
#include "train/cosface.h"
#include <stdint.h>

// Classes kept out of C at `rate` with `positives` distinct labels:
// max(positives, ceil(rate * C)), at most C. ceil ignores an excess of 1e-9
// relative, so that rate * C = 3.0000000000000004 (0.1 * 30) keeps 3.
int ufo_pfc_keep_count(int C, double rate, int positives);

// Writes the kept classes of one step, ascending, to kept[] (capacity C) and
// returns their count; -1 with ufo_error set for a label outside [0, C) or
// no memory. rate >= 1 keeps every class.
int ufo_pfc_sample(int C, double rate, const int32_t *labels, int n, uint64_t seed, long step, int task, int *kept);

// CosFace (cosface.h) over the classes kept[0..nkept) only (ascending global
// ids, every label among them). W / dW are this rank's rows: all C classes,
// or with opts->shard the shard [opts->class_lo, + classes) of
// opts->total_classes. The kept rows are gathered into a compact matrix, the
// softmax runs over the kept classes of every shard (opts->class_lo /
// total_classes are rewritten to positions in kept[]), and the gradient rows
// are added back: dW rows of classes not kept are left untouched (+= 0).
int ufo_pfc_cosface(const float *f, const float *W, const int32_t *labels, int n, int D, int classes,
                    const ufo_cosface_opts *opts, const int *kept, int nkept, float *df, float *dW,
                    ufo_cosface_result *res);

// [*lo, *hi): the positions in kept[0..nkept) of the classes in [c_lo, c_hi).
void ufo_pfc_range(const int *kept, int nkept, int c_lo, int c_hi, int *lo, int *hi);
