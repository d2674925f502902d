// The safe unpickler (formats/pickle.h) and the paddle.save reader
// (formats/paddle.h): every supported opcode group on hand-built pickles,
// every hostile input rejected with a one-line error, the committed real-Paddle
// fixtures loaded whole and truncated at every byte offset.
// Runs from the repository root (CTest's working directory).
#include "base/error.h"
#include "base/file.h"
#include "check.h"
#include "formats/paddle.h"
#include "formats/pickle.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------ pickle builder
// Careful with C hex escapes: "\x02c" is ONE byte (0x2c); split such literals.

typedef struct {
    unsigned char *b;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = realloc(b->b, b->cap);
        if (!b->b) abort();
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
}
#define PUTS(b, s) put(b, s, sizeof(s) - 1)
static void put1(buf *b, unsigned v) {
    unsigned char c = (unsigned char)v;
    put(b, &c, 1);
}
static void put4(buf *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, c, 4);
}
static void sbu(buf *b, const char *s) {  // SHORT_BINUNICODE
    put1(b, 0x8c);
    put1(b, (unsigned)strlen(s));
    put(b, s, strlen(s));
}
static void sbb(buf *b, const void *d, size_t n) {  // SHORT_BINBYTES / BINBYTES
    if (n < 256) {
        put1(b, 'C');
        put1(b, (unsigned)n);
    } else {
        put1(b, 'B');
        put4(b, (uint32_t)n);
    }
    put(b, d, n);
}
static void sglobal(buf *b, const char *mod, const char *name) {
    sbu(b, mod);
    sbu(b, name);
    put1(b, 0x93);
}
static void dtype_op(buf *b, const char *typestr, const char *order) {
    sglobal(b, "numpy", "dtype");
    sbu(b, typestr);
    PUTS(b, "\x89\x88\x87R(K\x03");
    sbu(b, order);
    PUTS(b, "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
}
static void array_op(buf *b, const char *typestr, const char *order, const int *shape, int ndim, const void *data,
                     size_t n, int fortran) {
    sglobal(b, "numpy.core.multiarray", "_reconstruct");
    sglobal(b, "numpy", "ndarray");
    PUTS(b, "K\x00\x85");
    sbb(b, "b", 1);
    PUTS(b, "\x87R(K\x01(");
    for (int i = 0; i < ndim; i++) {
        put1(b, 'J');
        put4(b, (uint32_t)shape[i]);
    }
    put1(b, 't');
    dtype_op(b, typestr, order);
    put1(b, fortran ? 0x88 : 0x89);
    sbb(b, data, n);
    PUTS(b, "tb");
}

// ------------------------------------------------------------ helpers

static ufo_pickle *load_ok(const char *label, const void *p, size_t n) {
    ufo_pickle *doc = NULL;
    int rc = ufo_pickle_load(p, n, label, &doc);
    CHECK(rc == 0 && doc, "%s: %s", label, ufo_error());
    return rc == 0 ? doc : NULL;
}

// Both readers must reject it; the paddle reader's message must contain `want`
// and be one line.
static void expect_err(const char *label, const void *p, size_t n, const char *want) {
    ufo_tensor_file f;
    ufo_error_clear();
    int rc = ufo_paddle_parse(p, n, label, &f);
    CHECK(rc != 0, "%s: accepted", label);
    if (rc == 0) {
        ufo_tensor_file_free(&f);
        return;
    }
    const char *e = ufo_error();
    CHECK(strstr(e, want) != NULL, "%s: error '%s' lacks '%s'", label, e, want);
    CHECK(strchr(e, '\n') == NULL, "%s: multi-line error", label);
    CHECK(strstr(e, label) != NULL, "%s: error '%s' does not name the input", label, e);
}
#define EXPECT_ERR(lit, want) expect_err(#lit, lit, sizeof(lit) - 1, want)

static int is_int(const ufo_pvalue *v, int64_t x) { return v && v->kind == UFO_PV_INT && v->u.i == x; }
static int is_bytes(const ufo_pvalue *v, const void *d, size_t n) {
    return v && v->kind == UFO_PV_BYTES && v->u.s.len == n && memcmp(v->u.s.data, d, n) == 0;
}
static int is_strv(const ufo_pvalue *v, const char *s) {
    return v && v->kind == UFO_PV_STR && ufo_pvalue_is_str(v, s);
}

// ------------------------------------------------------------ opcode groups

static void test_protocol0(void) {
    // list of: py2 str with escapes, I01 (True), LONG, FLOAT, UNICODE escapes, tuple; text memo
    static const char pk[] = "(lp0\nS'ab\\x00\\'c'\np1\naI01\naL12345678901L\naF1.5\naV\\u20ac\\u0041\np2\n"
                             "a(I1\nI-2\ntp3\nag3\na.";
    ufo_pickle *doc = load_ok("protocol0", pk, sizeof pk - 1);
    if (!doc) return;
    const ufo_pvalue *r = ufo_pickle_root(doc);
    CHECK(r->kind == UFO_PV_LIST && r->u.seq.n == 7);
    if (r->kind == UFO_PV_LIST && r->u.seq.n == 7) {
        ufo_pvalue *const *it = r->u.seq.items;
        CHECK(is_bytes(it[0], "ab\0'c", 5));
        CHECK(it[1]->kind == UFO_PV_BOOL && it[1]->u.i == 1);
        CHECK(is_int(it[2], 12345678901LL));
        CHECK(it[3]->kind == UFO_PV_FLOAT && it[3]->u.f == 1.5);
        CHECK(is_strv(it[4], "\xe2\x82\xac" "A"));
        CHECK(it[5]->kind == UFO_PV_TUPLE && it[5]->u.seq.n == 2 && is_int(it[5]->u.seq.items[0], 1) &&
              is_int(it[5]->u.seq.items[1], -2));
        CHECK(it[6] == it[5], "GET returns the memoized value");
    }
    CHECK(ufo_pickle_protocol(doc) == 0);
    ufo_pickle_free(doc);

    // DICT, LIST, TUPLE from marks; EMPTY_DICT + SETITEM; STRING with "" quotes and octal
    static const char pk2[] = "((S'a'\nI1\nS\"b\\101\\n\"\nI2\nd(I3\nl}S'k'\nNs(tI00\nt.";
    doc = load_ok("containers0", pk2, sizeof pk2 - 1);
    if (!doc) return;
    r = ufo_pickle_root(doc);
    CHECK(r->kind == UFO_PV_TUPLE && r->u.seq.n == 5);
    if (r->kind == UFO_PV_TUPLE && r->u.seq.n == 5) {
        const ufo_pvalue *d = r->u.seq.items[0];
        CHECK(d->kind == UFO_PV_DICT && d->u.seq.n == 2 && is_bytes(d->u.seq.items[2], "bA\n", 3) &&
              is_int(d->u.seq.items[3], 2));
        CHECK(r->u.seq.items[1]->kind == UFO_PV_LIST && is_int(r->u.seq.items[1]->u.seq.items[0], 3));
        d = r->u.seq.items[2];
        CHECK(d->kind == UFO_PV_DICT && d->u.seq.n == 1 && d->u.seq.items[1]->kind == UFO_PV_NONE);
        CHECK(r->u.seq.items[3]->kind == UFO_PV_TUPLE && r->u.seq.items[3]->u.seq.n == 0);
        CHECK(r->u.seq.items[4]->kind == UFO_PV_BOOL && r->u.seq.items[4]->u.i == 0);
    }
    ufo_pickle_free(doc);

    // raw-unicode-escape: an even run of backslashes does not escape
    static const char pk3[] = "V\\\\u0041\\u00e9\n.";
    doc = load_ok("unicode0", pk3, sizeof pk3 - 1);
    if (doc) {
        CHECK(is_strv(ufo_pickle_root(doc), "\\\\u0041\xc3\xa9"));
        ufo_pickle_free(doc);
    }
}

static void test_binary_scalars(void) {
    // PROTO 4, FRAME, MARK/POP_MARK, all int/float/bytes/str forms, memo, DUP, POP, LIST
    static const char pk[] =
        "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00(N1(\x8c\x01" "a\x94K\x01M\x00\x01J\xff\xff\xff\xff"
        "\x8a\x02\x00\x80\x8b\x01\x00\x00\x00\xff\x88\x89N)\x8e\x02\x00\x00\x00\x00\x00\x00\x00hi"
        "\x96\x01\x00\x00\x00\x00\x00\x00\x00z\x8d\x02\x00\x00\x00\x00\x00\x00\x00ok" "h\x00\x94" "20"
        "G?\xf8\x00\x00\x00\x00\x00\x00" "\x8a\x00" "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"
        "U\x02xyT\x01\x00\x00\x00w" "B\x01\x00\x00\x00v" "X\x02\x00\x00\x00\xc3\xa9" "l.";
    ufo_pickle *doc = load_ok("binary", pk, sizeof pk - 1);
    if (!doc) return;
    const ufo_pvalue *r = ufo_pickle_root(doc);
    CHECK(ufo_pickle_protocol(doc) == 4);
    CHECK(r->kind == UFO_PV_LIST && r->u.seq.n == 21, "n=%zu", r->u.seq.n);
    if (r->kind == UFO_PV_LIST && r->u.seq.n == 21) {
        ufo_pvalue *const *it = r->u.seq.items;
        CHECK(is_strv(it[0], "a"));
        CHECK(is_int(it[1], 1) && is_int(it[2], 256) && is_int(it[3], -1) && is_int(it[4], -32768) &&
              is_int(it[5], -1));
        CHECK(it[6]->kind == UFO_PV_BOOL && it[6]->u.i == 1 && it[7]->kind == UFO_PV_BOOL && it[7]->u.i == 0);
        CHECK(it[8]->kind == UFO_PV_NONE && it[9]->kind == UFO_PV_TUPLE);
        CHECK(is_bytes(it[10], "hi", 2) && is_bytes(it[11], "z", 1) && is_strv(it[12], "ok"));
        CHECK(it[13] == it[0], "BINGET");
        CHECK(it[14]->kind == UFO_PV_FLOAT && it[14]->u.f == 1.5);
        CHECK(is_int(it[15], 0) && is_int(it[16], INT64_MAX));
        CHECK(is_bytes(it[17], "xy", 2) && is_bytes(it[18], "w", 1) && is_bytes(it[19], "v", 1));
        CHECK(is_strv(it[20], "\xc3\xa9"));
    }
    ufo_pickle_free(doc);

    // LONG_BINPUT / LONG_BINGET, TUPLE2/3, LONG4 negative
    static const char pk2[] = "\x80\x02K\x07r\x10\x00\x00\x00j\x10\x00\x00\x00\x86\x8b\x02\x00\x00\x00\xfe\xff"
                              "\x8a\x01\x80\x87.";
    doc = load_ok("longmemo", pk2, sizeof pk2 - 1);
    if (doc) {
        r = ufo_pickle_root(doc);
        CHECK(r->kind == UFO_PV_TUPLE && r->u.seq.n == 3 && r->u.seq.items[0]->kind == UFO_PV_TUPLE &&
              is_int(r->u.seq.items[0]->u.seq.items[1], 7) && is_int(r->u.seq.items[1], -2) &&
              is_int(r->u.seq.items[2], -128));
        ufo_pickle_free(doc);
    }
}

static void test_dicts_and_globals(void) {
    // OrderedDict by REDUCE(()) + SETITEMS, by NEWOBJ, and by REDUCE([[k, v]])
    static const char od1[] = "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00" "aK\x01"
                              "X\x01\x00\x00\x00" "bG?\xf8\x00\x00\x00\x00\x00\x00u.";
    ufo_pickle *doc = load_ok("odict", od1, sizeof od1 - 1);
    if (doc) {
        const ufo_pvalue *r = ufo_pickle_root(doc);
        CHECK(r->kind == UFO_PV_DICT && r->u.seq.n == 2 && is_int(ufo_pdict_get(r, "a"), 1) &&
              ufo_pdict_get(r, "b")->u.f == 1.5 && ufo_pdict_get(r, "c") == NULL);
        ufo_pickle_free(doc);
    }
    static const char od2[] = "\x80\x02" "ccollections\nOrderedDict\n)\x81(X\x01\x00\x00\x00" "aK\x01u.";
    doc = load_ok("odict_newobj", od2, sizeof od2 - 1);
    if (doc) {
        CHECK(is_int(ufo_pdict_get(ufo_pickle_root(doc), "a"), 1));
        ufo_pickle_free(doc);
    }
    static const char od3[] = "ccollections\nOrderedDict\n((lp0\n(lp1\nV" "k\naI7\naatR.";
    doc = load_ok("odict_items", od3, sizeof od3 - 1);
    if (doc) {
        CHECK(is_int(ufo_pdict_get(ufo_pickle_root(doc), "k"), 7));
        ufo_pickle_free(doc);
    }
    // later duplicate key wins for lookups (pairs are all kept)
    static const char dup[] = "\x80\x04}(\x8c\x01" "aK\x01\x8c\x01" "aK\x02u.";
    doc = load_ok("dupkey", dup, sizeof dup - 1);
    if (doc) {
        CHECK(is_int(ufo_pdict_get(ufo_pickle_root(doc), "a"), 2));
        ufo_pickle_free(doc);
    }
    // _codecs.encode(str, 'latin1') -> bytes; builtins.bytes() -> b''; builtins.tuple([..])
    static const char enc[] = "\x80\x02(c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xa9X\x06\x00\x00\x00latin1\x86R"
                              "c__builtin__\nbytes\n)R" "cbuiltins\ntuple\n]K\x05" "a\x85Rt.";
    doc = load_ok("codecs", enc, sizeof enc - 1);
    if (doc) {
        const ufo_pvalue *r = ufo_pickle_root(doc);
        CHECK(r->kind == UFO_PV_TUPLE && r->u.seq.n == 3 && is_bytes(r->u.seq.items[0], "\xe9", 1) &&
              is_bytes(r->u.seq.items[1], "", 0) && r->u.seq.items[2]->kind == UFO_PV_TUPLE &&
              is_int(r->u.seq.items[2]->u.seq.items[0], 5));
        ufo_pickle_free(doc);
    }
    // an uncalled whitelisted global is a value
    static const char g[] = "cnumpy\nndarray\n.";
    doc = load_ok("global", g, sizeof g - 1);
    if (doc) {
        const ufo_pvalue *r = ufo_pickle_root(doc);
        CHECK(r->kind == UFO_PV_GLOBAL && strcmp(r->u.g.module, "numpy") == 0 && strcmp(r->u.g.name, "ndarray") == 0);
        ufo_pickle_free(doc);
    }
}

static void test_arrays(void) {
    buf b = {0};
    // C order f4, Fortran i4 (2, 3) transposed, f2, b1 with '|', i8
    const float f[6] = {0, 1, 2, 3, 4, 5};
    const int32_t fort[6] = {0, 3, 1, 4, 2, 5};  // arange(6).reshape(2,3) in Fortran order
    const uint16_t h[2] = {0x3c00, 0xc000};
    const unsigned char bl[3] = {1, 0, 1};
    int s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3};
    PUTS(&b, "\x80\x04}(");
    sbu(&b, "c");
    array_op(&b, "f4", "<", s23, 2, f, sizeof f, 0);
    sbu(&b, "fortran");
    array_op(&b, "i4", "<", s23, 2, fort, sizeof fort, 1);
    sbu(&b, "half");
    array_op(&b, "f2", "=", s2, 1, h, sizeof h, 0);
    sbu(&b, "bool");
    array_op(&b, "b1", "|", s3, 1, bl, sizeof bl, 0);
    sbu(&b, "scalar");
    array_op(&b, "i8", "<", NULL, 0, "\x05\0\0\0\0\0\0\0", 8, 0);
    sbu(&b, "StructuredToParameterName@@");
    PUTS(&b, "}(");
    sbu(&b, "c");
    sbu(&b, "linear_0.w_0");
    PUTS(&b, "u");
    sbu(&b, "step");
    PUTS(&b, "K\x07u.");

    ufo_pickle *doc = load_ok("arrays", b.b, b.n);
    if (doc) {
        const ufo_pvalue *a = ufo_pdict_get(ufo_pickle_root(doc), "fortran");
        CHECK(a && a->kind == UFO_PV_NDARRAY && a->u.arr->dtype == UFO_I32 && a->u.arr->ndim == 2);
        if (a && a->kind == UFO_PV_NDARRAY) {
            const int32_t *d = a->u.arr->data;
            for (int i = 0; i < 6; i++) CHECK(d[i] == i, "fortran -> C: [%d] = %d", i, d[i]);
            void *t = ufo_pickle_take_data(doc, a);
            CHECK(t == a->u.arr->data, "transposed data can be taken");
            CHECK(ufo_pickle_take_data(doc, a) == NULL, "only once");
            free(t);
        }
        a = ufo_pdict_get(ufo_pickle_root(doc), "c");
        CHECK(a && a->kind == UFO_PV_NDARRAY && ufo_pickle_take_data(doc, a) == NULL, "views are not taken");
        ufo_pickle_free(doc);
    }

    ufo_tensor_file tf;
    int rc = ufo_paddle_parse(b.b, b.n, "arrays", &tf);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc == 0) {
        CHECK(tf.n == 5);
        const ufo_tensor_entry *e = ufo_tensor_file_find(&tf, "c");
        CHECK(e && e->dtype == UFO_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 && e->nbytes == 24 &&
              memcmp(e->data, f, 24) == 0 && e->owned == e->data && ((uintptr_t)e->data % 64) == 0);
        e = ufo_tensor_file_find(&tf, "fortran");
        CHECK(e && e->dtype == UFO_I32 && ((const int32_t *)e->data)[1] == 1 && ((const int32_t *)e->data)[3] == 3);
        e = ufo_tensor_file_find(&tf, "half");
        CHECK(e && e->dtype == UFO_F16 && ((const uint16_t *)e->data)[1] == 0xc000);
        e = ufo_tensor_file_find(&tf, "bool");
        CHECK(e && e->dtype == UFO_BOOL && e->nbytes == 3);
        e = ufo_tensor_file_find(&tf, "scalar");
        CHECK(e && e->dtype == UFO_I64 && e->ndim == 0 && e->nbytes == 8 && *(const int64_t *)e->data == 5);
        CHECK(ufo_tensor_file_find(&tf, "StructuredToParameterName@@") == NULL);
        const char *sk = ufo_tensor_file_meta(&tf, "paddle.skipped");
        CHECK(sk && strcmp(sk, "1") == 0, "skipped %s", sk ? sk : "(none)");
        sk = ufo_tensor_file_meta(&tf, "paddle.pickle_protocol");
        CHECK(sk && strcmp(sk, "4") == 0);
        ufo_tensor_file_free(&tf);
    }
    free(b.b);

    // numpy's protocol 5: _frombuffer(bytearray, dtype, shape, 'F')
    buf c = {0};
    const float ff[6] = {0, 3, 1, 4, 2, 5};
    PUTS(&c, "\x80\x05");
    sglobal(&c, "numpy._core.numeric", "_frombuffer");
    PUTS(&c, "(\x96\x18\x00\x00\x00\x00\x00\x00\x00");
    put(&c, ff, sizeof ff);
    dtype_op(&c, "f4", "<");
    PUTS(&c, "K\x02K\x03\x86");
    sbu(&c, "F");
    PUTS(&c, "tR.");
    doc = load_ok("frombuffer", c.b, c.n);
    if (doc) {
        const ufo_pvalue *a = ufo_pickle_root(doc);
        CHECK(a->kind == UFO_PV_NDARRAY && a->u.arr->ndim == 2 && a->u.arr->shape[1] == 3);
        if (a->kind == UFO_PV_NDARRAY)
            for (int i = 0; i < 6; i++) CHECK(((const float *)a->u.arr->data)[i] == (float)i);
        ufo_pickle_free(doc);
    }
    free(c.b);

    // paddle's big-tensor slices (protocol 2/3, > 1 GiB): joined back
    buf d = {0};
    PUTS(&d, "\x80\x04}(");
    int s4[1] = {4}, s2b[1] = {2};
    const float q[6] = {1, 2, 3, 4, 5, 6};
    sbu(&d, "big@@.0");
    array_op(&d, "f4", "<", s4, 1, q, 16, 0);
    sbu(&d, "big@@.1");
    array_op(&d, "f4", "<", s2b, 1, q + 4, 8, 0);
    sbu(&d, "UnpackBigParamInfor@@");
    PUTS(&d, "}");
    sbu(&d, "big");
    PUTS(&d, "}(");
    sbu(&d, "OriginShape");
    PUTS(&d, "K\x03K\x02\x86");
    sbu(&d, "slices");
    PUTS(&d, "]("); sbu(&d, "big@@.0"); sbu(&d, "big@@.1"); PUTS(&d, "eus");
    PUTS(&d, "u.");
    rc = ufo_paddle_parse(d.b, d.n, "slices", &tf);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc == 0) {
        CHECK(tf.n == 1);
        const ufo_tensor_entry *e = ufo_tensor_file_find(&tf, "big");
        CHECK(e && e->ndim == 2 && e->shape[0] == 3 && e->shape[1] == 2 && e->nbytes == 24 &&
              memcmp(e->data, q, 24) == 0);
        ufo_tensor_file_free(&tf);
    }
    free(d.b);
}

