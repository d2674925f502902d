// Random and scratch float buffers for the kernel tests. Each test file
// defines TEST_RNG_SEED before including this, so its inputs stay its own
// (the tolerances were sized on them). Buffers abort on allocation failure:
// a test cannot go on without them.
#pragma once
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 0x9e3779b97f4a7c15ull
#endif

static uint64_t rng_state = TEST_RNG_SEED;
static inline float frand(void) {   // uniform [-1, 1), a 64-bit LCG's top bits
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}
static inline float *rand_buf(size_t n, float scale, float offset) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * frand();
    return p;
}
static inline float *zeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}
static inline float *copy_buf(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    memcpy(p, a, n * sizeof *p);
    return p;
}
