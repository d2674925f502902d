// Re-identification metrics, fast-reid's evaluate_rank protocol (SPEC
// section 5): features L2-normalised, distance 1 - cosine; for each query
// the gallery ranked by distance (ties by gallery index), gallery items with
// the query's pid AND camid dropped; a query with no true match left is
// skipped. CMC@k, AP = (1/R) sum over hits i (0-based rank among kept items)
// of (hits up to i) / (i + 1), INP = R / (rank of the last hit + 1).
//
// Precision: see eval/nn_internal.h - the ranking is exactly that of the
// double-precision distances 1 - <q, g> between the fp32-rounded normalised
// features; an fp32 GEMM screens and undecidable comparisons are recomputed
// in double. Memory: the gallery's normalised copy plus one block of query
// rows x gallery similarities (about 256 MB); rows are never sorted.
#pragma once

typedef struct {
    double rank1, rank5, rank10;   // CMC@1, @5, @10, percent
    double mAP, mINP;              // percent
    int num_query, num_gallery;
    int num_valid;                 // queries with at least one true match (counted)
    int max_rank;
    double *cmc;                   // [max_rank], cmc[k - 1] = CMC@k in percent
} ufo_reid_result;

// qf [nq, D], gf [ng, D] fp32; pids / camids per row. max_rank >= 1 (50 in
// fast-reid). Errors (one line, -1): nq < 1, ng < 1, D < 1, max_rank < 1,
// non-finite features, no query with a true match, out of memory.
int ufo_reid_eval(const float *qf, const int *qpid, const int *qcam, int nq,
                  const float *gf, const int *gpid, const int *gcam, int ng,
                  int D, int max_rank, ufo_reid_result *r);
void ufo_reid_result_free(ufo_reid_result *r);   // frees cmc, zeroes r
