// The embedding pipeline of an evaluation set. Decode workers fill a ring of
// batch slots; the calling thread runs the model on each slot in order. A
// worker claims a whole batch, waits until its slot is free, preprocesses
// every image of it and marks it ready. The first failing image (in input
// order) stops everything and is the error reported.
#include "eval/embed_set.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include "formats/npy.h"
#include "image/image.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RING_MAX 8

typedef struct {
    float *x;        // batch x 3 x S x S
    int batch_id;    // the batch it holds (or will hold once ready)
    int ready;       // 1: preprocessed, waiting for the model
} slot;

typedef struct {
    const ufo_eval_set *s;
    int S, batch, n_batches, first_batch, ring;
    slot slots[RING_MAX];
    int next_claim;    // next batch a worker takes
    int consumed;      // batches the model has finished
    int failed_at;     // smallest failing image index, or n
    char err[UFO_ERR_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
} pipeline;

static int preprocess_one(const ufo_eval_set *s, int i, int S, float *out) {
    if (s->paths) return ufo_preprocess_file(s->paths[i], S, S, out);
    char name[64];
    snprintf(name, sizeof name, "%s image %d", s->name, i);
    ufo_image img = {0}, rs = {0};
    int rc = ufo_image_decode(s->blobs[i], s->blob_sizes[i], name, &img);
    if (rc == 0) rc = ufo_image_resize_bicubic(&img, S, S, &rs);
    if (rc == 0) ufo_image_to_chw(&rs, out);
    ufo_image_free(&img);
    ufo_image_free(&rs);
    return rc;
}

static void *worker(void *arg) {
    pipeline *p = arg;
    size_t per = (size_t)3 * p->S * p->S;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int b = p->next_claim++;
        // Slot b % ring is free once the model consumed batch b - ring.
        while (b < p->n_batches && p->failed_at == p->s->n && b - p->consumed >= p->ring)
            pthread_cond_wait(&p->cv, &p->mu);
        int stop = b >= p->n_batches || p->failed_at < p->s->n;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        slot *sl = &p->slots[b % p->ring];
        int lo = b * p->batch, hi = lo + p->batch < p->s->n ? lo + p->batch : p->s->n;
        for (int i = lo; i < hi; i++)
            if (preprocess_one(p->s, i, p->S, sl->x + (size_t)(i - lo) * per) != 0) {
                pthread_mutex_lock(&p->mu);
                if (i < p->failed_at) {
                    p->failed_at = i;
                    snprintf(p->err, sizeof p->err, "%s", ufo_error());
                }
                pthread_cond_broadcast(&p->cv);
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
        pthread_mutex_lock(&p->mu);
        sl->batch_id = b;
        sl->ready = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

// --- cache ---------------------------------------------------------------

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void cache_path(char *out, size_t cap, const ufo_embed_opts *o, const ufo_eval_set *s, int task,
                       const vit_model *m, const char *suffix) {
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s|%d|%d|%s|%d%s", o->model_id ? o->model_id : "", s->name,
             s->source ? s->source : "", s->n, task, o->precision ? o->precision : "", m->cfg.img_size,
             o->flip ? "|flip" : "");   // features without the flip keep their old keys
    snprintf(out, cap, "%s/%s-%s-%016llx%s", o->cache_dir, s->name, vit_task_name(task),
             (unsigned long long)fnv1a(0xcbf29ce484222325ull, key), suffix);
}

// Loads rows from a cached .npy if it has the right width; returns the row count (0 if none).
static int cache_load(const char *path, int D, int max_rows, float *feats) {
    if (access(path, R_OK) != 0) return 0;
    ufo_tensor_entry e;
    if (ufo_npy_read(path, &e) != 0) {
        fprintf(stderr, "ufo: ignoring unreadable cache %s: %s\n", path, ufo_error());
        return 0;
    }
    int rows = 0;
    if (e.dtype == UFO_F32 && e.ndim == 2 && e.shape[1] == D && e.shape[0] <= max_rows) {
        rows = (int)e.shape[0];
        memcpy(feats, e.data, (size_t)rows * D * sizeof(float));
    } else {
        fprintf(stderr, "ufo: ignoring cache %s: shape does not match this set\n", path);
    }
    free(e.owned);
    free(e.name);
    return rows;
}

static int cache_save(const char *path, const float *feats, int rows, int D) {
    int64_t shape[2] = {rows, D};
    return ufo_npy_write(path, UFO_F32, shape, 2, feats);
}

// --- the loop ------------------------------------------------------------

int ufo_embed_set(vit_model *m, const ufo_eval_set *s, int task, const ufo_embed_opts *o, float *feats,
                  int *from_cache) {
    int D = m->cfg.dim, S = m->cfg.img_size, n = s->n;
    char final_path[1024] = "", partial_path[1024] = "";
    *from_cache = 0;
    int done = 0;
    if (o->cache_dir) {
        if (mkdir(o->cache_dir, 0755) != 0 && access(o->cache_dir, W_OK) != 0)
            return ufo_errorf("%s: cannot create or write the cache folder", o->cache_dir);
        cache_path(final_path, sizeof final_path, o, s, task, m, ".npy");
        cache_path(partial_path, sizeof partial_path, o, s, task, m, ".partial.npy");
        if (cache_load(final_path, D, n, feats) == n) {
            *from_cache = 1;
            return 0;
        }
        done = cache_load(partial_path, D, n, feats);
        if (done && !o->quiet) fprintf(stderr, "%s: resuming after %d cached images\n", s->name, done);
    }
    pipeline p = {.s = s, .S = S, .batch = o->batch, .failed_at = n};
    // Whole batches only from the resume point on: batch ids count from `done`.
    int remaining = n - done;
    p.n_batches = (remaining + o->batch - 1) / o->batch;
    int workers = o->workers < 1 ? 1 : o->workers;
    p.ring = workers + 1 < RING_MAX ? workers + 1 : RING_MAX;
    if (workers > p.ring - 1) workers = p.ring - 1;
    size_t per = (size_t)3 * S * S;
    // The workers index images from 0; shift the set so image `done` is index 0.
    ufo_eval_set view = *s;
    if (s->paths) view.paths = s->paths + done;
    else {
        view.blobs = s->blobs + done;
        view.blob_sizes = s->blob_sizes + done;
    }
    view.n = remaining;
    p.s = &view;
    p.failed_at = remaining;
    for (int i = 0; i < p.ring; i++) {
        // Pinned with the CUDA backend, so the upload runs at full PCIe speed;
        // the workers decode the next slots while the GPU runs this one.
        p.slots[i].x = vit_host_alloc(m, per * o->batch * sizeof(float));
        if (!p.slots[i].x) {
            for (int j = 0; j < i; j++) vit_host_free(m, p.slots[j].x);
            return -1;
        }
    }
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_t th[RING_MAX];
    int started = 0;
    for (; started < workers; started++)
        if (pthread_create(&th[started], NULL, worker, &p) != 0) break;

    ufo_progress pg;
    ufo_progress_begin(&pg, s->name, "img", remaining, o->quiet);
    double last_save = ufo_now();
    int rc = started ? 0 : ufo_errorf("cannot start decode threads");
    for (int b = 0; b < p.n_batches && rc == 0; b++) {
        slot *sl = &p.slots[b % p.ring];
        pthread_mutex_lock(&p.mu);
        int lo = b * o->batch;
        while (!(sl->ready && sl->batch_id == b) && p.failed_at == remaining)
            pthread_cond_wait(&p.cv, &p.mu);
        int failed = !(sl->ready && sl->batch_id == b);
        pthread_mutex_unlock(&p.mu);
        if (failed) {
            rc = ufo_errorf("%s", p.err);
            break;
        }
        int nb = remaining - lo < o->batch ? remaining - lo : o->batch;
        rc = vit_forward_tta(m, sl->x, nb, task, o->flip, feats + (size_t)(done + lo) * D);
        pthread_mutex_lock(&p.mu);
        sl->ready = 0;
        p.consumed = b + 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        ufo_progress_update(&pg, lo + nb);
        if (rc == 0 && o->cache_dir && ufo_now() - last_save > 120 && b + 1 < p.n_batches) {
            if (cache_save(partial_path, feats, done + lo + nb, D) != 0)
                fprintf(stderr, "ufo: warning: could not save partial features: %s\n", ufo_error());
            last_save = ufo_now();
        }
    }
    pthread_mutex_lock(&p.mu);
    if (rc != 0 && p.failed_at == remaining) p.failed_at = -1;  // make the workers stop
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    for (int i = 0; i < p.ring; i++) vit_host_free(m, p.slots[i].x);
    if (rc != 0) return -1;
    ufo_progress_end(&pg, remaining);
    if (o->cache_dir) {
        if (cache_save(final_path, feats, n, D) != 0) return -1;
        unlink(partial_path);
    }
    return 0;
}