// ------------------------------------------------------------ hostile inputs

static void test_hostile(void) {
    EXPECT_ERR("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.", "refusing global 'os.system' at byte 2");
    EXPECT_ERR("cposix\nsystem\n(S'ls'\ntR.", "refusing global 'posix.system'");
    EXPECT_ERR("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93\x8c\x03" "1+1\x85R.", "refusing global 'builtins.eval'");
    EXPECT_ERR("\x80\x04\x8c\x0a" "subprocess\x8c\x05Popen\x93).", "refusing global 'subprocess.Popen'");
    EXPECT_ERR("c__builtin__\ngetattr\n.", "refusing global '__builtin__.getattr'");
    EXPECT_ERR("cnt\nsystem\n.", "refusing global 'nt.system'");
    EXPECT_ERR("ccopy_reg\n_reconstructor\n.", "refusing global 'copy_reg._reconstructor'");
    EXPECT_ERR("cnumpy\nload\n.", "refusing global 'numpy.load'");
    EXPECT_ERR("cnumpy.core.multiarray\nscalar\n.", "refusing global");
    EXPECT_ERR("cos\x01\nsys\x7ftem\n.", "refusing global 'os?.sys?tem'");  // unprintables masked
    // REDUCE / NEWOBJ on something that is not a whitelisted callable
    EXPECT_ERR("cnumpy\nndarray\n(K\x02tR.", "refusing to call numpy.ndarray");
    EXPECT_ERR("\x80\x04\x8c\x09os.system\x8c\x02ls\x85R.", "REDUCE: str is not callable");
    EXPECT_ERR("\x80\x04NNR.", "not callable");
    EXPECT_ERR("cnumpy\nndarray\n)\x81.", "NEWOBJ: only collections.OrderedDict");
    EXPECT_ERR("c_codecs\nencode\n(V\\u20ac\nVlatin1\ntR.", "not latin-1");
    EXPECT_ERR("c_codecs\nencode\n(Vx\nVutf8\ntR.", "only (str, 'latin1')");
    EXPECT_ERR("cbuiltins\nbytes\n(K\x05tR.", "only bytes()");
    EXPECT_ERR("\x80\x02]N\x85R.", "not callable");
    EXPECT_ERR("\x80\x02]N" "b.", "BUILD on a list");
    // memo
    EXPECT_ERR("\x80\x04}\x94h\x05.", "memo index 5 not defined");
    EXPECT_ERR("\x80\x04}\x94j\xff\xff\xff\x7f.", "not defined");
    EXPECT_ERR("\x80\x04}r\xff\xff\xff\xff.", "memo index 4294967295 too large");
    EXPECT_ERR("}p99999999999\n.", "too large");
    EXPECT_ERR("}p-1\n.", "negative memo index");
    EXPECT_ERR("\x80\x04\x94.", "stack underflow");
    // lengths past the end, negative lengths
    EXPECT_ERR("\x80\x04" "B\x00\x00\x00\x40" "abc.", "truncated");
    EXPECT_ERR("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40x.", "truncated");
    EXPECT_ERR("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffx.", "truncated");
    EXPECT_ERR("\x80\x04\x96\x10\x00\x00\x00\x00\x00\x00\x00x.", "truncated");
    EXPECT_ERR("\x80\x02T\xff\xff\xff\xffx.", "negative length");
    EXPECT_ERR("\x80\x02\x8b\xff\xff\xff\xff.", "negative length");
    EXPECT_ERR("\x80\x02U\x05" "ab.", "truncated");
    EXPECT_ERR("\x80\x02X\x05\x00\x00\x00" "ab.", "truncated");
    EXPECT_ERR("\x80\x04\x95\xe8\x03\x00\x00\x00\x00\x00\x00}.", "truncated: FRAME");
    EXPECT_ERR("\x80\x04\x8c\x02\xc3(.", "invalid UTF-8");
    EXPECT_ERR("\x80\x04\x8c\x03\xed\xa0.", "invalid UTF-8");
    EXPECT_ERR("S'abc\n.", "must be quoted");
    EXPECT_ERR("S'ab\\x4'\n.", "invalid \\x escape");
    EXPECT_ERR("V\\u12\n.", "truncated \\uXXXX");
    EXPECT_ERR("V\\U00110000\n.", "out of range");
    EXPECT_ERR("I12", "no end of line");
    EXPECT_ERR("I99999999999999999999\n.", "integer too large");
    EXPECT_ERR("I1x\n.", "invalid integer");
    EXPECT_ERR("F1.5x\n.", "FLOAT: bad literal");
    EXPECT_ERR("\x80\x02\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.", "too large");
    // stack / marks
    EXPECT_ERR("\x80\x04.", "STOP: stack underflow");
    EXPECT_ERR("\x80\x04K\x01(\x85.", "TUPLE1: stack underflow");  // not below the MARK
    EXPECT_ERR("\x80\x04K\x01(a.", "APPEND: stack underflow");
    EXPECT_ERR("\x80\x04K\x01t.", "TUPLE without a MARK");
    EXPECT_ERR("\x80\x04}(K\x01u.", "odd number");
    EXPECT_ERR("\x80\x04K\x01(K\x02" "e.", "APPENDS to a int");
    EXPECT_ERR("\x80\x04)K\x01" "a.", "APPEND to a tuple");
    EXPECT_ERR("\x80\x04]]]K\x01s.", "SETITEM on a list");
    EXPECT_ERR("\x80\x04}]K\x01s.", "unhashable dict key (list)");
    EXPECT_ERR("\x80\x04K\x01" "b.", "stack underflow");
    EXPECT_ERR("\x80\x04K\x01K\x02" "b.", "BUILD on a int");
    // opcodes that are refused outright
    EXPECT_ERR("\x80\x02Pabc\n.", "unsupported opcode PERSID at byte 2");
    EXPECT_ERR("\x80\x02X\x01\x00\x00\x00" "aQ.", "unsupported opcode BINPERSID");
    EXPECT_ERR("\x80\x02\x82\x01.", "unsupported opcode EXT1");
    EXPECT_ERR("\x80\x02\x83\x01\x00.", "unsupported opcode EXT2");
    EXPECT_ERR("\x80\x02\x84\x01\x00\x00\x00.", "unsupported opcode EXT4");
    EXPECT_ERR("(ios\nsystem\nS'ls'\n.", "unsupported opcode INST");
    EXPECT_ERR("\x80\x02(K\x01o.", "unsupported opcode OBJ");
    EXPECT_ERR("\x80\x04\x8f.", "unsupported opcode EMPTY_SET");
    EXPECT_ERR("\x80\x04)\x92.", "unsupported opcode NEWOBJ_EX");
    EXPECT_ERR("\x80\x05\x97.", "unsupported opcode NEXT_BUFFER");
    EXPECT_ERR("\x80\x05\x98.", "unsupported opcode READONLY_BUFFER");
    EXPECT_ERR("\x80\x04\xff.", "unknown opcode 0xff");
    EXPECT_ERR("\x80\x06N.", "unsupported pickle protocol 6");
    EXPECT_ERR("\x80\x04}", "no STOP");
    EXPECT_ERR("", "no STOP");
    // structure
    EXPECT_ERR("\x80\x04]\x94h\x00" "a.", "recursive");
    EXPECT_ERR("\x80\x04]\x94]\x94h\x00" "ah\x01" "a.", "recursive");
    EXPECT_ERR("\x80\x04]\x94.", "not a paddle.save state dict (the pickle holds a list");
    EXPECT_ERR("\x80\x04K\x01.", "holds a int");

    // deep nesting: 10k MARKs, 10k nested lists, 10k nested tuples, and staleness
    buf b = {0};
    PUTS(&b, "\x80\x04");
    for (int i = 0; i < 10000; i++) PUTS(&b, "(");
    PUTS(&b, ".");
    expect_err("deep_marks", b.b, b.n, "too deeply nested");
    b.n = 0;
    PUTS(&b, "\x80\x04");
    for (int i = 0; i < 10000; i++) PUTS(&b, "]");
    for (int i = 0; i < 9999; i++) PUTS(&b, "a");
    PUTS(&b, ".");
    expect_err("deep_lists", b.b, b.n, "nesting deeper than 100");
    b.n = 0;
    PUTS(&b, "\x80\x04N");
    for (int i = 0; i < 10000; i++) PUTS(&b, "\x85");
    PUTS(&b, ".");
    expect_err("deep_tuples", b.b, b.n, "nesting deeper than 100");
    // 60 nested lists memoized, then the innermost gets a 60-deep chain: only
    // the final check sees 120 levels
    b.n = 0;
    PUTS(&b, "\x80\x04");
    for (int i = 0; i < 60; i++) PUTS(&b, "]\x94");
    for (int i = 0; i < 59; i++) PUTS(&b, "a");           // list0 > list1 > ... > list59
    PUTS(&b, "h\x3b");                                     // GET list59 (memo 59)
    PUTS(&b, "N");
    for (int i = 0; i < 60; i++) PUTS(&b, "\x85");        // 60 nested tuples
    PUTS(&b, "a0.");                                       // append to list59, pop; STOP returns list0
    expect_err("deep_stale", b.b, b.n, "nesting deeper than 100");
    // 10k MARK + EMPTY_LIST alternating
    b.n = 0;
    PUTS(&b, "\x80\x04");
    for (int i = 0; i < 10000; i++) PUTS(&b, "(]");
    PUTS(&b, ".");
    expect_err("deep_mark_list", b.b, b.n, "too deeply nested");
    // stack limit: 2M NONEs
    b.n = 0;
    PUTS(&b, "\x80\x04");
    for (int i = 0; i < 2000000; i++) PUTS(&b, "N");
    PUTS(&b, ".");
    expect_err("big_stack", b.b, b.n, "too many entries");
    // allocation budget: one 64 KiB string latin-1 encoded 2000 times
    b.n = 0;
    PUTS(&b, "\x80\x02" "c_codecs\nencode\nq\x00X\x00\x00\x01\x00");
    for (int i = 0; i < 65536; i++) PUTS(&b, "a");
    PUTS(&b, "q\x01X\x06\x00\x00\x00latin1q\x02");
    for (int i = 0; i < 2000; i++) PUTS(&b, "h\x00h\x01h\x02\x86R0");
    PUTS(&b, "N.");
    expect_err("budget", b.b, b.n, "input too complex");
    free(b.b);

    // array-level errors
    int s23[2] = {2, 3}, s2[1] = {2}, big[4] = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    static const float f[16] = {0, 1, 2, 3, 4, 5};
    struct { const char *label, *typestr, *order; int *shape, ndim; size_t n; const char *want; } cases[] = {
        {"dtype_O8", "O8", "|", s2, 1, 16, "unsupported dtype 'O8'"},
        {"dtype_U4", "U4", "<", s2, 1, 32, "unsupported dtype 'U4'"},
        {"dtype_f3", "f3", "<", s2, 1, 6, "unsupported dtype 'f3'"},
        {"dtype_u4", "u4", "<", s2, 1, 8, "unsupported dtype 'u4'"},
        {"dtype_bigendian_str", ">f4", "<", s2, 1, 8, "big-endian dtype '>f4'"},
        {"big_endian", "f4", ">", s23, 2, 24, "big-endian arrays are not supported"},
        {"bad_order", "f4", "x", s23, 2, 24, "bad byte order"},
        {"mismatch_short", "f4", "<", s23, 2, 20, "shape/bytes mismatch: shape (2, 3) of F32 needs 24 bytes, data has 20"},
        {"mismatch_long", "f2", "<", s23, 2, 24, "shape/bytes mismatch"},
        {"shape_overflow", "f4", "<", big, 4, 0, "shape too large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf a = {0};
        PUTS(&a, "\x80\x04}(");
        sbu(&a, "w");
        array_op(&a, cases[i].typestr, cases[i].order, cases[i].shape, cases[i].ndim, f, cases[i].n, 0);
        PUTS(&a, "u.");
        expect_err(cases[i].label, a.b, a.n, cases[i].want);
        free(a.b);
    }
    // negative shape, too many dims, object array, BUILD twice, no BUILD, dtype state shapes
    buf a = {0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy.core.multiarray", "_reconstruct");
    sglobal(&a, "numpy", "ndarray");
    PUTS(&a, "K\x00\x85");
    sbb(&a, "b", 1);
    PUTS(&a, "\x87R.");
    expect_err("no_build", a.b, a.n, "ndarray without its BUILD state");
    a.n -= 1;
    PUTS(&a, "(K\x01(J\xff\xff\xff\xfft");
    dtype_op(&a, "f4", "<");
    PUTS(&a, "\x89]tb.");
    expect_err("negative_dim", a.b, a.n, "bad shape entry");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy.core.multiarray", "_reconstruct");
    sglobal(&a, "numpy", "ndarray");
    PUTS(&a, "K\x00\x85");
    sbb(&a, "b", 1);
    PUTS(&a, "\x87R\x94(K\x01(K\x01t");
    dtype_op(&a, "f4", "<");
    PUTS(&a, "\x89]tb");
    PUTS(&a, ".");
    expect_err("object_array", a.b, a.n, "object arrays are not supported");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy.core.multiarray", "_reconstruct");
    sglobal(&a, "numpy", "ndarray");
    PUTS(&a, "K\x00\x85");
    sbb(&a, "b", 1);
    PUTS(&a, "\x87R(K\x01(K\x01t");
    dtype_op(&a, "f4", "<");
    PUTS(&a, "\x89");
    sbb(&a, f, 4);
    PUTS(&a, "t\x94" "bh\x00" "b.");
    expect_err("build_twice", a.b, a.n, "BUILD applied twice");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy", "dtype");
    sbu(&a, "f4");
    PUTS(&a, "\x85R(K\x03");
    sbu(&a, "<");
    PUTS(&a, "N]NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb.");
    expect_err("structured_dtype", a.b, a.n, "structured and subarray dtypes are not supported");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy", "dtype");
    sbu(&a, "f4");
    PUTS(&a, "\x85R(K\x03t" "b.");
    expect_err("dtype_state_short", a.b, a.n, "tuple of 8 or 9 items");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy", "dtype");
    PUTS(&a, "K\x04\x85R.");
    expect_err("dtype_not_str", a.b, a.n, "expected a short type string");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04");
    sglobal(&a, "numpy.core.multiarray", "_reconstruct");
    PUTS(&a, "K\x00K\x00K\x00\x87R.");
    expect_err("reconstruct_args", a.b, a.n, "expected (numpy.ndarray, shape, typecode)");
    free(a.b);
    a = (buf){0};
    PUTS(&a, "\x80\x04}(");
    sbu(&a, "w");
    int s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    array_op(&a, "f4", "<", s9, 9, f, 4, 0);
    PUTS(&a, "u.");
    expect_err("too_many_dims", a.b, a.n, "9 dimensions (at most 8)");
    free(a.b);
    // duplicate tensor names
    a = (buf){0};
    PUTS(&a, "\x80\x04}(");
    sbu(&a, "w");
    array_op(&a, "f4", "<", s2, 1, f, 8, 0);
    sbu(&a, "w");
    array_op(&a, "f4", "<", s2, 1, f, 8, 0);
    PUTS(&a, "u.");
    expect_err("duplicate", a.b, a.n, "tensor 'w' appears twice");
    free(a.b);
}

// ------------------------------------------------------------ real paddle fixtures

static void test_fixture(const char *path, int n_expect, int depth) {
    ufo_tensor_file f;
    int rc = ufo_paddle_load(path, &f);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc) return;
    CHECK(f.n == n_expect, "%s: %d tensors", path, f.n);
    const ufo_tensor_entry *e = ufo_tensor_file_find(&f, "backbone.cls_token");
    CHECK(e && e->dtype == UFO_F32 && e->ndim == 3 && e->shape[0] == 1 && e->shape[1] == 1 && e->shape[2] == 16);
    e = ufo_tensor_file_find(&f, "backbone.pos_embed");
    CHECK(e && e->ndim == 3 && e->shape[1] == 5 && e->shape[2] == 16);
    e = ufo_tensor_file_find(&f, "backbone.patch_embed.proj.weight");
    CHECK(e && e->ndim == 4 && e->shape[0] == 16 && e->shape[1] == 3 && e->shape[2] == 4 && e->shape[3] == 4 &&
          e->nbytes == 16 * 3 * 4 * 4 * 4);
    char name[128];
    for (int b = 0; b < depth; b++) {
        snprintf(name, sizeof name, "backbone.blocks.%d.attn.qkv.weight", b);
        e = ufo_tensor_file_find(&f, name);
        CHECK(e && e->ndim == 2 && e->shape[0] == 16 && e->shape[1] == 48, "%s", name);  // [in, out]
        snprintf(name, sizeof name, "backbone.blocks.%d.mlp.fc2.weight", b);
        e = ufo_tensor_file_find(&f, name);
        CHECK(e && e->ndim == 2 && e->shape[0] == 64 && e->shape[1] == 16, "%s", name);
    }
    for (int t = 1; t <= 4; t++) {
        snprintf(name, sizeof name, "heads.task%d.bottleneck.0._variance", t);
        e = ufo_tensor_file_find(&f, name);
        CHECK(e && e->ndim == 1 && e->shape[0] == 16, "%s", name);
        if (e) {
            const float *v = e->data;
            for (int i = 0; i < 16; i++) CHECK(v[i] >= 0.5f && v[i] <= 2.0f, "%s[%d] = %g", name, i, v[i]);
        }
    }
    CHECK(ufo_tensor_file_find(&f, "StructuredToParameterName@@") == NULL);
    CHECK(f.map.data == NULL, "mapping released");
    ufo_tensor_file_free(&f);
}

// Every proper prefix must fail cleanly (the last byte is STOP).
static void test_truncations(const char *path) {
    char *data;
    size_t n;
    if (ufo_read_file(path, &data, &n)) {
        CHECK(0, "%s", ufo_error());
        return;
    }
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        // exact-size heap copies, so ASan sees any read past the prefix
        unsigned char *cp = malloc(k ? k : 1);
        memcpy(cp, data, k);
        ufo_tensor_file f;
        if (ufo_paddle_parse(cp, k, path, &f) == 0) {
            ufo_tensor_file_free(&f);
            if (bad++ < 5) CHECK(0, "%s: prefix of %zu bytes accepted", path, k);
        } else if (!strstr(ufo_error(), "pickle: ")) {
            if (bad++ < 5) CHECK(0, "%s: prefix %zu: odd error '%s'", path, k, ufo_error());
        }
        free(cp);
    }
    CHECK(bad == 0, "%s: %d bad prefixes", path, bad);
    free(data);
}

