// Face verification, insightface's protocol (SPEC section 5): pairs
// (2i, 2i+1), L2-normalised in double, squared Euclidean distance in double,
// thresholds t_k = k * 0.01 (k = 0..399, np.arange(0, 4, 0.01) bit for bit),
// "same" iff d < t; nfolds contiguous unshuffled folds (sklearn KFold: the
// first P % nfolds folds one larger; nfolds = 1 trains and tests on all pairs,
// like insightface's LFold); on the other folds the first threshold of highest
// accuracy is chosen and the held-out fold scored at it.
#pragma once
#include <stdint.h>

#define UFO_VERIFY_NTHRESH 400

typedef struct {
    double accuracy;         // mean of the fold accuracies, percent
    double accuracy_std;     // population std (np.std) of the fold accuracies, percent
    double threshold;        // mean over folds of the chosen threshold
    int num_pairs, num_same;
    int nfolds;
    double *fold_accuracy;   // [nfolds] percent
    double *fold_threshold;  // [nfolds]
    int nthresholds;         // UFO_VERIFY_NTHRESH
    double *thresholds;      // [nthresholds] t_k
    double *tpr, *fpr;       // [nthresholds] over all pairs (fractions; 0 when undefined), for a ROC plot
} ufo_verify_result;

// feats: [2P, D] fp32, pair i = rows 2i and 2i+1; issame[P] 0/1.
// Errors (one line, -1): P < 1, D < 1, nfolds < 1, nfolds > P, non-finite features.
int ufo_verify_eval(const float *feats, const uint8_t *issame, int P, int D, int nfolds, ufo_verify_result *r);
void ufo_verify_result_free(ufo_verify_result *r);   // frees the arrays, zeroes r
