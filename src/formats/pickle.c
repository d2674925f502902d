// Safe unpickler (see pickle.h for what is accepted and the limits).
//
// The value stack, the mark stack and the memo follow CPython's Unpickler
// (Lib/pickle.py): after MARK only the values pushed since the mark can be
// popped, MEMOIZE stores at len(memo), POP with an empty frame pops a mark.
// Every value lives in the document's node arena; the stack and the memo hold
// plain pointers, so sharing costs nothing and freeing is one sweep.
#include "formats/pickle.h"
#include "base/error.h"
#include "base/mem.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES_PER_BLOCK 256
#define MAX_MARKS (UFO_PICKLE_MAX_DEPTH + 8)
#define BUDGET_BASE ((size_t)64 << 20)
#define BUDGET_FACTOR 8

enum {  // whitelisted globals (kept in a GLOBAL node's `cap`)
    G_RECONSTRUCT = 1, G_FROMBUFFER, G_NDARRAY, G_DTYPE, G_ODICT, G_ENCODE, G_BYTES, G_TUPLE,
};

static const struct { const char *module, *name; int id; } whitelist[] = {
    {"numpy.core.multiarray", "_reconstruct", G_RECONSTRUCT},
    {"numpy._core.multiarray", "_reconstruct", G_RECONSTRUCT},
    {"numpy.core.numeric", "_frombuffer", G_FROMBUFFER},
    {"numpy._core.numeric", "_frombuffer", G_FROMBUFFER},
    {"numpy", "ndarray", G_NDARRAY},
    {"numpy", "dtype", G_DTYPE},
    {"collections", "OrderedDict", G_ODICT},
    {"_codecs", "encode", G_ENCODE},
    {"builtins", "bytes", G_BYTES},
    {"__builtin__", "bytes", G_BYTES},
    {"builtins", "tuple", G_TUPLE},
    {"__builtin__", "tuple", G_TUPLE},
};

struct ufo_pickle {
    // document
    ufo_pvalue **blocks;
    size_t nblocks, blocks_cap, block_used;
    ufo_pvalue *none, *vtrue, *vfalse;
    const ufo_pvalue *root;
    int proto;
    // parse state
    const unsigned char *buf;
    size_t n, pos, op_pos;
    const char *name;
    const ufo_pickle_opts *opts;
    size_t budget, used;
    ufo_pvalue **stack;
    size_t sp, stack_cap;
    size_t marks[MAX_MARKS];
    int nmarks;
    ufo_pvalue **memo;
    size_t memo_cap, memo_count;
};

typedef struct ufo_pickle P;

// ---------------------------------------------------------------- errors

