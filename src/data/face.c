// Face verification sets: faces_emore_val/<stem>.filelist + <stem>_label.npy
// (the original UFO release's form), or insightface's <stem>.bin pickle.
#include "base/error.h"
#include "data/data_internal.h"
#include "base/mem.h"
#include "formats/npy.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int ufo_parse_face_filelist(const char *text, size_t n, const char *name, const char *dir, ufo_items *out) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, name);
    const char *s;
    size_t len;
    int r;
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;   // blank line
        // The original takes line.strip().split(' ')[0]: the first space-separated token.
        size_t k = 0;
        while (k < len && s[k] != ' ' && s[k] != '\t') k++;
        if (ufo_items_push(out, dir, s, k, NULL, 0, 0) != 0) return -1;
    }
    return r;
}

// A flag from a pickled bool/int, or an element of a bool/int ndarray.
static int flag_of(const ufo_pvalue *v, uint8_t *f) {
    if (v->kind != UFO_PV_BOOL && v->kind != UFO_PV_INT) return -1;
    *f = v->u.i != 0;
    return 0;
}

int ufo_parse_face_bin(const unsigned char *buf, size_t n, const char *name, ufo_face_bin *out) {
    memset(out, 0, sizeof *out);
    if (n == 0 || !buf) return ufo_errorf("%s: empty file", name);
    if (ufo_pickle_load(buf, n, name, &out->doc) != 0) return -1;
    const ufo_pvalue *root = ufo_pickle_root(out->doc);
    const char *want = "expected a pickled pair (list of encoded images, list of is-same flags)";
    if (!root || (root->kind != UFO_PV_TUPLE && root->kind != UFO_PV_LIST) || root->u.seq.n != 2) {
        ufo_errorf("%s: %s, found %s", name, want, root ? ufo_pkind_name(root->kind) : "nothing");
        ufo_face_bin_free(out);
        return -1;
    }
    const ufo_pvalue *imgs = root->u.seq.items[0], *flags = root->u.seq.items[1];
    if (imgs->kind != UFO_PV_LIST && imgs->kind != UFO_PV_TUPLE) {
        ufo_errorf("%s: %s; the first item is a %s", name, want, ufo_pkind_name(imgs->kind));
        ufo_face_bin_free(out);
        return -1;
    }
    size_t ni = imgs->u.seq.n, nf;
    const ufo_parray *arr = NULL;
    if (flags->kind == UFO_PV_LIST || flags->kind == UFO_PV_TUPLE) {
        nf = flags->u.seq.n;
    } else if (flags->kind == UFO_PV_NDARRAY) {
        arr = flags->u.arr;
        ufo_dtype t = arr->dtype;
        if (arr->ndim != 1 || !(t == UFO_BOOL || t == UFO_U8 || t == UFO_I8 || t == UFO_I16 || t == UFO_I32 ||
                                t == UFO_I64)) {
            ufo_errorf("%s: the is-same flags must be a 1-D bool or integer array", name);
            ufo_face_bin_free(out);
            return -1;
        }
        nf = (size_t)arr->shape[0];
    } else {
        ufo_errorf("%s: %s; the second item is a %s", name, want, ufo_pkind_name(flags->kind));
        ufo_face_bin_free(out);
        return -1;
    }
    if (ni > (size_t)INT_MAX / 2 || ni != 2 * nf) {
        ufo_errorf("%s: %zu images but %zu is-same flags (need exactly 2 images a pair)", name, ni, nf);
        ufo_face_bin_free(out);
        return -1;
    }
    out->n = (int)ni;
    out->blobs = malloc((ni ? ni : 1) * sizeof *out->blobs);
    out->sizes = malloc((ni ? ni : 1) * sizeof *out->sizes);
    out->issame = malloc(nf ? nf : 1);
    if (!out->blobs || !out->sizes || !out->issame) {
        ufo_errorf("%s: out of memory", name);
        ufo_face_bin_free(out);
        return -1;
    }
    for (size_t i = 0; i < ni; i++) {
        const ufo_pvalue *v = imgs->u.seq.items[i];
        if (v->kind != UFO_PV_BYTES) {
            ufo_errorf("%s: image %zu is a %s, expected bytes", name, i, ufo_pkind_name(v->kind));
            ufo_face_bin_free(out);
            return -1;
        }
        out->blobs[i] = (const unsigned char *)v->u.s.data;
        out->sizes[i] = v->u.s.len;
    }
    for (size_t i = 0; i < nf; i++) {
        if (arr) {
            size_t es = ufo_dtype_size(arr->dtype);
            const unsigned char *p = (const unsigned char *)arr->data + i * es;
            int nz = 0;
            for (size_t b = 0; b < es; b++) nz |= p[b] != 0;
            out->issame[i] = (uint8_t)nz;
        } else if (flag_of(flags->u.seq.items[i], &out->issame[i]) != 0) {
            ufo_errorf("%s: is-same flag %zu is a %s, expected a bool", name, i,
                       ufo_pkind_name(flags->u.seq.items[i]->kind));
            ufo_face_bin_free(out);
            return -1;
        }
    }
    return 0;
}

