// Training-set readers (SPEC section 4), relabelling to contiguous class ids,
// concatenation per task, and image access. See trainset.h.
#include "data/trainset.h"
#include "base/error.h"
#include "data/data_internal.h"
#include "data/recordio.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// One part's images: file paths (items) or records of a RecordIO file.
typedef struct {
    int is_rec;
    ufo_items items;   // paths (items.pid / items.camid are freed once copied out)
    ufo_recordio rec;
    int *entry;        // is_rec: image j is record entry[j]
} ts_source;

typedef struct {
    int n;
    ts_source *src;    // src[p] belongs to parts[p]
} ts_priv;

static const char *const k_names[] = {"MS1M-V3", "Market1501", "MSMT17", "VeRi", "VehicleID", "VeRiWild", "SOP"};
enum { N_NAMES = (int)(sizeof k_names / sizeof k_names[0]) };

const char *const *ufo_trainset_names(int *n) {
    if (n) *n = N_NAMES;
    return k_names;
}

static void source_free(ts_source *src) {
    ufo_items_free(&src->items);
    ufo_recordio_close(&src->rec);
    free(src->entry);
    memset(src, 0, sizeof *src);
}

void ufo_trainset_free(ufo_trainset *s) {
    if (!s) return;
    ts_priv *pv = s->priv_;
    if (pv) {
        for (int p = 0; p < pv->n; p++) source_free(&pv->src[p]);
        free(pv->src);
        free(pv);
    }
    for (int p = 0; p < s->n_parts; p++) free(s->parts[p].source);
    free(s->parts);
    free(s->label);
    free(s->raw_id);
    free(s->camid);
    memset(s, 0, sizeof *s);
}

// ------------------------------------------------------------------ relabel

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

// label[i] = rank of raw[i] among the sorted unique raw ids; *num_classes = their count.
static int relabel(const int *raw, int n, int *label, int *num_classes) {
    int *u = malloc((size_t)(n > 0 ? n : 1) * sizeof *u);
    if (!u) return ufo_errorf("out of memory relabelling");
    if (n) memcpy(u, raw, (size_t)n * sizeof *u);
    qsort(u, (size_t)n, sizeof *u, cmp_int);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (m == 0 || u[m - 1] != u[i]) u[m++] = u[i];
    for (int i = 0; i < n; i++) {
        int lo = 0, hi = m - 1;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (u[mid] < raw[i]) lo = mid + 1;
            else hi = mid;
        }
        label[i] = lo;
    }
    free(u);
    *num_classes = m;
    return 0;
}

// Makes s a one-part set from src (moved in) with raw ids and cameras (copied).
static int finish_set(ufo_trainset *s, const char *name, const char *source, ts_source *src, const int *raw,
                      const int *cam, int n) {
    if (n <= 0) return ufo_errorf("%s lists no images", source);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->n = n;
    s->label = malloc((size_t)n * sizeof *s->label);
    s->raw_id = malloc((size_t)n * sizeof *s->raw_id);
    s->camid = malloc((size_t)n * sizeof *s->camid);
    s->parts = calloc(1, sizeof *s->parts);
    ts_priv *pv = calloc(1, sizeof *pv);
    if (pv) pv->src = calloc(1, sizeof *pv->src);
    s->priv_ = pv;
    if (!s->label || !s->raw_id || !s->camid || !s->parts || !pv || !pv->src) return ufo_errorf("out of memory");
    memcpy(s->raw_id, raw, (size_t)n * sizeof *raw);
    if (cam) memcpy(s->camid, cam, (size_t)n * sizeof *cam);
    else
        for (int i = 0; i < n; i++) s->camid[i] = -1;
    if (relabel(raw, n, s->label, &s->num_classes) != 0) return -1;
    s->n_parts = 1;
    ufo_trainset_part *p = &s->parts[0];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->source = strdup(source);
    if (!p->source) return ufo_errorf("out of memory");
    p->first = 0;
    p->n = n;
    p->class_offset = 0;
    p->num_classes = s->num_classes;
    pv->n = 1;
    pv->src[0] = *src;
    memset(src, 0, sizeof *src);
    return 0;
}

