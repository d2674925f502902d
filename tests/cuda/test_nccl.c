// The NCCL transport (src/dist/cuda/comm_nccl.c) on device buffers: every
// collective the trainer uses (all-reduce f32 sum / f64 max, the queued
// all-reduce behind an event of the compute stream + wait, all-gather with
// uneven blocks, also in place, reduce-scatter with uneven blocks, broadcast,
// gather) against the values worked out here from each rank's inputs.
//
// One process (a GPU machine with one device: NCCL refuses two ranks on one
// GPU) checks that every call reaches NCCL and puts each block where it
// belongs; under `mpirun -np N` on N GPUs the same checks see real sums.
// The transport is called through its ops table: the ufo_comm_* wrappers
// short-cut a size-1 group with host copies, which device pointers cannot take.
// Without a visible GPU it prints one SKIP line and exits 77 (ctest: skipped).
// tools/cuda_emu_check.sh also builds it with UFO_TEST_NCCL_AS_MPI in the
// CUDA emulator (tests/cuda/emu) and runs it under mpirun -np 2 and 3: the
// MPI transport on the emulator's host "device" buffers, which checks
// these checks (and MPI's in-place all-gather) before a GPU run relies on them.
#include "base/error.h"
#include "check.h"
#include "dist/comm.h"
#include "kernels/cuda/cuda_backend.h"
#include "model/vit_train.h"
#include <stdlib.h>
#include <string.h>

static gpu_ctx *g;
static ufo_comm nc;
static int R, me;

static void *dev_with(const void *host, size_t bytes) {
    void *d = gpu_malloc(g, bytes);
    if (!d || gpu_upload(g, d, host, bytes) || gpu_sync(g)) {
        fprintf(stderr, "test_nccl: %s\n", gpu_error());
        exit(1);
    }
    return d;
}

static void to_host(void *host, const void *dev, size_t bytes) {
    if (gpu_download(g, host, dev, bytes) || gpu_sync(g)) {
        fprintf(stderr, "test_nccl: %s\n", gpu_error());
        exit(1);
    }
}

static void check_allreduce(void) {
    enum { n = 1003 };
    float f[n];
    double d[n];
    for (int i = 0; i < n; i++) f[i] = (float)((me + 1) * (i % 97 + 1)), d[i] = me + 0.5 * i;
    float *df = dev_with(f, sizeof f);
    double *dd = dev_with(d, sizeof d);
    nc.ops->allreduce(&nc, df, n, UFO_COMM_F32, UFO_COMM_SUM, "test f32 sum");
    nc.ops->allreduce(&nc, dd, n, UFO_COMM_F64, UFO_COMM_MAX, "test f64 max");
    to_host(f, df, sizeof f);
    to_host(d, dd, sizeof d);
    int bad_f = 0, bad_d = 0;
    for (int i = 0; i < n; i++) {
        bad_f += f[i] != (float)((i % 97 + 1) * R * (R + 1) / 2);
        bad_d += d[i] != (R - 1) + 0.5 * i;
    }
    CHECK(bad_f == 0, "all-reduce f32 sum: %d of %d values wrong", bad_f, n);
    CHECK(bad_d == 0, "all-reduce f64 max: %d of %d values wrong", bad_d, n);
    gpu_free(g, df);
    gpu_free(g, dd);
}

// The trainer's overlap: two halves of a buffer, each written by a kernel on
// the compute stream (gpu_scale_rows: x2) and all-reduced behind its event.
static void check_queued(void) {
    enum { n = 4099 };
    static float h[n];
    for (int i = 0; i < n; i++) h[i] = (float)((me + 1) * (i % 31));
    float *d = dev_with(h, sizeof h);
    const float two[1] = {2.0f};
    float *d2 = dev_with(two, sizeof two);
    int half = n / 2;
    for (int part = 0; part < 2; part++) {
        float *p = d + (part ? half : 0);
        size_t cnt = part ? (size_t)(n - half) : (size_t)half;
        void *ready = NULL;
        CHECK(gpu_scale_rows(g, p, p, d2, 1, cnt, 0) == 0 && (ready = gpu_record_event(g)) != NULL, "%s", gpu_error());
        if (nc.ops->allreduce_queued) nc.ops->allreduce_queued(&nc, p, cnt, ready, "test queued all-reduce");
        else ufo_comm_allreduce_sum_f32_queued(&nc, p, cnt, ready, "test queued all-reduce");   // runs at once
    }
    if (nc.ops->wait) nc.ops->wait(&nc, "test queued all-reduce");
    to_host(h, d, sizeof h);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += h[i] != (float)(2 * (i % 31) * R * (R + 1) / 2);
    CHECK(bad == 0, "queued all-reduce after the stream's kernels: %d of %d values wrong", bad, n);
    gpu_free(g, d);
    gpu_free(g, d2);
}