static void test_mixed(void) {
    ufo_tensor_file f;
    int rc = ufo_paddle_load("tests/data/paddle/mixed.pdparams", &f);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc) return;
    CHECK(f.n == 4, "%d", f.n);
    const ufo_tensor_entry *e = ufo_tensor_file_find(&f, "w");
    CHECK(e && e->dtype == UFO_F32 && e->ndim == 2 && ((const float *)e->data)[5] == 5.0f);
    e = ufo_tensor_file_find(&f, "h");
    CHECK(e && e->dtype == UFO_F16 && ((const uint16_t *)e->data)[2] == 0x7bff);
    e = ufo_tensor_file_find(&f, "i");
    CHECK(e && e->dtype == UFO_I64 && ((const int64_t *)e->data)[2] == (int64_t)1 << 40);
    e = ufo_tensor_file_find(&f, "n");
    CHECK(e && e->dtype == UFO_F64 && e->ndim == 2 && ((const double *)e->data)[1] == 2.5);
    const char *sk = ufo_tensor_file_meta(&f, "paddle.skipped");
    CHECK(sk && strcmp(sk, "3") == 0, "skipped %s", sk ? sk : "-");
    ufo_tensor_file_free(&f);
}

int main(void) {
    test_protocol0();
    test_binary_scalars();
    test_dicts_and_globals();
    test_arrays();
    test_hostile();
    test_fixture("tests/data/paddle/tiny.pdmodel", 46, 2);
    test_fixture("tests/data/paddle/tiny_p2.pdmodel", 34, 1);
    test_mixed();
    test_truncations("tests/data/paddle/tiny.pdmodel");
    test_truncations("tests/data/paddle/tiny_p2.pdmodel");
    test_truncations("tests/data/paddle/mixed.pdparams");
    ufo_tensor_file f;
    CHECK(ufo_paddle_load("tests/data/paddle/does-not-exist.pdmodel", &f) != 0 &&
          strstr(ufo_error(), "does-not-exist"));
    return check_summary("test_pickle");
}
