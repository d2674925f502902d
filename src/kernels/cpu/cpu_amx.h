// Shared pieces of the AMX kernels (cpu_attention_amx.c, cpu_gemm_amx.c):
// the target attribute they are compiled with, the tile configuration
// layout, and an in-register 16 x 16 transpose of 32-bit words. Internal to
// kernels/cpu. Every function that touches tiles is compiled with
// __attribute__((target(AMX_TARGET))) so the library itself stays
// x86-64-v3; callers check cpu_has_amx() first.
#pragma once
#include <immintrin.h>
#include <stdint.h>

#define AMX_TARGET "avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16"

#include "kernels/cpu/cpu_internal.h"   // cpu_has_amx

// The 64-byte operand of ldtilecfg (palette 1).
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

// In-register transpose of a 16 x 16 matrix of 32-bit words: r[i] holds row i
// on entry and column i on exit. Interleaves 32-bit then 64-bit elements
// within 128-bit lanes (r[4g+k] lane L: column 4L+k, rows 4g..4g+3), then
// moves 128-bit lanes in two rounds. AVX-512F only, so that the fp32
// kernels (cpu_attention_fma.c) inline it too.
__attribute__((target("avx512f"))) static inline void transpose16x16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int k = 0; k < 4; k++) {
        __m512i e01 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0x88), o01 = _mm512_shuffle_i32x4(r[k], r[4 + k], 0xdd);
        __m512i e23 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0x88), o23 = _mm512_shuffle_i32x4(r[8 + k], r[12 + k], 0xdd);
        t[k] = _mm512_shuffle_i32x4(e01, e23, 0x88);
        t[8 + k] = _mm512_shuffle_i32x4(e01, e23, 0xdd);
        t[4 + k] = _mm512_shuffle_i32x4(o01, o23, 0x88);
        t[12 + k] = _mm512_shuffle_i32x4(o01, o23, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}
