// One evaluation set, end to end: read it, embed it with its task head,
// score it with its protocol (SPEC section 5).
#pragma once
#include "data/dataset.h"
#include "dist/comm.h"
#include "eval/embed_set.h"
#include "eval/metrics.h"
#include "model/vit.h"

typedef struct {
    char name[32];
    ufo_eval_kind kind;
    int task;                 // head used (UFO_TASK_*), -1 = backbone
    int num_images;
    double embed_seconds;
    int from_cache;
    ufo_verify_result verify; // VERIFY
    ufo_reid_result reid;     // REID; LargeVehicleID: mean over the splits
    int splits;               // LargeVehicleID
    uint64_t seed;            // LargeVehicleID: seed of the first split
    ufo_recall_result recall; // RETRIEVAL
} ufo_eval_result;

typedef struct {
    const char *root;         // FASTREID_DATASETS
    ufo_eval_opts data;
    ufo_embed_opts embed;
    int vehicleid_splits;     // >= 1
    uint64_t seed;
    // Several ranks (mpirun): each embeds its ufo_comm_split share of the
    // images (no feature cache then), rank 0 gathers the features and alone
    // scores; the other ranks return a result with no metrics. NULL: alone.
    ufo_comm *comm;
} ufo_evaluate_opts;

// The head the released evaluation uses for a dataset (SPEC section 1):
// face sets -> face, the five ReID sets -> vehicle (yes, person sets too), SOP -> product.
int ufo_default_task(const char *dataset);
int ufo_evaluate(vit_model *m, const char *dataset, int task, const ufo_evaluate_opts *o, ufo_eval_result *r);
void ufo_eval_result_free(ufo_eval_result *r);
