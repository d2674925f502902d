// AVX-512 helpers shared by the fast kernels (element-wise, forward and backward).
#pragma once
#include <immintrin.h>

// 1/d for d >= 1: vrcp14ps (relative error < 2^-14) and one Newton step
// (error ~2^-28, below fp32's rounding), instead of vdivps, whose throughput
// (one per 16 cycles) bounded the GELU loops.
__attribute__((target("avx512f"))) static inline __m512 recip512(__m512 d) {
    __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

// exp(x) to ~1 ulp: x = n ln2 + r, |r| <= ln2/2, Cephes' expf polynomial for
// exp(r), then scale by 2^n with vscalefps (which gets under/overflow right).
__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7228394f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// erfc(z) for z >= 0 as poly(t) exp(-z^2), t = 1/(1 + p z) (Abramowitz &
// Stegun 7.1.26, |error| <= 1.5e-7), returning poly(t) and exp(-z^2) apart:
// the exact-erf GELU and its derivative share them.
__attribute__((target("avx512f"))) static inline __m512 erfc_poly512(__m512 z, __m512 *e) {
    const __m512 one = _mm512_set1_ps(1.0f), p = _mm512_set1_ps(0.3275911f);
    const __m512 a1 = _mm512_set1_ps(0.254829592f), a2 = _mm512_set1_ps(-0.284496736f);
    const __m512 a3 = _mm512_set1_ps(1.421413741f), a4 = _mm512_set1_ps(-1.453152027f);
    const __m512 a5 = _mm512_set1_ps(1.061405429f);
    __m512 t = recip512(_mm512_fmadd_ps(p, z, one));
    __m512 q = _mm512_fmadd_ps(a5, t, a4);
    q = _mm512_fmadd_ps(q, t, a3);
    q = _mm512_fmadd_ps(q, t, a2);
    q = _mm512_fmadd_ps(q, t, a1);
    *e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), z), z));
    return _mm512_mul_ps(q, t);
}

// gelu'(x) = Phi(x) + x phi(x) for the exact erf GELU. With z = |x|/sqrt2 and
// e = exp(-z^2) = exp(-x^2/2):
//   Phi(x) = 1 - erfc(z)/2 (x >= 0), erfc(z)/2 (x < 0);  phi(x) = e / sqrt(2 pi).
__attribute__((target("avx512f"))) static inline __m512 gelu_grad512(__m512 xv) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    __m512 e, q = erfc_poly512(_mm512_mul_ps(_mm512_abs_ps(xv), _mm512_set1_ps(0.70710678118654752f)), &e);
    __m512 hc = _mm512_mul_ps(half, _mm512_mul_ps(q, e));   // erfc(z) / 2
    __mmask16 pos = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_GE_OQ);
    __m512 cdf = _mm512_mask_sub_ps(hc, pos, one, hc);
    return _mm512_fmadd_ps(_mm512_mul_ps(xv, _mm512_set1_ps(0.39894228040143268f)), e, cdf);
}

// gelu(x) = x/2 (1 + erf(x/sqrt2)), exact-erf GELU, with z = |x|/sqrt2:
//   x >= 0: x - x/2 erfc(z);   x < 0: x/2 erfc(z)   (no cancellation for x < 0).
__attribute__((target("avx512f"))) static inline __m512 gelu512(__m512 xv) {
    __m512 e, q = erfc_poly512(_mm512_mul_ps(_mm512_abs_ps(xv), _mm512_set1_ps(0.70710678118654752f)), &e);
    __m512 neg = _mm512_mul_ps(_mm512_mul_ps(xv, _mm512_set1_ps(0.5f)), _mm512_mul_ps(q, e));
    __mmask16 pos = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_GE_OQ);
    return _mm512_mask_sub_ps(neg, pos, xv, neg);
}
