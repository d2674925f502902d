// The table of the twelve evaluation sets, their dispatch, and the helpers
// the family readers share (paths, folder checks, sorted folder listings).
#include "data/data_internal.h"
#include "base/error.h"
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char *const k_names[] = {
    "CALFW", "CPLFW", "LFW", "CFP_FF", "CFP_FP", "AgeDB_30",
    "Market1501", "MSMT17", "VeRi", "LargeVehicleID", "LargeVeRiWild", "SOP",
};
static const char *const k_face_stems[] = {"calfw", "cplfw", "lfw", "cfp_ff", "cfp_fp", "agedb_30"};
enum { N_SETS = (int)(sizeof k_names / sizeof k_names[0]) };

const char *const *ufo_eval_set_names(int *n) {
    if (n) *n = N_SETS;
    return k_names;
}

int ufo_eval_set_find(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < N_SETS; i++)
        if (strcasecmp(name, k_names[i]) == 0) return i;
    return -1;
}

const char *ufo_eval_kind_name(ufo_eval_kind k) {
    switch (k) {
    case UFO_EVAL_VERIFY: return "verify";
    case UFO_EVAL_REID: return "reid";
    case UFO_EVAL_RETRIEVAL: return "retrieval";
    }
    return "?";
}

int ufo_eval_set_load(const char *name, const char *root, const ufo_eval_opts *opts, ufo_eval_set *s) {
    memset(s, 0, sizeof *s);
    ufo_eval_opts defaults = {0};
    if (!opts) opts = &defaults;
    int idx = ufo_eval_set_find(name);
    if (idx < 0) {
        char all[256] = "";
        for (int i = 0; i < N_SETS; i++) {
            strcat(all, i ? " " : "");
            strcat(all, k_names[i]);
        }
        return ufo_errorf("unknown evaluation set '%s' (known: %s)", name ? name : "(null)", all);
    }
    if (!root || !*root) root = getenv("FASTREID_DATASETS");
    if (!root || !*root) root = "datasets";   // the original's default
    snprintf(s->name, sizeof s->name, "%s", k_names[idx]);
    // "root/" and "root" give the same paths ("/" stays "/", paths then start "//").
    char *root_copy = strdup(root);
    if (!root_copy) return ufo_errorf("out of memory");
    for (size_t l = strlen(root_copy); l > 1 && root_copy[l - 1] == '/'; l--) root_copy[l - 1] = 0;
    root = root_copy;
    int rc;
    if (!ufo_is_dir(root)) {
        rc = ufo_errorf("data root %s is not a folder (set FASTREID_DATASETS)", root);
    } else if (idx < 6) {
        s->kind = UFO_EVAL_VERIFY;
        rc = ufo_load_face(k_face_stems[idx], root, opts, s);
    } else {
        s->kind = UFO_EVAL_REID;
        switch (idx) {
        case 6: rc = ufo_load_market(root, s); break;
        case 7: rc = ufo_load_msmt(root, opts, s); break;
        case 8: rc = ufo_load_veri(root, s); break;
        case 9: rc = ufo_load_vehicleid(root, s); break;
        case 10: rc = ufo_load_veriwild(root, s); break;
        default: s->kind = UFO_EVAL_RETRIEVAL; rc = ufo_load_sop(root, s); break;
        }
    }
    free(root_copy);
    if (rc != 0) {
        ufo_error_wrap("%s", k_names[idx]);
        ufo_eval_set_free(s);
        return -1;
    }
    return 0;
}

void ufo_eval_set_free(ufo_eval_set *s) {
    if (!s) return;
    free(s->paths);
    free(s->priv_);
    free((void *)s->blobs);
    free(s->blob_sizes);
    if (s->blob_owner) {
        ufo_blob_owner *o = s->blob_owner;
        ufo_pickle_free(o->doc);
        ufo_unmap(&o->map);
        free(o);
    }
    free(s->issame);
    free(s->pid);
    free(s->camid);
    free(s->source);
    memset(s, 0, sizeof *s);
}

// ------------------------------------------------------------------ helpers

char *ufo_pathf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        ufo_errorf("bad path format");
        return NULL;
    }
    char *p = malloc((size_t)n + 1);
    if (!p) {
        ufo_errorf("out of memory");
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int ufo_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ufo_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

int ufo_need_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return ufo_errorf("missing folder %s", path);
        return ufo_errorf("cannot open folder %s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return ufo_errorf("%s is not a folder", path);
    return 0;
}

int ufo_read_list(const char *path, char **text, size_t *n) {
    *text = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return ufo_errorf("missing list %s", path);
        return ufo_errorf("cannot open list %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ufo_errorf("%s is a folder, expected a list file", path);
    return ufo_read_file(path, text, n);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void ufo_free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int ufo_list_dir(const char *dir, int (*keep)(const char *dir, const char *name), char ***names_out, int *n_out) {
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return ufo_errorf("cannot open folder %s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.') continue;
        int k = keep(dir, nm);
        if (k < 0) {
            rc = -1;
            break;
        }
        if (!k) continue;
        if (n == cap) {
            if (cap >= (1 << 29)) {
                rc = ufo_errorf("%s: too many files", dir);
                break;
            }
            cap = cap ? cap * 2 : 256;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) {
                rc = ufo_errorf("out of memory listing %s", dir);
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(nm))) {
            rc = ufo_errorf("out of memory listing %s", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != 0) {
        ufo_free_names(names, n);
        return -1;
    }
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str);
    *names_out = names;
    *n_out = n;
    return 0;
}

static int is_jpg(const char *dir, const char *nm) {
    size_t len = strlen(nm);
    return len >= 4 && strcmp(nm + len - 4, ".jpg") == 0;
}

int ufo_list_jpgs(const char *dir, char ***names_out, int *n_out) {
    *names_out = NULL;
    *n_out = 0;
    if (ufo_need_dir(dir) != 0) return -1;
    return ufo_list_dir(dir, is_jpg, names_out, n_out);
}

int ufo_set_take_items(ufo_eval_set *s, ufo_items *items) {
    int n = items->n;
    char **paths = malloc((size_t)(n > 0 ? n : 1) * sizeof *paths);
    if (!paths) return ufo_errorf("out of memory");
    for (int i = 0; i < n; i++) paths[i] = items->arena + items->off[i];
    s->n = n;
    s->paths = paths;
    s->priv_ = items->arena;
    s->pid = items->pid;
    s->camid = items->camid;
    free(items->off);
    memset(items, 0, sizeof *items);
    return 0;
}

int ufo_set_source(ufo_eval_set *s, const char *source) {
    free(s->source);
    s->source = strdup(source);
    return s->source ? 0 : ufo_errorf("out of memory");
}
