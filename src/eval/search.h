// Exact k-nearest-neighbour search by cosine similarity: what faiss's flat
// inner-product index returns on L2-normalised features, for serving the
// embeddings `ufo embed` writes (a product gallery, a face database, ...).
//
// Precision contract: the evaluation metrics' (nn_internal.h). Features are
// L2-normalised in double and stored as fp32; a pair's similarity is their
// inner product in double; neighbours are ranked by it, ties by the smaller
// gallery index. An fp32 screen (a GEMM on the CPU, or the GPU's when one is
// installed with ufo_metrics_set_screen) finds each query's k-th best
// screened value t; only gallery items screened within 2 eps of t or above
// can be in the exact top k (eps: ufo_nn_eps, the screen's error bound), and
// only those are recomputed in double. So the result is that of a full
// double-precision similarity matrix, at fp32 GEMM speed, in blocks of
// queries (~256 MB of similarities at a time).
#pragma once
#include <stdint.h>

// query [nq, d], gallery [ng, d] (fp32, rows need not be normalised; a row
// with a non-finite value is an error naming it). self = 1: query and
// gallery are the same set (query may be the gallery pointer) and query i
// never gets gallery row i. 1 <= k <= ng - self. Writes idx [nq, k] (gallery
// rows, best first) and sim [nq, k] (their cosine similarities, rounded to
// fp32). progress: print a progress line (queries/s, ETA) on stderr when
// the search is long (more than a block of queries). 0, or -1 with
// ufo_error set.
int ufo_knn_search(const float *query, int64_t nq, const float *gallery, int64_t ng, int d, int k, int self,
                   int progress, int64_t *idx, float *sim);
