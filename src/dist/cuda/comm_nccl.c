// NCCL transport of ufo_comm for DEVICE buffers: the CUDA trainer keeps its
// gradient buffer on the GPU and all-reduces it here (`mpirun ... ufo train
// --device cuda`, the group made by src/cli/cmd_train.c); the host group, MPI,
// bootstraps it and keeps doing the host-side collectives.
//
// Built only when CMake finds nvcc and NCCL (target ufo_nccl, not part of
// libufo, linked into the CLI); it has not been run on a GPU yet. Same contract as comm_mpi.c: every collective is enqueued on the
// communicator's stream, then polled (cudaStreamQuery + ncclCommGetAsyncError)
// against the group's deadline; a failure or a timeout aborts the NCCL
// communicator and the job with a line naming the operation.
// One rank per GPU (NCCL refuses two ranks on one device).
#include "dist/comm.h"
#include "base/error.h"
#include <cuda_runtime.h>
#include <nccl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    ncclComm_t nccl;
    cudaStream_t stream;
    ufo_comm *host;   // the MPI group that bootstrapped this one
} nccl_impl;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static _Noreturn void nccl_fail(ufo_comm *c, const char *op, const char *what, const char *why) {
    nccl_impl *m = c->impl;
    ncclCommAbort(m->nccl);
    ufo_comm_abort(m->host, 1, "%s (%s) failed: %s; aborting the job", op, what ? what : "-", why);
}

#define NCHECK(c, op, what, call)                                  \
    do {                                                           \
        ncclResult_t r_ = (call);                                  \
        if (r_ != ncclSuccess && r_ != ncclInProgress) nccl_fail(c, op, what, ncclGetErrorString(r_)); \
    } while (0)

// Waits for the stream's work, watching NCCL's asynchronous errors and the deadline.
static void wait_stream(ufo_comm *c, const char *op, const char *what) {
    nccl_impl *m = c->impl;
    double deadline = now_s() + c->timeout_s;
    for (;;) {
        cudaError_t e = cudaStreamQuery(m->stream);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) nccl_fail(c, op, what, cudaGetErrorString(e));
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(m->nccl, &async);
        if (async != ncclSuccess && async != ncclInProgress) nccl_fail(c, op, what, ncclGetErrorString(async));
        if (now_s() > deadline) nccl_fail(c, op, what, "timed out: another rank died or hangs (UFO_COMM_TIMEOUT)");
        sched_yield();
    }
}

// Queued behind the caller's event, not waited for (ufo_comm_wait does): the
// all-reduce of one block's gradients runs while the GPU computes the next.
static int nccl_allreduce_queued(ufo_comm *c, float *buf, size_t n, void *ready, const char *what) {
    nccl_impl *m = c->impl;
    if (ready) {
        cudaError_t e = cudaStreamWaitEvent(m->stream, (cudaEvent_t)ready, 0);
        if (e != cudaSuccess) nccl_fail(c, "cudaStreamWaitEvent", what, cudaGetErrorString(e));
    }
    NCHECK(c, "ncclAllReduce", what, ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, m->nccl, m->stream));
    return 0;
}

static int nccl_wait(ufo_comm *c, const char *what) {
    wait_stream(c, "ncclAllReduce (queued)", what);
    return 0;
}

static int nccl_allreduce(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what) {
    nccl_impl *m = c->impl;
    NCHECK(c, "ncclAllReduce", what,
           ncclAllReduce(buf, buf, n, t == UFO_COMM_F32 ? ncclFloat32 : ncclFloat64, op == UFO_COMM_SUM ? ncclSum : ncclMax,
                         m->nccl, m->stream));
    wait_stream(c, "ncclAllReduce", what);
    return 0;
}

// NCCL has no v-variant: one broadcast per rank, grouped (in place when
// send is this rank's block of recv: NCCL allows sendbuff == recvbuff).
static int nccl_allgatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what) {
    nccl_impl *m = c->impl;
    size_t off = 0;
    NCHECK(c, "ncclGroupStart", what, ncclGroupStart());
    for (int r = 0; r < c->size; r++) {
        NCHECK(c, "ncclBroadcast", what,
               ncclBroadcast(r == c->rank ? send : (char *)recv + off, (char *)recv + off, counts[r], ncclUint8, r,
                             m->nccl, m->stream));
        off += counts[r];
    }
    NCHECK(c, "ncclGroupEnd", what, ncclGroupEnd());
    wait_stream(c, "ncclAllgatherv", what);
    return 0;
}