static const char *opname(int op) {
    switch (op) {
    case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP";
    case '1': return "POP_MARK"; case '2': return "DUP"; case 'F': return "FLOAT";
    case 'I': return "INT"; case 'J': return "BININT"; case 'K': return "BININT1";
    case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
    case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE";
    case 'S': return "STRING"; case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE"; case 'X': return "BINUNICODE"; case 'a': return "APPEND";
    case 'b': return "BUILD"; case 'c': return "GLOBAL"; case 'd': return "DICT";
    case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
    case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET";
    case 'l': return "LIST"; case ']': return "EMPTY_LIST"; case 'o': return "OBJ";
    case 'p': return "PUT"; case 'q': return "BINPUT"; case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO"; case 0x81: return "NEWOBJ"; case 0x82: return "EXT1";
    case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE"; case 0x8a: return "LONG1"; case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8"; case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX"; case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE"; case 0x95: return "FRAME"; case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

__attribute__((format(printf, 2, 3)))
static int perr(P *p, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ufo_errorf("%s: pickle: %s at byte %zu", p->name, msg, p->op_pos);
}

// Printable copy of untrusted text for messages (at most 80 bytes).
static void printable(char *out, size_t cap, const char *s, size_t len) {
    size_t j = 0;
    for (size_t i = 0; i < len && j + 4 < cap; i++) {
        if (i == 80) {
            memcpy(out + j, "...", 3);
            j += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[j] = 0;
}

// ---------------------------------------------------------------- memory

static int charge(P *p, size_t bytes) {
    if (bytes > p->budget - p->used) {
        return perr(p, "input too complex: more than %zu bytes of values for a %zu-byte input", p->budget,
                    p->n);
    }
    p->used += bytes;
    return 0;
}

static void *pmalloc(P *p, size_t bytes) {
    if (charge(p, bytes)) return NULL;
    void *q = malloc(bytes ? bytes : 1);
    if (!q) perr(p, "out of memory (%zu bytes)", bytes);
    return q;
}

// Aligned buffers (payloads that ufo_pickle_take_data may hand out).
static void *palloc_aligned(P *p, size_t bytes) {
    if (charge(p, bytes)) return NULL;
    void *q = ufo_alloc(bytes);
    if (!q) perr(p, "out of memory (%zu bytes)", bytes);
    return q;
}

static int grow(P *p, void **arr, size_t *cap, size_t need, size_t elem, size_t max) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    if (nc < need) nc = need;
    if (nc > max) nc = max;
    if (need > nc) return perr(p, "too many entries (limit %zu)", max);
    if (charge(p, nc * elem)) return -1;
    void *q = realloc(*arr, nc * elem);
    if (!q) return perr(p, "out of memory");
    *arr = q;
    *cap = nc;
    return 0;
}

static ufo_pvalue *new_node(P *p, ufo_pkind kind) {
    if (p->nblocks == 0 || p->block_used == NODES_PER_BLOCK) {
        if (p->nblocks == p->blocks_cap &&
            grow(p, (void **)&p->blocks, &p->blocks_cap, p->nblocks + 1, sizeof *p->blocks, SIZE_MAX / 16))
            return NULL;
        ufo_pvalue *b = pmalloc(p, NODES_PER_BLOCK * sizeof *b);
        if (!b) return NULL;
        p->blocks[p->nblocks++] = b;
        p->block_used = 0;
    }
    ufo_pvalue *v = &p->blocks[p->nblocks - 1][p->block_used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    return v;
}

static void free_node(ufo_pvalue *v) {
    switch (v->kind) {
    case UFO_PV_TUPLE: case UFO_PV_LIST: case UFO_PV_DICT: free(v->u.seq.items); break;
    case UFO_PV_NDARRAY: free(v->u.arr); break;
    default: break;
    }
    free(v->owned);
}

void ufo_pickle_free(ufo_pickle *doc) {
    if (!doc) return;
    for (size_t b = 0; b < doc->nblocks; b++) {
        size_t cnt = b + 1 == doc->nblocks ? doc->block_used : NODES_PER_BLOCK;
        for (size_t i = 0; i < cnt; i++) free_node(&doc->blocks[b][i]);
        free(doc->blocks[b]);
    }
    free(doc->blocks);
    free(doc->stack);
    free(doc->memo);
    free(doc);
}

// ---------------------------------------------------------------- input

static int need(P *p, size_t k, const char *what) {
    if (p->n - p->pos < k)
        return perr(p, "truncated: %s needs %zu bytes, %zu left", what, k, p->n - p->pos);
    return 0;
}

static uint64_t rd_le(const unsigned char *s, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = (v << 8) | s[i];
    return v;
}

// A protocol-0 argument line; *len excludes the newline.
static int read_line(P *p, const char **line, size_t *len, const char *what) {
    const unsigned char *s = p->buf + p->pos;
    const unsigned char *nl = memchr(s, '\n', p->n - p->pos);
    if (!nl) return perr(p, "truncated: %s argument has no end of line", what);
    *line = (const char *)s;
    *len = (size_t)(nl - s);
    p->pos += *len + 1;
    return 0;
}

// Python's int(text, 0) for the forms pickles use: [ws][+-]digits[ws], int64.
static int parse_int(P *p, const char *s, size_t len, int64_t *out, const char *what) {
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    while (len > i && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) len--;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= len) return perr(p, "%s: invalid integer literal", what);
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return perr(p, "%s: invalid integer literal", what);
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) return perr(p, "%s: integer too large (more than 64 bits)", what);
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

// ---------------------------------------------------------------- stack

static size_t mark_base(const P *p) { return p->nmarks ? p->marks[p->nmarks - 1] : 0; }

static int push(P *p, ufo_pvalue *v) {
    if (!v) return -1;
    if (p->sp == p->stack_cap &&
        grow(p, (void **)&p->stack, &p->stack_cap, p->sp + 1, sizeof *p->stack, UFO_PICKLE_MAX_STACK))
        return -1;
    p->stack[p->sp++] = v;
    return 0;
}

static ufo_pvalue *pop(P *p, const char *what) {
    if (p->sp <= mark_base(p)) {
        perr(p, "%s: stack underflow", what);
        return NULL;
    }
    return p->stack[--p->sp];
}

static ufo_pvalue *top(P *p, const char *what) {
    if (p->sp <= mark_base(p)) {
        perr(p, "%s: stack underflow", what);
        return NULL;
    }
    return p->stack[p->sp - 1];
}

// Values pushed since the last MARK: stack[*base .. p->sp). The caller resets sp.
static int pop_mark(P *p, size_t *base, const char *what) {
    if (p->nmarks == 0) return perr(p, "%s without a MARK", what);
    *base = p->marks[--p->nmarks];
    return 0;
}

// ---------------------------------------------------------------- values

static int is_container(const ufo_pvalue *v) {
    return v->kind == UFO_PV_TUPLE || v->kind == UFO_PV_LIST || v->kind == UFO_PV_DICT;
}

static int note_child(P *p, ufo_pvalue *c, const ufo_pvalue *child) {
    unsigned d = (unsigned)child->depth + 1;
    if (d > UFO_PICKLE_MAX_DEPTH) return perr(p, "nesting deeper than %d levels", UFO_PICKLE_MAX_DEPTH);
    if (d > c->depth) c->depth = (uint16_t)d;
    return 0;
}

static int seq_reserve(P *p, ufo_pvalue *c, size_t extra) {
    size_t per = c->kind == UFO_PV_DICT ? 2 : 1, n = c->u.seq.n * per;
    if (extra > SIZE_MAX / 2 - n) return perr(p, "too many items");
    return grow(p, (void **)&c->u.seq.items, &c->cap, n + extra, sizeof(ufo_pvalue *), SIZE_MAX / 16);
}

static int seq_add(P *p, ufo_pvalue *c, ufo_pvalue *item) {
    if (seq_reserve(p, c, 1) || note_child(p, c, item)) return -1;
    c->u.seq.items[c->u.seq.n++] = item;
    return 0;
}

static int hashable(const ufo_pvalue *k) {
    return !(k->kind == UFO_PV_LIST || k->kind == UFO_PV_DICT || k->kind == UFO_PV_NDARRAY);
}

static int dict_add(P *p, ufo_pvalue *d, ufo_pvalue *k, ufo_pvalue *v) {
    if (!hashable(k)) return perr(p, "unhashable dict key (%s)", ufo_pkind_name(k->kind));
    if (seq_reserve(p, d, 2) || note_child(p, d, k) || note_child(p, d, v)) return -1;
    d->u.seq.items[2 * d->u.seq.n] = k;
    d->u.seq.items[2 * d->u.seq.n + 1] = v;
    d->u.seq.n++;
    return 0;
}

static ufo_pvalue *make_seq(P *p, ufo_pkind kind, ufo_pvalue *const *items, size_t n) {
    ufo_pvalue *t = new_node(p, kind);
    if (!t) return NULL;
    if (n) {
        t->u.seq.items = pmalloc(p, n * sizeof *items);
        if (!t->u.seq.items) return NULL;
        t->cap = n;
        for (size_t i = 0; i < n; i++) {
            if (note_child(p, t, items[i])) return NULL;
            t->u.seq.items[i] = items[i];
        }
    }
    t->u.seq.n = n;
    return t;
}

static ufo_pvalue *make_int(P *p, int64_t i) {
    ufo_pvalue *v = new_node(p, UFO_PV_INT);
    if (v) v->u.i = i;
    return v;
}

static ufo_pvalue *make_view(P *p, ufo_pkind kind, const unsigned char *s, size_t len) {
    ufo_pvalue *v = new_node(p, kind);
    if (v) {
        v->u.s.data = (const char *)s;
        v->u.s.len = len;
    }
    return v;
}

static ufo_pvalue *make_owned(P *p, ufo_pkind kind, char *data, size_t len) {
    ufo_pvalue *v = new_node(p, kind);
    if (!v) {
        free(data);
        return NULL;
    }
    v->owned = data;
    v->u.s.data = data;
    v->u.s.len = len;
    return v;
}

static int in_input(const P *p, const void *q) {
    return (const unsigned char *)q >= p->buf && (const unsigned char *)q < p->buf + p->n;
}

static void note_consumed(P *p, const void *q, size_t len) {
    if (p->opts && p->opts->consumed && len && in_input(p, q))
        p->opts->consumed(p->opts->ctx, (const unsigned char *)q, len);
}

// ---------------------------------------------------------------- text codecs

// Decodes one UTF-8 sequence (surrogates allowed, as Python's surrogatepass);
// returns its length, or 0 if invalid.
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t k;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) k = 2, v = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 3, v = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) k = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < k) return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff) return 0;
    *cp = v;
    return k;
}

