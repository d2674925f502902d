// Element-wise and row-wise CPU ops: bf16 conversion, exp/softmax, exact GELU,
// LayerNorm, BatchNorm, add. AVX-512 intrinsics where they pay (exp, erf,
// bf16 rounding) behind a runtime check, plain C + OpenMP SIMD elsewhere (the
// library is built for x86-64-v3, so that code gets AVX2).
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_train.h"
#include "base/mem.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include "kernels/cpu/cpu_simd.h"

// Below this many elements OpenMP's fork/join costs more than it saves.
#define PAR_MIN 32768

// ---------------------------------------------------------------- bf16

static inline uint16_t f32_to_bf16_scalar(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// 16 floats -> 16 bf16, round to nearest even, NaN kept quiet.
__attribute__((target("avx512f"))) static inline __m256i bf16x16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

__attribute__((target("avx512f"))) static void f32_to_bf16_avx512(uint16_t *dst, const float *src,
                                                                   size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(dst + i), bf16x16(_mm512_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = f32_to_bf16_scalar(src[i]);
}

// The same with AVX512-BF16's vcvtneps2bf16 (round to nearest even; it reads
// fp32 denormals as zero, which nothing here produces or cares about).
__attribute__((target("avx512f,avx512bf16"))) static void f32_to_bf16_native(uint16_t *dst, const float *src,
                                                                             size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    if (i < n) {
        uint16_t last[16];
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm256_storeu_si256((__m256i *)last, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
        memcpy(dst + i, last, (n - i) * sizeof *dst);
    }
}

// -1 = not yet known; set once (racing threads store the same value).
static int g_native_bf16 = -1, g_native_bf16_off;

static int has_native_bf16(void) {
    int v = __atomic_load_n(&g_native_bf16, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&g_native_bf16, v, __ATOMIC_RELAXED);
    }
    return v && !__atomic_load_n(&g_native_bf16_off, __ATOMIC_RELAXED);
}

void cpu_debug_disable_native_bf16(int off) { __atomic_store_n(&g_native_bf16_off, off, __ATOMIC_RELAXED); }

void cpu_f32_to_bf16_serial(uint16_t *dst, const float *src, size_t n) {
    if (has_native_bf16()) f32_to_bf16_native(dst, src, n);
    else if (cpu_has_avx512()) f32_to_bf16_avx512(dst, src, n);
    else
        for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16_scalar(src[i]);
}

void cpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    const size_t chunk = 16384;   // multiple of 16: chunks start 64-byte aligned if src is
    size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        cpu_f32_to_bf16_serial(dst + lo, src + lo, len);
    }
}

// ---------------------------------------------------------------- exp

// p[j] = bf16(v[j] * inv), with vcvtneps2bf16.
__attribute__((target("avx512f,avx512bf16"))) static void scale_to_bf16_native(uint16_t *p, const float *v, int n,
                                                                               __m512 inv) {
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm256_storeu_si256((__m256i *)(p + j), (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(v + j), inv)));
    if (j < n) {
        uint16_t last[16];
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + j), inv);
        _mm256_storeu_si256((__m256i *)last, (__m256i)_mm512_cvtneps_pbh(x));
        memcpy(p + j, last, (size_t)(n - j) * sizeof *p);
    }
}

// Row softmax (scale > 0); the normalised row goes to v, or as bf16 to p when p is not NULL.
__attribute__((target("avx512f"))) static void softmax_row_avx512(float *v, uint16_t *p, int n, float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(v + j));
    __mmask16 tail = (__mmask16)((1u << (n - j)) - 1u);
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, v + j));
    __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx) * scale);   // scale > 0
    __m512 sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = exp512(_mm512_fmsub_ps(_mm512_loadu_ps(v + j), vs, vmax));
        sum = _mm512_add_ps(sum, e);
        _mm512_storeu_ps(v + j, e);
    }
    if (tail) {
        __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, v + j), vs, vmax));
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
        _mm512_mask_storeu_ps(v + j, tail, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    if (p) {
        if (has_native_bf16()) {
            scale_to_bf16_native(p, v, n, inv);
            return;
        }
        for (j = 0; j + 16 <= n; j += 16)
            _mm256_storeu_si256((__m256i *)(p + j), bf16x16(_mm512_mul_ps(_mm512_loadu_ps(v + j), inv)));
        if (tail) {
            uint16_t last[16];
            _mm256_storeu_si256((__m256i *)last, bf16x16(_mm512_mul_ps(_mm512_maskz_loadu_ps(tail, v + j), inv)));
            memcpy(p + j, last, (size_t)(n - j) * sizeof *p);
        }
        return;
    }
    for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(v + j, _mm512_mul_ps(_mm512_loadu_ps(v + j), inv));
    if (tail) _mm512_mask_storeu_ps(v + j, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, v + j), inv));
}

