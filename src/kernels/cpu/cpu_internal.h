// Internals shared by the kernels/cpu files: the global oneDNN engine and
// stream, status reporting, fp32 -> bf16 rounding, the vectorised row softmax.
#pragma once
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

// The process-wide CPU engine and stream, created on first use. NULL (with
// ufo_error set) when oneDNN cannot create them.
dnnl_engine_t cpu_engine(void);
dnnl_stream_t cpu_stream(void);
// ufo_errorf("<what>: <oneDNN status name>") and return -1.
int cpu_dnnl_error(const char *what, dnnl_status_t st);

// A plain src x weights -> dst matmul primitive on the global engine, and a
// memory object (no data handle) for each descriptor whose handle is still NULL.
dnnl_status_t cpu_make_matmul(dnnl_primitive_t *prim, dnnl_memory_t *ms, dnnl_memory_t *mw, dnnl_memory_t *md,
                              const dnnl_memory_desc_t *s, const dnnl_memory_desc_t *w, const dnnl_memory_desc_t *d);
// Points s, w, d at the given buffers, runs prim on the global stream and waits.
dnnl_status_t cpu_exec_matmul(dnnl_primitive_t prim, dnnl_memory_t s, const void *sp, dnnl_memory_t w,
                              const void *wp, dnnl_memory_t d, void *dp);

// True when the AVX-512F intrinsic paths may run (checked once).
int cpu_has_avx512(void);
// True when the CPU has AMX-TILE + AMX-BF16 (+ AVX512-BF16) and the OS granted
// the process tile state (checked once; cpu_attention_amx.c).
int cpu_has_amx(void);

// fp32 -> bf16, round to nearest even (NaN stays NaN). OpenMP-parallel over n.
void cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n);
// The same, single-threaded (for callers already inside a parallel region).
void cpu_f32_to_bf16_serial(uint16_t *dst, const float *src, size_t n);

// Tests only: 1 makes the bf16 rounding above (and in the softmax) take the
// AVX-512F integer path even where AVX512-BF16 exists, 0 restores the default.
void cpu_debug_disable_native_bf16(int off);

// In-place row softmax of v[0..n) after scaling by `scale` (> 0):
//   v[j] = exp(scale*v[j] - max) / sum. Single-threaded (callers parallelise).
void cpu_softmax_row(float *v, int n, float scale);
// One head's attention probabilities in fp32: P [T, T] = softmax(scale q k^T),
// q and k rows `ld` floats apart (read in place from the qkv rows). A
// single-threaded sgemm: callers run heads in their own OpenMP loop. The
// forward and the backward (which recomputes P) share it.
dnnl_status_t cpu_head_probs_f32(float *P, const float *q, const float *k, int T, int hd, long ld, float scale);
// The same, with the normalised row written as bf16 to p (v is clobbered).
void cpu_softmax_row_bf16(float *v, uint16_t *p, int n, float scale);

// Tests only: force cpu_attention's path ("dnnl", "amx", "auto", as UFO_ATTN
// does) over UFO_ATTN; NULL follows UFO_ATTN again.
void cpu_debug_attention_path(const char *name);

// Tests only: force the bf16 matmul path ("dnnl", "amx", "auto") over
// UFO_GEMM; NULL follows UFO_GEMM again. Linears pick theirs when created.
void cpu_debug_gemm_path(const char *name);

// A kernel's scratch buffer kept between calls: cpu_kept_get takes it (grown
// to `need` bytes) when it is free, *kept = 1; a caller that finds it in use
// (another application thread in the same kernel) gets a buffer of its own,
// *kept = 0; NULL when out of memory. cpu_kept_put gives back what it returned.
typedef struct {
    pthread_mutex_t mu;
    char *buf;
    size_t size;
} cpu_kept;
#define CPU_KEPT_INIT {PTHREAD_MUTEX_INITIALIZER, NULL, 0}
char *cpu_kept_get(cpu_kept *k, size_t need, int *kept);
void cpu_kept_put(cpu_kept *k, char *p, int kept);