static int utf8_valid_slow(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = s[i] < 0x80 ? 1 : utf8_next(s + i, n - i, &cp);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

// Protocol-2 files carry arrays as latin-1 str: random mixes of 1- and 2-byte
// sequences. With only those (leads C2..DF), validity is a per-position test
// (a byte is a lead exactly when the next one is a continuation), which has
// no loop-carried dependency and vectorises; anything else takes the slow path.
static int utf8_valid(const unsigned char *s, size_t n) {
    if (n == 0) return 1;
    unsigned bad = (s[0] & 0xc0u) == 0x80, other = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        unsigned c = s[i], d = s[i + 1];
        bad |= (c >= 0xc0) ^ ((d & 0xc0u) == 0x80);
        other |= (c >= 0xe0) | (c - 0xc0u < 2u);
    }
    bad |= s[n - 1] >= 0xc0;
    if (other) return utf8_valid_slow(s, n);
    return !bad;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// UNICODE's raw-unicode-escape: bytes are latin-1 code points; \uXXXX and
// \UXXXXXXXX escape only after an odd number of backslashes.
static ufo_pvalue *decode_raw_unicode_escape(P *p, const char *s, size_t n) {
    if (n > (SIZE_MAX - 1) / 4) {
        perr(p, "UNICODE: argument too long");
        return NULL;
    }
    char *o = palloc_aligned(p, n * 4 + 1);
    if (!o) return NULL;
    size_t j = 0, i = 0;
    while (i < n) {
        if (s[i] != '\\') {
            j += utf8_put(o + j, (unsigned char)s[i++]);
            continue;
        }
        size_t bs = i;
        while (i < n && s[i] == '\\') o[j++] = s[i++];
        if (((i - bs) & 1) == 0 || i >= n || (s[i] != 'u' && s[i] != 'U')) continue;
        j--;  // the escaping backslash
        int cnt = s[i] == 'u' ? 4 : 8;
        i++;
        uint32_t cp = 0;
        for (int k = 0; k < cnt; k++, i++) {
            int h = i < n ? hexval((unsigned char)s[i]) : -1;
            if (h < 0) {
                free(o);
                perr(p, "UNICODE: truncated \\%cXXXX escape", cnt == 4 ? 'u' : 'U');
                return NULL;
            }
            cp = (cp << 4) | (uint32_t)h;
        }
        if (cp > 0x10ffff) {
            free(o);
            perr(p, "UNICODE: \\U escape out of range");
            return NULL;
        }
        j += utf8_put(o + j, cp);
    }
    return make_owned(p, UFO_PV_STR, o, j);
}

// STRING's argument: quoted, with Python's bytes escapes (codecs.escape_decode).
static ufo_pvalue *decode_string_escape(P *p, const char *s, size_t n) {
    if (n < 2 || s[0] != s[n - 1] || (s[0] != '\'' && s[0] != '"')) {
        perr(p, "STRING: argument must be quoted");
        return NULL;
    }
    s++;
    n -= 2;
    char *o = palloc_aligned(p, n + 1);
    if (!o) return NULL;
    size_t j = 0, i = 0;
    while (i < n) {
        char c = s[i++];
        if (c != '\\') {
            o[j++] = c;
            continue;
        }
        if (i >= n) {
            free(o);
            perr(p, "STRING: trailing \\ in string");
            return NULL;
        }
        c = s[i++];
        switch (c) {
        case '\n': break;
        case '\\': o[j++] = '\\'; break;
        case '\'': o[j++] = '\''; break;
        case '"': o[j++] = '"'; break;
        case 'b': o[j++] = '\b'; break;
        case 'f': o[j++] = '\f'; break;
        case 't': o[j++] = '\t'; break;
        case 'n': o[j++] = '\n'; break;
        case 'r': o[j++] = '\r'; break;
        case 'v': o[j++] = '\v'; break;
        case 'a': o[j++] = '\a'; break;
        case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
            unsigned v = (unsigned)(c - '0');
            for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) v = v * 8 + (unsigned)(s[i++] - '0');
            o[j++] = (char)(v & 0xff);
            break;
        }
        case 'x': {
            int h1 = i < n ? hexval((unsigned char)s[i]) : -1;
            int h2 = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            if (h1 < 0 || h2 < 0) {
                free(o);
                perr(p, "STRING: invalid \\x escape");
                return NULL;
            }
            o[j++] = (char)(h1 * 16 + h2);
            i += 2;
            break;
        }
        default:
            o[j++] = '\\';
            o[j++] = c;
            break;
        }
    }
    return make_owned(p, UFO_PV_BYTES, o, j);
}

// str -> bytes by latin-1 (code points must be < 256), into an aligned buffer.
static ufo_pvalue *latin1_encode(P *p, const ufo_pvalue *str) {
    const unsigned char *s = (const unsigned char *)str->u.s.data;
    size_t n = str->u.s.len, j = 0;
    char *o = palloc_aligned(p, n);
    if (!o) return NULL;
    // The str is valid UTF-8; latin-1 means U+0000..U+00FF: ASCII, or C2/C3
    // followed by a continuation byte. Walk input positions (not sequences):
    // a continuation completes the char its lead began; a lead writes a
    // placeholder that the next byte overwrites.
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i], prev = i ? s[i - 1] : 0, lead = c >= 0xc0, cont = (c & 0xc0u) == 0x80;
        bad |= lead & ((c & 0xfeu) != 0xc2);
        o[j] = (char)(cont ? ((prev & 3u) << 6) | (c & 0x3fu) : c);
        j += !lead;
    }
    if (bad) {
        free(o);
        perr(p, "_codecs.encode: string is not latin-1");
        return NULL;
    }
    note_consumed(p, s, n);
    return make_owned(p, UFO_PV_BYTES, o, j);
}

// ---------------------------------------------------------------- globals

static int str_is(const ufo_pvalue *v, const char *s) {
    size_t n = strlen(s);
    return (v->kind == UFO_PV_STR || v->kind == UFO_PV_BYTES) && v->u.s.len == n &&
           memcmp(v->u.s.data, s, n) == 0;
}

