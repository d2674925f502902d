// The CUDA emulator's runtime (see cuda_runtime.h): the scheduler that runs
// a kernel's threads, device memory and its checks, streams and events (all
// work runs at once, in call order, so they only have to exist), and cuBLAS /
// cuBLASLt on the host.
#include "cublasLt.h"
#include "cuda_bf16.h"
#include <map>
#include <mutex>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

extern thread_local cudaError_t emu_last_error;

namespace emu {

thread_local gthread *t_cur;
thread_local gblock *t_blk;

void fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t_blk && t_cur)
        fprintf(stderr, "cuda emulator: kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s\n", t_blk->kernel,
                t_blk->idx.x, t_blk->idx.y, t_blk->idx.z, t_cur->tid.x, t_cur->tid.y, t_cur->tid.z, msg);
    else
        fprintf(stderr, "cuda emulator: %s\n", msg);
    fflush(stderr);
    abort();
}

// --- device memory ---------------------------------------------------------------

namespace {

std::mutex mem_mu;
std::map<uintptr_t, size_t> dev_mem, host_mem;  // base -> bytes: cudaMalloc, cudaMallocHost
size_t dev_used;

size_t dev_limit() {
    const char *e = getenv("UFO_EMU_DEVICE_GIB");
    double gib = e ? atof(e) : 8.0;
    return (size_t)(gib * 1073741824.0);
}

// The allocation of `table` holding [p, p + bytes), or 0 bytes if none.
bool inside(const std::map<uintptr_t, size_t> &table, const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = table.upper_bound(a);
    if (it == table.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

}  // namespace

bool is_device(const void *p, size_t bytes) {
    std::lock_guard<std::mutex> lk(mem_mu);
    return inside(dev_mem, p, bytes);
}
bool is_pinned(const void *p) {
    std::lock_guard<std::mutex> lk(mem_mu);
    return inside(host_mem, p, 0);
}

void check_kernel_ptr(const char *name, int i, const void *p) {
    if (!p || is_device(p, 0)) return;
    fail("kernel %s: argument %d (%p) is not device memory (%s)", name, i, p,
         is_pinned(p) ? "pinned host memory" : "a host pointer or freed memory");
}

// --- the scheduler ---------------------------------------------------------------

namespace {

enum { RUNNING = 0, AT_BLOCK = 1, AT_WARP = 2, DONE = 3 };
constexpr size_t kStack = 256 << 10;

// A coroutine switch. On x86-64, six callee-saved registers and the stack
// pointer (glibc's swapcontext also saves the signal mask, a system call per
// switch, which made it 80% of the emulator's time); elsewhere, ucontext.
#if defined(__x86_64__)
extern "C" void emu_switch(void **save_sp, void *to_sp);
asm(".text\n"
    ".globl emu_switch\n"
    ".type emu_switch, @function\n"
    "emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size emu_switch, .-emu_switch\n");
struct context {
    void *sp;
};
void switch_to(context *from, context *to) { emu_switch(&from->sp, to->sp); }
// A fresh context whose first switch enters fn (which must never return).
void make_context(context *c, char *stack, size_t size, void (*fn)()) {
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    void **sp = (void **)top;
    *--sp = nullptr;       // fn's return address: it never returns
    *--sp = (void *)fn;    // emu_switch's ret goes here
    for (int i = 0; i < 6; i++) *--sp = nullptr;  // rbp rbx r12-r15
    c->sp = sp;
}
#else
struct context {
    ucontext_t uc;
};
void switch_to(context *from, context *to) { swapcontext(&from->uc, &to->uc); }
void make_context(context *c, char *stack, size_t size, void (*fn)()) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, fn, 0);
}
#endif

struct coro {
    context ctx;
    char *stack;
};

struct os_thread {  // the emulator's state for one host thread
    context sched;
    std::vector<coro> coros;
    std::vector<gthread> threads;
    std::vector<uint64_t> slots;
    std::vector<unsigned char> wide;  // warp_allgather's slots: kWide bytes per thread
    std::vector<void *> shared;  // this block's EMU_SHARED arrays, in declaration order
    std::vector<size_t> shared_bytes;
    size_t shared_total;
    void (*body)(void *);
    void *arg;
    long waits;  // barriers reached in this launch
#ifdef EMU_ASAN
    const void *sched_bottom;
    size_t sched_size;
#endif
    ~os_thread() {
        for (auto &c : coros) munmap(c.stack, kStack);
    }
};

thread_local os_thread *S;

os_thread *state() {
    static thread_local os_thread st;
    return &st;
}

// A coroutine gives control back to the scheduler (finished: it is never resumed).
void to_scheduler(gthread *t, bool finished) {
    coro *c = (coro *)t->ctx;
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(finished ? nullptr : &fake, S->sched_bottom, S->sched_size);
#endif
    switch_to(&c->ctx, &S->sched);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, &S->sched_bottom, &S->sched_size);
#endif
    (void)finished;
}