// A set whose images are the items' paths (pid = raw id). no_cam: camid -1.
static int finish_items(ufo_trainset *s, const char *name, const char *source, ufo_items *items, int no_cam) {
    ts_source src = {0};
    src.items = *items;
    memset(items, 0, sizeof *items);
    int rc = finish_set(s, name, source, &src, src.items.pid, no_cam ? NULL : src.items.camid, src.items.n);
    if (rc != 0) {
        source_free(&src);
        return -1;
    }
    // The per-part copies live in s now; the item list keeps only its paths.
    ts_source *kept = &((ts_priv *)s->priv_)->src[0];
    free(kept->items.pid);
    free(kept->items.camid);
    kept->items.pid = kept->items.camid = NULL;
    return 0;
}

// ------------------------------------------------------------------ RecordIO and image folders

static int load_recordio_dir(const char *dir, const char *name, ufo_trainset *s) {
    char *rec = ufo_pathf("%s/train.rec", dir);
    char *idx = ufo_pathf("%s/train.idx", dir);
    ts_source src = {0};
    int *label = NULL, rc = -1, n = 0;
    if (!rec || !idx) goto done;
    if (!ufo_is_file(idx)) {
        ufo_errorf("missing index %s (next to %s)", idx, rec);
        goto done;
    }
    if (ufo_recordio_open(&src.rec, rec, idx) != 0) goto done;
    src.is_rec = 1;
    if (ufo_recordio_face_list(&src.rec, &src.entry, &label, &n) != 0) goto done;
    if (n == 0) {
        ufo_errorf("%s holds no image records", rec);
        goto done;
    }
    rc = finish_set(s, name, rec, &src, label, NULL, n);
done:
    source_free(&src);
    free(rec);
    free(idx);
    free(label);
    return rc;
}


