// Training samplers with explicit, serialisable state, and the per-step batch
// plan of the multi-task trainer (SPEC section 4: one heterogeneous batch per
// step; P identities x K instances for person, vehicle and product, plain
// random for face).
//
// Random numbers: one ufo_rng (xoshiro256**, seeded by splitmix64) per
// sampler. below(b) is an unbiased draw in [0, b): the first r = ufo_rng_next()
// with r >= (2^64 mod b), taken mod b. "Shuffle a[0..m)" is Fisher-Yates:
//     for i = m-1 down to 1: j = below(i + 1); swap(a[i], a[j])
//
// PLAIN RANDOM (face; fast-reid's TrainingSampler): an infinite stream that is
// the concatenation of one shuffle of [0, n) per epoch; a draw is the next
// `batch` indices of the stream (a batch may span two epochs; within an epoch
// no index repeats). An epoch starts with perm = [0, 1, ..., n-1] shuffled.
//
// P x K IDENTITY (fast-reid's NaiveIdentitySampler): identities are the classes
// that have images. An epoch starts with every identity available and none
// "registered". A draw (one batch of P*K indices):
//   1. if fewer than P identities are available, a new epoch starts first;
//   2. P distinct identities are chosen from the available list avl[0..m) by a
//      partial Fisher-Yates: for j = 0..P-1: r = j + below(m - j); swap(avl[j], avl[r]);
//      the chosen ones are avl[0..P), in that order;
//   3. for each chosen identity c in order: on its first draw of the epoch its
//      queue is made: with cnt >= K images, its image indices (ascending) shuffled;
//      with cnt < K images, K indices drawn WITH replacement (K times
//      images[below(cnt)]) -- as fast-reid, which then shuffles them (pointless for
//      i.i.d. draws, so not done here). The next K entries of c's queue are the
//      batch's K rows for c (so within an epoch an image is used at most once,
//      except the with-replacement identities);
//   4. every chosen identity with fewer than K entries left in its queue leaves
//      the available list: for j = P-1 down to 0, if avl[j] is spent,
//      avl[j] = avl[m-1], m -= 1.
// So every batch holds exactly P distinct identities, each exactly K times;
// identities with fewer than K images never break it. Leftovers (< K entries)
// of an identity are dropped for the epoch, as fast-reid.
//
// STATE: {rng at the start of the current epoch, epoch, pos, fingerprint};
// pos = indices consumed in the epoch (random) or draws made in it (P x K).
// Restoring re-runs the epoch start from that rng and replays pos draws (at most
// one epoch of work), so a restored sampler continues exactly as the saved one
// would have. The fingerprint (FNV-1a over kind, n, batch, P, K and the
// labels) rejects a state saved for other data.
#pragma once
#include "base/rng.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { UFO_SAMPLER_RANDOM = 1, UFO_SAMPLER_PK = 2 } ufo_sampler_kind;

#define UFO_SAMPLER_STATE_WORDS 7
typedef struct {
    uint64_t rng[4];       // the rng at the start of the current epoch
    uint64_t epoch;        // epochs started before the current one
    uint64_t pos;          // random: indices consumed in the epoch; P x K: draws made in it
    uint64_t fingerprint;
} ufo_sampler_state;

typedef struct {
    ufo_sampler_kind kind;
    int n;                 // images
    int batch;             // indices per draw (random: as given; P x K: P * K)
    int P, K;              // P x K only
    int num_classes;       // P x K only: labels in [0, num_classes)
    int n_ids;             // P x K only: identities (classes with images)
    uint64_t fingerprint;
    ufo_rng rng;           // current
    ufo_rng epoch_rng;     // at the start of the current epoch
    uint64_t epoch, pos;
    // internal
    int *perm_;            // random: the epoch's permutation
    int *cls_start_, *cls_items_;   // P x K: images grouped by class (ascending)
    int *avl_, n_avl_;
    int *queue_;
    size_t *qoff_;
    int *qhead_, *qlen_;
    unsigned char *registered_;
} ufo_sampler;