// NCCL's reduce-scatter wants equal blocks: one reduce per rank (root r gets
// block r), grouped. recvbuff is read only on the root.
static int nccl_reduce_scatter(ufo_comm *c, const float *send, float *recv, const size_t *counts, const char *what) {
    nccl_impl *m = c->impl;
    size_t off = 0;
    NCHECK(c, "ncclGroupStart", what, ncclGroupStart());
    for (int r = 0; r < c->size; r++) {
        NCHECK(c, "ncclReduce", what,
               ncclReduce(send + off, r == c->rank ? recv : (float *)send + off, counts[r], ncclFloat32, ncclSum, r,
                          m->nccl, m->stream));
        off += counts[r];
    }
    NCHECK(c, "ncclGroupEnd", what, ncclGroupEnd());
    wait_stream(c, "ncclReduceScatter", what);
    return 0;
}

static int nccl_gatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, int root, const char *what) {
    nccl_impl *m = c->impl;
    NCHECK(c, "ncclGroupStart", what, ncclGroupStart());
    if (c->rank == root) {
        size_t off = 0;
        for (int r = 0; r < c->size; r++) {
            if (r == root) cudaMemcpyAsync((char *)recv + off, send, counts[r], cudaMemcpyDeviceToDevice, m->stream);
            else NCHECK(c, "ncclRecv", what, ncclRecv((char *)recv + off, counts[r], ncclUint8, r, m->nccl, m->stream));
            off += counts[r];
        }
    } else {
        NCHECK(c, "ncclSend", what, ncclSend(send, counts[c->rank], ncclUint8, root, m->nccl, m->stream));
    }
    NCHECK(c, "ncclGroupEnd", what, ncclGroupEnd());
    wait_stream(c, "ncclGatherv", what);
    return 0;
}

static int nccl_bcast(ufo_comm *c, void *buf, size_t bytes, int root, const char *what) {
    nccl_impl *m = c->impl;
    NCHECK(c, "ncclBroadcast", what, ncclBroadcast(buf, buf, bytes, ncclUint8, root, m->nccl, m->stream));
    wait_stream(c, "ncclBroadcast", what);
    return 0;
}

static int nccl_barrier(ufo_comm *c, const char *what) {
    return ufo_comm_barrier(((nccl_impl *)c->impl)->host, what);
}

static void nccl_abort(ufo_comm *c, int code) {
    nccl_impl *m = c->impl;
    ncclCommAbort(m->nccl);
    if (m->host->ops && m->host->ops->abort) m->host->ops->abort(m->host, code);
}

static void nccl_finalize(ufo_comm *c) {
    nccl_impl *m = c->impl;
    if (!m) return;
    ncclCommDestroy(m->nccl);
    cudaStreamDestroy(m->stream);
    free(m);
    c->impl = NULL;
}

static const ufo_comm_ops nccl_ops = {"nccl", nccl_allreduce, nccl_allgatherv, nccl_gatherv, nccl_bcast,
                                     nccl_barrier, nccl_abort, nccl_finalize, nccl_reduce_scatter,
                                     nccl_allreduce_queued, nccl_wait};

// A device group over the same ranks as `host`, on CUDA device `device`
// (usually the node-local rank). Rank 0's ncclUniqueId travels over `host`.
int ufo_comm_nccl_init(ufo_comm *c, ufo_comm *host, int device) {
    memset(c, 0, sizeof *c);
    c->rank = host->rank, c->size = host->size, c->timeout_s = host->timeout_s;
    if (cudaSetDevice(device) != cudaSuccess) return ufo_errorf("NCCL: cannot use CUDA device %d", device);
    ncclUniqueId id;
    if (host->rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) return ufo_errorf("NCCL: ncclGetUniqueId failed");
    ufo_comm_bcast(host, &id, sizeof id, 0, "NCCL unique id");
    nccl_impl *m = calloc(1, sizeof *m);
    if (!m) return ufo_errorf("out of memory");
    m->host = host;
    if (cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking) != cudaSuccess) {
        free(m);
        return ufo_errorf("NCCL: cannot create a CUDA stream");
    }
    ncclResult_t r = ncclCommInitRank(&m->nccl, host->size, id, host->rank);
    if (r != ncclSuccess) {
        cudaStreamDestroy(m->stream);
        free(m);
        return ufo_errorf("NCCL: ncclCommInitRank failed: %s", ncclGetErrorString(r));
    }
    c->ops = &nccl_ops;
    c->impl = m;
    return 0;
}
