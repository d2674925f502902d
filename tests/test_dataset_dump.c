// Dumps a loaded evaluation set as JSON lines, for tests/py/test_datasets_tree.py
// (which compares it with what tools/make_eval_tree.py wrote).
//
//   test_dataset_dump                      a trivial self-check (run by CTest)
//   test_dataset_dump NAME ROOT [--face-bin | --face-filelist] [--msmt 1|2] [--split SEED]...
//
// Output: {"name", "kind", "n", "n_query", "source", "has_paths", "has_blobs"} then one
// line per image {"i", "path" | "blob_size" + "blob_fnv", "pid", "camid"} (no pid/camid
// for face sets), then {"issame": [...]} for face sets, then for each --split SEED
// {"split_seed", "n_query", "order"}. Errors: "error: <message>" on stderr, exit 1.
#include "base/error.h"
#include "check.h"
#include "data/dataset.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_obj(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        puts(s);
        free(s);
    }
    cJSON_Delete(o);
}

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int self_check(void) {
    int n = 0;
    const char *const *names = ufo_eval_set_names(&n);
    CHECK(n == 12);
    CHECK(strcmp(names[0], "CALFW") == 0 && strcmp(names[11], "SOP") == 0);
    CHECK(ufo_eval_set_find("agedb_30") == 5);
    CHECK(ufo_eval_set_find("nope") == -1);
    CHECK(strcmp(ufo_eval_kind_name(UFO_EVAL_REID), "reid") == 0);
    ufo_eval_set s;
    CHECK(ufo_eval_set_load("nope", "/", NULL, &s) == -1 && strstr(ufo_error(), "unknown evaluation set"));
    return check_summary("dataset_dump self-check");
}

int main(int argc, char **argv) {
    if (argc < 3) return self_check();
    ufo_eval_opts o = {0};
    uint64_t seeds[64];
    int n_seeds = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--face-bin")) o.face_source = UFO_FACE_BIN;
        else if (!strcmp(argv[i], "--face-filelist")) o.face_source = UFO_FACE_FILELIST;
        else if (!strcmp(argv[i], "--msmt") && i + 1 < argc) o.msmt_version = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--split") && i + 1 < argc && n_seeds < 64)
            seeds[n_seeds++] = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "error: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    ufo_eval_set s;
    if (ufo_eval_set_load(argv[1], argv[2], &o, &s) != 0) {
        fprintf(stderr, "error: %s\n", ufo_error());
        return 1;
    }
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "name", s.name);
    cJSON_AddStringToObject(h, "kind", ufo_eval_kind_name(s.kind));
    cJSON_AddNumberToObject(h, "n", s.n);
    cJSON_AddNumberToObject(h, "n_query", s.n_query);
    cJSON_AddStringToObject(h, "source", s.source ? s.source : "");
    cJSON_AddBoolToObject(h, "has_paths", s.paths != NULL);
    cJSON_AddBoolToObject(h, "has_blobs", s.blobs != NULL);
    print_obj(h);
    for (int i = 0; i < s.n; i++) {
        cJSON *o1 = cJSON_CreateObject();
        cJSON_AddNumberToObject(o1, "i", i);
        if (s.paths) cJSON_AddStringToObject(o1, "path", s.paths[i]);
        if (s.blobs) {
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(s.blobs[i], s.blob_sizes[i]));
            cJSON_AddNumberToObject(o1, "blob_size", (double)s.blob_sizes[i]);
            cJSON_AddStringToObject(o1, "blob_fnv", hex);
        }
        if (s.pid) cJSON_AddNumberToObject(o1, "pid", s.pid[i]);
        if (s.camid) cJSON_AddNumberToObject(o1, "camid", s.camid[i]);
        print_obj(o1);
    }
    if (s.issame) {
        cJSON *o2 = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(o2, "issame");
        for (int i = 0; i < s.n / 2; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(s.issame[i]));
        print_obj(o2);
    }
    int rc = 0;
    for (int k = 0; k < n_seeds; k++) {
        int *order = malloc((size_t)(s.n > 0 ? s.n : 1) * sizeof *order), nq = 0;
        if (!order || ufo_vehicleid_split(&s, seeds[k], order, &nq) != 0) {
            fprintf(stderr, "error: %s\n", order ? ufo_error() : "out of memory");
            free(order);
            rc = 1;
            break;
        }
        cJSON *o3 = cJSON_CreateObject();
        cJSON_AddNumberToObject(o3, "split_seed", (double)seeds[k]);
        cJSON_AddNumberToObject(o3, "n_query", nq);
        cJSON *a = cJSON_AddArrayToObject(o3, "order");
        for (int i = 0; i < s.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(order[i]));
        print_obj(o3);
        free(order);
    }
    ufo_eval_set_free(&s);
    return rc;
}
