// .npy reader (format versions 1.0, 2.0, 3.0).
//
// Preamble: "\x93NUMPY", major, minor, then the header length (u16 LE for
// 1.0, u32 LE for 2.0 and 3.0), then the header: a Python dict literal
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// padded with spaces and ending in '\n'; the raw data follows. The header is
// read by a small bounded parser (no eval, no recursion): exactly the three
// keys, each once; descr a simple little-endian (or byte-order-free) scalar
// type; C order only; data exactly numel * itemsize bytes.
#include "formats/npy.h"
#include "base/error.h"
#include "base/file.h"
#include "base/mem.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy reader assumes a little-endian host"
#endif

typedef struct {
    const unsigned char *p, *end, *start;
    const char *name;
} npy_lex;

static void skip_ws(npy_lex *l) {
    while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r')) l->p++;
}

static int peek(npy_lex *l) { return l->p < l->end ? *l->p : -1; }

static int expect(npy_lex *l, char c, const char *what) {
    skip_ws(l);
    if (peek(l) != (unsigned char)c)
        return ufo_errorf("%s: npy: malformed header: expected %s at byte %zu of the header", l->name, what,
                          (size_t)(l->p - l->start));
    l->p++;
    return 0;
}

// A quoted Python string without escapes, copied into out (cap bytes).
static int parse_str(npy_lex *l, char *out, size_t cap) {
    skip_ws(l);
    int q = peek(l);
    if (q != '\'' && q != '"') return ufo_errorf("%s: npy: malformed header: expected a quoted string", l->name);
    l->p++;
    size_t n = 0;
    while (l->p < l->end && *l->p != q) {
        unsigned char c = *l->p;
        if (c == '\\' || c < 0x20)
            return ufo_errorf("%s: npy: malformed header: unsupported character 0x%02x in a string", l->name, c);
        if (n + 1 >= cap) return ufo_errorf("%s: npy: malformed header: string too long", l->name);
        out[n++] = (char)c;
        l->p++;
    }
    if (l->p >= l->end) return ufo_errorf("%s: npy: malformed header: unterminated string", l->name);
    l->p++;
    out[n] = 0;
    return 0;
}

static int parse_bool(npy_lex *l, int *v) {
    skip_ws(l);
    size_t left = (size_t)(l->end - l->p);
    if (left >= 4 && memcmp(l->p, "True", 4) == 0) {
        *v = 1;
        l->p += 4;
    } else if (left >= 5 && memcmp(l->p, "False", 5) == 0) {
        *v = 0;
        l->p += 5;
    } else {
        return ufo_errorf("%s: npy: malformed header: 'fortran_order' is not True or False", l->name);
    }
    // "Truex" is not a Python literal.
    int c = peek(l);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
        return ufo_errorf("%s: npy: malformed header: 'fortran_order' is not True or False", l->name);
    return 0;
}

// A shape tuple: "()", "(3,)", "(3, 4)", "(3, 4,)"; Python 2 "3L" accepted.
static int parse_shape(npy_lex *l, int64_t *shape, int *ndim) {
    if (expect(l, '(', "'(' opening the shape tuple")) return -1;
    int n = 0, trailing_comma = 0;
    for (;;) {
        skip_ws(l);
        if (peek(l) == ')') break;
        int c = peek(l);
        if (c == '-') return ufo_errorf("%s: npy: negative dimension in the shape", l->name);
        if (c < '0' || c > '9')
            return ufo_errorf("%s: npy: malformed header: the shape is not a tuple of integers", l->name);
        uint64_t v = 0;
        while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
            uint64_t digit = (uint64_t)(*l->p - '0');
            if (v > ((uint64_t)INT64_MAX - digit) / 10)
                return ufo_errorf("%s: npy: dimension too large in the shape", l->name);
            v = v * 10 + digit;
            l->p++;
        }
        if (peek(l) == 'L' || peek(l) == 'l') l->p++;
        c = peek(l);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '.')
            return ufo_errorf("%s: npy: malformed header: the shape is not a tuple of integers", l->name);
        if (n >= UFO_MAX_DIMS)
            return ufo_errorf("%s: npy: more than %d dimensions in the shape", l->name, UFO_MAX_DIMS);
        shape[n++] = (int64_t)v;
        trailing_comma = 0;
        skip_ws(l);
        if (peek(l) == ',') {
            l->p++;
            trailing_comma = 1;
            continue;
        }
        if (peek(l) == ')') break;
        return ufo_errorf("%s: npy: malformed header: expected ',' or ')' in the shape", l->name);
    }
    l->p++;  // ')'
    if (n == 1 && !trailing_comma)  // "(3)" is the integer 3 in Python, not a tuple
        return ufo_errorf("%s: npy: malformed header: the shape is not a tuple (write '(3,)')", l->name);
    *ndim = n;
    return 0;
}

