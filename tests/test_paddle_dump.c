// paddle.save / pickle dumper for tests/py/test_paddle_pickle.py.
//
//   test_paddle_dump              self-check on tests/data/paddle/tiny.pdmodel (CTest)
//   test_paddle_dump FILE         ufo_paddle_load: one "tensor" line per entry, in
//                                 file order, then one "meta" line per key
//   test_paddle_dump --repr FILE  ufo_pickle_load: one line, the canonical form of
//                                 the value tree (below)
//
// tensor lines are tab-separated, as tests/test_tensor_dump.c writes them:
//   tensor <name> <dtype> [<d0>,<d1>,...] <nbytes> <fnv1a64 of the bytes, 16 hex>
//   meta <key> <value>
// (names with '\\', tab, CR, LF or bytes < 0x20 escaped as \\, \t, \r, \n, \xNN).
// Canonical form: N, T, F, i<int>, f<%.17g>, b<hex>, s<hex of UTF-8>,
// (items,) [items,] {key:value,} g<module>:<name>, a<dtype>[d0,d1]<fnv hex>,
// d<dtype>. A failure prints the one-line error on stderr and exits 1.
#include "base/error.h"
#include "check.h"
#include "formats/paddle.h"
#include "formats/pickle.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_escaped(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\') fputs("\\\\", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\r') fputs("\\r", out);
        else if (*p < 0x20) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
}

static void put_hex(FILE *out, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) fprintf(out, "%02x", (unsigned char)s[i]);
}

static void put_repr(FILE *out, const ufo_pvalue *v) {
    switch (v->kind) {
    case UFO_PV_NONE: fputc('N', out); break;
    case UFO_PV_BOOL: fputc(v->u.i ? 'T' : 'F', out); break;
    case UFO_PV_INT: fprintf(out, "i%lld", (long long)v->u.i); break;
    case UFO_PV_FLOAT: fprintf(out, "f%.17g", v->u.f); break;
    case UFO_PV_BYTES: fputc('b', out); put_hex(out, v->u.s.data, v->u.s.len); break;
    case UFO_PV_STR: fputc('s', out); put_hex(out, v->u.s.data, v->u.s.len); break;
    case UFO_PV_TUPLE: case UFO_PV_LIST:
        fputc(v->kind == UFO_PV_TUPLE ? '(' : '[', out);
        for (size_t i = 0; i < v->u.seq.n; i++) {
            put_repr(out, v->u.seq.items[i]);
            fputc(',', out);
        }
        fputc(v->kind == UFO_PV_TUPLE ? ')' : ']', out);
        break;
    case UFO_PV_DICT:
        fputc('{', out);
        for (size_t i = 0; i < v->u.seq.n; i++) {
            put_repr(out, v->u.seq.items[2 * i]);
            fputc(':', out);
            put_repr(out, v->u.seq.items[2 * i + 1]);
            fputc(',', out);
        }
        fputc('}', out);
        break;
    case UFO_PV_GLOBAL: fprintf(out, "g%s:%s", v->u.g.module, v->u.g.name); break;
    case UFO_PV_NDARRAY: {
        const ufo_parray *a = v->u.arr;
        fprintf(out, "a%s[", ufo_dtype_name(a->dtype));
        for (int i = 0; i < a->ndim; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)a->shape[i]);
        fprintf(out, "]%016llx", (unsigned long long)fnv1a64(a->data, a->nbytes));
        break;
    }
    case UFO_PV_DTYPE: fprintf(out, "d%s", ufo_dtype_name(v->u.dt.dtype)); break;
    }
}

static int dump_repr(const char *path) {
    char *data;
    size_t n;
    if (ufo_read_file(path, &data, &n)) return -1;
    ufo_pickle *doc;
    int rc = ufo_pickle_load((const unsigned char *)data, n, path, &doc);
    if (rc == 0) {
        put_repr(stdout, ufo_pickle_root(doc));
        fputc('\n', stdout);
        ufo_pickle_free(doc);
    }
    free(data);
    return rc;
}

static int dump_tensors(const char *path) {
    ufo_tensor_file f;
    if (ufo_paddle_load(path, &f)) return -1;
    for (int i = 0; i < f.n; i++) {
        const ufo_tensor_entry *e = &f.items[i];
        fputs("tensor\t", stdout);
        put_escaped(stdout, e->name);
        printf("\t%s\t[", ufo_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) printf("%s%lld", d ? "," : "", (long long)e->shape[d]);
        printf("]\t%zu\t%016llx\n", e->nbytes, (unsigned long long)fnv1a64(e->data, e->nbytes));
    }
    for (int i = 0; i < f.n_meta; i++) {
        fputs("meta\t", stdout);
        put_escaped(stdout, f.meta_keys[i]);
        fputc('\t', stdout);
        put_escaped(stdout, f.meta_vals[i]);
        fputc('\n', stdout);
    }
    ufo_tensor_file_free(&f);
    return 0;
}

static int self_check(void) {
    ufo_tensor_file f;
    int rc = ufo_paddle_load("tests/data/paddle/tiny.pdmodel", &f);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc == 0) {
        CHECK(f.n == 46, "%d tensors", f.n);
        CHECK(f.n > 0 && strcmp(f.items[0].name, "backbone.cls_token") == 0);
        const ufo_tensor_entry *e = ufo_tensor_file_find(&f, "backbone.pos_embed");
        CHECK(e && e->dtype == UFO_F32 && e->ndim == 3 && e->shape[1] == 5 && e->nbytes == 5 * 16 * 4);
        ufo_tensor_file_free(&f);
    }
    return check_summary("test_paddle_dump");
}

int main(int argc, char **argv) {
    if (argc == 1) return self_check();
    int rc;
    if (argc == 3 && strcmp(argv[1], "--repr") == 0) rc = dump_repr(argv[2]);
    else if (argc == 2) rc = dump_tensors(argv[1]);
    else {
        fprintf(stderr, "usage: test_paddle_dump [--repr] FILE\n");
        return 2;
    }
    if (rc) {
        fprintf(stderr, "%s\n", ufo_error());
        return 1;
    }
    return 0;
}
