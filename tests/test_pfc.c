// Partial-FC class sampling (src/train/pfc.h):
//   - the kept set of many random batches (class counts 1..300, rates 0.01..1,
//     batches with few and with more positives than the rate keeps) is
//     ascending, in range, without repeats, holds every label, and has
//     max(positives, ceil(rate * C)) classes (ceil of the exact decimal
//     product: 0.1 x 30 keeps 3, 0.25 x 10 keeps 3);
//   - the draw is a function of (seed, step, task, labels): the same call
//     gives the same set, another step / seed / task another one, and the
//     order of the labels does not matter;
//   - negatives are uniform: over 4000 steps each of the 18 negatives of a
//     20-class head with 2 positives at rate 0.5 is kept 8/18 of the time
//     (within 5 standard deviations), and the pair counts show no bias either;
//   - rate 1 keeps every class, and ufo_pfc_cosface over every class is
//     ufo_cosface bit for bit (loss, d features, d W);
//   - a class outside [0, C) is an error.
// tests/py/test_pfc_torch.py checks the sampled CosFace against PyTorch.
#include "check.h"
#include "base/error.h"
#include "base/rng.h"
#include "train/pfc.h"
#include <stdlib.h>
#include <string.h>

static void properties(void) {
    static const double rates[] = {0.01, 0.1, 0.2, 0.25, 0.5, 0.9, 1.0};
    ufo_rng r;
    ufo_rng_seed(&r, 7);
    int *kept = malloc(sizeof(int) * 300), bad = 0, cases = 0;
    int32_t labels[64];
    unsigned char seen[300];
    for (int C = 1; C <= 300; C += (C < 20 ? 1 : 37))
        for (size_t ri = 0; ri < sizeof rates / sizeof rates[0]; ri++)
            for (int trial = 0; trial < 6; trial++) {
                int n = 1 + (int)(ufo_rng_uniform(&r) * (trial < 3 ? 4 : 64));
                int span = trial % 2 ? C : (C < 3 ? C : 3);   // few distinct labels, or many
                memset(seen, 0, sizeof seen);
                int pos = 0;
                for (int i = 0; i < n; i++) {
                    labels[i] = (int32_t)(ufo_rng_uniform(&r) * span);
                    pos += !seen[labels[i]];
                    seen[labels[i]] = 1;
                }
                int k = ufo_pfc_sample(C, rates[ri], labels, n, 3, trial, 1, kept);
                int want = (int)ceil(rates[ri] * C - 1e-9);
                want = want < pos ? pos : want > C ? C : want;
                int ok = k == want;
                for (int j = 0; j < k && ok; j++) ok = kept[j] >= 0 && kept[j] < C && (j == 0 || kept[j] > kept[j - 1]);
                for (int i = 0; i < n && ok; i++) {
                    int found = 0;
                    for (int j = 0; j < k; j++) found |= kept[j] == labels[i];
                    ok = found;
                }
                bad += !ok;
                cases++;
                if (!ok) fprintf(stderr, "C %d rate %g n %d pos %d: kept %d, want %d\n", C, rates[ri], n, pos, k, want);
            }
    CHECK(bad == 0, "%d of %d random batches: kept set not ascending / in range / with every label / of size "
                    "max(positives, ceil(rate C))", bad, cases);
    CHECK(ufo_pfc_keep_count(30, 0.1, 1) == 3 && ufo_pfc_keep_count(10, 0.25, 1) == 3 &&
              ufo_pfc_keep_count(93431, 0.1, 5) == 9344 && ufo_pfc_keep_count(10, 0.5, 7) == 7 &&
              ufo_pfc_keep_count(10, 1.0, 1) == 10,
          "keep counts: 0.1 x 30 -> 3, 0.25 x 10 -> 3, 0.1 x 93431 -> 9344, positives win, rate 1 -> all");
    free(kept);
}

static int same(const int *a, int na, const int *b, int nb) { return na == nb && !memcmp(a, b, sizeof(int) * na); }

