// The global oneDNN engine + stream, error reporting, ISA queries.
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_internal.h"
#include "base/error.h"
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static dnnl_status_t g_status = dnnl_success;

static void init_engine(void) {
    g_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
    if (g_status != dnnl_success) {
        g_engine = NULL;
        return;
    }
    g_status = dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags);
    if (g_status != dnnl_success) {
        dnnl_engine_destroy(g_engine);
        g_engine = NULL;
        g_stream = NULL;
    }
}

dnnl_engine_t cpu_engine(void) {
    pthread_once(&g_once, init_engine);
    if (!g_engine) cpu_dnnl_error("oneDNN CPU engine/stream creation", g_status);
    return g_engine;
}

dnnl_stream_t cpu_stream(void) {
    return cpu_engine() ? g_stream : NULL;
}

int cpu_dnnl_error(const char *what, dnnl_status_t st) {
    return ufo_errorf("%s: oneDNN error %s", what, dnnl_status2str(st));
}

int cpu_has_avx512(void) {
    static int cached = -1;   // racing first callers store the same value
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int cpu_has_bf16(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    // Both ISA values are bit masks that contain the avx512_core_bf16 bits.
    return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

const char *cpu_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_all: return "all";
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    }
    return "unknown";
}

dnnl_status_t cpu_make_matmul(dnnl_primitive_t *prim, dnnl_memory_t *ms, dnnl_memory_t *mw, dnnl_memory_t *md,
                              const dnnl_memory_desc_t *s, const dnnl_memory_desc_t *w, const dnnl_memory_desc_t *d) {
    dnnl_engine_t eng = cpu_engine();
    dnnl_matmul_desc_t mm;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_matmul_desc_init(&mm, s, w, NULL, d);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &mm, NULL, eng, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(prim, pd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (st == dnnl_success && !*ms) st = dnnl_memory_create(ms, s, eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success && !*mw) st = dnnl_memory_create(mw, w, eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success && !*md) st = dnnl_memory_create(md, d, eng, DNNL_MEMORY_NONE);
    return st;
}

dnnl_status_t cpu_exec_matmul(dnnl_primitive_t prim, dnnl_memory_t s, const void *sp, dnnl_memory_t w,
                              const void *wp, dnnl_memory_t d, void *dp) {
    dnnl_status_t st = dnnl_memory_set_data_handle(s, (void *)sp);
    if (st == dnnl_success) st = dnnl_memory_set_data_handle(w, (void *)wp);
    if (st == dnnl_success) st = dnnl_memory_set_data_handle(d, dp);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}};
        st = dnnl_primitive_execute(prim, cpu_stream(), 3, args);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(cpu_stream());
    return st;
}