// Block q holds q + 3 floats valued 1000 q + j (uneven blocks, like ZeRO's slices).
static void check_allgatherv(int in_place) {
    size_t counts[64] = {0}, off = 0, mine = 0, total = 0;
    for (int q = 0; q < R; q++) {
        counts[q] = (size_t)(q + 3) * sizeof(float);
        if (q < me) mine += counts[q];
        total += counts[q];
    }
    float *want = malloc(total), *got = malloc(total), *send = malloc(counts[me]);
    for (int q = 0; q < R; off += counts[q], q++)
        for (int j = 0; j < q + 3; j++) want[off / 4 + j] = 1000.0f * q + j;
    memcpy(send, (char *)want + mine, counts[me]);
    for (size_t i = 0; i < total / 4; i++) got[i] = -1;
    if (in_place) memcpy((char *)got + mine, send, counts[me]);   // this rank's block already in place
    float *drecv = dev_with(got, total), *dsend = in_place ? NULL : dev_with(send, counts[me]);
    nc.ops->allgatherv(&nc, in_place ? (char *)drecv + mine : (char *)dsend, drecv, counts, "test all-gather");
    to_host(got, drecv, total);
    CHECK(memcmp(got, want, total) == 0, "all-gather%s: blocks not in rank order", in_place ? " in place" : "");
    gpu_free(g, drecv);
    gpu_free(g, dsend);
    free(want), free(got), free(send);
}

// Rank r sends (r + 1) * (i + 1) at i; block q (q + 5 floats) goes to rank q.
static void check_reduce_scatter(void) {
    size_t counts[64] = {0}, total = 0, mine = 0;
    for (int q = 0; q < R; q++) {
        counts[q] = (size_t)q + 5;
        if (q < me) mine += counts[q];
        total += counts[q];
    }
    float *send = malloc(total * 4), *recv = malloc(counts[me] * 4);
    for (size_t i = 0; i < total; i++) send[i] = (float)((me + 1) * (i + 1));
    for (size_t i = 0; i < counts[me]; i++) recv[i] = -1;
    float *ds = dev_with(send, total * 4), *dr = dev_with(recv, counts[me] * 4);
    nc.ops->reduce_scatter(&nc, ds, dr, counts, "test reduce-scatter");
    to_host(recv, dr, counts[me] * 4);
    int bad = 0;
    for (size_t i = 0; i < counts[me]; i++) bad += recv[i] != (float)((mine + i + 1) * (size_t)(R * (R + 1) / 2));
    CHECK(bad == 0, "reduce-scatter: %d of %zu values of this rank's block wrong", bad, counts[me]);
    to_host(send, ds, total * 4);   // the send buffer is not written
    for (size_t i = 0; i < total; i++) bad += send[i] != (float)((me + 1) * (i + 1));
    CHECK(bad == 0, "reduce-scatter wrote into its send buffer");
    gpu_free(g, ds);
    gpu_free(g, dr);
    free(send), free(recv);
}

static void check_bcast_gatherv(void) {
    enum { n = 257 };
    unsigned char b[n];
    int root = R - 1;
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(me == root ? i * 7 + 1 : 0);
    unsigned char *db = dev_with(b, n);
    nc.ops->bcast(&nc, db, n, root, "test broadcast");
    to_host(b, db, n);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += b[i] != (unsigned char)(i * 7 + 1);
    CHECK(bad == 0, "broadcast from rank %d: %d bytes wrong", root, bad);
    // gather: rank q sends q + 2 bytes valued q; rank 0 gets them in rank order.
    size_t counts[64] = {0}, total = 0;
    for (int q = 0; q < R; q++) total += counts[q] = (size_t)q + 2;
    unsigned char *all = calloc(total, 1), *mine = malloc(counts[me]);
    memset(mine, me, counts[me]);
    unsigned char *dall = dev_with(all, total), *dmine = dev_with(mine, counts[me]);
    nc.ops->gatherv(&nc, dmine, dall, counts, 0, "test gather");
    to_host(all, dall, total);
    bad = 0;
    for (int q = 0, o = 0; q < R && me == 0; o += (int)counts[q], q++)
        for (size_t j = 0; j < counts[q]; j++) bad += all[o + j] != q;
    CHECK(bad == 0, "gather to rank 0: %d bytes wrong", bad);
    gpu_free(g, db);
    gpu_free(g, dall);
    gpu_free(g, dmine);
    free(all), free(mine);
}

int main(void) {
    if (gpu_device_count() <= 0) {
        printf("SKIP: %s\n", gpu_error());
        return 77;
    }
    ufo_comm *host = ufo_comm_world();
    if (!host) {
        fprintf(stderr, "test_nccl: %s\n", ufo_error());
        return 1;
    }
    int dev = vit_train_cuda_local_device();
#ifdef UFO_TEST_NCCL_AS_MPI
    if (!host->ops || !(g = gpu_ctx_create(dev))) {
        fprintf(stderr, "test_nccl: run it under mpirun -np 2 or more (the MPI stand-in)\n");
        return 1;
    }
    nc = *host;
#else
    if (!(g = gpu_ctx_create(dev)) || ufo_comm_nccl_init(&nc, host, dev)) {
        fprintf(stderr, "test_nccl: %s\n", g ? ufo_error() : gpu_error());
        return 1;
    }
#endif
    R = nc.size, me = nc.rank;
    if (R > 64) {
        fprintf(stderr, "test_nccl: at most 64 ranks\n");
        return 1;
    }
    printf("test_nccl: rank %d of %d (%s) on %s\n", me, R, nc.ops->name, gpu_device_name(g));
    check_allreduce();
    check_queued();
    check_allgatherv(0);
    check_allgatherv(1);
    check_reduce_scatter();
    check_bcast_gatherv();
#ifndef UFO_TEST_NCCL_AS_MPI
    nc.ops->finalize(&nc);
#endif
    gpu_ctx_free(g);
    int rc = check_summary("test_nccl");
    ufo_comm_finalize();
    return rc;
}
