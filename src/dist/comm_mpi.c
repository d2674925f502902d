// Open MPI transport of ufo_comm (host buffers). Every collective is the
// non-blocking variant polled against a deadline, so a rank that died or hangs
// ends the job with a line naming the operation instead of a silent hang
// (blocking MPI collectives never time out). MPI_ERRORS_RETURN is set on the
// communicator and every return code is checked.
#include "dist/comm.h"
#include "base/error.h"
#ifdef UFO_HAVE_MPI
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Noreturn void mpi_fail(ufo_comm *c, const char *op, const char *what, int rc) {
    char s[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, s, &len);
    ufo_comm_abort(c, 1, "%s (%s) failed: %s; aborting the job", op, what ? what : "-", s);
}

#define CHECK(c, op, what, call)                         \
    do {                                                 \
        int rc_ = (call);                                \
        if (rc_ != MPI_SUCCESS) mpi_fail(c, op, what, rc_); \
    } while (0)

// Polls req until it completes or c->timeout_s passes. Yields the core while
// waiting: ranks usually share the machine with their own OpenMP threads.
static void wait_req(ufo_comm *c, MPI_Request *req, const char *op, const char *what) {
    double deadline = MPI_Wtime() + c->timeout_s;
    for (long spins = 0;; spins++) {
        int done = 0;
        CHECK(c, op, what, MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (done) return;
        if (spins < 2000) sched_yield();
        else nanosleep(&(struct timespec){0, 50000}, NULL);
        if ((spins & 63) == 0 && MPI_Wtime() > deadline)
            ufo_comm_abort(c, 1,
                           "%s (%s) did not complete within %.0f s: another rank died or hangs; aborting the job "
                           "(UFO_COMM_TIMEOUT sets the limit)",
                           op, what ? what : "-", c->timeout_s);
    }
}

static int mpi_allreduce(ufo_comm *c, void *buf, size_t n, ufo_comm_dtype t, ufo_comm_op op, const char *what) {
    MPI_Datatype dt = t == UFO_COMM_F32 ? MPI_FLOAT : MPI_DOUBLE;
    size_t esz = t == UFO_COMM_F32 ? sizeof(float) : sizeof(double);
    const char *name = op == UFO_COMM_SUM ? "MPI_Allreduce(sum)" : "MPI_Allreduce(max)";
    for (size_t off = 0; off < n;) {   // counts are ints: chunks of at most 2^30
        size_t len = n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30);
        MPI_Request req;
        CHECK(c, name, what,
              MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * esz, (int)len, dt, op == UFO_COMM_SUM ? MPI_SUM : MPI_MAX,
                             MPI_COMM_WORLD, &req));
        wait_req(c, &req, name, what);
        off += len;
    }
    return 0;
}

// counts (bytes) -> int counts and displacements; the whole must fit an int.
static void displs_of(ufo_comm *c, const size_t *counts, int *cnt, int *dsp, const char *op, const char *what) {
    size_t total = 0;
    for (int r = 0; r < c->size; r++) {
        if (counts[r] > INT_MAX || total > (size_t)INT_MAX - counts[r])
            ufo_comm_abort(c, 1, "%s (%s): %zu bytes is over MPI's int limit", op, what ? what : "-", total + counts[r]);
        cnt[r] = (int)counts[r];
        dsp[r] = (int)total;
        total += counts[r];
    }
}

static int mpi_allgatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, const char *what) {
    int *cnt = malloc(sizeof(int) * 2 * c->size);
    if (!cnt) ufo_comm_abort(c, 1, "out of memory");
    displs_of(c, counts, cnt, cnt + c->size, "MPI_Allgatherv", what);
    MPI_Request req;
    // MPI forbids send inside recv unless it says MPI_IN_PLACE (comm.h: in place).
    const void *src = send == (const char *)recv + cnt[c->size + c->rank] ? MPI_IN_PLACE : send;
    CHECK(c, "MPI_Allgatherv", what,
          MPI_Iallgatherv(src, cnt[c->rank], MPI_BYTE, recv, cnt, cnt + c->size, MPI_BYTE, MPI_COMM_WORLD, &req));
    wait_req(c, &req, "MPI_Allgatherv", what);
    free(cnt);
    return 0;
}

