// paddle.save state dicts -> ufo_tensor_file (see paddle.h).
#include "formats/paddle.h"
#include "base/error.h"
#include "base/mem.h"
#include "formats/pickle.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STRUCT_KEY "StructuredToParameterName@@"
#define UNPACK_KEY "UnpackBigParamInfor@@"

typedef struct {
    const unsigned char *map;   // the file mapping, or NULL for a caller's buffer
    size_t map_size;
} src_info;

// Drops the whole pages inside [q, q + len) of a read-only private file
// mapping from our resident set; they are re-read from the file if touched.
static void drop_pages(void *ctx, const unsigned char *q, size_t len) {
    const src_info *s = ctx;
    if (!s->map || q < s->map || q >= s->map + s->map_size) return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)q + pg - 1) / pg * pg, b = ((uintptr_t)q + len) / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static int key_text(const ufo_pvalue *k, const char **s, size_t *n) {
    if (k->kind != UFO_PV_STR && k->kind != UFO_PV_BYTES) return -1;
    *s = k->u.s.data;
    *n = k->u.s.len;
    return 0;
}

// The array a dict value stands for: an ndarray, or paddle 2.1's (name, ndarray).
static const ufo_pvalue *as_array(const ufo_pvalue *v) {
    if (v->kind == UFO_PV_NDARRAY) return v;
    if (v->kind == UFO_PV_TUPLE && v->u.seq.n == 2 &&
        (v->u.seq.items[0]->kind == UFO_PV_STR || v->u.seq.items[0]->kind == UFO_PV_BYTES) &&
        v->u.seq.items[1]->kind == UFO_PV_NDARRAY)
        return v->u.seq.items[1];
    return NULL;
}

static int add_meta(ufo_tensor_file *f, const char *k, const char *v) {
    char **nk = realloc(f->meta_keys, (size_t)(f->n_meta + 1) * sizeof *nk);
    if (!nk) return ufo_errorf("out of memory");
    f->meta_keys = nk;
    char **nv = realloc(f->meta_vals, (size_t)(f->n_meta + 1) * sizeof *nv);
    if (!nv) return ufo_errorf("out of memory");
    f->meta_vals = nv;
    char *a = strdup(k), *b = strdup(v);
    if (!a || !b) {
        free(a);
        free(b);
        return ufo_errorf("out of memory");
    }
    f->meta_keys[f->n_meta] = a;
    f->meta_vals[f->n_meta] = b;
    f->n_meta++;
    return 0;
}

static int new_entry(ufo_tensor_file *f, const char *name, size_t nlen, const char *src_name) {
    if (memchr(name, 0, nlen)) return ufo_errorf("%s: tensor name with a NUL byte", src_name);
    ufo_tensor_entry *e = &f->items[f->n];
    memset(e, 0, sizeof *e);
    e->name = malloc(nlen + 1);
    if (!e->name) return ufo_errorf("%s: out of memory", src_name);
    memcpy(e->name, name, nlen);
    e->name[nlen] = 0;
    f->n++;
    return 0;
}

// Copies (or takes) one array into entry e.
static int fill_entry(ufo_tensor_entry *e, ufo_pickle *doc, const ufo_pvalue *v, const src_info *s,
                      const char *src_name) {
    const ufo_parray *a = v->u.arr;
    e->dtype = a->dtype;
    e->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++) e->shape[i] = a->shape[i];
    e->nbytes = a->nbytes;
    void *d = ufo_pickle_take_data(doc, v);
    if (!d) {
        d = ufo_alloc(a->nbytes);
        if (!d) return ufo_errorf("%s: out of memory for '%s' (%zu bytes)", src_name, e->name, a->nbytes);
        if (a->nbytes) memcpy(d, a->data, a->nbytes);
        drop_pages((void *)s, a->data, a->nbytes);
    }
    e->owned = d;
    e->data = d;
    return 0;
}

