#include "eval/report.h"
#include "base/error.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *ufo_report_column(const char *dataset) {
    static const char *cols[] = {"CALFW", "CPLFW", "LFW", "CFP-FF", "CFP-FP", "AGEDB-30", "Market1501",
                                 "MSMT17", "Veri776", "VehicleID", "VeriWild", "SOP"};
    int i = ufo_eval_set_find(dataset);
    return i >= 0 ? cols[i] : dataset;
}

static void cell(char *buf, size_t cap, const ufo_eval_result *r) {
    switch (r->kind) {
    case UFO_EVAL_VERIFY: snprintf(buf, cap, "%.2f", r->verify.accuracy); break;
    case UFO_EVAL_REID: snprintf(buf, cap, "%.2f/%.2f", r->reid.rank1, r->reid.mAP); break;
    case UFO_EVAL_RETRIEVAL: snprintf(buf, cap, "%.2f", r->recall.recall[0]); break;
    }
}

void ufo_report_table(FILE *out, const ufo_report_info *info, const ufo_eval_result *r, int n) {
    const char *slash = strrchr(info->model, '/');
    char model[512];   // the file's name, and "+ flip" when the features had the test-time flip
    snprintf(model, sizeof model, "%s%s", slash ? slash + 1 : info->model, info->flip ? " + flip" : "");
    static const char dashes[] = "----------------------------------------------------------------";
    int w0 = (int)strlen(model) > 5 ? (int)strlen(model) : 5;
    char (*cells)[64] = malloc(sizeof *cells * (n > 0 ? n : 1));
    int *w = malloc(sizeof *w * (n > 0 ? n : 1));
    if (!cells || !w) {
        free(cells);
        free(w);
        return;
    }
    for (int i = 0; i < n; i++) {
        cell(cells[i], sizeof cells[i], &r[i]);
        int a = (int)strlen(cells[i]), b = (int)strlen(ufo_report_column(r[i].name));
        w[i] = a > b ? a : b;
    }
    fprintf(out, "| %-*s |", w0, "Model");
    for (int i = 0; i < n; i++) fprintf(out, " %-*s |", w[i], ufo_report_column(r[i].name));
    fprintf(out, "\n| %.*s |", w0, dashes);
    for (int i = 0; i < n; i++) fprintf(out, " %.*s |", w[i], dashes);
    fprintf(out, "\n| %-*s |", w0, model);
    for (int i = 0; i < n; i++) fprintf(out, " %-*s |", w[i], cells[i]);
    fprintf(out, "\n");
    free(cells);
    free(w);
}

void ufo_report_details(FILE *out, const ufo_eval_result *r, int n) {
    for (int i = 0; i < n; i++) {
        const ufo_eval_result *x = &r[i];
        fprintf(out, "%-14s %-8s ", x->name, vit_task_name(x->task));
        switch (x->kind) {
        case UFO_EVAL_VERIFY:
            fprintf(out, "accuracy %.2f +- %.2f  threshold %.3f  (%d pairs)", x->verify.accuracy,
                    x->verify.accuracy_std, x->verify.threshold, x->verify.num_pairs);
            break;
        case UFO_EVAL_REID:
            fprintf(out, "R1 %.2f  R5 %.2f  R10 %.2f  mAP %.2f  mINP %.2f  (%d query / %d gallery", x->reid.rank1,
                    x->reid.rank5, x->reid.rank10, x->reid.mAP, x->reid.mINP, x->reid.num_query, x->reid.num_gallery);
            if (x->splits) fprintf(out, ", mean of %d splits, seed %llu", x->splits, (unsigned long long)x->seed);
            fprintf(out, ")");
            break;
        case UFO_EVAL_RETRIEVAL:
            for (int k = 0; k < x->recall.nk; k++) fprintf(out, "R@%d %.2f  ", x->recall.k[k], x->recall.recall[k]);
            fprintf(out, "(%d images)", x->recall.n);
            break;
        }
        fprintf(out, "  [%d images, %s%.1f s]\n", x->num_images, x->from_cache ? "cached, " : "", x->embed_seconds);
    }
}