void thread_entry() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &S->sched_bottom, &S->sched_size);
#endif
    S->body(S->arg);
    t_cur->state = DONE;
    to_scheduler(t_cur, true);
}

void resume(gthread *t) {
    coro *c = (coro *)t->ctx;
    t_cur = t;
#ifdef EMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, c->stack, kStack);
#endif
    switch_to(&S->sched, &c->ctx);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void wait_at(int what) {
    gthread *t = t_cur;
    if (!t->ctx)
        fail("waits at a barrier, but this launch site's first launch never did, so it runs as plain loops: "
             "emulating a kernel that waits only on some launches is not supported");
    S->waits++;
    t->state = what;
    to_scheduler(t, false);  // back here once resume() has made t current again
}

void free_shared() {
    for (void *p : S->shared) free(p);
    S->shared.clear();
    S->shared_bytes.clear();
    S->shared_total = 0;
}

void set_thread(gthread *t, const gblock &b, int i) {
    t->tid = uint3{i % b.dim.x, i / b.dim.x % b.dim.y, i / (b.dim.x * b.dim.y)};
    t->linear = i;
    t->lane = i % 32;
    t->state = RUNNING;
    t->shared_next = 0;
}

// The block's threads one after another, each to its end (no barriers).
void run_block_loops(gblock &b, int n) {
    for (int i = 0; i < n; i++) {
        gthread *t = &S->threads[i];
        set_thread(t, b, i);
        t->ctx = nullptr;
        t_cur = t;
        S->body(S->arg);
        t->state = DONE;
    }
}

// The block's threads as coroutines, released barrier by barrier.
void run_block_coroutines(gblock &b, int n) {
    while ((int)S->coros.size() < n) {
        coro c;
        c.stack = (char *)mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                               -1, 0);
        if (c.stack == MAP_FAILED) fail("cannot map a thread stack");
        S->coros.push_back(c);
    }
    for (int i = 0; i < n; i++) {
        gthread *t = &S->threads[i];
        set_thread(t, b, i);
        coro *c = &S->coros[i];
        make_context(&c->ctx, c->stack, kStack, thread_entry);
        t->ctx = c;
    }
    for (;;) {
        // Each warp runs as far as it can (through its warp barriers) before
        // the next one starts: warps are as far apart as a GPU may put them,
        // so shared data a warp overwrites before a __syncthreads that is
        // missing shows in the other warps' results.
        for (int w = 0; w < n; w += 32) {
            int end = w + 32 < n ? w + 32 : n;
            for (;;) {
                for (int i = w; i < end; i++)
                    if (S->threads[i].state == RUNNING) resume(&S->threads[i]);
                int waiting = 0, lanes = 0;
                for (int i = w; i < end; i++) {
                    lanes += S->threads[i].state != DONE;
                    waiting += S->threads[i].state == AT_WARP;
                }
                if (!waiting || waiting != lanes) break;
                for (int i = w; i < end; i++)  // the warp barrier opens
                    if (S->threads[i].state == AT_WARP) S->threads[i].state = RUNNING;
            }
        }
        int live = 0, at_block = 0;
        for (int i = 0; i < n; i++) {
            int st = S->threads[i].state;
            live += st != DONE;
            at_block += st == AT_BLOCK;
        }
        if (!live) break;
        if (at_block == live) {  // the block barrier opens
            for (int i = 0; i < n; i++)
                if (S->threads[i].state == AT_BLOCK) S->threads[i].state = RUNNING;
        } else {
            int a = -1, w = -1;
            for (int i = 0; i < n; i++) {
                if (S->threads[i].state == AT_BLOCK && a < 0) a = i;
                if (S->threads[i].state == AT_WARP && w < 0) w = i;
            }
            t_cur = &S->threads[w >= 0 ? w : 0];
            fail("deadlock: thread %d waits at __syncthreads while thread %d of another path waits at a warp "
                 "barrier (__syncwarp or a shuffle) with lanes that will not reach it",
                 a, w);
        }
    }
}

}  // namespace