// Joins paddle's "<name>@@.i" slices (protocol 2/3, arrays over 1 GiB).
static int join_slices(ufo_tensor_entry *e, const ufo_pvalue *root, const ufo_pvalue *info, const src_info *s,
                       const char *src_name) {
    const ufo_pvalue *shape = ufo_pdict_get(info, "OriginShape"), *slices = ufo_pdict_get(info, "slices");
    if (!shape || !slices || (shape->kind != UFO_PV_TUPLE && shape->kind != UFO_PV_LIST) ||
        slices->kind != UFO_PV_LIST || shape->u.seq.n > UFO_MAX_DIMS)
        return ufo_errorf("%s: %s entry for '%s' is malformed", src_name, UNPACK_KEY, e->name);
    e->ndim = (int)shape->u.seq.n;
    size_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        const ufo_pvalue *d = shape->u.seq.items[i];
        if (d->kind != UFO_PV_INT || d->u.i < 0 || ufo_mul_overflows(numel, (size_t)d->u.i, &numel))
            return ufo_errorf("%s: %s: bad OriginShape for '%s'", src_name, UNPACK_KEY, e->name);
        e->shape[i] = d->u.i;
    }
    // First pass: check the slices and their total size.
    size_t total = 0;
    for (size_t i = 0; i < slices->u.seq.n; i++) {
        const ufo_pvalue *nm = slices->u.seq.items[i];
        char key[512];
        const char *ks;
        size_t kn;
        if (key_text(nm, &ks, &kn) || kn >= sizeof key)
            return ufo_errorf("%s: %s: bad slice name for '%s'", src_name, UNPACK_KEY, e->name);
        memcpy(key, ks, kn);
        key[kn] = 0;
        const ufo_pvalue *sv = ufo_pdict_get(root, key);
        const ufo_pvalue *a = sv ? as_array(sv) : NULL;
        if (!a) return ufo_errorf("%s: slice '%s' of '%s' is missing", src_name, key, e->name);
        if (i == 0) e->dtype = a->u.arr->dtype;
        if (a->u.arr->dtype != e->dtype || a->u.arr->ndim != 1)
            return ufo_errorf("%s: slice '%s' of '%s' is not a flat %s array", src_name, key, e->name,
                              ufo_dtype_name(e->dtype));
        if (a->u.arr->nbytes > SIZE_MAX - total) return ufo_errorf("%s: slices too large", src_name);
        total += a->u.arr->nbytes;
    }
    size_t want;
    if (slices->u.seq.n == 0 || ufo_mul_overflows(numel, ufo_dtype_size(e->dtype), &want) || want != total)
        return ufo_errorf("%s: slices of '%s' hold %zu bytes, OriginShape needs a different size", src_name,
                          e->name, total);
    unsigned char *d = ufo_alloc(total);
    if (!d) return ufo_errorf("%s: out of memory for '%s'", src_name, e->name);
    size_t off = 0;
    for (size_t i = 0; i < slices->u.seq.n; i++) {
        const ufo_pvalue *nm = slices->u.seq.items[i];
        char key[512];
        memcpy(key, nm->u.s.data, nm->u.s.len);
        key[nm->u.s.len] = 0;
        const ufo_parray *a = as_array(ufo_pdict_get(root, key))->u.arr;
        memcpy(d + off, a->data, a->nbytes);
        drop_pages((void *)s, a->data, a->nbytes);
        off += a->nbytes;
    }
    e->owned = d;
    e->data = d;
    e->nbytes = total;
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(ufo_tensor_entry *const *)a)->name, (*(ufo_tensor_entry *const *)b)->name);
}