static int has_image_ext(const char *nm) {
    const char *dot = strrchr(nm, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int keep_dir(const char *dir, const char *nm) {
    char *p = ufo_pathf("%s/%s", dir, nm);
    if (!p) return -1;
    int isd = ufo_is_dir(p);
    free(p);
    return isd;
}

static int keep_image(const char *dir, const char *nm) { return has_image_ext(nm); }

// Sorted non-hidden entries of dir: folders (want_dirs) or image files.
static int list_dir(const char *dir, int want_dirs, char ***out, int *n_out) {
    return ufo_list_dir(dir, want_dirs ? keep_dir : keep_image, out, n_out);
}

static int load_image_folder(const char *dir, const char *name, ufo_trainset *s) {
    char **ids = NULL;
    int n_ids = 0, rc = -1, cls = 0;
    ufo_items items = {0};
    if (ufo_need_dir(dir) != 0) return -1;
    if (list_dir(dir, 1, &ids, &n_ids) != 0) return -1;
    for (int k = 0; k < n_ids; k++) {
        char *sub = ufo_pathf("%s/%s", dir, ids[k]);
        char **files = NULL;
        int nf = 0;
        if (!sub || list_dir(sub, 0, &files, &nf) != 0) {
            free(sub);
            goto done;
        }
        for (int f = 0; f < nf; f++)
            if (ufo_items_push(&items, sub, files[f], strlen(files[f]), NULL, cls, -1) != 0) {
                ufo_free_names(files, nf);
                free(sub);
                goto done;
            }
        if (nf > 0) cls++;
        ufo_free_names(files, nf);
        free(sub);
    }
    if (items.n == 0) {
        ufo_errorf("no images (<identity>/<image>.jpg|.jpeg|.png) in folder %s", dir);
        goto done;
    }
    rc = finish_items(s, name, dir, &items, 1);
done:
    ufo_items_free(&items);
    ufo_free_names(ids, n_ids);
    return rc;
}

// A RecordIO folder (train.rec) or an image folder.
static int load_face_dir(const char *dir, const char *name, ufo_trainset *s) {
    char *rec = ufo_pathf("%s/train.rec", dir);
    if (!rec) return -1;
    int is_rec = ufo_is_file(rec);
    free(rec);
    return is_rec ? load_recordio_dir(dir, name, s) : load_image_folder(dir, name, s);
}

static int load_ms1m(const char *root, ufo_trainset *s) {
    static const char *const subs[] = {"ms1m-retinaface-t1", "ms1mv3", "MS1M-V3"};
    for (int k = 0; k < 3; k++) {
        char *d = ufo_pathf("%s/%s", root, subs[k]);
        if (!d) return -1;
        if (ufo_is_dir(d)) {
            int rc = load_face_dir(d, "MS1M-V3", s);
            free(d);
            return rc;
        }
        free(d);
    }
    return ufo_errorf("missing folder %s/ms1m-retinaface-t1 (nor %s/ms1mv3, %s/MS1M-V3)", root, root, root);
}

// ------------------------------------------------------------------ ReID and product layouts

// A folder of ReID crops whose names carry the identity (Market-1501's
// bounding_box_train, VeRi's image_train), parsed by `parse` (`pattern` for messages).
static int load_named_folder(ufo_trainset *s, const char *name, const char *tdir,
                             int (*parse)(const char *, int *, int *),
                             const char *pattern) {
    ufo_items items = {0};
    int rc = -1;
    if (ufo_reid_folder(tdir, parse, pattern, &items) != 0) goto done;
    if (items.n == 0) {
        ufo_errorf("no training images (*.jpg named '%s') in %s", pattern, tdir);
        goto done;
    }
    rc = finish_items(s, name, tdir, &items, 0);
done:
    ufo_items_free(&items);
    return rc;
}

static int load_market(const char *root, ufo_trainset *s) {
    char *sub = ufo_pathf("%s/Market-1501-v15.09.15", root);
    char *tdir = NULL;
    int rc = -1;
    if (!sub) goto done;
    const char *base = ufo_is_dir(sub) ? sub : root;
    if (!(tdir = ufo_pathf("%s/bounding_box_train", base))) goto done;
    if (base == root && !ufo_is_dir(tdir)) {
        ufo_errorf("missing folder %s (nor %s)", sub, tdir);
        goto done;
    }
    if (ufo_need_dir(tdir) != 0) goto done;
    rc = load_named_folder(s, "Market1501", tdir, ufo_parse_market_name, "<pid>_c<cam>");
done:
    free(sub);
    free(tdir);
    return rc;
}

static int load_msmt(const char *root, ufo_trainset *s) {
    char *v2 = ufo_pathf("%s/MSMT17_V2", root);
    char *v1 = ufo_pathf("%s/MSMT17_V1", root);
    char *tdir = NULL, *lt = NULL, *lv = NULL, *tt = NULL, *vt = NULL;
    size_t tn = 0, vn = 0;
    ufo_items items = {0};
    int rc = -1;
    if (!v1 || !v2) goto done;
    // The UFO release reads MSMT17_V2; fast-reid takes the first of V1, V2 that exists.
    int v = ufo_is_dir(v2) ? 2 : ufo_is_dir(v1) ? 1 : 0;
    if (!v) {
        ufo_errorf("missing folder %s (nor %s)", v2, v1);
        goto done;
    }
    const char *main_dir = v == 2 ? v2 : v1;
    tdir = ufo_pathf("%s/%s", main_dir, v == 2 ? "mask_train_v2" : "train");
    lt = ufo_pathf("%s/list_train.txt", main_dir);
    lv = ufo_pathf("%s/list_val.txt", main_dir);
    if (!tdir || !lt || !lv) goto done;
    if (ufo_need_dir(tdir) != 0) goto done;
    if (ufo_read_list(lt, &tt, &tn) != 0 || ufo_read_list(lv, &vt, &vn) != 0) goto done;
    if (ufo_parse_msmt_list(tt, tn, lt, tdir, &items) != 0) goto done;
    if (items.n == 0) {
        ufo_errorf("%s lists no images", lt);
        goto done;
    }
    if (ufo_parse_msmt_list(vt, vn, lv, tdir, &items) != 0) goto done;
    rc = finish_items(s, "MSMT17", lt, &items, 0);
done:
    ufo_items_free(&items);
    free(v1);
    free(v2);
    free(tdir);
    free(lt);
    free(lv);
    free(tt);
    free(vt);
    return rc;
}

static int load_veri(const char *root, ufo_trainset *s) {
    char *dir = ufo_pathf("%s/veri", root);
    char *tdir = ufo_pathf("%s/veri/image_train", root);
    int rc = -1;
    if (!dir || !tdir) goto done;
    if (ufo_need_dir(dir) != 0 || ufo_need_dir(tdir) != 0) goto done;
    rc = load_named_folder(s, "VeRi", tdir, ufo_parse_veri_name, "<pid>_c<ccc>");
done:
    free(dir);
    free(tdir);
    return rc;
}

static int load_vehicleid(const char *root, ufo_trainset *s) {
    char *dir = ufo_pathf("%s/vehicleid", root);
    char *img = ufo_pathf("%s/vehicleid/image", root);
    char *list = ufo_pathf("%s/vehicleid/train_test_split/train_list.txt", root);
    char *text = NULL;
    size_t n = 0;
    ufo_items items = {0};
    int rc = -1;
    if (!dir || !img || !list) goto done;
    if (ufo_need_dir(dir) != 0 || ufo_need_dir(img) != 0) goto done;
    if (ufo_read_list(list, &text, &n) != 0) goto done;
    if (ufo_parse_vehicleid_list(text, n, list, img, &items) != 0) goto done;
    rc = finish_items(s, "VehicleID", list, &items, 1);   // the parser's camid is the image number
done:
    ufo_items_free(&items);
    free(dir);
    free(img);
    free(list);
    free(text);
    return rc;
}

static int load_veriwild(const char *root, ufo_trainset *s) {
    char *dir = ufo_pathf("%s/VERI-Wild", root);
    char *img = ufo_pathf("%s/VERI-Wild/images", root);
    char *infop = ufo_pathf("%s/VERI-Wild/train_test_split/vehicle_info.txt", root);
    char *list = ufo_pathf("%s/VERI-Wild/train_test_split/train_list.txt", root);
    char *it = NULL, *lt = NULL;
    size_t in = 0, ln = 0;
    ufo_veriwild_info info = {0};
    ufo_items items = {0};
    int rc = -1;
    if (!dir || !img || !infop || !list) goto done;
    if (ufo_need_dir(dir) != 0 || ufo_need_dir(img) != 0) goto done;
    if (ufo_read_list(list, &lt, &ln) != 0 || ufo_read_list(infop, &it, &in) != 0) goto done;
    if (ufo_parse_veriwild_info(it, in, infop, &info) != 0) goto done;
    if (ufo_parse_veriwild_list(lt, ln, list, &info, img, &items) != 0) goto done;
    rc = finish_items(s, "VeRiWild", list, &items, 0);
done:
    ufo_veriwild_info_free(&info);
    ufo_items_free(&items);
    free(dir);
    free(img);
    free(infop);
    free(list);
    free(it);
    free(lt);
    return rc;
}

static int load_sop(const char *root, ufo_trainset *s) {
    ufo_items items = {0};
    char *src = NULL;
    int rc = -1;
    if (ufo_read_sop_split(root, "train", &items, &src) == 0) rc = finish_items(s, "SOP", src, &items, 1);
    ufo_items_free(&items);
    free(src);
    return rc;
}

// ------------------------------------------------------------------ dispatch

static int find_name(const char *name) {
    if (!strcasecmp(name, "MS1MV3") || !strcasecmp(name, "ms1m-retinaface-t1")) return 0;
    if (!strcasecmp(name, "VeRi-Wild")) return 5;
    for (int i = 0; i < N_NAMES; i++)
        if (!strcasecmp(name, k_names[i])) return i;
    return -1;
}

int ufo_trainset_load(const char *name, const char *root, ufo_trainset *s) {
    memset(s, 0, sizeof *s);
    if (!name) name = "(null)";
    int rc;
    if (!strncmp(name, "folder:", 7)) {
        const char *path = name + 7;
        if (!*path) return ufo_errorf("training set 'folder:' needs a path (folder:<path>)");
        char *p = strdup(path);
        if (!p) return ufo_errorf("out of memory");
        for (size_t l = strlen(p); l > 1 && p[l - 1] == '/'; l--) p[l - 1] = 0;
        rc = load_face_dir(p, "folder", s);
        free(p);
        if (rc != 0) {
            ufo_trainset_free(s);
            return ufo_error_wrap("training set %s", name);
        }
        return 0;
    }
    int idx = find_name(name);
    if (idx < 0) {
        char all[160] = "";
        for (int i = 0; i < N_NAMES; i++) {
            strcat(all, i ? " " : "");
            strcat(all, k_names[i]);
        }
        return ufo_errorf("unknown training set '%s' (known: %s, folder:<path>)", name, all);
    }
    if (!root || !*root) root = getenv("FASTREID_DATASETS");
    if (!root || !*root) root = "datasets";
    char *r = strdup(root);
    if (!r) return ufo_errorf("out of memory");
    for (size_t l = strlen(r); l > 1 && r[l - 1] == '/'; l--) r[l - 1] = 0;
    if (!ufo_is_dir(r)) rc = ufo_errorf("data root %s is not a folder (set FASTREID_DATASETS)", r);
    else {
        switch (idx) {
        case 0: rc = load_ms1m(r, s); break;
        case 1: rc = load_market(r, s); break;
        case 2: rc = load_msmt(r, s); break;
        case 3: rc = load_veri(r, s); break;
        case 4: rc = load_vehicleid(r, s); break;
        case 5: rc = load_veriwild(r, s); break;
        default: rc = load_sop(r, s); break;
        }
    }
    free(r);
    if (rc != 0) {
        ufo_trainset_free(s);
        return ufo_error_wrap("training set %s", k_names[idx]);
    }
    return 0;
}

int ufo_trainset_load_task(const char *task, const char *root, ufo_trainset *s) {
    memset(s, 0, sizeof *s);
    if (!task || !*task) return ufo_errorf("empty task (face, person, vehicle, product or Set+Set...)");
    const char *list = task;
    if (!strcasecmp(task, "face")) list = "MS1M-V3";
    else if (!strcasecmp(task, "person")) list = "Market1501+MSMT17";
    else if (!strcasecmp(task, "vehicle")) list = "VeRi+VehicleID+VeRiWild";
    else if (!strcasecmp(task, "product")) list = "SOP";
    char *copy = strdup(list);
    if (!copy) return ufo_errorf("out of memory");
    int n = 1;
    for (const char *c = copy; *c; c++) n += *c == '+';
    ufo_trainset *parts = calloc((size_t)n, sizeof *parts);
    if (!parts) {
        free(copy);
        return ufo_errorf("out of memory");
    }
    int k = 0, rc = 0;
    for (char *tok = copy, *next; tok && rc == 0; tok = next) {
        next = strchr(tok, '+');
        if (next) *next++ = 0;
        if (!*tok) rc = ufo_errorf("task '%s': empty set name", task);
        else if ((rc = ufo_trainset_load(tok, root, &parts[k])) == 0) k++;
    }
    if (rc == 0) rc = ufo_trainset_concat(s, parts, k);
    if (rc == 0 && strcasecmp(task, list) != 0) snprintf(s->name, sizeof s->name, "%s", task);
    for (int i = 0; i < k; i++) ufo_trainset_free(&parts[i]);
    free(parts);
    free(copy);
    return rc;
}

int ufo_trainset_concat(ufo_trainset *dst, ufo_trainset *parts, int n) {
    memset(dst, 0, sizeof *dst);
    if (n <= 0) return ufo_errorf("concatenating no training sets");
    long long total = 0, classes = 0;
    int n_parts = 0;
    for (int k = 0; k < n; k++) {
        if (!parts[k].priv_ || parts[k].n <= 0) return ufo_errorf("concatenating an empty training set (part %d)", k);
        total += parts[k].n;
        classes += parts[k].num_classes;
        n_parts += parts[k].n_parts;
    }
    if (total > INT_MAX || classes > INT_MAX) return ufo_errorf("concatenated training set is too large (%lld images)", total);
    int N = (int)total;
    dst->label = malloc((size_t)N * sizeof *dst->label);
    dst->raw_id = malloc((size_t)N * sizeof *dst->raw_id);
    dst->camid = malloc((size_t)N * sizeof *dst->camid);
    dst->parts = calloc((size_t)n_parts, sizeof *dst->parts);
    ts_priv *pv = calloc(1, sizeof *pv);
    if (pv) pv->src = calloc((size_t)n_parts, sizeof *pv->src);
    if (!dst->label || !dst->raw_id || !dst->camid || !dst->parts || !pv || !pv->src) {
        if (pv) free(pv->src);
        free(pv);
        free(dst->label);
        free(dst->raw_id);
        free(dst->camid);
        free(dst->parts);
        memset(dst, 0, sizeof *dst);
        return ufo_errorf("out of memory concatenating training sets");
    }
    int at = 0, coff = 0, pp = 0;
    size_t nl = 0;
    for (int k = 0; k < n; k++) {
        ufo_trainset *s = &parts[k];
        for (int i = 0; i < s->n; i++) {
            dst->label[at + i] = s->label[i] + coff;
            dst->raw_id[at + i] = s->raw_id[i];
            dst->camid[at + i] = s->camid[i];
        }
        ts_priv *sp = s->priv_;
        for (int p = 0; p < s->n_parts; p++, pp++) {
            dst->parts[pp] = s->parts[p];
            dst->parts[pp].first += at;
            dst->parts[pp].class_offset += coff;
            pv->src[pp] = sp->src[p];
        }
        size_t l = strlen(s->name);
        if (nl + l + 2 < sizeof dst->name) {
            if (nl) dst->name[nl++] = '+';
            memcpy(dst->name + nl, s->name, l + 1);
            nl += l;
        }
        at += s->n;
        coff += s->num_classes;
    }
    pv->n = n_parts;
    dst->priv_ = pv;
    dst->n = N;
    dst->num_classes = coff;
    dst->n_parts = n_parts;
    // The parts' sources and part records moved into dst: free only their shells.
    for (int k = 0; k < n; k++) {
        ufo_trainset *s = &parts[k];
        ts_priv *sp = s->priv_;
        free(sp->src);
        free(sp);
        free(s->parts);
        free(s->label);
        free(s->raw_id);
        free(s->camid);
        memset(s, 0, sizeof *s);
    }
    return 0;
}

// ------------------------------------------------------------------ access

static int find_part(const ufo_trainset *s, int i) {
    int lo = 0, hi = s->n_parts - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (s->parts[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

const char *ufo_trainset_path(const ufo_trainset *s, int i) {
    if (i < 0 || i >= s->n) return NULL;
    int p = find_part(s, i);
    const ts_source *src = &((const ts_priv *)s->priv_)->src[p];
    if (src->is_rec) return NULL;
    return ufo_items_path(&src->items, i - s->parts[p].first);
}

const char *ufo_trainset_describe(const ufo_trainset *s, int i, char *buf, size_t cap) {
    if (i < 0 || i >= s->n) {
        snprintf(buf, cap, "%s image %d (out of range)", s->name, i);
        return buf;
    }
    int p = find_part(s, i);
    const ts_source *src = &((const ts_priv *)s->priv_)->src[p];
    int j = i - s->parts[p].first;
    if (src->is_rec) return ufo_recordio_describe(&src->rec, src->entry[j], buf, cap);
    snprintf(buf, cap, "%s", ufo_items_path(&src->items, j));
    return buf;
}

int ufo_trainset_read(const ufo_trainset *s, int i, ufo_image *img) {
    memset(img, 0, sizeof *img);
    if (i < 0 || i >= s->n) return ufo_errorf("%s: image %d out of range (%d images)", s->name, i, s->n);
    int p = find_part(s, i);
    const ts_source *src = &((const ts_priv *)s->priv_)->src[p];
    int j = i - s->parts[p].first;
    if (!src->is_rec) return ufo_image_load(ufo_items_path(&src->items, j), img);
    ufo_record rec;
    ufo_irheader h;
    if (ufo_recordio_read_image(&src->rec, src->entry[j], &rec, &h) != 0) return -1;
    char name[512];
    ufo_recordio_describe(&src->rec, src->entry[j], name, sizeof name);
    int rc = ufo_image_decode(h.image, h.image_size, name, img);
    ufo_record_free(&rec);
    return rc;
}
