// The process group: world selection, the size-1 "self" group, and the
// timed wrappers every caller goes through. See comm.h.
#include "dist/comm.h"
#include "base/error.h"
#include "base/progress.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ufo_comm world;
static int world_ready;

int ufo_comm_launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

ufo_comm *ufo_comm_world(void) {
    if (world_ready) return &world;
    memset(&world, 0, sizeof world);
    world.size = 1;
    const char *t = getenv("UFO_COMM_TIMEOUT");
    world.timeout_s = t && atof(t) > 0 ? atof(t) : 1800.0;
    if (ufo_comm_launched_by_mpirun() && ufo_comm_mpi_init(&world)) return NULL;
    world_ready = 1;
    return &world;
}

ufo_comm *ufo_comm_started(void) { return world_ready ? &world : NULL; }

void ufo_comm_finalize(void) {
    if (world_ready && world.ops && world.ops->finalize) world.ops->finalize(&world);
    world_ready = 0;
}

_Noreturn void ufo_comm_abort(ufo_comm *c, int code, const char *fmt, ...) {
    char msg[UFO_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ufo: rank %d/%d: %s\n", c ? c->rank : 0, c ? c->size : 1, msg);
    fflush(stderr);
    if (c && c->ops && c->ops->abort) c->ops->abort(c, code ? code : 1);
    exit(code ? code : 1);
}

void ufo_comm_split(int n, int size, int rank, int *lo, int *hi) {
    *lo = (int)((long long)n * rank / size);
    *hi = (int)((long long)n * (rank + 1) / size);
}

size_t *ufo_comm_split_counts(ufo_comm *c, int n, size_t unit) {
    size_t *cnt = malloc(sizeof(size_t) * (size_t)c->size);
    if (!cnt) ufo_comm_abort(c, 1, "out of memory");
    for (int r = 0; r < c->size; r++) {
        int lo, hi;
        ufo_comm_split(n, c->size, r, &lo, &hi);
        cnt[r] = (size_t)(hi - lo) * unit;
    }
    return cnt;
}

// ---- timed dispatch (size 1: local copies, no transport) ---------------------

static int reduce(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what) {
    if (c->size == 1 || n == 0) return 0;
    double t0 = ufo_now();
    int rc = c->ops->allreduce(c, buf, n, t, op, what);
    c->busy_s += ufo_now() - t0;
    c->calls++;
    return rc;
}

int ufo_comm_allreduce_sum_f32(ufo_comm *c, float *buf, size_t n, const char *what) {
    return reduce(c, buf, n, UFO_COMM_F32, UFO_COMM_SUM, what);
}
int ufo_comm_allreduce_sum_f64(ufo_comm *c, double *buf, size_t n, const char *what) {
    return reduce(c, buf, n, UFO_COMM_F64, UFO_COMM_SUM, what);
}
int ufo_comm_allreduce_max_f64(ufo_comm *c, double *buf, size_t n, const char *what) {
    return reduce(c, buf, n, UFO_COMM_F64, UFO_COMM_MAX, what);
}

int ufo_comm_allgatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what) {
    if (c->size == 1) {
        if (recv != send && counts[0]) memmove(recv, send, counts[0]);
        return 0;
    }
    double t0 = ufo_now();
    int rc = c->ops->allgatherv(c, send, recv, counts, what);
    c->busy_s += ufo_now() - t0;
    c->calls++;
    return rc;
}

int ufo_comm_gatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, int root, const char *what) {
    if (c->size == 1) {
        if (recv != send && counts[0]) memmove(recv, send, counts[0]);
        return 0;
    }
    double t0 = ufo_now();
    int rc = c->ops->gatherv(c, send, recv, counts, root, what);
    c->busy_s += ufo_now() - t0;
    c->calls++;
    return rc;
}

int ufo_comm_bcast(ufo_comm *c, void *buf, size_t bytes, int root, const char *what) {
    if (c->size == 1 || bytes == 0) return 0;
    double t0 = ufo_now();
    int rc = c->ops->bcast(c, buf, bytes, root, what);
    c->busy_s += ufo_now() - t0;
    c->calls++;
    return rc;
}

int ufo_comm_barrier(ufo_comm *c, const char *what) {
    if (c->size == 1) return 0;
    double t0 = ufo_now();
    int rc = c->ops->barrier(c, what);
    c->busy_s += ufo_now() - t0;
    c->calls++;
    return rc;
}

int ufo_comm_allreduce_sum_f32_queued(ufo_comm *c, float *buf, size_t n, void *ready, const char *what) {
    if (c->size == 1 || n == 0) return 0;
    if (!c->ops->allreduce_queued) return ufo_comm_allreduce_sum_f32(c, buf, n, what);
    c->calls++;
    return c->ops->allreduce_queued(c, buf, n, ready, what);
}

int ufo_comm_wait(ufo_comm *c, const char *what) {
    if (c->size == 1 || !c->ops->wait) return 0;
    double t0 = ufo_now();
    int rc = c->ops->wait(c, what);
    c->busy_s += ufo_now() - t0;
    return rc;
}

int ufo_comm_reduce_scatter_sum_f32(ufo_comm *c, const float *send, float *recv, const size_t *counts,
                                    const char *what) {
    size_t total = 0, mine = 0;
    for (int r = 0; r < c->size; r++) {
        if (r < c->rank) mine += counts[r];
        total += counts[r];
    }
    if (c->size == 1) {
        if (counts[0]) memmove(recv, send, counts[0] * sizeof(float));
        return 0;
    }
    if (c->ops->reduce_scatter) {
        double t0 = ufo_now();
        int rc = c->ops->reduce_scatter(c, send, recv, counts, what);
        c->busy_s += ufo_now() - t0;
        c->calls++;
        return rc;
    }
    // A transport without one: all-reduce a copy, keep this rank's block.
    float *tmp = malloc((total ? total : 1) * sizeof(float));
    if (!tmp) ufo_comm_abort(c, 1, "out of memory (%s)", what ? what : "reduce-scatter");
    memcpy(tmp, send, total * sizeof(float));
    int rc = ufo_comm_allreduce_sum_f32(c, tmp, total, what);
    memcpy(recv, tmp + mine, counts[c->rank] * sizeof(float));
    free(tmp);
    return rc;
}