static void determinism(void) {
    int a[200], b[200], na, nb;
    int32_t y[8] = {5, 17, 5, 99, 150, 3, 17, 0}, yr[8] = {0, 17, 3, 150, 99, 5, 17, 5};
    na = ufo_pfc_sample(200, 0.2, y, 8, 42, 10, 0, a);
    nb = ufo_pfc_sample(200, 0.2, y, 8, 42, 10, 0, b);
    CHECK(same(a, na, b, nb) && na == 40, "the same (seed, step, task, labels): the same 40 classes");
    nb = ufo_pfc_sample(200, 0.2, yr, 8, 42, 10, 0, b);
    CHECK(same(a, na, b, nb), "the labels' order does not matter");
    nb = ufo_pfc_sample(200, 0.2, y, 8, 42, 11, 0, b);
    CHECK(!same(a, na, b, nb), "the next step draws another set");
    nb = ufo_pfc_sample(200, 0.2, y, 8, 43, 10, 0, b);
    CHECK(!same(a, na, b, nb), "another seed draws another set");
    nb = ufo_pfc_sample(200, 0.2, y, 8, 42, 10, 1, b);
    CHECK(!same(a, na, b, nb), "another task draws another set");
    int32_t badl[2] = {3, 200};
    CHECK(ufo_pfc_sample(200, 0.2, badl, 2, 42, 10, 0, b) < 0 && strstr(ufo_error(), "label 200"),
          "a label outside [0, C) is an error: %s", ufo_error());
}

static void uniform_negatives(void) {
    enum { C = 20, STEPS = 4000 };
    int kept[C], count[C] = {0}, pair01 = 0, pair_far = 0;
    int32_t y[3] = {4, 11, 4};
    for (long s = 0; s < STEPS; s++) {
        int k = ufo_pfc_sample(C, 0.5, y, 3, 9, s, 0, kept);
        int in[C] = {0};
        for (int j = 0; j < k; j++) count[kept[j]]++, in[kept[j]] = 1;
        pair01 += in[0] && in[1];
        pair_far += in[2] && in[19];
    }
    // 10 kept: 2 positives + 8 of the 18 negatives.
    double p = 8.0 / 18, sd = sqrt(STEPS * p * (1 - p)), worst = 0;
    for (int c = 0; c < C; c++)
        if (c != 4 && c != 11) worst = fmax(worst, fabs(count[c] - STEPS * p) / sd);
    CHECK(count[4] == STEPS && count[11] == STEPS, "positives always kept");
    CHECK(worst < 5, "each negative kept %.0f of %d times, worst %.2f sd off", STEPS * p, STEPS, worst);
    double pp = p * 7.0 / 17, psd = sqrt(STEPS * pp * (1 - pp));   // both of two negatives
    CHECK(fabs(pair01 - STEPS * pp) < 5 * psd && fabs(pair_far - STEPS * pp) < 5 * psd,
          "pairs of negatives kept together %d, %d times (expected %.0f)", pair01, pair_far, STEPS * pp);
}

static void rate_one_is_cosface(void) {
    enum { N = 9, D = 12, NC = 23 };
    float f[N * D], W[NC * D], df1[N * D], df2[N * D], dW1[NC * D] = {0}, dW2[NC * D] = {0};
    int32_t y[N];
    int kept[NC];
    ufo_rng r;
    ufo_rng_seed(&r, 1);
    for (int i = 0; i < N * D; i++) f[i] = (float)ufo_rng_normal(&r);
    for (int i = 0; i < NC * D; i++) W[i] = (float)ufo_rng_normal(&r);
    for (int i = 0; i < N; i++) y[i] = (int32_t)((i * 5) % NC);
    int k = ufo_pfc_sample(NC, 1.0, y, N, 0, 0, 0, kept);
    CHECK(k == NC, "rate 1 keeps all %d classes (got %d)", NC, k);
    ufo_cosface_opts o = {.s = 30, .m = 0.2f};
    ufo_cosface_result a, b;
    CHECK(ufo_cosface(f, W, y, N, D, NC, &o, df1, dW1, &a) == 0, "%s", ufo_error());
    CHECK(ufo_pfc_cosface(f, W, y, N, D, NC, &o, kept, k, df2, dW2, &b) == 0, "%s", ufo_error());
    CHECK(a.loss == b.loss && a.correct == b.correct && !memcmp(df1, df2, sizeof df1) && !memcmp(dW1, dW2, sizeof dW1),
          "every class kept: ufo_pfc_cosface == ufo_cosface bit for bit");
}

int main(void) {
    properties();
    determinism();
    uniform_negatives();
    rate_one_is_cosface();
    return check_summary("pfc");
}
