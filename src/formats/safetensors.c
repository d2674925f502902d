// safetensors reader and writer.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON (an object
// mapping tensor names to {"dtype", "shape", "data_offsets"} plus an optional
// "__metadata__" string -> string object), then the data section. Offsets are
// relative to the data section.
//
// Validation follows the reference (Rust) safetensors crate: the header must
// fit in the file and be at most 100 MB, start with '{', be valid UTF-8 JSON;
// sorted by offsets, the tensors must tile the data section exactly (no
// overlap, no hole, nothing after the last tensor), and each tensor's byte
// range must equal numel * dtype size, computed with overflow checks. Stricter
// than the crate: duplicate names are an error (the crate keeps the last),
// numbers written with a fraction or exponent are an error, dimensions must
// be below 2^53 (cJSON holds numbers as doubles), and a \u0000 escape is an
// error (names are C strings).
#include "formats/safetensors.h"
#include "base/error.h"
#include "base/file.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER 100000000ull  // the reference crate's MAX_HEADER_SIZE
#define ST_MAX_EXACT 9007199254740992.0  // 2^53: doubles are exact below this

// ---------------------------------------------------------------- helpers

// Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return len;
}

// Offset of the first invalid byte, or n if all of s[0..n) is valid UTF-8.
static size_t utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        if (!l) return i;
        i += l;
    }
    return n;
}

// Lexical checks cJSON does not make: raw control characters inside strings,
// \u0000 escapes, and numbers with a fraction or exponent. Returns 0 or sets
// the error.
static int header_lex_check(const char *name, const unsigned char *h, size_t n) {
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];
        if (in_str) {
            if (c == '"') in_str = 0;
            else if (c < 0x20)
                return ufo_errorf("%s: safetensors: control character 0x%02x in a header string (byte %zu)",
                                  name, c, i);
            else if (c == '\\' && i + 1 < n) {
                if (h[i + 1] == 'u' && i + 5 < n && memcmp(h + i + 2, "0000", 4) == 0)
                    return ufo_errorf("%s: safetensors: \\u0000 escape in a header string (byte %zu)", name, i);
                i++;  // skip the escaped character
            }
        } else if (c == '"') {
            in_str = 1;
        } else if ((c == '.' || c == 'e' || c == 'E') && i > 0 && h[i - 1] >= '0' && h[i - 1] <= '9') {
            return ufo_errorf("%s: safetensors: number with a fraction or exponent in the header (byte %zu); "
                              "shapes and offsets must be integers", name, i);
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return ufo_errorf("%s: safetensors: control character 0x%02x in the header (byte %zu)", name, c, i);
        }
    }
    return 0;
}

// A JSON number that is a non-negative integer below 2^53, as uint64.
// Returns 0 on success, 1 if not a number, 2 if negative, 3 if fractional,
// 4 if too large.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 1;
    double d = v->valuedouble;
    if (d != d) return 3;
    if (d < 0 || signbit(d)) return 2;
    if (d >= ST_MAX_EXACT) return 4;
    if ((double)(uint64_t)d != d) return 3;
    *out = (uint64_t)d;
    return 0;
}

