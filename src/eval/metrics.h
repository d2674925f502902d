// Evaluation metrics of SPEC section 5, one header per family:
//   eval/verify.h  10-fold face verification (insightface protocol)
//   eval/reid.h    re-identification CMC / mAP / mINP (fast-reid protocol)
//   eval/recall.h  SOP Recall@K, leave-one-out
#pragma once
#include "eval/recall.h"
#include "eval/reid.h"
#include "eval/verify.h"

// Query rows per block of the ReID / SOP similarity computations (0 = auto:
// about 256 MB of fp32 similarities per block). Results never depend on it;
// tests set it small to exercise the blocking. Also read from the environment
// variable UFO_METRICS_BLOCK when the setter was not used. Not thread-safe.
void ufo_metrics_set_block_rows(int rows);
