#include "eval/evaluate.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ufo_default_task(const char *dataset) {
    int i = ufo_eval_set_find(dataset);
    if (i < 0) return -2;
    if (i < 6) return UFO_TASK_FACE;      // CALFW CPLFW LFW CFP_FF CFP_FP AgeDB_30
    if (i < 11) return UFO_TASK_VEHICLE;  // Market1501 MSMT17 VeRi LargeVehicleID LargeVeRiWild
    return UFO_TASK_PRODUCT;              // SOP
}

// Copies rows idx[0..k) of src [*, D] into dst [k, D], and their pid/cam.
static void gather(const float *src, const int *pid, const int *cam, const int *idx, int k, int D, float *dst,
                   int *dpid, int *dcam) {
    for (int i = 0; i < k; i++) {
        memcpy(dst + (size_t)i * D, src + (size_t)idx[i] * D, D * sizeof(float));
        dpid[i] = pid[idx[i]];
        dcam[i] = cam[idx[i]];
    }
}

static int score_vehicleid(const ufo_eval_set *s, const float *f, int D, const ufo_evaluate_opts *o,
                           ufo_eval_result *r) {
    int n = s->n, splits = o->vehicleid_splits < 1 ? 1 : o->vehicleid_splits;
    int *order = malloc(sizeof(int) * n), *pid = malloc(sizeof(int) * n), *cam = malloc(sizeof(int) * n);
    float *x = ufo_alloc((size_t)n * D * sizeof(float));
    int rc = (!order || !pid || !cam || !x) ? ufo_errorf("out of memory") : 0;
    memset(&r->reid, 0, sizeof r->reid);
    for (int k = 0; k < splits && rc == 0; k++) {
        int nq;
        if ((rc = ufo_vehicleid_split(s, o->seed + (uint64_t)k, order, &nq))) break;
        gather(f, s->pid, s->camid, order, n, D, x, pid, cam);
        ufo_reid_result one;
        if ((rc = ufo_reid_eval(x, pid, cam, nq, x + (size_t)nq * D, pid + nq, cam + nq, n - nq, D, 50, &one)))
            break;
        if (k == 0) {
            r->reid = one;  // keeps the cmc array; later splits add into it
        } else {
            r->reid.rank1 += one.rank1, r->reid.rank5 += one.rank5, r->reid.rank10 += one.rank10;
            r->reid.mAP += one.mAP, r->reid.mINP += one.mINP;
            for (int j = 0; j < one.max_rank && j < r->reid.max_rank; j++) r->reid.cmc[j] += one.cmc[j];
            ufo_reid_result_free(&one);
        }
    }
    if (rc == 0 && splits > 1) {
        r->reid.rank1 /= splits, r->reid.rank5 /= splits, r->reid.rank10 /= splits;
        r->reid.mAP /= splits, r->reid.mINP /= splits;
        for (int j = 0; j < r->reid.max_rank; j++) r->reid.cmc[j] /= splits;
    }
    r->splits = splits;
    r->seed = o->seed;
    free(order);
    free(pid);
    free(cam);
    ufo_free(x);
    return rc;
}

static int score(const ufo_eval_set *s, const float *f, int D, const ufo_evaluate_opts *o, ufo_eval_result *r) {
    switch (s->kind) {
    case UFO_EVAL_VERIFY: return ufo_verify_eval(f, s->issame, s->n / 2, D, 10, &r->verify);
    case UFO_EVAL_RETRIEVAL: return ufo_recall_eval(f, s->pid, s->n, D, NULL, 0, &r->recall);
    case UFO_EVAL_REID:
        if (s->n_query == 0) return score_vehicleid(s, f, D, o, r);
        return ufo_reid_eval(f, s->pid, s->camid, s->n_query, f + (size_t)s->n_query * D, s->pid + s->n_query,
                             s->camid + s->n_query, s->n - s->n_query, D, 50, &r->reid);
    }
    return ufo_errorf("unknown evaluation kind");
}

// This rank's share of the images into f (at their rows), then every share
// to rank 0.
static int embed_share(vit_model *m, const ufo_eval_set *s, int task, const ufo_evaluate_opts *o, ufo_comm *c,
                       float *f) {
    int D = m->cfg.dim, lo, hi, cached = 0;
    ufo_comm_split(s->n, c->size, c->rank, &lo, &hi);
    ufo_eval_set view = *s;   // images [lo, hi) (the workers index from 0)
    if (s->paths) view.paths = s->paths + lo;
    else view.blobs = s->blobs + lo, view.blob_sizes = s->blob_sizes + lo;
    view.n = hi - lo;
    ufo_embed_opts eo = o->embed;
    eo.cache_dir = NULL;
    eo.quiet = eo.quiet || c->rank != 0;
    float *mine = ufo_alloc(((size_t)(hi - lo) * D + 1) * sizeof(float));
    int rc = mine ? 0 : ufo_errorf("out of memory");
    if (rc == 0 && hi > lo) rc = ufo_embed_set(m, &view, task, &eo, mine, &cached);
    if (rc == 0) {
        size_t *cnt = ufo_comm_split_counts(c, s->n, (size_t)D * sizeof(float));
        ufo_comm_gatherv(c, mine, f, cnt, 0, "evaluation features");
        free(cnt);
    }
    ufo_free(mine);
    return rc;
}

int ufo_evaluate(vit_model *m, const char *dataset, int task, const ufo_evaluate_opts *o, ufo_eval_result *r) {
    memset(r, 0, sizeof *r);
    ufo_eval_set s;
    if (ufo_eval_set_load(dataset, o->root, &o->data, &s)) return -1;
    snprintf(r->name, sizeof r->name, "%s", s.name);
    r->kind = s.kind;
    r->task = task;
    r->num_images = s.n;
    int D = m->cfg.dim;
    float *f = ufo_alloc((size_t)s.n * D * sizeof(float));
    int rc = f ? 0 : -1;
    double t0 = ufo_now();
    ufo_comm *c = o->comm && o->comm->size > 1 ? o->comm : NULL;
    if (rc == 0 && !c) rc = ufo_embed_set(m, &s, task, &o->embed, f, &r->from_cache);
    if (rc == 0 && c) rc = embed_share(m, &s, task, o, c, f);
    r->embed_seconds = ufo_now() - t0;
    if (rc == 0 && (!c || c->rank == 0)) rc = score(&s, f, D, o, r);
    if (rc) ufo_error_wrap("%s", s.name[0] ? s.name : dataset);
    ufo_free(f);
    ufo_eval_set_free(&s);
    return rc;
}

void ufo_eval_result_free(ufo_eval_result *r) {
    ufo_verify_result_free(&r->verify);
    ufo_reid_result_free(&r->reid);
    memset(r, 0, sizeof *r);
}
