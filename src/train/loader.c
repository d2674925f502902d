#include "train/loader.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 3

typedef struct {
    long step;            // -1: empty
    int *task, *index;    // this rank's rows (task = index into the loader's trained tasks)
    int *grow;            // their global row index (augmentation stream)
    int n;                // this rank's rows
    int *gtask, *gindex;  // the global plan of the step
    int start[UFO_MAX_TASKS + 1];
    int claimed, done;
    float *images;
    int32_t *labels;
    uint64_t *state_before;   // plan state before this step was drawn
} slot;

struct ufo_loader {
    ufo_loader_opts o;
    int n_tasks, task_of[UFO_NUM_TASKS];   // plan task -> UFO_TASK_*
    ufo_batch_plan plan;
    size_t state_words;
    int B;
    slot slots[RING];
    long next_plan, next_consume;
    int failed;
    char err[UFO_ERR_MAX];
    long corrupt;
    double busy_s;         // worker seconds spent decoding
    long rows_done;
    pthread_t *th;
    int n_th, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void row_rng(ufo_rng *r, uint64_t seed, long step, int row) {
    ufo_rng_seed(r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(step + 1)) ^ ((uint64_t)row << 40));
}

// Decodes image i of set s, or the next readable image of the same class.
static int read_row(ufo_loader *L, const ufo_trainset *s, int i, ufo_image *img, int32_t *label) {
    for (int k = 0; k < s->n; k++) {
        int j = (i + k) % s->n;
        if (k && s->label[j] != s->label[i]) continue;
        if (ufo_trainset_read(s, j, img) == 0) {
            *label = s->label[j];
            return 0;
        }
        pthread_mutex_lock(&L->mu);
        L->corrupt++;
        fprintf(stderr, "ufo: skipping unreadable training image: %s\n", ufo_error());
        pthread_mutex_unlock(&L->mu);
    }
    return ufo_errorf("%s: no readable image of class %d", s->name, s->label[i]);
}

static void *worker(void *arg) {
    ufo_loader *L = arg;
    size_t per = (size_t)3 * L->o.aug.size * L->o.aug.size;
    for (;;) {
        pthread_mutex_lock(&L->mu);
        slot *sl = NULL;
        while (!L->stop && !L->failed) {
            for (int k = 0; k < RING; k++) {
                slot *c = &L->slots[k];
                if (c->step >= 0 && c->claimed < c->n && (!sl || c->step < sl->step)) sl = c;
            }
            if (sl) break;
            pthread_cond_wait(&L->cv, &L->mu);
        }
        if (L->stop || L->failed) {
            pthread_mutex_unlock(&L->mu);
            return NULL;
        }
        int row = sl->claimed++;
        long step = sl->step;
        int t = sl->task[row], idx = sl->index[row], grow = sl->grow[row];
        pthread_mutex_unlock(&L->mu);

        double t0 = ufo_now();
        ufo_image img = {0};
        ufo_rng r;
        row_rng(&r, L->o.seed, step, grow);
        int32_t label = 0;
        const ufo_trainset *s = L->o.sets[L->task_of[t]];
        int rc = read_row(L, s, idx, &img, &label);
        if (rc == 0) rc = ufo_augment(&img, &L->o.aug, &r, sl->images + (size_t)row * per);
        ufo_image_free(&img);
        pthread_mutex_lock(&L->mu);
        L->busy_s += ufo_now() - t0;
        if (rc != 0 && !L->failed) {
            L->failed = 1;
            snprintf(L->err, sizeof L->err, "%s", ufo_error());
        }
        sl->labels[row] = label;
        sl->done++;
        L->rows_done++;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
    }
}

// Draws the plan of the next step into an empty slot (caller holds the lock).
static int plan_slot(ufo_loader *L, slot *sl) {
    ufo_batch_plan_save(&L->plan, sl->state_before);
    int gstart[UFO_MAX_TASKS + 1];
    if (ufo_batch_plan_next(&L->plan, sl->gtask, sl->gindex, gstart)) return -1;
    // This rank's slice of every task's rows (all of them with one rank).
    int ranks = L->o.ranks > 1 ? L->o.ranks : 1, rank = ranks > 1 ? L->o.rank : 0;
    sl->n = 0;
    for (int t = 0; t < L->n_tasks; t++) {
        int c = gstart[t + 1] - gstart[t];
        int lo = (int)((long long)c * rank / ranks), hi = (int)((long long)c * (rank + 1) / ranks);
        sl->start[t] = sl->n;
        for (int r = gstart[t] + lo; r < gstart[t] + hi; r++, sl->n++)
            sl->task[sl->n] = sl->gtask[r], sl->index[sl->n] = sl->gindex[r], sl->grow[sl->n] = r;
    }
    sl->start[L->n_tasks] = sl->n;
    sl->step = L->next_plan++;
    sl->claimed = sl->done = 0;
    return 0;
}