static ufo_pvalue *make_global(P *p, const char *mod, size_t ml, const char *nm, size_t nl) {
    int id = 0;
    for (size_t i = 0; i < sizeof whitelist / sizeof *whitelist; i++)
        if (strlen(whitelist[i].module) == ml && strlen(whitelist[i].name) == nl &&
            memcmp(whitelist[i].module, mod, ml) == 0 && memcmp(whitelist[i].name, nm, nl) == 0)
            id = whitelist[i].id;
    if (!id) {
        char a[96], b[96];
        printable(a, sizeof a, mod, ml);
        printable(b, sizeof b, nm, nl);
        perr(p, "refusing global '%s.%s'", a, b);
        return NULL;
    }
    char *s = pmalloc(p, ml + nl + 2);
    if (!s) return NULL;
    memcpy(s, mod, ml);
    s[ml] = 0;
    memcpy(s + ml + 1, nm, nl);
    s[ml + 1 + nl] = 0;
    ufo_pvalue *g = new_node(p, UFO_PV_GLOBAL);
    if (!g) {
        free(s);
        return NULL;
    }
    g->owned = s;
    g->u.g.module = s;
    g->u.g.name = s + ml + 1;
    g->cap = (size_t)id;
    return g;
}

// numpy typestr ('f4', '<f4', '|b1', ...) -> dtype; *order is the prefix or 0.
static int parse_typestr(P *p, const ufo_pvalue *v, ufo_dtype *t, char *order) {
    char buf[16];
    if ((v->kind != UFO_PV_STR && v->kind != UFO_PV_BYTES) || v->u.s.len == 0 || v->u.s.len >= sizeof buf)
        return perr(p, "numpy.dtype: expected a short type string, got %s", ufo_pkind_name(v->kind));
    memcpy(buf, v->u.s.data, v->u.s.len);
    buf[v->u.s.len] = 0;
    const char *s = buf;
    *order = 0;
    if (s[0] && strchr("<>|=", s[0])) *order = *s++;
    static const struct { const char *code; ufo_dtype t; } codes[] = {
        {"f2", UFO_F16}, {"f4", UFO_F32}, {"f8", UFO_F64}, {"i1", UFO_I8}, {"i2", UFO_I16},
        {"i4", UFO_I32}, {"i8", UFO_I64}, {"u1", UFO_U8}, {"b1", UFO_BOOL},
    };
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strcmp(s, codes[i].code) == 0) {
            *t = codes[i].t;
            if (*order == '>' && ufo_dtype_size(*t) > 1)
                return perr(p, "big-endian dtype '%s' is not supported", buf);
            return 0;
        }
    char pr[40];
    printable(pr, sizeof pr, buf, strlen(buf));
    return perr(p, "unsupported dtype '%s' (supported: f2 f4 f8 i1 i2 i4 i8 u1 b1)", pr);
}

static int get_shape(P *p, const ufo_pvalue *sh, ufo_parray *a, const char *what) {
    if (sh->kind != UFO_PV_TUPLE && sh->kind != UFO_PV_LIST)
        return perr(p, "%s: shape must be a tuple, got %s", what, ufo_pkind_name(sh->kind));
    if (sh->u.seq.n > UFO_PICKLE_MAX_NDIM)
        return perr(p, "%s: %zu dimensions (at most %d)", what, sh->u.seq.n, UFO_PICKLE_MAX_NDIM);
    a->ndim = (int)sh->u.seq.n;
    for (int i = 0; i < a->ndim; i++) {
        const ufo_pvalue *d = sh->u.seq.items[i];
        if (d->kind != UFO_PV_INT || d->u.i < 0) return perr(p, "%s: bad shape entry", what);
        a->shape[i] = d->u.i;
    }
    return 0;
}

// Fortran-ordered src -> C-ordered dst.
static void f_to_c(unsigned char *dst, const unsigned char *src, const ufo_parray *a, size_t isz) {
    int64_t idx[UFO_PICKLE_MAX_NDIM] = {0};
    size_t fstride[UFO_PICKLE_MAX_NDIM], numel = a->nbytes / isz;
    size_t s = 1;
    for (int k = 0; k < a->ndim; k++) {
        fstride[k] = s;
        s *= (size_t)a->shape[k];
    }
    size_t off = 0;  // Fortran element offset of idx
    for (size_t e = 0; e < numel; e++) {
        memcpy(dst + e * isz, src + off * isz, isz);
        for (int k = a->ndim - 1; k >= 0; k--) {  // C order: last index fastest
            if (++idx[k] < a->shape[k]) {
                off += fstride[k];
                break;
            }
            off -= fstride[k] * (size_t)(a->shape[k] - 1);
            idx[k] = 0;
        }
    }
}

// Attaches data (a BYTES or STR value) to array node v, validating the size.
static int set_array_data(P *p, ufo_pvalue *v, ufo_dtype t, const ufo_pvalue *data, int fortran,
                          const char *what) {
    ufo_parray *a = v->u.arr;
    a->dtype = t;
    size_t isz = ufo_dtype_size(t), numel = 1;
    for (int i = 0; i < a->ndim; i++)
        if (ufo_mul_overflows(numel, (size_t)a->shape[i], &numel))
            return perr(p, "%s: shape too large", what);
    if (ufo_mul_overflows(numel, isz, &a->nbytes)) return perr(p, "%s: shape too large", what);
    const ufo_pvalue *bytes = data;
    if (data->kind == UFO_PV_STR) {  // numpy accepts a latin-1 str for the data
        bytes = latin1_encode(p, data);
        if (!bytes) return -1;
    } else if (data->kind == UFO_PV_LIST) {
        return perr(p, "%s: object arrays are not supported", what);
    } else if (data->kind != UFO_PV_BYTES) {
        return perr(p, "%s: array data must be bytes, got %s", what, ufo_pkind_name(data->kind));
    }
    if (bytes->u.s.len != a->nbytes) {
        char sh[200];
        int k = snprintf(sh, sizeof sh, "(");
        for (int i = 0; i < a->ndim && k < 150; i++)
            k += snprintf(sh + k, sizeof sh - (size_t)k, i ? ", %lld" : "%lld", (long long)a->shape[i]);
        snprintf(sh + k, sizeof sh - (size_t)k, ")");
        return perr(p, "%s: shape/bytes mismatch: shape %s of %s needs %zu bytes, data has %zu", what, sh,
                    ufo_dtype_name(t), a->nbytes, bytes->u.s.len);
    }
    a->data = bytes->u.s.data;
    a->holder = bytes->owned ? (ufo_pvalue *)bytes : NULL;
    if (fortran && a->ndim > 1 && a->nbytes) {
        unsigned char *c = palloc_aligned(p, a->nbytes);
        if (!c) return -1;
        f_to_c(c, (const unsigned char *)a->data, a, isz);
        note_consumed(p, a->data, a->nbytes);
        v->owned = c;
        a->data = c;
        a->holder = v;
    }
    a->built = 1;
    return 0;
}

