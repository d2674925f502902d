// Product retrieval Recall@K, leave-one-out (SPEC section 5, SOP): every item
// is a query against all the others (itself excluded by index); similarity =
// inner product of L2-normalised features, ranked descending, ties by index;
// Recall@K = percent of queries whose best-ranked same-label item is within
// the first K. A query whose label has no other item always misses (it counts
// in the denominator).
//
// Precision: as eval/nn_internal.h (double-precision similarities of the
// fp32-rounded normalised features, decided through an fp32 GEMM screen).
// Cost: the symmetric half of the N x N similarities in blocks of rows (about
// 256 MB each), never the full matrix, no sorting; plus sum over labels of
// (class size)^2 double inner products to find each query's best match.
#pragma once

#define UFO_RECALL_MAXK 8

typedef struct {
    int n;                           // queries (= items)
    int num_no_match;                // queries whose label has no other item
    int nk;
    int k[UFO_RECALL_MAXK];
    double recall[UFO_RECALL_MAXK];  // percent, recall[i] at k[i]
} ufo_recall_result;

// feats [n, D] fp32, labels [n]. ks: nk values (each >= 1, nk <= UFO_RECALL_MAXK),
// or NULL / nk = 0 for {1, 10, 100, 1000}. Errors (one line, -1): n < 1, D < 1,
// bad ks, non-finite features, out of memory.
int ufo_recall_eval(const float *feats, const int *labels, int n, int D, const int *ks, int nk, ufo_recall_result *r);
