// The CUDA emulator's runtime header: what our .cu files use of the CUDA
// runtime API and of the device language, for g++ on a machine without a
// GPU. tools/cuda_emu_build.sh rewrites each `kernel<<<cfg>>>(args)` into
// ::emu::launch(...) and each `__shared__ T name[n];` into EMU_SHARED(...),
// then compiles the file as C++ with this folder first on the include path,
// so the kernels that run on a GPU run here, unchanged, thread by thread.
//
// How a launch runs (emu_runtime.cc): blocks one after another; the threads of
// a block as coroutines on one OS thread, each running until it finishes or
// waits at a barrier (__syncthreads, __syncwarp, a shuffle); a barrier opens
// when every thread of its block (warp) that has not exited waits at it, and
// a block where no barrier can open is a deadlock, reported with its kernel.
// Each warp runs as far as its warp barriers let it before the next warp
// starts, so a missing __syncthreads shows as another warp's overwritten
// shared data. PTX mma.sync (emu_ptx.h) exchanges the lanes' registers at a
// warp barrier, so it too needs every lane of the warp.
// A launch site whose first launch never waited runs its later launches as
// plain loops. Shared memory is fresh per block and filled with 0xff bytes
// (NaN), so a read before any write shows. What the emulator cannot show:
// races between blocks, timing, and the precise rounding of the GPU's math
// functions (expf, erff are glibc's here).
//
// Checked on the host side (emulator errors abort with one line): pointer
// kernel arguments and cuBLAS operands lie inside live cudaMalloc memory (the
// whole extent of a GEMM operand), memcpy directions match where the pointers
// live, launch configurations are valid (an empty grid is an error, as on a
// GPU), static shared memory stays under 48 KiB per block.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <tuple>
#include <type_traits>
#include <utility>

// --- runtime API ---------------------------------------------------------------

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
} cudaError_t;

typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
};

typedef enum cudaDataType_t {
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16F = 2,
    CUDA_R_16BF = 14,
} cudaDataType_t;
typedef cudaDataType_t cudaDataType;

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetLastError(void);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T>
inline cudaError_t cudaMalloc(T **p, size_t bytes) { return cudaMalloc((void **)p, bytes); }
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
template <typename T>
inline cudaError_t cudaMallocHost(T **p, size_t bytes) { return cudaMallocHost((void **)p, bytes); }
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s = 0);

// --- device language -----------------------------------------------------------

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
struct alignas(8) uint2 {
    unsigned x, y;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
struct alignas(8) float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
constexpr int warpSize = 32;

namespace emu {

struct gthread {
    uint3 tid;
    int linear, lane;
    int state;       // emu_runtime.cc's RUNNING / AT_BLOCK_BARRIER / AT_WARP_BARRIER / DONE
    int shared_next; // index of this thread's next EMU_SHARED declaration
    void *ctx;       // its coroutine (NULL when the launch runs as plain loops)
};
struct gblock {
    uint3 idx;
    dim3 dim, grid;
    const char *kernel;
    uint64_t *slots;  // one shuffle slot per thread
};
extern thread_local gthread *t_cur;
extern thread_local gblock *t_blk;

struct launch_cfg {
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;
};
inline launch_cfg cfg(dim3 grid, dim3 block, size_t shmem = 0, cudaStream_t s = 0) {
    return launch_cfg{grid, block, shmem, s};
}

// Runs `body` for every thread of every block. *mode is the launch site's
// state: 0 not yet known, 1 never waits (plain loops), 2 waits (coroutines).
void run_grid(const char *name, const launch_cfg &c, void (*body)(void *), void *arg, int *mode);
// Aborts unless p is NULL or inside live device memory (kernel argument i).
void check_kernel_ptr(const char *name, int i, const void *p);
void block_barrier(void);
void warp_barrier(void);
// The shuffle's exchange: this thread's 8-byte slot is v; returns lane src's slot.
uint64_t exchange(uint64_t v, int src_lane);
// A warp-wide exchange (PTX mma.sync): every lane of the warp puts `bytes`
// (<= kWide) and gets all 32 lanes' in lane order in all[32 * bytes].
constexpr size_t kWide = 64;
void warp_allgather(const void *mine, size_t bytes, void *all);
void *shared_alloc(size_t bytes);
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

template <typename T>
inline void check_arg(const char *name, int i, const T &a) {
    if constexpr (std::is_pointer_v<T>) check_kernel_ptr(name, i, (const void *)a);
}

template <typename F, typename... A>
void launch(const char *name, const launch_cfg &c, F f, A... a) {
    static int mode;  // one per launch site: each site's lambda is its own F
    int i = 0;
    (check_arg(name, i++, a), ...);
    auto bound = [&]() { f(a...); };
    run_grid(name, c, [](void *p) { (*(decltype(bound) *)p)(); }, &bound, &mode);
}

}  // namespace emu

#define threadIdx (::emu::t_cur->tid)
#define blockIdx (::emu::t_blk->idx)
#define blockDim (::emu::t_blk->dim)
#define gridDim (::emu::t_blk->grid)

// `__shared__ T name[dims];` (rewritten by cuda_emu_build.sh): a reference into the block's shared memory.
#define EMU_SHARED(T, name, dims)            \
    typedef T emu_shared_##name##_t dims;    \
    emu_shared_##name##_t &name = *(emu_shared_##name##_t *)::emu::shared_alloc(sizeof(emu_shared_##name##_t))

inline void __syncthreads(void) { ::emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (mask != 0xffffffffu) ::emu::fail("__syncwarp with a partial mask (0x%x) is not emulated", mask);
    ::emu::warp_barrier();
}

namespace emu {
// A shuffle: this lane's v for the value of lane src (full warp, width 32 only).
template <typename T>
inline T shuffle(const char *what, unsigned mask, int width, T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    if (mask != 0xffffffffu || width != 32) fail("%s with a partial mask or width is not emulated", what);
    uint64_t u = 0;
    memcpy(&u, &v, sizeof v);
    u = exchange(u, src);
    T r;
    memcpy(&r, &u, sizeof r);
    return r;
}
}  // namespace emu

template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return ::emu::shuffle("__shfl_xor_sync", mask, width, v, (::emu::t_cur->lane ^ lane_mask) & 31);
}

// The blocks of a grid run one at a time on one OS thread: atomics are plain.
template <typename T>
inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}

// Single-precision intrinsics: IEEE round-to-nearest on the host (the emulator
// is compiled with -ffp-contract=off, so nothing is fused into an FMA).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