static const char *json_uint_why(int r) {
    switch (r) {
    case 1: return "is not a number";
    case 2: return "is negative";
    case 3: return "is not an integer";
    default: return "is too large";
    }
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int range_cmp(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Returns the first duplicated string among n (sorted in place), or NULL.
static const char *find_duplicate(const char **names, size_t n) {
    if (n < 2) return NULL;
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

// ---------------------------------------------------------------- reader

static int parse_metadata(const char *name, const cJSON *meta, ufo_tensor_file *f) {
    if (cJSON_IsNull(meta)) return 0;  // the reference crate reads null as "no metadata"
    if (!cJSON_IsObject(meta))
        return ufo_errorf("%s: safetensors: \"__metadata__\" is not an object", name);
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return 0;
    f->meta_keys = calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_vals = calloc((size_t)n, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals) return ufo_errorf("%s: safetensors: out of memory", name);
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        if (!cJSON_IsString(kv) || !kv->valuestring)
            return ufo_errorf("%s: safetensors: \"__metadata__\" value for key '%.200s' is not a string",
                              name, kv->string ? kv->string : "");
        f->meta_keys[f->n_meta] = strdup(kv->string ? kv->string : "");
        f->meta_vals[f->n_meta] = strdup(kv->valuestring);
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_vals[f->n_meta - 1])
            return ufo_errorf("%s: safetensors: out of memory", name);
    }
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (!keys) return ufo_errorf("%s: safetensors: out of memory", name);
    for (int i = 0; i < n; i++) keys[i] = f->meta_keys[i];
    const char *dup = find_duplicate(keys, (size_t)n);
    int rc = dup ? ufo_errorf("%s: safetensors: duplicate \"__metadata__\" key '%.200s'", name, dup) : 0;
    free(keys);
    return rc;
}

// Fills e (name already set) from the tensor's JSON description.
static int parse_tensor(const char *name, const cJSON *t, uint64_t data_size, ufo_tensor_entry *e,
                        st_range *r) {
    const char *tn = e->name;
    if (!cJSON_IsObject(t))
        return ufo_errorf("%s: safetensors: entry is not an object (tensor '%.200s')", name, tn);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!dt) return ufo_errorf("%s: safetensors: missing \"dtype\" (tensor '%.200s')", name, tn);
    if (!sh) return ufo_errorf("%s: safetensors: missing \"shape\" (tensor '%.200s')", name, tn);
    if (!off) return ufo_errorf("%s: safetensors: missing \"data_offsets\" (tensor '%.200s')", name, tn);

    if (!cJSON_IsString(dt) || !dt->valuestring)
        return ufo_errorf("%s: safetensors: \"dtype\" is not a string (tensor '%.200s')", name, tn);
    if (ufo_dtype_from_name(dt->valuestring, &e->dtype) != 0)
        return ufo_errorf("%s: safetensors: unknown dtype '%.40s' (tensor '%.200s')", name, dt->valuestring, tn);

    if (!cJSON_IsArray(sh))
        return ufo_errorf("%s: safetensors: \"shape\" is not an array (tensor '%.200s')", name, tn);
    int nd = cJSON_GetArraySize(sh);
    if (nd > UFO_MAX_DIMS)
        return ufo_errorf("%s: safetensors: %d dimensions, at most %d supported (tensor '%.200s')", name, nd,
                          UFO_MAX_DIMS, tn);
    e->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        int why = json_uint(d, &v);
        if (why)
            return ufo_errorf("%s: safetensors: dimension %d %s (tensor '%.200s')", name, i, json_uint_why(why), tn);
        e->shape[i++] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
            return ufo_errorf("%s: safetensors: element count of the shape overflows (tensor '%.200s')", name, tn);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)ufo_dtype_size(e->dtype), &nbytes))
        return ufo_errorf("%s: safetensors: byte size of the shape overflows (tensor '%.200s')", name, tn);

    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return ufo_errorf("%s: safetensors: \"data_offsets\" is not an array of two integers (tensor '%.200s')",
                          name, tn);
    uint64_t b, en;
    int why = json_uint(cJSON_GetArrayItem(off, 0), &b);
    if (!why) why = json_uint(cJSON_GetArrayItem(off, 1), &en);
    if (why)
        return ufo_errorf("%s: safetensors: a data offset %s (tensor '%.200s')", name, json_uint_why(why), tn);
    if (en < b)
        return ufo_errorf("%s: safetensors: data_offsets end %llu is before begin %llu (tensor '%.200s')", name,
                          (unsigned long long)en, (unsigned long long)b, tn);
    if (en > data_size)
        return ufo_errorf("%s: safetensors: data_offsets [%llu, %llu] past the end of the %llu-byte data section "
                          "(tensor '%.200s')", name, (unsigned long long)b, (unsigned long long)en,
                          (unsigned long long)data_size, tn);
    if (en - b != nbytes)
        return ufo_errorf("%s: safetensors: data_offsets span %llu bytes but %s shape needs %llu (tensor '%.200s')",
                          name, (unsigned long long)(en - b), ufo_dtype_name(e->dtype),
                          (unsigned long long)nbytes, tn);
    e->nbytes = (size_t)nbytes;
    r->begin = b;
    r->end = en;
    return 0;
}

