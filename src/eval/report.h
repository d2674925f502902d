// Reporting evaluation results: the seed's table on stdout, a detail line
// per set, JSON and CSV files (written atomically).
#pragma once
#include "eval/evaluate.h"
#include <stdio.h>

typedef struct {
    const char *model;       // model path as given
    const char *precision;   // "fp32" / "bf16"
    uint64_t seed;
    int flip;                // test-time flip (JSON "flip"; the table's header says so)
} ufo_report_info;

// The seed's table: one column per set (ReID cells "R1/mAP", SOP "R@1"), two decimals.
void ufo_report_table(FILE *out, const ufo_report_info *info, const ufo_eval_result *r, int n);
// One line per set with every metric.
void ufo_report_details(FILE *out, const ufo_eval_result *r, int n);
int ufo_report_json(const char *path, const ufo_report_info *info, const ufo_eval_result *r, int n);
int ufo_report_csv(const char *path, const ufo_eval_result *r, int n);
// PNG plots into dir (created if missing): <set>_cmc.png for ReID sets, <set>_roc.png for
// face sets, and cmc_all.png / roc_all.png overlaying them.
int ufo_report_plots(const char *dir, const ufo_eval_result *r, int n);
// The seed's column title of a set ("CFP-FF", "Veri776", ...).
const char *ufo_report_column(const char *dataset);