int ufo_loader_init(ufo_loader **out, const ufo_loader_opts *o) {
    ufo_loader *L = calloc(1, sizeof *L);
    if (!L) return ufo_errorf("out of memory");
    L->o = *o;
    ufo_task_spec spec[UFO_NUM_TASKS];
    static const char *names[UFO_NUM_TASKS] = {"face", "person", "vehicle", "product"};
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        if (!o->sets[t] || o->count[t] <= 0) continue;
        spec[L->n_tasks] = (ufo_task_spec){names[t], o->sets[t]->label, o->sets[t]->n, o->sets[t]->num_classes,
                                           o->count[t], o->K[t]};
        L->task_of[L->n_tasks++] = t;
        L->B += o->count[t];
    }
    if (!L->n_tasks) {
        free(L);
        return ufo_errorf("no task to train: every task has an empty set or batch");
    }
    if (ufo_batch_plan_init(&L->plan, spec, L->n_tasks, o->mix, o->seed)) {
        free(L);
        return -1;
    }
    L->state_words = ufo_batch_plan_state_words(&L->plan);
    size_t per = (size_t)3 * o->aug.size * o->aug.size;
    // A rank's rows: at most ceil(count / ranks) per task (or of B, homogeneous).
    int ranks = o->ranks > 1 ? o->ranks : 1, lcap = (L->B + ranks - 1) / ranks + L->n_tasks;
    if (lcap > L->B) lcap = L->B;
    for (int k = 0; k < RING; k++) {
        slot *sl = &L->slots[k];
        sl->step = -1;
        sl->task = malloc(sizeof(int) * lcap);
        sl->index = malloc(sizeof(int) * lcap);
        sl->grow = malloc(sizeof(int) * lcap);
        sl->gtask = malloc(sizeof(int) * L->B);
        sl->gindex = malloc(sizeof(int) * L->B);
        sl->labels = malloc(sizeof(int32_t) * lcap);
        sl->images = ufo_alloc(per * lcap * sizeof(float));
        sl->state_before = malloc(sizeof(uint64_t) * L->state_words);
        if (!sl->task || !sl->index || !sl->grow || !sl->gtask || !sl->gindex || !sl->labels || !sl->images ||
            !sl->state_before) {
            ufo_loader_free(L);
            return ufo_errorf("out of memory for %d-image batches", L->B);
        }
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    *out = L;
    return 0;
}

static int start_workers(ufo_loader *L) {
    int n = L->o.workers < 1 ? 1 : L->o.workers;
    L->th = calloc(n, sizeof(pthread_t));
    if (!L->th) return ufo_errorf("out of memory");
    for (; L->n_th < n; L->n_th++)
        if (pthread_create(&L->th[L->n_th], NULL, worker, L)) break;
    return L->n_th ? 0 : ufo_errorf("cannot start loader threads");
}

int ufo_loader_next(ufo_loader *L, const float **images, int counts[UFO_NUM_TASKS], const int32_t **labels) {
    if (!L->th && start_workers(L)) return -1;
    pthread_mutex_lock(&L->mu);
    // The slot consumed last time is free again; keep every slot planned ahead.
    for (int k = 0; k < RING; k++)
        if (L->slots[k].step >= 0 && L->slots[k].step < L->next_consume) L->slots[k].step = -1;
    for (int k = 0; k < RING; k++)
        if (L->slots[k].step < 0 && plan_slot(L, &L->slots[k])) {
            pthread_mutex_unlock(&L->mu);
            return -1;
        }
    pthread_cond_broadcast(&L->cv);
    slot *sl = NULL;
    for (int k = 0; k < RING; k++)
        if (L->slots[k].step == L->next_consume) sl = &L->slots[k];
    while (!L->failed && sl->done < sl->n) pthread_cond_wait(&L->cv, &L->mu);
    int failed = L->failed;
    pthread_mutex_unlock(&L->mu);
    if (failed) return ufo_errorf("%s", L->err);
    memset(counts, 0, sizeof(int) * UFO_NUM_TASKS);
    for (int t = 0; t < L->n_tasks; t++) counts[L->task_of[t]] = sl->start[t + 1] - sl->start[t];
    *images = sl->images;
    *labels = sl->labels;
    L->next_consume++;
    return 0;
}

size_t ufo_loader_state(const ufo_loader *L, uint64_t *w) {
    if (w) {
        // The plan state before the first step not yet consumed.
        const slot *sl = NULL;
        for (int k = 0; k < RING; k++)
            if (L->slots[k].step == L->next_consume) sl = &L->slots[k];
        if (sl) memcpy(w, sl->state_before, L->state_words * sizeof(uint64_t));
        else ufo_batch_plan_save(&L->plan, w);
    }
    return L->state_words;
}

int ufo_loader_restore(ufo_loader *L, const uint64_t *w, size_t n) {
    if (L->th || L->next_plan) return ufo_errorf("loader state can only be restored before the first batch");
    if (ufo_batch_plan_restore(&L->plan, w, n)) return -1;
    // Steps count on from where the plan was, so each row's augmentation stream is the same.
    L->next_plan = L->next_consume = (long)L->plan.step;
    return 0;
}

double ufo_loader_images_per_s(const ufo_loader *L) {
    return L->busy_s > 0 ? L->rows_done / L->busy_s * (L->n_th ? L->n_th : 1) : 0;
}

long ufo_loader_corrupt(const ufo_loader *L) { return L->corrupt; }

int ufo_loader_global_batch(const ufo_loader *L) { return L->B; }

void ufo_loader_free(ufo_loader *L) {
    if (!L) return;
    if (L->th) {
        pthread_mutex_lock(&L->mu);
        L->stop = 1;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        for (int i = 0; i < L->n_th; i++) pthread_join(L->th[i], NULL);
        free(L->th);
    }
    for (int k = 0; k < RING; k++) {
        free(L->slots[k].task);
        free(L->slots[k].index);
        free(L->slots[k].grow);
        free(L->slots[k].gtask);
        free(L->slots[k].gindex);
        free(L->slots[k].labels);
        ufo_free(L->slots[k].images);
        free(L->slots[k].state_before);
    }
    ufo_batch_plan_free(&L->plan);
    free(L);
}