// The whole check once the JSON tree exists; fills f (caller frees on error).
static int parse_tree(const char *name, const cJSON *root, const unsigned char *data, uint64_t data_size,
                      ufo_tensor_file *f) {
    int count = 0, n_metadata = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (it->string && strcmp(it->string, "__metadata__") == 0) n_metadata++;
        else count++;
    }
    if (n_metadata > 1) return ufo_errorf("%s: safetensors: duplicate \"__metadata__\"", name);
    if (count > 0) {
        f->items = calloc((size_t)count, sizeof *f->items);
        if (!f->items) return ufo_errorf("%s: safetensors: out of memory", name);
    }
    st_range *ranges = count ? malloc((size_t)count * sizeof *ranges) : NULL;
    const char **names = count ? malloc((size_t)count * sizeof *names) : NULL;
    if (count && (!ranges || !names)) {
        free(ranges);
        free(names);
        return ufo_errorf("%s: safetensors: out of memory", name);
    }
    int rc = 0;
    cJSON_ArrayForEach(it, root) {
        if (it->string && strcmp(it->string, "__metadata__") == 0) {
            if ((rc = parse_metadata(name, it, f))) break;
            continue;
        }
        ufo_tensor_entry *e = &f->items[f->n];
        e->name = strdup(it->string ? it->string : "");
        if (!e->name) {
            rc = ufo_errorf("%s: safetensors: out of memory", name);
            break;
        }
        f->n++;
        if ((rc = parse_tensor(name, it, data_size, e, &ranges[f->n - 1]))) break;
        ranges[f->n - 1].idx = f->n - 1;
        names[f->n - 1] = e->name;
    }
    if (rc == 0 && count) {
        const char *dup = find_duplicate(names, (size_t)count);
        if (dup) rc = ufo_errorf("%s: safetensors: duplicate tensor name (tensor '%.200s')", name, dup);
    }
    if (rc == 0) {
        // Sorted by offsets, the tensors must tile [0, data_size) exactly.
        if (count) qsort(ranges, (size_t)count, sizeof *ranges, range_cmp);
        uint64_t pos = 0;
        for (int i = 0; i < count && rc == 0; i++) {
            const char *tn = f->items[ranges[i].idx].name;
            if (ranges[i].begin < pos)
                rc = ufo_errorf("%s: safetensors: data_offsets [%llu, %llu] overlap the previous tensor, which "
                                "ends at %llu (tensor '%.200s')", name, (unsigned long long)ranges[i].begin,
                                (unsigned long long)ranges[i].end, (unsigned long long)pos, tn);
            else if (ranges[i].begin > pos)
                rc = ufo_errorf("%s: safetensors: hole in the data section: bytes [%llu, %llu) belong to no "
                                "tensor (before tensor '%.200s')", name, (unsigned long long)pos,
                                (unsigned long long)ranges[i].begin, tn);
            pos = ranges[i].end;
        }
        if (rc == 0 && pos != data_size)
            rc = ufo_errorf("%s: safetensors: %llu bytes after the last tensor's data (data section %llu bytes, "
                            "tensors end at %llu)", name, (unsigned long long)(data_size - pos),
                            (unsigned long long)data_size, (unsigned long long)pos);
        for (int i = 0; i < count && rc == 0; i++)
            f->items[ranges[i].idx].data = data + ranges[i].begin;
    }
    free(ranges);
    free(names);
    return rc;
}