void ufo_face_bin_free(ufo_face_bin *b) {
    free((void *)b->blobs);
    free(b->sizes);
    free(b->issame);
    ufo_pickle_free(b->doc);
    memset(b, 0, sizeof *b);
}

static int load_filelist(const char *dir, const char *list, const char *label, ufo_eval_set *s) {
    char *text = NULL;
    size_t n = 0;
    ufo_items items = {0};
    ufo_tensor_entry e = {0};
    int rc = -1;
    if (ufo_read_list(list, &text, &n) != 0) goto done;
    if (ufo_parse_face_filelist(text, n, list, dir, &items) != 0) goto done;
    if (!ufo_is_file(label)) {
        ufo_errorf("missing labels %s", label);
        goto done;
    }
    if (ufo_npy_read(label, &e) != 0) goto done;
    ufo_dtype t = e.dtype;
    if (e.ndim != 1 || !(t == UFO_BOOL || t == UFO_U8 || t == UFO_I8 || t == UFO_I16 || t == UFO_I32 || t == UFO_I64)) {
        ufo_errorf("%s: expected a 1-D bool (or integer) array of is-same flags, found %s with %d dims", label,
                   ufo_dtype_name(t), e.ndim);
        goto done;
    }
    int64_t np = e.shape[0];
    if (items.n == 0) {
        ufo_errorf("%s lists no images", list);
        goto done;
    }
    if ((int64_t)items.n != 2 * np) {
        ufo_errorf("%s lists %d images but %s has %lld is-same flags (needs %lld images, 2 a pair)", list, items.n,
                   label, (long long)np, (long long)(2 * np));
        goto done;
    }
    s->issame = malloc((size_t)np);
    if (!s->issame) {
        ufo_errorf("out of memory");
        goto done;
    }
    size_t es = ufo_dtype_size(t);
    for (int64_t i = 0; i < np; i++) {
        const unsigned char *p = (const unsigned char *)e.data + (size_t)i * es;
        int nz = 0;
        for (size_t b = 0; b < es; b++) nz |= p[b] != 0;
        s->issame[i] = (uint8_t)nz;
    }
    if (ufo_set_take_items(s, &items) != 0 || ufo_set_source(s, list) != 0) goto done;
    free(s->pid);
    free(s->camid);
    s->pid = s->camid = NULL;   // verification sets carry no identities
    rc = 0;
done:
    free(text);
    ufo_items_free(&items);
    ufo_free(e.owned);
    free(e.name);
    return rc;
}

static int load_bin(const char *bin, ufo_eval_set *s) {
    ufo_blob_owner *o = calloc(1, sizeof *o);
    if (!o) return ufo_errorf("out of memory");
    ufo_face_bin b;
    if (ufo_map_file(bin, &o->map) != 0) {
        free(o);
        return -1;
    }
    if (ufo_parse_face_bin(o->map.data, o->map.size, bin, &b) != 0) {
        ufo_unmap(&o->map);
        free(o);
        return -1;
    }
    if (b.n == 0) {
        ufo_face_bin_free(&b);
        ufo_unmap(&o->map);
        free(o);
        return ufo_errorf("%s holds no images", bin);
    }
    o->doc = b.doc;
    s->blob_owner = o;
    s->n = b.n;
    s->blobs = b.blobs;
    s->blob_sizes = b.sizes;
    s->issame = b.issame;
    return ufo_set_source(s, bin);
}

int ufo_load_face(const char *stem, const char *root, const ufo_eval_opts *o, ufo_eval_set *s) {
    char *dir = ufo_pathf("%s/faces_emore_val", root);
    char *list = ufo_pathf("%s/faces_emore_val/%s.filelist", root, stem);
    char *label = ufo_pathf("%s/faces_emore_val/%s_label.npy", root, stem);
    char *bin = ufo_pathf("%s/faces_emore_val/%s.bin", root, stem);
    int rc = -1;
    if (!dir || !list || !label || !bin) goto done;
    if (ufo_need_dir(dir) != 0) goto done;
    ufo_face_source src = o->face_source;
    if (src == UFO_FACE_AUTO) {
        if (ufo_is_file(list)) src = UFO_FACE_FILELIST;
        else if (ufo_is_file(bin)) src = UFO_FACE_BIN;
        else {
            ufo_errorf("missing list %s (nor %s)", list, bin);
            goto done;
        }
    }
    if (src == UFO_FACE_BIN) {
        if (!ufo_is_file(bin)) {
            ufo_errorf("missing file %s", bin);
            goto done;
        }
        rc = load_bin(bin, s);
    } else {
        rc = load_filelist(dir, list, label, s);
    }
done:
    free(dir);
    free(list);
    free(label);
    free(bin);
    return rc;
}