static ufo_pvalue *new_array(P *p) {
    ufo_pvalue *v = new_node(p, UFO_PV_NDARRAY);
    if (!v) return NULL;
    v->u.arr = pmalloc(p, sizeof *v->u.arr);
    if (!v->u.arr) {
        v->kind = UFO_PV_NONE;
        return NULL;
    }
    memset(v->u.arr, 0, sizeof *v->u.arr);
    return v;
}

static int truthy(const ufo_pvalue *v) {
    return (v->kind == UFO_PV_BOOL || v->kind == UFO_PV_INT) && v->u.i != 0;
}

static ufo_pvalue *call_global(P *p, const ufo_pvalue *fn, const ufo_pvalue *args) {
    char what[160];
    snprintf(what, sizeof what, "%s.%s", fn->u.g.module, fn->u.g.name);
    size_t n = args->u.seq.n;
    ufo_pvalue *const *a = args->u.seq.items;
    switch ((int)fn->cap) {
    case G_RECONSTRUCT: {
        if (n != 3 || a[0]->kind != UFO_PV_GLOBAL || a[0]->cap != G_NDARRAY) {
            perr(p, "%s: expected (numpy.ndarray, shape, typecode)", what);
            return NULL;
        }
        return new_array(p);
    }
    case G_FROMBUFFER: {  // (buffer, dtype, shape, order)
        if (n != 4 || a[1]->kind != UFO_PV_DTYPE || !(str_is(a[3], "C") || str_is(a[3], "F"))) {
            perr(p, "%s: expected (buffer, dtype, shape, 'C' or 'F')", what);
            return NULL;
        }
        ufo_pvalue *v = new_array(p);
        if (!v || get_shape(p, a[2], v->u.arr, what) ||
            set_array_data(p, v, a[1]->u.dt.dtype, a[0], str_is(a[3], "F"), what))
            return NULL;
        return v;
    }
    case G_DTYPE: {  // (typestr, align, copy)
        if (n < 1 || n > 3) {
            perr(p, "%s: expected (typestr, align, copy)", what);
            return NULL;
        }
        ufo_dtype t = UFO_F32;
        char order = 0;
        if (parse_typestr(p, a[0], &t, &order)) return NULL;
        ufo_pvalue *v = new_node(p, UFO_PV_DTYPE);
        if (!v) return NULL;
        v->u.dt.dtype = t;
        v->u.dt.byteorder = order && order != '>' ? order : (ufo_dtype_size(t) == 1 ? '|' : '<');
        return v;
    }
    case G_ODICT: {
        ufo_pvalue *d = new_node(p, UFO_PV_DICT);
        if (!d) return NULL;
        if (n == 0) return d;
        if (n != 1 || (a[0]->kind != UFO_PV_LIST && a[0]->kind != UFO_PV_TUPLE)) {
            perr(p, "%s: expected () or a list of pairs", what);
            return NULL;
        }
        for (size_t i = 0; i < a[0]->u.seq.n; i++) {
            const ufo_pvalue *pr = a[0]->u.seq.items[i];
            if ((pr->kind != UFO_PV_LIST && pr->kind != UFO_PV_TUPLE) || pr->u.seq.n != 2) {
                perr(p, "%s: expected a list of (key, value) pairs", what);
                return NULL;
            }
            if (dict_add(p, d, pr->u.seq.items[0], pr->u.seq.items[1])) return NULL;
        }
        return d;
    }
    case G_ENCODE:
        if (n != 2 || a[0]->kind != UFO_PV_STR || !(str_is(a[1], "latin1") || str_is(a[1], "latin-1"))) {
            perr(p, "%s: only (str, 'latin1') is supported", what);
            return NULL;
        }
        return latin1_encode(p, a[0]);
    case G_BYTES:
        if (n != 0) {
            perr(p, "%s: only bytes() is supported", what);
            return NULL;
        }
        return make_view(p, UFO_PV_BYTES, p->buf, 0);
    case G_TUPLE:
        if (n == 0) return make_seq(p, UFO_PV_TUPLE, NULL, 0);
        if (n != 1 || (a[0]->kind != UFO_PV_TUPLE && a[0]->kind != UFO_PV_LIST)) {
            perr(p, "%s: only tuple(tuple or list) is supported", what);
            return NULL;
        }
        return make_seq(p, UFO_PV_TUPLE, a[0]->u.seq.items, a[0]->u.seq.n);
    default:
        perr(p, "refusing to call %s", what);
        return NULL;
    }
}

static int do_build(P *p, ufo_pvalue *obj, const ufo_pvalue *st) {
    if (obj->kind == UFO_PV_DTYPE) {
        // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if (st->kind != UFO_PV_TUPLE || st->u.seq.n < 8 || st->u.seq.n > 9)
            return perr(p, "numpy.dtype state: expected a tuple of 8 or 9 items");
        ufo_pvalue *const *s = st->u.seq.items;
        if (s[2]->kind != UFO_PV_NONE || s[3]->kind != UFO_PV_NONE || s[4]->kind != UFO_PV_NONE)
            return perr(p, "numpy.dtype state: structured and subarray dtypes are not supported");
        const ufo_pvalue *b = s[1];
        char bo = (b->kind == UFO_PV_STR || b->kind == UFO_PV_BYTES) && b->u.s.len == 1 ? b->u.s.data[0] : 0;
        if (bo != '<' && bo != '>' && bo != '|' && bo != '=')
            return perr(p, "numpy.dtype state: bad byte order");
        if (bo == '>' && ufo_dtype_size(obj->u.dt.dtype) > 1)
            return perr(p, "big-endian arrays are not supported (dtype '>%s')", ufo_dtype_name(obj->u.dt.dtype));
        obj->u.dt.byteorder = bo;
        return 0;
    }
    if (obj->kind == UFO_PV_NDARRAY) {
        ufo_parray *a = obj->u.arr;
        if (a->built) return perr(p, "ndarray: BUILD applied twice");
        // (version, shape, dtype, is_fortran, data) or (shape, dtype, is_fortran, data)
        if (st->kind != UFO_PV_TUPLE || (st->u.seq.n != 5 && st->u.seq.n != 4))
            return perr(p, "ndarray state: expected (version, shape, dtype, is_fortran, data)");
        ufo_pvalue *const *s = st->u.seq.items + (st->u.seq.n == 5);
        if (st->u.seq.n == 5 && st->u.seq.items[0]->kind != UFO_PV_INT)
            return perr(p, "ndarray state: bad version");
        if (s[1]->kind != UFO_PV_DTYPE)
            return perr(p, "ndarray state: dtype must be a numpy.dtype, got %s", ufo_pkind_name(s[1]->kind));
        if (s[2]->kind != UFO_PV_BOOL && s[2]->kind != UFO_PV_INT)
            return perr(p, "ndarray state: bad is_fortran flag");
        if (get_shape(p, s[0], a, "ndarray")) return -1;
        return set_array_data(p, obj, s[1]->u.dt.dtype, s[3], truthy(s[2]), "ndarray");
    }
    return perr(p, "BUILD on a %s is not supported", ufo_pkind_name(obj->kind));
}