void cpu_softmax_row_bf16(float *v, uint16_t *p, int n, float scale) {
    if (n <= 0) return;
    if (cpu_has_avx512()) {
        softmax_row_avx512(v, p, n, scale);
        return;
    }
    cpu_softmax_row(v, n, scale);
    for (int j = 0; j < n; j++) p[j] = f32_to_bf16_scalar(v[j]);
}

void cpu_softmax_row(float *v, int n, float scale) {
    if (n <= 0) return;
    if (cpu_has_avx512()) {
        softmax_row_avx512(v, NULL, n, scale);
        return;
    }
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) mx = fmaxf(mx, v[j] * scale);
    float sum = 0;
    for (int j = 0; j < n; j++) {
        v[j] = expf(v[j] * scale - mx);
        sum += v[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) v[j] *= inv;
}

// ---------------------------------------------------------------- GELU

__attribute__((target("avx512f"))) static void gelu_avx512(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void cpu_gelu(float *y, const float *x, size_t n) {
    const size_t chunk = 16384;
    size_t nchunks = (n + chunk - 1) / chunk;
    int avx512 = cpu_has_avx512();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        if (avx512) gelu_avx512(y + lo, x + lo, len);
        else
            for (size_t i = lo; i < lo + len; i++) y[i] = x[i] * 0.5f * (1.0f + erff(x[i] * (float)M_SQRT1_2));
    }
}

// GELU straight to bf16 (the bf16 training forward keeps only this rounded copy
// of the MLP activation: it feeds fc2 and fc2's weight gradient), and its
// derivative, also rounded, for the backward (which then needs neither x nor
// exp/erf again). Each chunk goes through an L1-sized fp32 buffer, so no fp32
// result reaches memory.
__attribute__((target("avx512f"))) static void gelu_grad_avx512(float *d, const float *x, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(d + i, m, gelu_grad512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void cpu_gelu_bf16(uint16_t *y, uint16_t *dgelu, const float *x, size_t n) {
    enum { CH = 2048 };
    size_t nchunks = (n + CH - 1) / CH;
    int avx512 = cpu_has_avx512();
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        float buf[CH];
        size_t lo = c * CH, len = n - lo < CH ? n - lo : CH;
        if (avx512) gelu_avx512(buf, x + lo, len);
        else
            for (size_t i = 0; i < len; i++) buf[i] = x[lo + i] * 0.5f * (1.0f + erff(x[lo + i] * (float)M_SQRT1_2));
        cpu_f32_to_bf16_serial(y + lo, buf, len);
        if (!dgelu) continue;
        if (avx512) gelu_grad_avx512(buf, x + lo, len);
        else
            for (size_t i = 0; i < len; i++) {
                float v = x[lo + i];
                buf[i] = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143268f * expf(-0.5f * v * v);
            }
        cpu_f32_to_bf16_serial(dgelu + lo, buf, len);
    }
}

// ---------------------------------------------------------------- norms, add

// One LayerNorm row: mean, then the centred variance, in fp32 (also
// cpu_layernorm_bf16's, so the two agree to the bit). AVX-512 where it runs:
// the compiler's x86-64-v3 code for the three passes was 4% of a ViT-L forward.
__attribute__((target("avx512f"))) static void layernorm_row_avx512(float *yr, const float *xr, const float *g,
                                                                    const float *b, int c, float eps) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int k = 0;
    for (; k + 32 <= c; k += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + k));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + k + 16));
    }
    for (; k < c; k += 16) {
        __mmask16 m = c - k >= 16 ? 0xffff : (__mmask16)((1u << (c - k)) - 1u);
        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, xr + k));
    }
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)c;
    const __m512 vm = _mm512_set1_ps(mean);
    s0 = s1 = _mm512_setzero_ps();
    for (k = 0; k + 32 <= c; k += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + k), vm), d1 = _mm512_sub_ps(_mm512_loadu_ps(xr + k + 16), vm);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; k < c; k += 16) {
        __mmask16 m = c - k >= 16 ? 0xffff : (__mmask16)((1u << (c - k)) - 1u);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + k), vm);
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)c + eps));
    for (k = 0; k < c; k += 16) {
        __mmask16 m = c - k >= 16 ? 0xffff : (__mmask16)((1u << (c - k)) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + k), vm), inv);
        _mm512_mask_storeu_ps(yr + k, m, _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, g + k), _mm512_maskz_loadu_ps(m, b + k)));
    }
}

