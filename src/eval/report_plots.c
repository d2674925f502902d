// PNG plots of evaluation results: CMC curves of the ReID sets and ROC curves
// of the face sets, one file per set plus one overlaying all of each kind.
#include "base/error.h"
#include "eval/report.h"
#include "report/plot.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int plot_cmc(const char *path, const char *title, const ufo_eval_result *const *r, int n) {
    ufo_plot_series s[UFO_PLOT_MAX_SERIES];
    double *x = malloc(sizeof(double) * 50);
    if (!x) return ufo_errorf("out of memory");
    for (int k = 0; k < 50; k++) x[k] = k + 1;
    int m = 0;
    for (int i = 0; i < n && m < UFO_PLOT_MAX_SERIES; i++, m++) {
        s[m] = (ufo_plot_series){r[i]->name, x, r[i]->reid.cmc, r[i]->reid.max_rank < 50 ? r[i]->reid.max_rank : 50};
    }
    ufo_plot_opts o = {.title = title, .xlabel = "rank", .ylabel = "matching rate (%)"};
    int rc = ufo_plot_lines(path, &o, s, m);
    free(x);
    return rc;
}

static int plot_roc(const char *path, const char *title, const ufo_eval_result *const *r, int n) {
    ufo_plot_series s[UFO_PLOT_MAX_SERIES];
    int m = 0;
    for (int i = 0; i < n && m < UFO_PLOT_MAX_SERIES; i++, m++)
        s[m] = (ufo_plot_series){r[i]->name, r[i]->verify.fpr, r[i]->verify.tpr, r[i]->verify.nthresholds};
    ufo_plot_opts o = {.title = title, .xlabel = "false positive rate", .ylabel = "true positive rate",
                       .log_x = 1, .ymin = 0, .ymax = 1.02};
    return ufo_plot_lines(path, &o, s, m);
}

int ufo_report_plots(const char *dir, const ufo_eval_result *r, int n) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return ufo_errorf("%s: cannot create: %s", dir, strerror(errno));
    const ufo_eval_result *reid[16], *face[16];
    int nr = 0, nf = 0;
    char path[1200], title[96];
    for (int i = 0; i < n; i++) {
        const ufo_eval_result *x = &r[i];
        if (x->kind == UFO_EVAL_REID && x->reid.cmc && nr < 16) {
            reid[nr++] = x;
            snprintf(path, sizeof path, "%s/%s_cmc.png", dir, x->name);
            snprintf(title, sizeof title, "%s CMC (R1 %.2f, mAP %.2f)", x->name, x->reid.rank1, x->reid.mAP);
            if (plot_cmc(path, title, &x, 1)) return -1;
        } else if (x->kind == UFO_EVAL_VERIFY && x->verify.tpr && nf < 16) {
            face[nf++] = x;
            snprintf(path, sizeof path, "%s/%s_roc.png", dir, x->name);
            snprintf(title, sizeof title, "%s ROC (accuracy %.2f)", x->name, x->verify.accuracy);
            if (plot_roc(path, title, &x, 1)) return -1;
        }
    }
    if (nr > 1) {
        snprintf(path, sizeof path, "%s/cmc_all.png", dir);
        if (plot_cmc(path, "CMC, re-identification sets", reid, nr)) return -1;
    }
    if (nf > 1) {
        snprintf(path, sizeof path, "%s/roc_all.png", dir);
        if (plot_roc(path, "ROC, face verification sets", face, nf)) return -1;
    }
    return 0;
}