void run_grid(const char *name, const launch_cfg &c, void (*body)(void *), void *arg, int *mode) {
    size_t nthreads = (size_t)c.block.x * c.block.y * c.block.z;
    if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 2147483647u || c.grid.y > 65535 ||
        c.grid.z > 65535 || nthreads == 0 || nthreads > 1024 || c.block.z > 64) {
        emu_last_error = cudaErrorInvalidConfiguration;
        return;
    }
    if (c.shmem) fail("kernel %s: dynamic shared memory is not emulated", name);
    S = state();
    int n = (int)nthreads;
    S->threads.resize(n);
    S->slots.assign(n, 0);
    S->wide.assign((size_t)n * kWide, 0);
    S->body = body;
    S->arg = arg;
    S->waits = 0;
    int m = __atomic_load_n(mode, __ATOMIC_ACQUIRE);
    gblock b;
    b.dim = c.block;
    b.grid = c.grid;
    b.kernel = name;
    b.slots = S->slots.data();
    t_blk = &b;
    for (unsigned z = 0; z < c.grid.z; z++)
        for (unsigned y = 0; y < c.grid.y; y++)
            for (unsigned x = 0; x < c.grid.x; x++) {
                b.idx = uint3{x, y, z};
                if (m == 1) run_block_loops(b, n);
                else run_block_coroutines(b, n);
                free_shared();
            }
    if (m == 0) __atomic_store_n(mode, S->waits ? 2 : 1, __ATOMIC_RELEASE);
    t_blk = nullptr;
    t_cur = nullptr;
}

void block_barrier(void) { wait_at(AT_BLOCK); }
void warp_barrier(void) { wait_at(AT_WARP); }

uint64_t exchange(uint64_t v, int src_lane) {
    gthread *t = t_cur;
    S->slots[t->linear] = v;
    warp_barrier();
    int src = (t->linear & ~31) + src_lane;
    if (src >= (int)S->threads.size() || S->threads[src].state == DONE)
        fail("a shuffle reads lane %d, which has exited or does not exist", src_lane);
    uint64_t r = S->slots[src];
    warp_barrier();
    return r;
}

void warp_allgather(const void *mine, size_t bytes, void *all) {
    gthread *t = t_cur;
    if (bytes > kWide) fail("warp_allgather of %zu bytes per lane (at most %zu)", bytes, kWide);
    memcpy(&S->wide[(size_t)t->linear * kWide], mine, bytes);
    warp_barrier();
    int w0 = t->linear & ~31;
    for (int l = 0; l < 32; l++) {
        int src = w0 + l;
        if (src >= (int)S->threads.size() || S->threads[src].state == DONE)
            fail("a warp-wide operation (mma.sync) needs all 32 lanes, and lane %d has exited or does not exist", l);
        memcpy((unsigned char *)all + (size_t)l * bytes, &S->wide[(size_t)src * kWide], bytes);
    }
    warp_barrier();
}

void *shared_alloc(size_t bytes) {
    gthread *t = t_cur;
    size_t k = (size_t)t->shared_next++;
    if (k < S->shared.size()) {
        if (S->shared_bytes[k] != bytes) fail("shared declaration %zu differs between threads", k);
        return S->shared[k];
    }
    S->shared_total += bytes;
    if (S->shared_total > (48u << 10))
        fail("%zu bytes of static shared memory: more than the 48 KiB a block may declare", S->shared_total);
    // Each array is its own allocation, so AddressSanitizer sees an overrun of one.
    void *p = nullptr;
    if (posix_memalign(&p, 128, bytes)) fail("out of memory");
    memset(p, 0xff, bytes);
    S->shared.push_back(p);
    S->shared_bytes.push_back(bytes);
    return p;
}

}  // namespace emu

// --- runtime API -------------------------------------------------------------------

thread_local cudaError_t emu_last_error = cudaSuccess;

static cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) emu_last_error = e;
    return e;
}

cudaError_t cudaGetDeviceCount(int *n) {
    const char *e = getenv("UFO_EMU_DEVICES");
    *n = e ? atoi(e) : 1;
    if (*n <= 0) {
        *n = 0;
        return set_error(cudaErrorNoDevice);
    }
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    int n = 0;
    cudaGetDeviceCount(&n);
    // One memory for every emulated device: selecting one only checks it exists.
    return device < 0 || device >= n ? set_error(cudaErrorInvalidDevice) : cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    int n = 0;
    cudaGetDeviceCount(&n);
    if (device < 0 || device >= n) return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "ufo CUDA emulator (CPU)");
    prop->totalGlobalMem = emu::dev_limit();
    prop->sharedMemPerBlock = 48 << 10;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = emu_last_error;
    emu_last_error = cudaSuccess;
    return e;
}

struct emu_stream {
    unsigned flags;
};
struct emu_event {
    unsigned flags;
};

cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    *s = new emu_stream{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
    return e ? cudaSuccess : set_error(cudaErrorInvalidValue);
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    *e = new emu_event{flags};
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { return e ? cudaSuccess : set_error(cudaErrorInvalidValue); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::mutex> lk(emu::mem_mu);
    *p = nullptr;
    if (emu::dev_used + bytes > emu::dev_limit()) return set_error(cudaErrorMemoryAllocation);
    // Exactly `bytes` (256-aligned, as cudaMalloc): a sanitizer build sees an access one past the end.
    void *q = nullptr;
    if (posix_memalign(&q, 256, bytes ? bytes : 1)) return set_error(cudaErrorMemoryAllocation);
    memset(q, 0xff, bytes);  // as uninitialised as device memory: NaN for floats
    emu::dev_mem[(uintptr_t)q] = bytes;
    emu::dev_used += bytes;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    std::lock_guard<std::mutex> lk(emu::mem_mu);
    auto it = emu::dev_mem.find((uintptr_t)p);
    if (it == emu::dev_mem.end()) emu::fail("cudaFree(%p): not the start of a live device allocation", p);
    emu::dev_used -= it->second;
    emu::dev_mem.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t bytes) {
    std::lock_guard<std::mutex> lk(emu::mem_mu);
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return set_error(cudaErrorMemoryAllocation);
    emu::host_mem[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::mutex> lk(emu::mem_mu);
    auto it = emu::host_mem.find((uintptr_t)p);
    if (it == emu::host_mem.end()) emu::fail("cudaFreeHost(%p): not a cudaMallocHost allocation", p);
    emu::host_mem.erase(it);
    free(p);
    return cudaSuccess;
}

static void check_side(const void *p, size_t bytes, bool device, const char *what) {
    if (device && !emu::is_device(p, bytes))
        emu::fail("%s: [%p, +%zu bytes) is not inside one live device allocation", what, p, bytes);
    if (!device && emu::is_device(p, 0)) emu::fail("%s: %p is device memory where host memory was named", what, p);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    if (!bytes) return cudaSuccess;
    switch (kind) {
    case cudaMemcpyHostToDevice:
        check_side(dst, bytes, true, "cudaMemcpy HostToDevice destination");
        check_side(src, bytes, false, "cudaMemcpy HostToDevice source");
        break;
    case cudaMemcpyDeviceToHost:
        check_side(dst, bytes, false, "cudaMemcpy DeviceToHost destination");
        check_side(src, bytes, true, "cudaMemcpy DeviceToHost source");
        break;
    case cudaMemcpyDeviceToDevice:
        check_side(dst, bytes, true, "cudaMemcpy DeviceToDevice destination");
        check_side(src, bytes, true, "cudaMemcpy DeviceToDevice source");
        break;
    case cudaMemcpyHostToHost:
        check_side(dst, bytes, false, "cudaMemcpy HostToHost destination");
        check_side(src, bytes, false, "cudaMemcpy HostToHost source");
        break;
    case cudaMemcpyDefault: break;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    return cudaMemcpyAsync(dst, src, bytes, kind, 0);
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t) {
    if (!bytes) return cudaSuccess;
    check_side(dst, bytes, true, "cudaMemset");
    memset(dst, value, bytes);
    return cudaSuccess;
}

// --- cuBLAS ------------------------------------------------------------------------

struct emu_blas {
    cudaStream_t stream;
};

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new emu_blas{nullptr};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t st) {
    switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

namespace {

size_t type_bytes(cudaDataType t) { return t == CUDA_R_16BF || t == CUDA_R_16F ? 2 : t == CUDA_R_64F ? 8 : 4; }

double load(const void *p, cudaDataType t, size_t i) {
    if (t == CUDA_R_16BF) return (float)((const __nv_bfloat16 *)p)[i];
    return ((const float *)p)[i];
}

void store(void *p, cudaDataType t, size_t i, double v) {
    if (t == CUDA_R_16BF) ((__nv_bfloat16 *)p)[i] = __nv_bfloat16((float)v);
    else ((float *)p)[i] = (float)v;
}

// A column-major operand stored as rows x cols with leading dimension ld: its
// whole extent must lie in one device allocation.
bool operand_ok(const char *what, const void *p, cudaDataType t, long rows, long cols, long ld) {
    if (rows <= 0 || cols <= 0) return true;
    if (ld < rows) {
        fprintf(stderr, "cuda emulator: %s: leading dimension %ld < %ld rows\n", what, ld, rows);
        return false;
    }
    size_t bytes = ((size_t)(cols - 1) * ld + rows) * type_bytes(t);
    if (!emu::is_device(p, bytes))
        emu::fail("%s: %ld x %ld (ld %ld) at %p is not inside one live device allocation", what, rows, cols, ld, p);
    return true;
}

// D(m x n) = alpha op(A) op(B) + beta C (+ bias[i]); products and sums in
// double, as exact as the result type allows. beta == 0 never reads C. Not
// instrumented in a sanitizer build (the kernels are; this is the emulator's
// own loop, its operands' extents checked above, and 10x slower instrumented).
__attribute__((no_sanitize("address", "undefined"))) cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                    cudaDataType At, long lda, const void *B, cudaDataType Bt, long ldb, float beta, const void *C,
                    cudaDataType Ct, long ldc, void *D, long ldd, const void *bias, cudaDataType bias_t) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if ((At != CUDA_R_32F && At != CUDA_R_16BF) || At != Bt || (Ct != CUDA_R_32F && Ct != CUDA_R_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!operand_ok("GEMM A", A, At, ta == CUBLAS_OP_N ? m : k, ta == CUBLAS_OP_N ? k : m, lda) ||
        !operand_ok("GEMM B", B, Bt, tb == CUBLAS_OP_N ? k : n, tb == CUBLAS_OP_N ? n : k, ldb) ||
        !operand_ok("GEMM D", D, Ct, m, n, ldd) || (beta != 0 && !operand_ok("GEMM C", C, Ct, m, n, ldc)))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (bias && !emu::is_device(bias, (size_t)m * type_bytes(bias_t)))
        emu::fail("GEMM bias: %d values at %p are not device memory", m, bias);
    // op(A) and op(B) packed as rows of k doubles, so each value of D is one
    // contiguous dot product (vectorised: omp simd; columns over the cores).
    std::vector<double> a((size_t)m * k), b((size_t)n * k);
    for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++)
            a[(size_t)i * k + l] = load(A, At, ta == CUBLAS_OP_N ? (size_t)l * lda + i : (size_t)i * lda + l);
    for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++)
            b[(size_t)j * k + l] = load(B, Bt, tb == CUBLAS_OP_N ? (size_t)j * ldb + l : (size_t)l * ldb + j);
#pragma omp parallel for schedule(static) if ((double)m * n * k > 1e6)
    for (int j = 0; j < n; j++) {
        const double *bj = &b[(size_t)j * k];
        for (int i = 0; i < m; i++) {
            const double *ai = &a[(size_t)i * k];
            double s = 0;
#pragma omp simd reduction(+ : s)
            for (int l = 0; l < k; l++) s += ai[l] * bj[l];
            double v = alpha * s;
            if (beta != 0) v += beta * load(C, Ct, (size_t)j * ldc + i);
            if (bias) v += load(bias, bias_t, i);
            store(D, Ct, (size_t)j * ldd + i, v);
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    float a = *(const float *)alpha, b = *(const float *)beta;
    return gemm(ta, tb, m, n, k, a, A, Atype, lda, B, Btype, ldb, b, C, Ctype, ldc, C, ldc, nullptr, CUDA_R_32F);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
                                          long long strideA, const void *B, cudaDataType Btype, int ldb,
                                          long long strideB, const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    float a = *(const float *)alpha, b = *(const float *)beta;
    for (int i = 0; i < batch; i++) {
        const char *Ai = (const char *)A + (size_t)i * strideA * type_bytes(Atype);
        const char *Bi = (const char *)B + (size_t)i * strideB * type_bytes(Btype);
        char *Ci = (char *)C + (size_t)i * strideC * type_bytes(Ctype);
        cublasStatus_t st = gemm(ta, tb, m, n, k, a, Ai, Atype, lda, Bi, Btype, ldb, b, Ci, Ctype, ldc, Ci, ldc,
                                 nullptr, CUDA_R_32F);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// --- cuBLASLt ------------------------------------------------------------------------

struct emu_lt {
    int unused;
};
struct emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epilogue;
    const void *bias;
    int32_t bias_type;  // -1: D's type (cuBLASLt's default)
};
struct emu_lt_layout {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};
struct emu_lt_pref {
    size_t workspace;
};

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new emu_lt{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    *d = new emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr, -1};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

template <typename T>
static cublasStatus_t take(T *dst, const void *buf, size_t size) {
    if (size != sizeof *dst) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(dst, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return take(&d->ta, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return take(&d->tb, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return take(&d->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return take(&d->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return take(&d->bias_type, buf, size);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    *l = new emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new emu_lt_pref{0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) return take(&p->workspace, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

// op(X)'s rows and cols from its stored layout.
static void op_dims(const emu_lt_layout *l, cublasOperation_t t, uint64_t *r, uint64_t *c) {
    *r = t == CUBLAS_OP_N ? l->rows : l->cols;
    *c = t == CUBLAS_OP_N ? l->cols : l->rows;
}

static cublasStatus_t lt_validate(const emu_lt_desc *op, const emu_lt_layout *a, const emu_lt_layout *b,
                                  const emu_lt_layout *c, const emu_lt_layout *d) {
    uint64_t ar, ac, br, bc;
    op_dims(a, op->ta, &ar, &ac);
    op_dims(b, op->tb, &br, &bc);
    if (op->compute != CUBLAS_COMPUTE_32F || op->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (ac != br || ar != d->rows || bc != d->cols || c->rows != d->rows || c->cols != d->cols ||
        c->type != d->type || a->type != b->type)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && op->epilogue != CUBLASLT_EPILOGUE_BIAS)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t,
                                              int requested, cublasLtMatmulHeuristicResult_t *results, int *found) {
    *found = 0;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = lt_validate(op, a, b, c, d);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    const char *mode = getenv("UFO_EMU_LT");
    if (mode && !strcmp(mode, "none")) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (mode && !strcmp(mode, "no-epilogue") && op->epilogue != CUBLASLT_EPILOGUE_DEFAULT)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = 0x656d75;  // "emu"
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceSize, cudaStream_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = lt_validate(op, Adesc, Bdesc, Cdesc, Ddesc);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (algo && algo->data[0] != 0x656d75) emu::fail("cublasLtMatmul: an algorithm the heuristic did not return");
    if (workspaceSize && !emu::is_device(workspace, workspaceSize))
        emu::fail("cublasLtMatmul: workspace of %zu bytes at %p is not device memory", workspaceSize, workspace);
    const void *bias = nullptr;
    if (op->epilogue == CUBLASLT_EPILOGUE_BIAS) {
        if (!op->bias) return CUBLAS_STATUS_INVALID_VALUE;
        bias = op->bias;
    }
    cudaDataType bias_t = op->bias_type < 0 ? Ddesc->type : (cudaDataType)op->bias_type;
    uint64_t k = op->ta == CUBLAS_OP_N ? Adesc->cols : Adesc->rows;
    return gemm(op->ta, op->tb, (int)Ddesc->rows, (int)Ddesc->cols, (int)k, *(const float *)alpha, A, Adesc->type,
                Adesc->ld, B, Bdesc->type, Bdesc->ld, *(const float *)beta, C, Cdesc->type, Cdesc->ld, D, Ddesc->ld,
                bias, bias_t);
}