// ---------------------------------------------------------------- memo

static int memo_put(P *p, size_t idx, ufo_pvalue *v) {
    if (idx >= UFO_PICKLE_MAX_MEMO) return perr(p, "memo index %zu too large (limit %u)", idx, UFO_PICKLE_MAX_MEMO);
    if (idx >= p->memo_cap) {
        size_t old = p->memo_cap;
        if (grow(p, (void **)&p->memo, &p->memo_cap, idx + 1, sizeof *p->memo, UFO_PICKLE_MAX_MEMO)) return -1;
        memset(p->memo + old, 0, (p->memo_cap - old) * sizeof *p->memo);
    }
    if (!p->memo[idx]) p->memo_count++;
    p->memo[idx] = v;
    return 0;
}

static int memo_get(P *p, uint64_t idx) {
    if (idx >= p->memo_cap || !p->memo[idx]) return perr(p, "memo index %llu not defined", (unsigned long long)idx);
    return push(p, p->memo[idx]);
}

// ---------------------------------------------------------------- validation

// Rejects cycles, over-deep nesting and arrays that never got their state.
// Depth-first with colours in `tag` (0 new, 1 on the path, 2 done) and the
// height of finished containers in `depth`, so shared values cost O(1).
static int validate(P *p, ufo_pvalue *v, int level) {
    if (v->kind == UFO_PV_NDARRAY && !v->u.arr->built) return perr(p, "ndarray without its BUILD state");
    if (!is_container(v)) return 0;
    if (v->tag == 1) return perr(p, "recursive structures are not supported");
    if (v->tag == 2) {
        if (level + v->depth > UFO_PICKLE_MAX_DEPTH)
            return perr(p, "nesting deeper than %d levels", UFO_PICKLE_MAX_DEPTH);
        return 0;
    }
    if (level >= UFO_PICKLE_MAX_DEPTH) return perr(p, "nesting deeper than %d levels", UFO_PICKLE_MAX_DEPTH);
    v->tag = 1;
    size_t cnt = v->u.seq.n * (v->kind == UFO_PV_DICT ? 2 : 1);
    unsigned h = 1;
    for (size_t i = 0; i < cnt; i++) {
        ufo_pvalue *c = v->u.seq.items[i];
        if (validate(p, c, level + 1)) return -1;
        if (is_container(c) && (unsigned)c->depth + 1 > h) h = (unsigned)c->depth + 1;
    }
    v->depth = (uint16_t)h;
    v->tag = 2;
    return 0;
}

// ---------------------------------------------------------------- the loop

static int read_len(P *p, int k, int is_signed, size_t *len, const char *what) {
    if (need(p, (size_t)k, what)) return -1;
    uint64_t v = rd_le(p->buf + p->pos, k);
    p->pos += (size_t)k;
    if (is_signed && k == 4 && (v & 0x80000000u)) return perr(p, "%s: negative length", what);
    if (v > p->n - p->pos)
        return perr(p, "truncated: %s of %llu bytes, only %zu left", what, (unsigned long long)v, p->n - p->pos);
    *len = (size_t)v;
    return 0;
}

