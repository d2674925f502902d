// Seeded random numbers: xoshiro256** seeded by splitmix64. One stream per
// use site, so results never depend on thread scheduling.
#pragma once
#include <stdint.h>

typedef struct { uint64_t s[4]; } ufo_rng;

void ufo_rng_seed(ufo_rng *r, uint64_t seed);
uint64_t ufo_rng_next(ufo_rng *r);
double ufo_rng_uniform(ufo_rng *r);            // [0, 1)
double ufo_rng_normal(ufo_rng *r);             // N(0, 1), Box-Muller
// N(0, std^2) truncated to [-2 std, 2 std] by resampling (timm's trunc_normal_ init).
double ufo_rng_trunc_normal(ufo_rng *r, double std);
