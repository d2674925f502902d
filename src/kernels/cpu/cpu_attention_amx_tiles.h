// Tile pieces shared by the fused AMX attention forward
// (cpu_attention_amx.c) and backward (cpu_attention_amx_bwd.c): the two
// matmul shapes of attention on a 32-row block and the exp used by their
// softmax. The operand layouts are described in cpu_attention_amx.c. Internal
// to kernels/cpu; every caller has checked cpu_has_amx() and configured the
// tiles as 16 rows x 64 bytes.
#pragma once
#include "kernels/cpu/cpu_amx.h"
#include <stddef.h>

#define AMX_ATT_KB 32   // keys per tile step

// S [rows, Tp] fp32 = q [rows, hd] bf16 x k^T, two 16-row halves when two.
__attribute__((target(AMX_TARGET))) static inline void tiles_qk(float *s, const uint16_t *q, const uint32_t *kp, int Tp,
                                                          int hd, int two) {
    const int hp = hd / 2;
    for (int j = 0; j < Tp; j += AMX_ATT_KB) {
        const uint32_t *k0 = kp + (size_t)(j / 16) * hp * 16, *k1 = k0 + (size_t)hp * 16;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int d = 0; d < hd; d += 32) {
            _tile_loadd(4, q + d, hd * 2);
            _tile_loadd(6, k0 + (size_t)d / 2 * 16, 64);
            _tile_loadd(7, k1 + (size_t)d / 2 * 16, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            if (two) {
                _tile_loadd(5, q + 16 * hd + d, hd * 2);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
        }
        _tile_stored(0, s + j, Tp * 4);
        _tile_stored(1, s + j + 16, Tp * 4);
        if (two) {
            _tile_stored(2, s + (size_t)16 * Tp + j, Tp * 4);
            _tile_stored(3, s + (size_t)16 * Tp + j + 16, Tp * 4);
        }
    }
}

// O [rows, hd] fp32 = P [rows, Tp] bf16 x v.
__attribute__((target(AMX_TARGET))) static inline void tiles_pv(float *o, const uint16_t *p, const uint16_t *vp, int Tp,
                                                          int hd, int two) {
    const size_t blk = (size_t)Tp / 2 * 32;
    for (int d = 0; d < hd; d += 32) {
        const uint16_t *v0 = vp + (size_t)(d / 16) * blk, *v1 = v0 + blk;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int j = 0; j < Tp; j += AMX_ATT_KB) {
            _tile_loadd(4, p + j, Tp * 2);
            _tile_loadd(6, v0 + (size_t)j / 2 * 32, 64);
            _tile_loadd(7, v1 + (size_t)j / 2 * 32, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            if (two) {
                _tile_loadd(5, p + (size_t)16 * Tp + j, Tp * 2);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
        }
        _tile_stored(0, o + d, hd * 4);
        _tile_stored(1, o + d + 16, hd * 4);
        if (two) {
            _tile_stored(2, o + (size_t)16 * hd + d, hd * 4);
            _tile_stored(3, o + (size_t)16 * hd + d + 16, hd * 4);
        }
    }
}

// 2^t for t <= 0: t = n + f with n = round(t), |f| <= 1/2 exact, a degree-5
// minimax polynomial for 2^f (relative error 7.5e-8, 2.3e-7 evaluated in
// fp32 -- fp32's own rounding scale, far below bf16's 2e-3), times 2^n by
// vscalefps (a very negative t gives 0). The softmax's scale and log2(e) are
// folded into one fused multiply-subtract before this, so the kernel's hottest
// loop is 9 vector ops per 16 scores instead of exp512's 15; the score itself
// is rounded once to fp32 either way, so nothing is lost.
__attribute__((target(AMX_TARGET))) static inline __m512 exp2_nonpos(__m512 t) {
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(0.00132764713f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.00967554096f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.0555071309f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.240221202f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.693146944f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.00000012f));
    return _mm512_scalef_ps(p, n);
}