static int run(P *p) {
    for (;;) {
        p->op_pos = p->pos;
        if (p->pos >= p->n) return perr(p, "truncated: no STOP opcode");
        int op = p->buf[p->pos++];
        const char *on = opname(op);
        size_t len = 0, base = 0;
        const char *line = NULL;
        ufo_pvalue *v, *k, *c;
        int64_t iv;
        switch (op) {
        case 0x80:  // PROTO
            if (need(p, 1, on)) return -1;
            if (p->buf[p->pos] > 5) return perr(p, "unsupported pickle protocol %d", p->buf[p->pos]);
            if (p->op_pos == 0) p->proto = p->buf[p->pos];
            p->pos++;
            break;
        case 0x95:  // FRAME: a framing hint; its bytes are read as ordinary opcodes
            if (need(p, 8, on)) return -1;
            if (rd_le(p->buf + p->pos, 8) > p->n - p->pos - 8)
                return perr(p, "truncated: FRAME of %llu bytes, only %zu left",
                            (unsigned long long)rd_le(p->buf + p->pos, 8), p->n - p->pos - 8);
            p->pos += 8;
            break;
        case '.': {  // STOP
            v = pop(p, on);
            if (!v) return -1;
            if (validate(p, v, 0)) return -1;
            p->root = v;
            return 0;
        }
        case '(':
            if (p->nmarks >= MAX_MARKS) return perr(p, "too deeply nested (more than %d MARKs)", MAX_MARKS);
            p->marks[p->nmarks++] = p->sp;
            break;
        case '0':  // POP
            if (p->sp > mark_base(p)) p->sp--;
            else if (pop_mark(p, &base, on)) return -1;
            else p->sp = base;
            break;
        case '1':
            if (pop_mark(p, &base, on)) return -1;
            p->sp = base;
            break;
        case '2':
            if (!(v = top(p, on)) || push(p, v)) return -1;
            break;
        // ---- memo
        case 'p': case 'q': case 'r': case 0x94: {
            uint64_t idx;
            if (op == 'p') {
                if (read_line(p, &line, &len, on) || parse_int(p, line, len, &iv, on)) return -1;
                if (iv < 0) return perr(p, "PUT: negative memo index");
                idx = (uint64_t)iv;
            } else if (op == 'q' || op == 'r') {
                int w = op == 'q' ? 1 : 4;
                if (need(p, (size_t)w, on)) return -1;
                idx = rd_le(p->buf + p->pos, w);
                p->pos += (size_t)w;
            } else {
                idx = p->memo_count;
            }
            if (!(v = top(p, on))) return -1;
            if (idx >= UFO_PICKLE_MAX_MEMO)
                return perr(p, "memo index %llu too large (limit %u)", (unsigned long long)idx, UFO_PICKLE_MAX_MEMO);
            if (memo_put(p, (size_t)idx, v)) return -1;
            break;
        }
        case 'g': case 'h': case 'j': {
            uint64_t idx;
            if (op == 'g') {
                if (read_line(p, &line, &len, on) || parse_int(p, line, len, &iv, on)) return -1;
                if (iv < 0) return perr(p, "GET: negative memo index");
                idx = (uint64_t)iv;
            } else {
                int w = op == 'h' ? 1 : 4;
                if (need(p, (size_t)w, on)) return -1;
                idx = rd_le(p->buf + p->pos, w);
                p->pos += (size_t)w;
            }
            if (memo_get(p, idx)) return -1;
            break;
        }
        // ---- scalars
        case 'N': if (push(p, p->none)) return -1; break;
        case 0x88: if (push(p, p->vtrue)) return -1; break;
        case 0x89: if (push(p, p->vfalse)) return -1; break;
        case 'I':
            if (read_line(p, &line, &len, on)) return -1;
            if (len == 2 && line[0] == '0' && (line[1] == '0' || line[1] == '1')) {
                if (push(p, line[1] == '1' ? p->vtrue : p->vfalse)) return -1;
                break;
            }
            if (parse_int(p, line, len, &iv, on) || push(p, make_int(p, iv))) return -1;
            break;
        case 'L':
            if (read_line(p, &line, &len, on)) return -1;
            if (len && line[len - 1] == 'L') len--;
            if (parse_int(p, line, len, &iv, on) || push(p, make_int(p, iv))) return -1;
            break;
        case 'J':
            if (need(p, 4, on)) return -1;
            iv = (int32_t)(uint32_t)rd_le(p->buf + p->pos, 4);
            p->pos += 4;
            if (push(p, make_int(p, iv))) return -1;
            break;
        case 'K': case 'M': {
            int w = op == 'K' ? 1 : 2;
            if (need(p, (size_t)w, on)) return -1;
            iv = (int64_t)rd_le(p->buf + p->pos, w);
            p->pos += (size_t)w;
            if (push(p, make_int(p, iv))) return -1;
            break;
        }
        case 0x8a: case 0x8b: {  // LONG1, LONG4: little-endian two's complement
            if (op == 0x8a) {
                if (need(p, 1, on)) return -1;
                len = p->buf[p->pos++];
                if (need(p, len, on)) return -1;
            } else if (read_len(p, 4, 1, &len, on)) {
                return -1;
            }
            if (len > 8) return perr(p, "%s: integer of %zu bytes is too large (at most 64 bits)", on, len);
            uint64_t u = len ? rd_le(p->buf + p->pos, (int)len) : 0;
            if (len && len < 8 && (p->buf[p->pos + len - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * len);
            p->pos += len;
            if (push(p, make_int(p, (int64_t)u))) return -1;
            break;
        }
        case 'F': {
            char tmp[128];
            if (read_line(p, &line, &len, on)) return -1;
            if (len == 0 || len >= sizeof tmp) return perr(p, "FLOAT: bad literal");
            memcpy(tmp, line, len);
            tmp[len] = 0;
            char *end;
            double d = strtod(tmp, &end);
            while (*end == ' ' || *end == '\r' || *end == '\t') end++;
            if (end == tmp || *end) return perr(p, "FLOAT: bad literal");
            if (!(v = new_node(p, UFO_PV_FLOAT))) return -1;
            v->u.f = d;
            if (push(p, v)) return -1;
            break;
        }
        case 'G': {
            if (need(p, 8, on)) return -1;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = (u << 8) | p->buf[p->pos + (size_t)i];
            p->pos += 8;
            if (!(v = new_node(p, UFO_PV_FLOAT))) return -1;
            memcpy(&v->u.f, &u, 8);
            if (push(p, v)) return -1;
            break;
        }
        // ---- strings and bytes
        case 'S':
            if (read_line(p, &line, &len, on) || push(p, decode_string_escape(p, line, len))) return -1;
            break;
        case 'V':
            if (read_line(p, &line, &len, on) || push(p, decode_raw_unicode_escape(p, line, len))) return -1;
            break;
        case 'T': case 'U': case 'B': case 'C': case 0x8e: case 0x96: {
            int w = (op == 'U' || op == 'C') ? 1 : (op == 'T' || op == 'B') ? 4 : 8;
            if (read_len(p, w, op == 'T', &len, on)) return -1;
            if (push(p, make_view(p, UFO_PV_BYTES, p->buf + p->pos, len))) return -1;
            p->pos += len;
            break;
        }
        case 'X': case 0x8c: case 0x8d: {
            int w = op == 0x8c ? 1 : op == 'X' ? 4 : 8;
            if (read_len(p, w, 0, &len, on)) return -1;
            if (!utf8_valid(p->buf + p->pos, len)) return perr(p, "%s: invalid UTF-8", on);
            if (push(p, make_view(p, UFO_PV_STR, p->buf + p->pos, len))) return -1;
            p->pos += len;
            break;
        }
        // ---- containers
        case ']': if (push(p, new_node(p, UFO_PV_LIST))) return -1; break;
        case '}': if (push(p, new_node(p, UFO_PV_DICT))) return -1; break;
        case ')': if (push(p, make_seq(p, UFO_PV_TUPLE, NULL, 0))) return -1; break;
        case 0x85: case 0x86: case 0x87: {
            size_t cnt = (size_t)(op - 0x84);
            if (p->sp - mark_base(p) < cnt) return perr(p, "%s: stack underflow", on);
            v = make_seq(p, UFO_PV_TUPLE, p->stack + p->sp - cnt, cnt);
            if (!v) return -1;
            p->sp -= cnt;
            if (push(p, v)) return -1;
            break;
        }
        case 't': case 'l':
            if (pop_mark(p, &base, on)) return -1;
            v = make_seq(p, op == 't' ? UFO_PV_TUPLE : UFO_PV_LIST, p->sp > base ? p->stack + base : NULL,
                         p->sp - base);
            if (!v) return -1;
            p->sp = base;
            if (push(p, v)) return -1;
            break;
        case 'd':
            if (pop_mark(p, &base, on)) return -1;
            if ((p->sp - base) % 2) return perr(p, "DICT: odd number of items");
            if (!(v = new_node(p, UFO_PV_DICT))) return -1;
            for (size_t i = base; i < p->sp; i += 2)
                if (dict_add(p, v, p->stack[i], p->stack[i + 1])) return -1;
            p->sp = base;
            if (push(p, v)) return -1;
            break;
        case 'a':
            if (!(v = pop(p, on)) || !(c = top(p, on))) return -1;
            if (c->kind != UFO_PV_LIST) return perr(p, "APPEND to a %s", ufo_pkind_name(c->kind));
            if (seq_add(p, c, v)) return -1;
            break;
        case 'e': {  // the items sit above the mark, the list just below it
            if (pop_mark(p, &base, on)) return -1;
            size_t end = p->sp;
            p->sp = base;
            if (!(c = top(p, on))) return -1;
            if (c->kind != UFO_PV_LIST) return perr(p, "APPENDS to a %s", ufo_pkind_name(c->kind));
            if (seq_reserve(p, c, end - base)) return -1;
            for (size_t i = base; i < end; i++)
                if (seq_add(p, c, p->stack[i])) return -1;
            break;
        }
        case 's':
            if (!(v = pop(p, on)) || !(k = pop(p, on)) || !(c = top(p, on))) return -1;
            if (c->kind != UFO_PV_DICT) return perr(p, "SETITEM on a %s", ufo_pkind_name(c->kind));
            if (dict_add(p, c, k, v)) return -1;
            break;
        case 'u': {
            if (pop_mark(p, &base, on)) return -1;
            size_t end = p->sp;
            p->sp = base;
            if (!(c = top(p, on))) return -1;
            if (c->kind != UFO_PV_DICT) return perr(p, "SETITEMS on a %s", ufo_pkind_name(c->kind));
            if ((end - base) % 2) return perr(p, "SETITEMS: odd number of items");
            for (size_t i = base; i < end; i += 2)
                if (dict_add(p, c, p->stack[i], p->stack[i + 1])) return -1;
            break;
        }
        // ---- globals and objects
        case 'c': {
            const char *mod = NULL, *nm = NULL;
            size_t ml = 0, nl = 0;
            if (read_line(p, &mod, &ml, on) || read_line(p, &nm, &nl, on)) return -1;
            if (push(p, make_global(p, mod, ml, nm, nl))) return -1;
            break;
        }
        case 0x93:
            if (!(v = pop(p, on)) || !(k = pop(p, on))) return -1;
            if (v->kind != UFO_PV_STR || k->kind != UFO_PV_STR)
                return perr(p, "STACK_GLOBAL: module and name must be str");
            if (push(p, make_global(p, k->u.s.data, k->u.s.len, v->u.s.data, v->u.s.len))) return -1;
            break;
        case 'R':
            if (!(v = pop(p, on)) || !(c = pop(p, on))) return -1;
            if (c->kind != UFO_PV_GLOBAL) return perr(p, "REDUCE: %s is not callable", ufo_pkind_name(c->kind));
            if (v->kind != UFO_PV_TUPLE) return perr(p, "REDUCE: arguments must be a tuple");
            if (push(p, call_global(p, c, v))) return -1;
            break;
        case 0x81:  // NEWOBJ: cls.__new__(cls, *args)
            if (!(v = pop(p, on)) || !(c = pop(p, on))) return -1;
            if (c->kind != UFO_PV_GLOBAL || c->cap != G_ODICT)
                return perr(p, "NEWOBJ: only collections.OrderedDict may be created");
            if (v->kind != UFO_PV_TUPLE) return perr(p, "NEWOBJ: arguments must be a tuple");
            if (push(p, new_node(p, UFO_PV_DICT))) return -1;
            break;
        case 'b':
            if (!(v = pop(p, on)) || !(c = top(p, on))) return -1;
            if (do_build(p, c, v)) return -1;
            break;
        default:
            if (on) return perr(p, "unsupported opcode %s", on);
            return perr(p, "unknown opcode 0x%02x", op);
        }
    }
}

int ufo_pickle_load_ex(const unsigned char *buf, size_t n, const char *name, const ufo_pickle_opts *opts,
                       ufo_pickle **doc) {
    *doc = NULL;
    P *p = calloc(1, sizeof *p);
    if (!p) return ufo_errorf("%s: out of memory", name);
    p->buf = buf;
    p->n = buf ? n : 0;
    p->name = name ? name : "pickle";
    p->opts = opts;
    p->budget = p->n > (SIZE_MAX - BUDGET_BASE) / BUDGET_FACTOR ? SIZE_MAX : BUDGET_BASE + BUDGET_FACTOR * p->n;
    int rc = -1;
    if ((p->none = new_node(p, UFO_PV_NONE)) && (p->vtrue = new_node(p, UFO_PV_BOOL)) &&
        (p->vfalse = new_node(p, UFO_PV_BOOL))) {
        p->vtrue->u.i = 1;
        rc = run(p);
    }
    free(p->stack);
    free(p->memo);
    p->stack = NULL;
    p->memo = NULL;
    p->buf = NULL;
    if (rc) {
        ufo_pickle_free(p);
        return -1;
    }
    *doc = p;
    return 0;
}

int ufo_pickle_load(const unsigned char *buf, size_t n, const char *name, ufo_pickle **doc) {
    return ufo_pickle_load_ex(buf, n, name, NULL, doc);
}

const ufo_pvalue *ufo_pickle_root(const ufo_pickle *doc) { return doc ? doc->root : NULL; }
int ufo_pickle_protocol(const ufo_pickle *doc) { return doc ? doc->proto : 0; }

const char *ufo_pkind_name(ufo_pkind k) {
    static const char *names[] = {"none", "bool", "int", "float", "bytes", "str",
                                  "tuple", "list", "dict", "global", "ndarray", "dtype"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

int ufo_pvalue_is_str(const ufo_pvalue *v, const char *s) { return v && str_is(v, s); }

const ufo_pvalue *ufo_pdict_get(const ufo_pvalue *d, const char *key) {
    if (!d || d->kind != UFO_PV_DICT) return NULL;
    for (size_t i = d->u.seq.n; i-- > 0;)
        if (d->u.seq.items[2 * i]->kind == UFO_PV_STR && str_is(d->u.seq.items[2 * i], key))
            return d->u.seq.items[2 * i + 1];
    return NULL;
}

void *ufo_pickle_take_data(ufo_pickle *doc, const ufo_pvalue *arr) {
    (void)doc;
    if (!arr || arr->kind != UFO_PV_NDARRAY) return NULL;
    ufo_pvalue *h = arr->u.arr->holder;
    if (!h || !h->owned || h->owned != arr->u.arr->data) return NULL;
    void *q = h->owned;
    h->owned = NULL;
    return q;
}