// Plain random sampler over [0, n), `batch` indices per draw.
int ufo_sampler_init_random(ufo_sampler *s, int n, int batch, uint64_t seed);
// P x K sampler over images with labels label[0..n) in [0, num_classes) (copied).
// Needs at least P identities with images; P, K >= 1.
int ufo_sampler_init_pk(ufo_sampler *s, const int *label, int n, int num_classes, int P, int K, uint64_t seed);
// Writes the next s->batch indices to out.
int ufo_sampler_next(ufo_sampler *s, int *out);
void ufo_sampler_get_state(const ufo_sampler *s, ufo_sampler_state *st);
// -1 (sampler unchanged) if the state was saved for other data or does not fit it.
int ufo_sampler_set_state(ufo_sampler *s, const ufo_sampler_state *st);
void ufo_sampler_state_to_words(const ufo_sampler_state *st, uint64_t w[UFO_SAMPLER_STATE_WORDS]);
void ufo_sampler_state_from_words(ufo_sampler_state *st, const uint64_t w[UFO_SAMPLER_STATE_WORDS]);
void ufo_sampler_free(ufo_sampler *s);

// ------------------------------------------------------------------ batch plan

#define UFO_MAX_TASKS 8

typedef enum {
    UFO_MIX_HETEROGENEOUS = 0,   // every step: every task, count[t] rows each
    UFO_MIX_HOMOGENEOUS = 1,     // every step: ONE task, all `batch` rows
} ufo_batch_mix;

typedef struct {
    const char *name;      // "face", "person", ... (for errors)
    const int *label;      // class ids [n] (P x K only; may be NULL for random)
    int n;                 // images
    int num_classes;
    int count;             // rows per heterogeneous batch (>= 1)
    int K;                 // 0: plain random; >= 1: P x K with P = count / K (count % K == 0)
} ufo_task_spec;

// HETEROGENEOUS: the batch is task 0's count[0] rows, then task 1's, ... in the
// order the tasks are given (the trainer gives face, person, vehicle, product).
// HOMOGENEOUS (the seed's BatchNorm experiment): the batch has the same total
// size B = sum(count) but one task only, chosen by smooth weighted round-robin
// with weights count[t]: each step every credit[t] += count[t]; the task with
// the largest credit (the first on ties) is drawn and its credit -= B. From
// zero credits, every B / gcd(count) steps draw task t exactly count[t] / gcd
// times, so each task gets the same number of rows as in heterogeneous mode
// over that period; equal counts give plain round-robin. In this mode a P x K
// task fills its B rows with G = B / K groups of K (B % K must be 0): P =
// min(G, identities) per sampler draw, and ceil(G / P) draws per step, the
// last one cut to the groups still needed. A small task (6 product classes at
// B = 120) then repeats identities within a batch instead of failing.
// Sampler t is seeded with seed + 0x9e3779b97f4a7c15 * (t + 1) (mod 2^64).
typedef struct {
    ufo_batch_mix mix;
    int n_tasks;
    int batch;                     // B: rows per step
    int count[UFO_MAX_TASKS];
    ufo_sampler sampler[UFO_MAX_TASKS];
    uint64_t step;                 // steps drawn so far
    int64_t credit_[UFO_MAX_TASKS];
    uint64_t period_;              // B / gcd(count)
    int *draw_;                    // homogeneous P x K: one sampler draw [B]
} ufo_batch_plan;

int ufo_batch_plan_init(ufo_batch_plan *p, const ufo_task_spec *tasks, int n_tasks, ufo_batch_mix mix, uint64_t seed);
// One step: task[r], index[r] for the p->batch rows (index into that task's set);
// task_start (may be NULL) gets n_tasks + 1 row offsets: task t's rows are
// [task_start[t], task_start[t+1]) (empty for the tasks not drawn in homogeneous mode).
int ufo_batch_plan_next(ufo_batch_plan *p, int *task, int *index, int *task_start);
// Words of the plan's state: 2 + UFO_SAMPLER_STATE_WORDS * n_tasks.
size_t ufo_batch_plan_state_words(const ufo_batch_plan *p);
void ufo_batch_plan_save(const ufo_batch_plan *p, uint64_t *w);
// -1 with an error (plan unchanged) if the words do not belong to this plan's tasks and mix.
int ufo_batch_plan_restore(ufo_batch_plan *p, const uint64_t *w, size_t n_words);
void ufo_batch_plan_free(ufo_batch_plan *p);
