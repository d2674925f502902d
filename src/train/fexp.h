// A vectorisable expf for the loss kernels (private to src/train/).
//
// exp(x) for x <= 88 (larger x give exp(88)): x = k ln2 + r, |r| <= ln2/2, Cephes' expf polynomial for
// exp(r) (~1 ulp), times 2^k built in the exponent bits. Arguments below `lo`
// (pass train_fexp_lo(), -87) return exactly 0, -inf and NaN included
// (exp(-87) = 1.6e-38: nothing is lost where it is used, in sums whose largest
// term is ~1). Plain C on purpose: inside `#pragma omp simd` loops GCC
// vectorises it (libm's expf does not vectorise without -ffast-math).
//
// Why `lo` is a parameter: with a literal bound GCC constant-folds the clamped
// path, duplicates the loop body per path and then refuses to vectorise loops
// that store the result ("control flow in loop"). A bound the optimiser cannot
// see through keeps the body branch-free.
#pragma once
#include <stdint.h>
#include <string.h>

static inline float train_fexp_lo(void) {
    float lo = -87.0f;
    __asm__("" : "+g"(lo));   // opaque to the optimiser (see above)
    return lo;
}

static inline float train_fexp(float x, float lo) {
    float xc = x >= lo ? x : lo;          // NaN -> lo: the integer conversion below stays defined
    xc = xc <= 1.0f - lo ? xc : 1.0f - lo;   // <= 88: exp(88) = 1.65e38 is the largest result
    const float magic = 12582912.0f;   // 1.5 * 2^23: adding it rounds to an integer
    float kf = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + (r + 1.0f);
    int32_t bits = ((int32_t)kf + 127) << 23;
    bits &= -(int32_t)(x >= lo);   // 0.0f below the bound
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
