// Features for the kNN metric tests (tests/test_metrics_screen.c,
// tests/cuda/test_cuda_knn.c): items around a few prototypes with exact and
// near ties, some labelled with another identity than their prototype's.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t knn_rng = 0x9e3779b97f4a7c15ull;
static double knn_urand(void) {   // xorshift64*, [0, 1)
    knn_rng ^= knn_rng >> 12;
    knn_rng ^= knn_rng << 25;
    knn_rng ^= knn_rng >> 27;
    return (double)((knn_rng * 2685821657736338717ull) >> 11) * 0x1.0p-53;
}
static double knn_nrand(void) { return sqrt(-2 * log(knn_urand() + 1e-300)) * cos(2 * M_PI * knn_urand()); }

// n items of D dims around P prototypes: exact copies, 1-ulp nudges, scaled
// copies (equal after normalisation up to rounding), 1e-6 and 1e-3 jitter,
// ordinary spread; a quarter of them labelled with another identity than
// their prototype's, so hits and non-hits tie or nearly tie.
static void knn_make_items(int n, int D, int P, float *x, int *label, int *cam) {
    float *proto = malloc(sizeof(float) * P * D);
    for (int i = 0; i < P * D; i++) proto[i] = (float)knn_nrand();
    for (int i = 0; i < n; i++) {
        int c = (int)(knn_urand() * P), kind = (int)(knn_urand() * 6);
        float *v = x + (size_t)i * D;
        for (int k = 0; k < D; k++) {
            float p = proto[c * D + k];
            switch (kind) {
            case 0: v[k] = p; break;
            case 1: v[k] = k == i % D ? nextafterf(p, INFINITY) : p; break;
            case 2: v[k] = p * 1.0000001f; break;
            case 3: v[k] = p + (float)(1e-6 * knn_nrand()); break;
            case 4: v[k] = p + (float)(1e-3 * knn_nrand()); break;
            default: v[k] = p + (float)(0.3 * knn_nrand()); break;
            }
        }
        label[i] = knn_urand() < 0.25 ? (int)(knn_urand() * P) : c;
        cam[i] = (int)(knn_urand() * 4);
    }
    free(proto);
}