static int check_duplicates(const ufo_tensor_file *f, const char *src_name) {
    if (f->n < 2) return 0;
    ufo_tensor_entry **v = malloc((size_t)f->n * sizeof *v);
    if (!v) return ufo_errorf("out of memory");
    for (int i = 0; i < f->n; i++) v[i] = &f->items[i];
    qsort(v, (size_t)f->n, sizeof *v, cmp_names);
    int rc = 0;
    for (int i = 1; i < f->n && !rc; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = ufo_errorf("%s: tensor '%s' appears twice", src_name, v[i]->name);
    free(v);
    return rc;
}

static int is_slice_name(const ufo_pvalue *unpack, const char *k, size_t kn) {
    if (!unpack || unpack->kind != UFO_PV_DICT) return 0;
    for (size_t i = 0; i < unpack->u.seq.n; i++) {
        const ufo_pvalue *sl = ufo_pdict_get(unpack->u.seq.items[2 * i + 1], "slices");
        if (!sl || sl->kind != UFO_PV_LIST) continue;
        for (size_t j = 0; j < sl->u.seq.n; j++) {
            const ufo_pvalue *nm = sl->u.seq.items[j];
            if ((nm->kind == UFO_PV_STR || nm->kind == UFO_PV_BYTES) && nm->u.s.len == kn &&
                memcmp(nm->u.s.data, k, kn) == 0)
                return 1;
        }
    }
    return 0;
}

static int parse(const unsigned char *buf, size_t size, const char *name, const src_info *s,
                 ufo_tensor_file *f) {
    memset(f, 0, sizeof *f);
    ufo_pickle_opts opts = {.consumed = drop_pages, .ctx = (void *)s};
    ufo_pickle *doc;
    if (ufo_pickle_load_ex(buf, size, name, &opts, &doc)) return -1;
    const ufo_pvalue *root = ufo_pickle_root(doc);
    int rc = -1;
    if (root->kind != UFO_PV_DICT) {
        ufo_errorf("%s: not a paddle.save state dict (the pickle holds a %s, expected a dict)", name,
                   ufo_pkind_name(root->kind));
        goto done;
    }
    const ufo_pvalue *unpack = ufo_pdict_get(root, UNPACK_KEY);
    if (unpack && unpack->kind != UFO_PV_DICT) {
        ufo_errorf("%s: %s is not a dict", name, UNPACK_KEY);
        goto done;
    }
    size_t npairs = root->u.seq.n + (unpack ? unpack->u.seq.n : 0);
    if (npairs > (size_t)1 << 24) {
        ufo_errorf("%s: too many entries (%zu)", name, npairs);
        goto done;
    }
    f->items = calloc(npairs ? npairs : 1, sizeof *f->items);
    if (!f->items) {
        ufo_errorf("%s: out of memory", name);
        goto done;
    }
    long skipped = 0;
    for (size_t i = 0; i < root->u.seq.n; i++) {
        const ufo_pvalue *k = root->u.seq.items[2 * i], *v = root->u.seq.items[2 * i + 1];
        const char *ks;
        size_t kn;
        if (key_text(k, &ks, &kn)) {
            skipped++;
            continue;
        }
        if (ufo_pvalue_is_str(k, STRUCT_KEY) || ufo_pvalue_is_str(k, UNPACK_KEY) || is_slice_name(unpack, ks, kn))
            continue;
        const ufo_pvalue *a = as_array(v);
        if (!a) {
            skipped++;
            continue;
        }
        if (new_entry(f, ks, kn, name) || fill_entry(&f->items[f->n - 1], doc, a, s, name)) goto done;
    }
    for (size_t i = 0; unpack && i < unpack->u.seq.n; i++) {
        const ufo_pvalue *k = unpack->u.seq.items[2 * i], *info = unpack->u.seq.items[2 * i + 1];
        const char *ks;
        size_t kn;
        if (key_text(k, &ks, &kn) || info->kind != UFO_PV_DICT) {
            ufo_errorf("%s: %s is malformed", name, UNPACK_KEY);
            goto done;
        }
        if (new_entry(f, ks, kn, name) || join_slices(&f->items[f->n - 1], root, info, s, name)) goto done;
    }
    if (check_duplicates(f, name)) goto done;
    char num[32];
    snprintf(num, sizeof num, "%ld", skipped);
    if (add_meta(f, "paddle.skipped", num)) goto done;
    snprintf(num, sizeof num, "%d", ufo_pickle_protocol(doc));
    if (add_meta(f, "paddle.pickle_protocol", num)) goto done;
    rc = 0;
done:
    ufo_pickle_free(doc);
    if (rc) ufo_tensor_file_free(f);
    return rc;
}

int ufo_paddle_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_file *f) {
    src_info s = {0};
    return parse(buf, size, name ? name : "paddle", &s, f);
}

int ufo_paddle_load(const char *path, ufo_tensor_file *f) {
    ufo_mapped m;
    memset(f, 0, sizeof *f);
    if (ufo_map_file(path, &m)) return -1;
    src_info s = {m.is_mmap ? m.data : NULL, m.size};
    if (m.is_mmap) madvise((void *)m.data, m.size, MADV_SEQUENTIAL);
    int rc = parse(m.data, m.size, path, &s, f);
    ufo_unmap(&m);  // every entry owns its data
    return rc;
}