static int parse_descr(const char *name, const char *d, ufo_dtype *t) {
    const char *s = d;
    char order = '=';
    if (*s == '<' || *s == '>' || *s == '=' || *s == '|') order = *s++;
    if (!s[0] || !s[1] || s[2])
        return ufo_errorf("%s: npy: unsupported descr '%.40s' (need a simple numeric type like '<f4')", name, d);
    static const struct { const char code[3]; ufo_dtype t; } map[] = {
        {"f2", UFO_F16}, {"f4", UFO_F32}, {"f8", UFO_F64}, {"i1", UFO_I8}, {"i2", UFO_I16},
        {"i4", UFO_I32}, {"i8", UFO_I64}, {"u1", UFO_U8},  {"b1", UFO_BOOL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (memcmp(s, map[i].code, 2) != 0) continue;
        size_t sz = ufo_dtype_size(map[i].t);
        if (sz > 1 && order == '>')
            return ufo_errorf("%s: npy: descr '%.40s': big-endian not supported", name, d);
        if (sz > 1 && order == '|')
            return ufo_errorf("%s: npy: descr '%.40s': byte order '|' is ambiguous for a %zu-byte type", name, d, sz);
        *t = map[i].t;  // '=' (native) is little-endian on every host we build for
        return 0;
    }
    return ufo_errorf("%s: npy: unsupported descr '%.40s' (supported: f2 f4 f8 i1 i2 i4 i8 u1 b1)", name, d);
}

static int parse_header(const char *name, const unsigned char *h, size_t n, ufo_tensor_entry *e) {
    npy_lex l = {h, h + n, h, name};
    for (size_t i = 0; i < n; i++)
        if (h[i] == 0) return ufo_errorf("%s: npy: NUL byte in the header", name);
    if (expect(&l, '{', "'{' opening the header dict")) return -1;
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
    char descr[64];
    for (;;) {
        skip_ws(&l);
        if (peek(&l) == '}') break;
        char key[32];
        if (parse_str(&l, key, sizeof key)) return -1;
        if (expect(&l, ':', "':' after a header key")) return -1;
        if (strcmp(key, "descr") == 0) {
            if (have_descr++) return ufo_errorf("%s: npy: duplicate key 'descr' in the header", name);
            skip_ws(&l);
            if (peek(&l) == '[')
                return ufo_errorf("%s: npy: structured dtypes are not supported", name);
            if (parse_str(&l, descr, sizeof descr)) return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fortran++) return ufo_errorf("%s: npy: duplicate key 'fortran_order' in the header", name);
            if (parse_bool(&l, &fortran)) return -1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape++) return ufo_errorf("%s: npy: duplicate key 'shape' in the header", name);
            if (parse_shape(&l, e->shape, &e->ndim)) return -1;
        } else {
            return ufo_errorf("%s: npy: unexpected key '%s' in the header", name, key);
        }
        skip_ws(&l);
        if (peek(&l) == ',') {
            l.p++;
            continue;
        }
        if (peek(&l) == '}') break;
        return ufo_errorf("%s: npy: malformed header: expected ',' or '}' after a value", name);
    }
    l.p++;  // '}'
    skip_ws(&l);
    if (l.p != l.end) return ufo_errorf("%s: npy: malformed header: characters after the closing '}'", name);
    if (!have_descr) return ufo_errorf("%s: npy: header has no 'descr'", name);
    if (!have_fortran) return ufo_errorf("%s: npy: header has no 'fortran_order'", name);
    if (!have_shape) return ufo_errorf("%s: npy: header has no 'shape'", name);
    if (parse_descr(name, descr, &e->dtype)) return -1;
    // A Fortran-order array of at most one non-trivial dimension has C layout
    // too, but numpy only writes True for genuinely column-major arrays.
    if (fortran) return ufo_errorf("%s: npy: fortran_order True is not supported (save a C-order array)", name);
    return 0;
}