static cJSON *result_json(const ufo_eval_result *x) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "head", vit_task_name(x->task));
    cJSON_AddNumberToObject(o, "num_images", x->num_images);
    switch (x->kind) {
    case UFO_EVAL_VERIFY:
        cJSON_AddNumberToObject(o, "accuracy", x->verify.accuracy);
        cJSON_AddNumberToObject(o, "accuracy_std", x->verify.accuracy_std);
        cJSON_AddNumberToObject(o, "threshold", x->verify.threshold);
        cJSON_AddNumberToObject(o, "num_pairs", x->verify.num_pairs);
        break;
    case UFO_EVAL_REID:
        cJSON_AddNumberToObject(o, "rank1", x->reid.rank1);
        cJSON_AddNumberToObject(o, "rank5", x->reid.rank5);
        cJSON_AddNumberToObject(o, "rank10", x->reid.rank10);
        cJSON_AddNumberToObject(o, "mAP", x->reid.mAP);
        cJSON_AddNumberToObject(o, "mINP", x->reid.mINP);
        cJSON_AddNumberToObject(o, "num_query", x->reid.num_query);
        cJSON_AddNumberToObject(o, "num_gallery", x->reid.num_gallery);
        cJSON_AddNumberToObject(o, "num_valid_query", x->reid.num_valid);
        if (x->splits) {
            cJSON_AddNumberToObject(o, "splits", x->splits);
            cJSON_AddNumberToObject(o, "split_seed", (double)x->seed);
        }
        break;
    case UFO_EVAL_RETRIEVAL:
        for (int k = 0; k < x->recall.nk; k++) {
            char key[32];
            snprintf(key, sizeof key, "recall@%d", x->recall.k[k]);
            cJSON_AddNumberToObject(o, key, x->recall.recall[k]);
        }
        break;
    }
    return o;
}

static int write_text(const char *path, const char *text) {
    ufo_atomic_file f;
    if (ufo_atomic_open(&f, path)) return -1;
    if (ufo_atomic_write(&f, text, strlen(text))) {
        ufo_atomic_abort(&f);
        return -1;
    }
    return ufo_atomic_commit(&f);
}

int ufo_report_json(const char *path, const ufo_report_info *info, const ufo_eval_result *r, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", info->model);
    cJSON_AddStringToObject(root, "precision", info->precision);
    cJSON_AddNumberToObject(root, "seed", (double)info->seed);
    cJSON_AddBoolToObject(root, "flip", info->flip);
    cJSON_AddStringToObject(root, "ufo_version", UFO_VERSION);
    for (int i = 0; i < n; i++) cJSON_AddItemToObject(root, r[i].name, result_json(&r[i]));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return ufo_errorf("%s: out of memory", path);
    size_t len = strlen(text);
    char *withnl = realloc(text, len + 2);
    if (!withnl) {
        free(text);
        return ufo_errorf("out of memory");
    }
    strcpy(withnl + len, "\n");
    int rc = write_text(path, withnl);
    free(withnl);
    return rc;
}

int ufo_report_csv(const char *path, const ufo_eval_result *r, int n) {
    size_t cap = 4096 + (size_t)n * 512, len = 0;
    char *buf = malloc(cap);
    if (!buf) return ufo_errorf("out of memory");
    len += snprintf(buf + len, cap - len,
                    "dataset,head,num_images,accuracy,accuracy_std,threshold,rank1,rank5,rank10,mAP,mINP,"
                    "num_query,num_gallery,recall@1,recall@10,recall@100,recall@1000\n");
    for (int i = 0; i < n; i++) {
        const ufo_eval_result *x = &r[i];
        len += snprintf(buf + len, cap - len, "%s,%s,%d,", x->name, vit_task_name(x->task), x->num_images);
        if (x->kind == UFO_EVAL_VERIFY)
            len += snprintf(buf + len, cap - len, "%.10g,%.10g,%.10g,", x->verify.accuracy, x->verify.accuracy_std,
                            x->verify.threshold);
        else len += snprintf(buf + len, cap - len, ",,,");
        if (x->kind == UFO_EVAL_REID)
            len += snprintf(buf + len, cap - len, "%.10g,%.10g,%.10g,%.10g,%.10g,%d,%d,", x->reid.rank1, x->reid.rank5,
                            x->reid.rank10, x->reid.mAP, x->reid.mINP, x->reid.num_query, x->reid.num_gallery);
        else len += snprintf(buf + len, cap - len, ",,,,,,,");
        for (int k = 0; k < 4; k++)
            if (x->kind == UFO_EVAL_RETRIEVAL && k < x->recall.nk)
                len += snprintf(buf + len, cap - len, "%.10g%s", x->recall.recall[k], k < 3 ? "," : "");
            else len += snprintf(buf + len, cap - len, "%s", k < 3 ? "," : "");
        len += snprintf(buf + len, cap - len, "\n");
    }
    int rc = write_text(path, buf);
    free(buf);
    return rc;
}
