#include "base/rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ufo_rng_seed(ufo_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ufo_rng_next(ufo_rng *r) {
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ufo_rng_uniform(ufo_rng *r) { return (ufo_rng_next(r) >> 11) * 0x1.0p-53; }

double ufo_rng_normal(ufo_rng *r) {
    double u1 = ufo_rng_uniform(r), u2 = ufo_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

double ufo_rng_trunc_normal(ufo_rng *r, double std) {
    for (;;) {
        double v = ufo_rng_normal(r);
        if (v >= -2.0 && v <= 2.0) return v * std;
    }
}