static inline void layernorm_row(float *yr, const float *xr, const float *g, const float *b, int c, float eps) {
    if (cpu_has_avx512()) {
        layernorm_row_avx512(yr, xr, g, b, c, eps);
        return;
    }
    float sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
    for (int k = 0; k < c; k++) sum += xr[k];
    float mean = sum / (float)c;
#pragma omp simd reduction(+ : sq)
    for (int k = 0; k < c; k++) sq += (xr[k] - mean) * (xr[k] - mean);
    float inv = 1.0f / sqrtf(sq / (float)c + eps);
#pragma omp simd
    for (int k = 0; k < c; k++) yr[k] = (xr[k] - mean) * inv * g[k] + b[k];
}

void cpu_layernorm(float *y, const float *x, const float *g, const float *b, int n, int c, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
    for (int i = 0; i < n; i++) layernorm_row(y + (size_t)i * c, x + (size_t)i * c, g, b, c, eps);
}

// Row i of a packed [n, c] bf16 matrix (cpu.h): its 32-column pieces are 1,024
// elements apart; the padded columns of the last piece are written as zeros.
__attribute__((target("avx512f,avx512bf16"))) static void store_pieces_native(uint16_t *dst, const float *row, int n32) {
    for (int k = 0; k < n32; k++, dst += 1024)
        _mm512_storeu_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + k * 32 + 16), _mm512_loadu_ps(row + k * 32)));
}

static void store_row_packed(uint16_t *y, const float *row, int i, int c) {
    const int kb = (c + 31) / 32;
    uint16_t *dst = y + (size_t)(i / 32) * kb * 1024 + (size_t)(i % 32) * 32;
    if (c % 32 == 0 && has_native_bf16()) {   // vcvtne2ps2bf16 rounds to nearest even like the rest
        store_pieces_native(dst, row, kb);
        return;
    }
    for (int k = 0; k < kb; k++, dst += 1024) {
        int len = c - k * 32 < 32 ? c - k * 32 : 32;
        cpu_f32_to_bf16_serial(dst, row + k * 32, (size_t)len);
        if (len < 32) memset(dst + len, 0, (size_t)(32 - len) * sizeof *dst);
    }
}

// LayerNorm straight to bf16: in bf16 training a LayerNorm output only feeds a
// matmul (and its weight gradient), so the fp32 row lives in L1 only.
int cpu_layernorm_bf16(uint16_t *y, const float *x, const float *g, const float *b, int n, int c, float eps) {
    return cpu_layernorm_bf16_ex(y, x, g, b, n, c, eps, 0);
}

int cpu_layernorm_bf16_ex(uint16_t *y, const float *x, const float *g, const float *b, int n, int c, float eps,
                          int packed) {
    enum { ROW = 2048 };
    float *heap = NULL;   // rows wider than any ViT's: one heap row per thread
    int nthr = omp_get_max_threads();
    if (c > ROW && !(heap = ufo_alloc((size_t)nthr * c * sizeof(float)))) return -1;
#pragma omp parallel num_threads(nthr) if ((size_t)n * c > PAR_MIN)
    {
        float stack_row[ROW];
        float *row = heap ? heap + (size_t)omp_get_thread_num() * c : stack_row;
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            layernorm_row(row, x + (size_t)i * c, g, b, c, eps);
            if (packed) store_row_packed(y, row, i, c);
            else cpu_f32_to_bf16_serial(y + (size_t)i * c, row, (size_t)c);
        }
    }
    ufo_free(heap);
    return 0;
}

void cpu_batchnorm(float *y, const float *x, const float *g, const float *b, const float *mean,
                   const float *var, int n, int c, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *xr = x + (size_t)i * c;
        float *yr = y + (size_t)i * c;
#pragma omp simd
        for (int k = 0; k < c; k++) yr[k] = (xr[k] - mean[k]) * (g[k] / sqrtf(var[k] + eps)) + b[k];
    }
}

void cpu_add(float *y, const float *a, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += a[i];
}
