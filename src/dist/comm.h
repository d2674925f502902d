// Process group for data-parallel training and evaluation: rank, size and
// the few collectives the trainer needs. One interface, several transports:
//   - "self": one process (size 1); every collective is a copy or nothing.
//     What a binary NOT started by mpirun gets, so it behaves as it always did.
//   - "mpi": Open MPI (comm_mpi.c), host buffers, CPU all-reduce. Chosen only
//     when the process was launched by mpirun (OMPI_COMM_WORLD_SIZE, PMIX_RANK
//     or PMI_RANK in the environment), so MPI_Init is never called otherwise.
//   - a device transport (NCCL, device buffers) slots in as another
//     ufo_comm_ops table; see src/dist/cuda/comm_nccl.c.
//
// Failure policy: a collective that fails or does not complete within
// `timeout_s` (UFO_COMM_TIMEOUT, default 1800 s) prints one line naming the
// operation and the caller's label, then aborts the WHOLE job: returning an
// error would leave the other ranks waiting forever. So the functions below
// return only on success (their int is for transports that can recover).
#pragma once
#include <stddef.h>

typedef enum { UFO_COMM_F32 = 0, UFO_COMM_F64 = 1 } ufo_comm_dtype;
typedef enum { UFO_COMM_SUM = 0, UFO_COMM_MAX = 1 } ufo_comm_op;

typedef struct ufo_comm ufo_comm;

typedef struct {
    const char *name;
    int (*allreduce)(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what);
    // recv gets every rank's bytes, rank order; counts[r] bytes from rank r.
    int (*allgatherv)(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what);
    int (*gatherv)(ufo_comm *c, const void *send, void *recv, const size_t *counts, int root, const char *what);
    int (*bcast)(ufo_comm *c, void *buf, size_t bytes, int root, const char *what);
    int (*barrier)(ufo_comm *c, const char *what);
    void (*abort)(ufo_comm *c, int code);
    void (*finalize)(ufo_comm *c);
    // Element-wise sum of every rank's send [sum of counts] floats; recv gets
    // block r (counts[r] floats, after counts[0..r)) on rank r. NULL: the
    // wrapper all-reduces a copy and keeps its block (host buffers only).
    int (*reduce_scatter)(ufo_comm *c, const float *send, float *recv, const size_t *counts, const char *what);
    // Queued sum all-reduce of fp32 device buffers behind `ready` (a CUDA
    // event), returning at once, and the wait for every queued one. NULL: the
    // wrapper runs the all-reduce there and then (host transports).
    int (*allreduce_queued)(ufo_comm *c, float *buf, size_t n, void *ready, const char *what);
    int (*wait)(ufo_comm *c, const char *what);
} ufo_comm_ops;

struct ufo_comm {
    int rank, size;
    double timeout_s;      // watchdog deadline of one collective
    double busy_s;         // seconds spent inside collectives (communication share)
    long calls;
    const ufo_comm_ops *ops;   // NULL for "self"
    void *impl;
};

// The process's group: MPI when launched by mpirun (initialised on the first
// call), else a size-1 group. Returns NULL with ufo_error set if mpirun
// launched us but MPI cannot start (or this build has no MPI).
ufo_comm *ufo_comm_world(void);
// The group if ufo_comm_world() already ran, else NULL (starts nothing).
ufo_comm *ufo_comm_started(void);
// 1 if the environment says mpirun launched this process.
int ufo_comm_launched_by_mpirun(void);
// MPI_Finalize when MPI was started (call once at exit; a no-op otherwise).
void ufo_comm_finalize(void);
// Prints "ufo: rank R/N: <message>" and ends every rank of the job.
_Noreturn void ufo_comm_abort(ufo_comm *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int ufo_comm_allreduce_sum_f32(ufo_comm *c, float *buf, size_t n, const char *what);
int ufo_comm_allreduce_sum_f64(ufo_comm *c, double *buf, size_t n, const char *what);
int ufo_comm_allreduce_max_f64(ufo_comm *c, double *buf, size_t n, const char *what);
// Variable-size all-gather: rank r contributes counts[r] bytes (counts known to all).
// In place: send may be exactly recv + counts[0] + ... + counts[rank - 1].
int ufo_comm_allgatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what);
// Same, only `root` receives (recv may be NULL elsewhere).
int ufo_comm_gatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, int root, const char *what);
int ufo_comm_bcast(ufo_comm *c, void *buf, size_t bytes, int root, const char *what);
// Reduce-scatter (sum, fp32): every rank passes the same-length send buffer
// (sum of counts, in floats); rank r receives counts[r] floats, the sum over
// ranks of send[counts[0] + ... + counts[r-1] ...]. send and recv must not overlap.
int ufo_comm_reduce_scatter_sum_f32(ufo_comm *c, const float *send, float *recv, const size_t *counts,
                                    const char *what);
int ufo_comm_barrier(ufo_comm *c, const char *what);
// Overlap of communication with computation (the CUDA trainer's gradient
// all-reduce, bucket by bucket during its backward): a sum all-reduce of
// buf, queued after `ready` (a CUDA event of the stream that writes buf,
// gpu_record_event) and returning at once on a device transport (NCCL);
// ufo_comm_wait returns when every queued one has completed. Elsewhere the
// all-reduce runs at once and the wait is a no-op. busy_s counts the wait:
// the communication the computation did not hide.
int ufo_comm_allreduce_sum_f32_queued(ufo_comm *c, float *buf, size_t n, void *ready, const char *what);
int ufo_comm_wait(ufo_comm *c, const char *what);

// [lo, hi) of the rank's share when n items are split as evenly as possible
// in rank order (the first n % size ranks get one more).
void ufo_comm_split(int n, int size, int rank, int *lo, int *hi);
// The counts of a gather of n items split that way: counts[r] = unit x the
// size of rank r's share. A malloc'd array of c->size (free it); out of
// memory aborts the job.
size_t *ufo_comm_split_counts(ufo_comm *c, int n, size_t unit);

// Transports. MPI: in libufo (an error if built without MPI).
int ufo_comm_mpi_init(ufo_comm *c);
// NCCL over device buffers, bootstrapped by `host` (src/dist/cuda/comm_nccl.c,
// target ufo_nccl: only when CMake finds nvcc and NCCL).
int ufo_comm_nccl_init(ufo_comm *c, ufo_comm *host, int device);