int ufo_safetensors_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_file *f) {
    memset(f, 0, sizeof *f);
    if (!name) name = "<buffer>";
    if (!buf || size < 8)
        return ufo_errorf("%s: safetensors: file too small (%zu bytes, need at least 8)", name, buf ? size : 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return ufo_errorf("%s: safetensors: header length %llu is over the %llu-byte limit", name,
                          (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return ufo_errorf("%s: safetensors: header length %llu runs past the end of the file (%zu bytes)", name,
                          (unsigned long long)hlen, size);
    const unsigned char *h = buf + 8;
    if (hlen == 0 || h[0] != '{')
        return ufo_errorf("%s: safetensors: header is not a JSON object (does not start with '{')", name);
    size_t bad = utf8_check(h, (size_t)hlen);
    if (bad != hlen)
        return ufo_errorf("%s: safetensors: header is not valid UTF-8 (byte %zu of the header)", name, bad);
    if (header_lex_check(name, h, (size_t)hlen)) return -1;

    // cJSON gets a NUL-terminated copy: it never reads past what we own.
    char *text = malloc((size_t)hlen + 1);
    if (!text) return ufo_errorf("%s: safetensors: out of memory for a %llu-byte header", name,
                                 (unsigned long long)hlen);
    memcpy(text, h, (size_t)hlen);
    text[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = (end && end >= text && end <= text + hlen) ? (size_t)(end - text) : 0;
        free(text);
        return ufo_errorf("%s: safetensors: header is not valid JSON (near byte %zu of the header)", name, at);
    }
    // Only whitespace may follow the JSON value (the writer pads with spaces).
    size_t at = end ? (size_t)(end - text) : hlen;
    for (size_t i = at; i < hlen; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
            cJSON_Delete(root);
            free(text);
            return ufo_errorf("%s: safetensors: trailing characters after the header JSON (byte %zu)", name, i);
        }
    free(text);
    int rc;
    if (!cJSON_IsObject(root))
        rc = ufo_errorf("%s: safetensors: header is not a JSON object", name);
    else
        rc = parse_tree(name, root, h + hlen, (uint64_t)(size - 8 - hlen), f);
    cJSON_Delete(root);
    if (rc) ufo_tensor_file_free(f);
    return rc;
}

int ufo_safetensors_open(const char *path, ufo_tensor_file *f) {
    memset(f, 0, sizeof *f);
    ufo_mapped m;
    if (ufo_map_file(path, &m) != 0) return -1;
    if (ufo_safetensors_parse(m.data, m.size, path, f) != 0) {
        ufo_unmap(&m);
        return -1;
    }
    f->map = m;
    return 0;
}

// ---------------------------------------------------------------- writer

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

// JSON string literal; s is valid UTF-8 (checked by the caller).
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"') sb_put(b, "\\\"", 2);
        else if (*p == '\\') sb_put(b, "\\\\", 2);
        else if (*p == '\n') sb_put(b, "\\n", 2);
        else if (*p == '\t') sb_put(b, "\\t", 2);
        else if (*p == '\r') sb_put(b, "\\r", 2);
        else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_put(b, esc, 6);
        } else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

static int check_text(const char *path, const char *what, const char *s) {
    if (!s) return ufo_errorf("%s: safetensors: %s is NULL", path, what);
    size_t n = strlen(s);
    if (utf8_check((const unsigned char *)s, n) != n)
        return ufo_errorf("%s: safetensors: %s '%.200s' is not valid UTF-8", path, what, s);
    return 0;
}

// Validates the inputs and builds the padded header; *data_total gets the
// data section's size.
static int build_header(const char *path, const ufo_tensor_entry *items, int n, const char *const *meta_keys,
                        const char *const *meta_vals, int n_meta, sbuf *hb, uint64_t *data_total) {
    if (n < 0 || n_meta < 0 || (n > 0 && !items) || (n_meta > 0 && (!meta_keys || !meta_vals)))
        return ufo_errorf("%s: safetensors: invalid arguments to the writer", path);
    for (int i = 0; i < n; i++) {
        const ufo_tensor_entry *e = &items[i];
        if (check_text(path, "tensor name", e->name)) return -1;
        if (strcmp(e->name, "__metadata__") == 0)
            return ufo_errorf("%s: safetensors: tensor name '__metadata__' is reserved", path);
        if ((unsigned)e->dtype >= UFO_DTYPE_COUNT)
            return ufo_errorf("%s: safetensors: invalid dtype %d (tensor '%.200s')", path, (int)e->dtype, e->name);
        if (e->ndim < 0 || e->ndim > UFO_MAX_DIMS)
            return ufo_errorf("%s: safetensors: %d dimensions, expected 0..%d (tensor '%.200s')", path, e->ndim,
                              UFO_MAX_DIMS, e->name);
        uint64_t numel = 1, nb;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0)
                return ufo_errorf("%s: safetensors: negative dimension %lld (tensor '%.200s')", path,
                                  (long long)e->shape[d], e->name);
            if (__builtin_mul_overflow(numel, (uint64_t)e->shape[d], &numel))
                return ufo_errorf("%s: safetensors: element count overflows (tensor '%.200s')", path, e->name);
        }
        if (__builtin_mul_overflow(numel, (uint64_t)ufo_dtype_size(e->dtype), &nb) || nb != (uint64_t)e->nbytes)
            return ufo_errorf("%s: safetensors: %zu data bytes do not match the %s shape (tensor '%.200s')", path,
                              e->nbytes, ufo_dtype_name(e->dtype), e->name);
        if (e->nbytes && !e->data)
            return ufo_errorf("%s: safetensors: no data (tensor '%.200s')", path, e->name);
    }
    for (int i = 0; i < n_meta; i++)
        if (check_text(path, "metadata key", meta_keys[i]) || check_text(path, "metadata value", meta_vals[i]))
            return -1;

    size_t nd = (size_t)(n > n_meta ? n : n_meta);
    const char **names = nd ? malloc(nd * sizeof *names) : NULL;
    if (nd && !names) return ufo_errorf("%s: safetensors: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = items[i].name;
    const char *dup = find_duplicate(names, (size_t)n);
    if (dup) {
        free(names);
        return ufo_errorf("%s: safetensors: duplicate tensor name (tensor '%.200s')", path, dup);
    }
    for (int i = 0; i < n_meta; i++) names[i] = meta_keys[i];
    dup = find_duplicate(names, (size_t)n_meta);
    free(names);
    if (dup) return ufo_errorf("%s: safetensors: duplicate metadata key '%.200s'", path, dup);

    sb_str(hb, "{");
    if (n_meta > 0) {
        sb_str(hb, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(hb, ",");
            sb_json_str(hb, meta_keys[i]);
            sb_str(hb, ":");
            sb_json_str(hb, meta_vals[i]);
        }
        sb_str(hb, "}");
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const ufo_tensor_entry *e = &items[i];
        if (i || n_meta > 0) sb_str(hb, ",");
        sb_json_str(hb, e->name);
        sb_str(hb, ":{\"dtype\":\"");
        sb_str(hb, ufo_dtype_name(e->dtype));
        sb_str(hb, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) sb_str(hb, ",");
            sb_u64(hb, (uint64_t)e->shape[d]);
        }
        sb_str(hb, "],\"data_offsets\":[");
        sb_u64(hb, pos);
        sb_str(hb, ",");
        if (__builtin_add_overflow(pos, (uint64_t)e->nbytes, &pos))
            return ufo_errorf("%s: safetensors: total data size overflows", path);
        sb_u64(hb, pos);
        sb_str(hb, "]}");
    }
    sb_str(hb, "}");
    while (!hb->oom && hb->n % 8) sb_str(hb, " ");  // data section starts 8-byte aligned
    if (hb->oom) return ufo_errorf("%s: safetensors: out of memory building the header", path);
    if (hb->n > ST_MAX_HEADER)
        return ufo_errorf("%s: safetensors: header of %zu bytes is over the %llu-byte limit", path, hb->n,
                          ST_MAX_HEADER);
    *data_total = pos;
    return 0;
}

int ufo_safetensors_write(const char *path, const ufo_tensor_entry *items, int n,
                          const char *const *meta_keys, const char *const *meta_vals, int n_meta) {
    sbuf hb = {0};
    uint64_t total = 0;
    if (build_header(path, items, n, meta_keys, meta_vals, n_meta, &hb, &total) != 0) {
        free(hb.p);
        return -1;
    }
    unsigned char pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (unsigned char)((uint64_t)hb.n >> (8 * i));
    ufo_atomic_file af;
    if (ufo_atomic_open(&af, path) != 0) {
        free(hb.p);
        return -1;
    }
    int rc = ufo_atomic_write(&af, pre, 8) || ufo_atomic_write(&af, hb.p, hb.n);
    for (int i = 0; i < n && !rc; i++) rc = ufo_atomic_write(&af, items[i].data, items[i].nbytes);
    free(hb.p);
    if (rc) {
        ufo_atomic_abort(&af);
        return -1;
    }
    return ufo_atomic_commit(&af);
}