int ufo_npy_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_entry *e) {
    memset(e, 0, sizeof *e);
    if (!name) name = "<buffer>";
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (!buf || size < 6 || memcmp(buf, magic, 6) != 0)
        return ufo_errorf("%s: npy: not a .npy file (bad magic)", name);
    if (size < 8) return ufo_errorf("%s: npy: truncated: no format version", name);
    int major = buf[6], minor = buf[7];
    size_t pre;
    uint64_t hlen;
    if (major == 1 && minor == 0) {
        pre = 10;
        if (size < pre) return ufo_errorf("%s: npy: truncated header length", name);
        hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8;
    } else if ((major == 2 || major == 3) && minor == 0) {
        pre = 12;
        if (size < pre) return ufo_errorf("%s: npy: truncated header length", name);
        hlen = (uint64_t)buf[8] | (uint64_t)buf[9] << 8 | (uint64_t)buf[10] << 16 | (uint64_t)buf[11] << 24;
    } else {
        return ufo_errorf("%s: npy: unsupported format version %d.%d (1.0, 2.0 and 3.0 are)", name, major, minor);
    }
    if (hlen > size - pre)
        return ufo_errorf("%s: npy: truncated header: header length %llu runs past the end of the file (%zu bytes)",
                          name, (unsigned long long)hlen, size);
    if (parse_header(name, buf + pre, (size_t)hlen, e)) {
        memset(e, 0, sizeof *e);
        return -1;
    }
    uint64_t numel = 1, nbytes;
    for (int i = 0; i < e->ndim; i++)
        if (__builtin_mul_overflow(numel, (uint64_t)e->shape[i], &numel) || numel > (uint64_t)INT64_MAX) {
            memset(e, 0, sizeof *e);
            return ufo_errorf("%s: npy: element count of the shape overflows", name);
        }
    if (__builtin_mul_overflow(numel, (uint64_t)ufo_dtype_size(e->dtype), &nbytes)) {
        memset(e, 0, sizeof *e);
        return ufo_errorf("%s: npy: byte size of the shape overflows", name);
    }
    size_t off = pre + (size_t)hlen, have = size - off;
    if ((uint64_t)have < nbytes) {
        memset(e, 0, sizeof *e);
        return ufo_errorf("%s: npy: truncated data: %zu bytes, the %s shape needs %llu", name, have,
                          ufo_dtype_name(e->dtype), (unsigned long long)nbytes);
    }
    if ((uint64_t)have > nbytes) {
        ufo_errorf("%s: npy: %llu bytes of unexpected data after the array (%s shape needs %llu)", name,
                   (unsigned long long)(have - nbytes), ufo_dtype_name(e->dtype), (unsigned long long)nbytes);
        memset(e, 0, sizeof *e);
        return -1;
    }
    e->data = buf + off;
    e->nbytes = (size_t)nbytes;
    return 0;
}

int ufo_npy_read(const char *path, ufo_tensor_entry *e) {
    memset(e, 0, sizeof *e);
    ufo_mapped m;
    if (ufo_map_file(path, &m) != 0) return -1;
    ufo_tensor_entry t;
    if (ufo_npy_parse(m.data, m.size, path, &t) != 0) {
        ufo_unmap(&m);
        return -1;
    }
    void *owned = ufo_alloc(t.nbytes ? t.nbytes : 1);
    char *name = strdup(path);
    if (!owned || !name) {
        free(owned);
        free(name);
        ufo_unmap(&m);
        return ufo_errorf("%s: npy: out of memory for %zu bytes", path, t.nbytes);
    }
    if (t.nbytes) memcpy(owned, t.data, t.nbytes);
    ufo_unmap(&m);
    *e = t;
    e->owned = owned;
    e->data = owned;
    e->name = name;
    return 0;
}