static int mpi_gatherv(ufo_comm *c, const void *send, void *recv, const size_t *counts, int root, const char *what) {
    int *cnt = malloc(sizeof(int) * 2 * c->size);
    if (!cnt) ufo_comm_abort(c, 1, "out of memory");
    displs_of(c, counts, cnt, cnt + c->size, "MPI_Gatherv", what);
    MPI_Request req;
    CHECK(c, "MPI_Gatherv", what,
          MPI_Igatherv(send, cnt[c->rank], MPI_BYTE, recv, cnt, cnt + c->size, MPI_BYTE, root, MPI_COMM_WORLD, &req));
    wait_req(c, &req, "MPI_Gatherv", what);
    free(cnt);
    return 0;
}

static int mpi_bcast(ufo_comm *c, void *buf, size_t bytes, int root, const char *what) {
    for (size_t off = 0; off < bytes;) {
        size_t len = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
        MPI_Request req;
        CHECK(c, "MPI_Bcast", what, MPI_Ibcast((char *)buf + off, (int)len, MPI_BYTE, root, MPI_COMM_WORLD, &req));
        wait_req(c, &req, "MPI_Bcast", what);
        off += len;
    }
    return 0;
}

static int mpi_barrier(ufo_comm *c, const char *what) {
    MPI_Request req;
    CHECK(c, "MPI_Barrier", what, MPI_Ibarrier(MPI_COMM_WORLD, &req));
    wait_req(c, &req, "MPI_Barrier", what);
    return 0;
}

static int mpi_reduce_scatter(ufo_comm *c, const float *send, float *recv, const size_t *counts, const char *what) {
    int *cnt = malloc(sizeof(int) * c->size);
    if (!cnt) ufo_comm_abort(c, 1, "out of memory");
    for (int r = 0; r < c->size; r++) {
        if (counts[r] > INT_MAX) ufo_comm_abort(c, 1, "MPI_Reduce_scatter (%s): %zu floats is over MPI's int limit",
                                                what ? what : "-", counts[r]);
        cnt[r] = (int)counts[r];
    }
    MPI_Request req;
    CHECK(c, "MPI_Reduce_scatter", what,
          MPI_Ireduce_scatter(send, recv, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req));
    wait_req(c, &req, "MPI_Reduce_scatter", what);
    free(cnt);
    return 0;
}

static void mpi_abort(ufo_comm *c, int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static void mpi_finalize(ufo_comm *c) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

static const ufo_comm_ops mpi_ops = {"mpi", mpi_allreduce, mpi_allgatherv, mpi_gatherv, mpi_bcast,
                                     mpi_barrier, mpi_abort, mpi_finalize, mpi_reduce_scatter, NULL, NULL};

int ufo_comm_mpi_init(ufo_comm *c) {
    int provided = 0;
    // FUNNELED: only the main thread talks to MPI (OpenMP and loader threads never do).
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return ufo_errorf("MPI_Init failed (launched by mpirun, but MPI cannot start)");
    if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return ufo_errorf("MPI_Comm_set_errhandler failed");
    if (MPI_Comm_rank(MPI_COMM_WORLD, &c->rank) != MPI_SUCCESS || MPI_Comm_size(MPI_COMM_WORLD, &c->size) != MPI_SUCCESS)
        return ufo_errorf("MPI_Comm_rank/size failed");
    c->ops = &mpi_ops;
    return 0;
}

#else
int ufo_comm_mpi_init(ufo_comm *c) {
    (void)c;
    return ufo_errorf("launched by mpirun, but this ufo was built without MPI (install libopenmpi-dev, reconfigure)");
}
#endif
