// MXNet RecordIO reader: index parsing, bounds-checked record walking (joining
// split records), the IRHeader, and insightface's face-set view. See recordio.h.
#include "data/recordio.h"
#include "base/error.h"
#include "data/lists.h"
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static float rdf32(const unsigned char *p) {
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

const char *ufo_recordio_describe(const ufo_recordio *r, int i, char *buf, size_t cap) {
    if (i >= 0 && i < r->n && r->keys)
        snprintf(buf, cap, "%s record %d (key %" PRId64 ")", r->name ? r->name : "recordio", i, r->keys[i]);
    else snprintf(buf, cap, "%s record %d", r->name ? r->name : "recordio", i);
    return buf;
}

// ------------------------------------------------------------------ walking

// Walks the logical record that starts at `off`: checks every piece against the
// file and, when dst is non-NULL, joins the pieces into dst. *joined: the data
// size; *next: where the following record would start (may be past the end).
// Errors say what is wrong, not which record: the caller wraps them.
static int walk(const ufo_recordio *r, uint64_t off, size_t *joined, uint64_t *next, unsigned char *dst) {
    size_t total = 0;
    int piece = 0;
    for (;;) {
        if (off > r->size || r->size - off < 8) {
            if (piece == 0) return ufo_errorf("offset is past the end of the file (size %zu)", r->size);
            return ufo_errorf("split record is cut short: piece %d at offset %" PRIu64 " is past the end of the file (size %zu)",
                              piece, off, r->size);
        }
        const unsigned char *p = r->data + off;
        uint32_t magic = rd32(p), lrec = rd32(p + 4);
        if (magic != UFO_RECORDIO_MAGIC) {
            if (piece == 0) return ufo_errorf("bad magic 0x%08x (expected 0xced7230a)", magic);
            return ufo_errorf("split record piece %d at offset %" PRIu64 ": bad magic 0x%08x", piece, off, magic);
        }
        uint32_t cflag = lrec >> 29, len = lrec & ((1u << 29) - 1);
        if (piece == 0 && cflag != 0 && cflag != 1)
            return ufo_errorf("starts with a %s piece (cflag %u), not a record start",
                              cflag == 2 ? "middle" : cflag == 3 ? "last" : "invalid", cflag);
        if (piece > 0 && cflag != 2 && cflag != 3)
            return ufo_errorf("split record piece %d at offset %" PRIu64 " has cflag %u (expected 2 or 3)", piece, off, cflag);
        if (len > r->size - off - 8)
            return ufo_errorf("piece %d at offset %" PRIu64 " claims %u bytes, past the end of the file (size %zu)", piece, off, len,
                              r->size);
        if (dst && len) memcpy(dst + total, p + 8, len);
        total += len;
        off += 8 + (((uint64_t)len + 3) & ~(uint64_t)3);
        if (cflag == 0 || cflag == 3) break;
        // Between two pieces the writer dropped one magic word: put it back.
        if (dst) {
            dst[total] = 0x0a, dst[total + 1] = 0x23, dst[total + 2] = 0xd7, dst[total + 3] = 0xce;
        }
        total += 4;
        piece++;
    }
    *joined = total;
    *next = off;
    return 0;
}

static const char *what_of(const ufo_recordio *r, int i, char *buf, size_t cap) {
    snprintf(buf, cap, "record %d (key %" PRId64 ", offset %" PRIu64 ")", i, r->keys[i], r->offsets[i]);
    return buf;
}

static int wrap_record(const ufo_recordio *r, int i) {
    char what[96];
    return ufo_error_wrap("%s: %s", r->name, what_of(r, i, what, sizeof what));
}

int ufo_recordio_read(const ufo_recordio *r, int i, ufo_record *rec) {
    memset(rec, 0, sizeof *rec);
    if (i < 0 || i >= r->n) return ufo_errorf("%s: record %d does not exist (%d records)", r->name, i, r->n);
    uint64_t off = r->offsets[i];
    const unsigned char *p = r->data + off;   // open checked off + 8 <= size
    uint32_t lrec = rd32(p + 4);
    if (rd32(p) == UFO_RECORDIO_MAGIC && (lrec >> 29) == 0 && (lrec & ((1u << 29) - 1)) <= r->size - off - 8) {
        rec->data = p + 8;   // a whole record: no copy
        rec->size = lrec & ((1u << 29) - 1);
        return 0;
    }
    size_t joined;
    uint64_t next;
    if (walk(r, off, &joined, &next, NULL) != 0) return wrap_record(r, i);
    rec->owned = malloc(joined ? joined : 1);
    if (!rec->owned) {
        ufo_errorf("out of memory joining %zu bytes", joined);
        return wrap_record(r, i);
    }
    if (walk(r, off, &joined, &next, rec->owned) != 0) {
        ufo_record_free(rec);
        return wrap_record(r, i);
    }
    rec->data = rec->owned;
    rec->size = joined;
    return 0;
}

void ufo_record_free(ufo_record *rec) {
    free(rec->owned);
    memset(rec, 0, sizeof *rec);
}

// ------------------------------------------------------------------ header

int ufo_irheader_parse(const unsigned char *p, size_t n, ufo_irheader *h) {
    memset(h, 0, sizeof *h);
    if (n < UFO_IRHEADER_SIZE) return ufo_errorf("IRHeader: record of %zu bytes is shorter than the 24-byte header", n);
    h->flag = rd32(p);
    h->label = rdf32(p + 4);
    h->id = rd64(p + 8);
    h->id2 = rd64(p + 16);
    size_t need = UFO_IRHEADER_SIZE + (size_t)h->flag * 4;   // flag < 2^32: no overflow in 64 bits
    if (need > n)
        return ufo_errorf("IRHeader: flag %u announces %u labels (%zu bytes) but the record has %zu bytes", h->flag, h->flag,
                          (size_t)h->flag * 4, n - UFO_IRHEADER_SIZE);
    h->labels = h->flag ? p + UFO_IRHEADER_SIZE : NULL;
    h->image = p + need;
    h->image_size = n - need;
    return 0;
}

float ufo_irheader_label(const ufo_irheader *h, uint32_t k) {
    if (h->flag == 0) return k == 0 ? h->label : 0.0f;
    return k < h->flag ? rdf32(h->labels + (size_t)k * 4) : 0.0f;
}

int ufo_recordio_read_image(const ufo_recordio *r, int i, ufo_record *rec, ufo_irheader *h) {
    memset(h, 0, sizeof *h);
    if (ufo_recordio_read(r, i, rec) != 0) return -1;
    if (ufo_irheader_parse(rec->data, rec->size, h) != 0) {
        wrap_record(r, i);
        ufo_record_free(rec);
        return -1;
    }
    return 0;
}

// ------------------------------------------------------------------ index

static int parse_i64(const char *s, size_t len, int64_t *out) {
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == len) return -1;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > (uint64_t)INT64_MAX + 1) return -1;
    }
    if (!neg && v > (uint64_t)INT64_MAX) return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
    size_t i = 0;
    if (i < len && s[i] == '+') i++;
    if (i == len) return -1;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int grow(ufo_recordio *r, int *cap, int **lines) {
    if (r->n < *cap) return 0;
    if (*cap >= INT_MAX / 2) return ufo_errorf("%s: too many records", r->name);
    int nc = *cap ? *cap * 2 : 1024;
    int64_t *k = realloc(r->keys, (size_t)nc * sizeof *k);
    if (k) r->keys = k;
    uint64_t *o = realloc(r->offsets, (size_t)nc * sizeof *o);
    if (o) r->offsets = o;
    int *l = lines ? realloc(*lines, (size_t)nc * sizeof *l) : NULL;
    if (l) *lines = l;
    if (!k || !o || (lines && !l)) return ufo_errorf("%s: out of memory indexing records", r->name);
    *cap = nc;
    return 0;
}

typedef struct {
    int64_t key;
    int idx;
} key_idx;
static int cmp_key_idx(const void *a, const void *b) {
    const key_idx *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

// Builds by_key; a repeated key is an error naming both lines (or records).
static int build_by_key(ufo_recordio *r, const int *lines) {
    size_t n = (size_t)r->n;
    key_idx *t = malloc((n ? n : 1) * sizeof *t);
    r->by_key = malloc((n ? n : 1) * sizeof *r->by_key);
    if (!t || !r->by_key) {
        free(t);
        return ufo_errorf("%s: out of memory indexing records", r->name);
    }
    for (size_t i = 0; i < n; i++) t[i] = (key_idx){r->keys[i], (int)i};
    qsort(t, n, sizeof *t, cmp_key_idx);
    for (size_t i = 0; i < n; i++) {
        r->by_key[i] = t[i].idx;
        if (i > 0 && t[i].key == t[i - 1].key) {
            int a = t[i - 1].idx, b = t[i].idx;
            free(t);
            if (lines)
                return ufo_errorf("%s:%d: key %" PRId64 " repeats line %d", r->idx_name, lines[b], r->keys[b], lines[a]);
            return ufo_errorf("%s: key %" PRId64 " repeats (records %d and %d)", r->name, r->keys[b], a, b);
        }
    }
    free(t);
    return 0;
}

static int parse_idx(ufo_recordio *r, const char *text, size_t n) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, r->idx_name);
    const char *s;
    size_t len;
    int rc, cap = 0;
    int *lines = NULL;
    char snip[64];
    while ((rc = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        const char *tok[2];
        size_t tl[2];
        int64_t key;
        uint64_t off;
        if (ufo_split_ws(s, len, tok, tl, 2) != 2 || parse_i64(tok[0], tl[0], &key) != 0 || parse_u64(tok[1], tl[1], &off) != 0) {
            rc = ufo_errorf("%s:%d: expected '<key>\\t<offset>', found '%s'", r->idx_name, it.lineno,
                            ufo_snippet(s, len, snip, sizeof snip));
            break;
        }
        if (off > r->size || r->size - off < 8) {
            rc = ufo_errorf("%s:%d: offset %" PRIu64 " of key %" PRId64 " is past the end of %s (size %zu)", r->idx_name, it.lineno,
                            off, key, r->name, r->size);
            break;
        }
        if ((rc = grow(r, &cap, &lines)) != 0) break;
        r->keys[r->n] = key;
        r->offsets[r->n] = off;
        lines[r->n] = it.lineno;
        r->n++;
    }
    if (rc == 0) rc = build_by_key(r, lines);
    free(lines);
    return rc;
}

// No index: walk the file from 0; every record start becomes an entry keyed by its position.
static int scan(ufo_recordio *r) {
    uint64_t off = 0;
    int cap = 0;
    while (off < r->size) {
        if (r->size - off < 8)
            return ufo_errorf("%s: %zu trailing bytes at offset %" PRIu64 " are not a record", r->name, (size_t)(r->size - off), off);
        size_t joined;
        uint64_t next;
        if (walk(r, off, &joined, &next, NULL) != 0)
            return ufo_error_wrap("%s: record %d (offset %" PRIu64 ")", r->name, r->n, off);
        if (grow(r, &cap, NULL) != 0) return -1;
        r->keys[r->n] = r->n;
        r->offsets[r->n] = off;
        r->n++;
        off = next;
    }
    return build_by_key(r, NULL);
}

static int finish_open(ufo_recordio *r, const char *idx_text, size_t idx_size) {
    int rc = idx_text ? parse_idx(r, idx_text, idx_size) : scan(r);
    if (rc != 0) {
        ufo_recordio_close(r);   // sets no error: the parser's message stands
        return -1;
    }
    return 0;
}

int ufo_recordio_open_mem(ufo_recordio *r, const void *rec, size_t rec_size, const char *idx_text, size_t idx_size,
                          const char *name) {
    memset(r, 0, sizeof *r);
    if (!name) name = "recordio";
    r->name = strdup(name);
    r->idx_name = idx_text ? malloc(strlen(name) + 5) : NULL;
    if (!r->name || (idx_text && !r->idx_name)) {
        ufo_recordio_close(r);
        return ufo_errorf("out of memory");
    }
    if (r->idx_name) sprintf(r->idx_name, "%s.idx", name);
    r->data = rec;
    r->size = rec ? rec_size : 0;
    return finish_open(r, idx_text, idx_size);
}

int ufo_recordio_open(ufo_recordio *r, const char *rec_path, const char *idx_path) {
    memset(r, 0, sizeof *r);
    struct stat st;
    if (stat(rec_path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return ufo_errorf("missing record file %s", rec_path);
        return ufo_errorf("cannot open %s: %s", rec_path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return ufo_errorf("%s is a folder, expected a RecordIO file", rec_path);
    char *text = NULL;
    size_t tn = 0;
    if (idx_path) {
        if (stat(idx_path, &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) return ufo_errorf("missing index %s", idx_path);
            return ufo_errorf("cannot open %s: %s", idx_path, strerror(errno));
        }
        if (S_ISDIR(st.st_mode)) return ufo_errorf("%s is a folder, expected a RecordIO index", idx_path);
        if (ufo_read_file(idx_path, &text, &tn) != 0) return -1;
    }
    r->name = strdup(rec_path);
    r->idx_name = idx_path ? strdup(idx_path) : NULL;
    if (!r->name || (idx_path && !r->idx_name)) {
        free(text);
        ufo_recordio_close(r);
        return ufo_errorf("out of memory");
    }
    if (ufo_map_file(rec_path, &r->map_) != 0) {
        free(text);
        ufo_recordio_close(r);
        return -1;
    }
    r->data = r->map_.data;
    r->size = r->map_.size;
    int rc = finish_open(r, text, tn);
    free(text);
    return rc;
}

void ufo_recordio_close(ufo_recordio *r) {
    if (!r) return;
    free(r->name);
    free(r->idx_name);
    free(r->keys);
    free(r->offsets);
    free(r->by_key);
    ufo_unmap(&r->map_);
    memset(r, 0, sizeof *r);
}

int ufo_recordio_find(const ufo_recordio *r, int64_t key) {
    int lo = 0, hi = r->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int64_t k = r->keys[r->by_key[mid]];
        if (k == key) return r->by_key[mid];
        if (k < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

// ------------------------------------------------------------------ face list

// A class number: finite, whole, in [0, 2^31).
static int label_to_int(float f, int *out) {
    if (!(f >= 0.0f) || !(f < 2147483648.0f)) return -1;
    int v = (int)f;
    if ((float)v != f) return -1;
    *out = v;
    return 0;
}

int ufo_recordio_face_list(const ufo_recordio *r, int **entry_out, int **label_out, int *n_out) {
    *entry_out = NULL;
    *label_out = NULL;
    *n_out = 0;
    char what[96];
    int first = 0, count = r->n, from_header = 0;
    int e0 = ufo_recordio_find(r, 0);
    if (e0 >= 0) {
        ufo_record rec;
        ufo_irheader h;
        if (ufo_recordio_read_image(r, e0, &rec, &h) != 0) return -1;
        if (h.flag > 0) {
            // insightface: imgidx = range(1, int(header.label[0]))
            float l0 = ufo_irheader_label(&h, 0);
            ufo_record_free(&rec);
            if (!(l0 >= 1.0f) || !(l0 < 2147483648.0f))
                return ufo_errorf("%s: %s: header record's label[0] = %g is not an image count + 1", r->name,
                                  what_of(r, e0, what, sizeof what), (double)l0);
            long long end = (long long)l0;   // int() truncates
            if (end - 1 > r->n)
                return ufo_errorf("%s: header record announces %lld images but the index has %d records", r->name, end - 1, r->n);
            first = 1;
            count = (int)(end - 1);
            from_header = 1;
        } else {
            ufo_record_free(&rec);
        }
    }
    int *entry = malloc((size_t)(count > 0 ? count : 1) * sizeof *entry);
    int *label = malloc((size_t)(count > 0 ? count : 1) * sizeof *label);
    if (!entry || !label) {
        free(entry);
        free(label);
        return ufo_errorf("%s: out of memory", r->name);
    }
    for (int j = 0; j < count; j++) {
        int e = j;
        if (from_header) {
            e = ufo_recordio_find(r, (int64_t)first + j);
            if (e < 0) {
                free(entry);
                free(label);
                return ufo_errorf("%s: image key %d (announced by the header record) is not in %s", r->name, first + j,
                                  r->idx_name ? r->idx_name : "the file");
            }
        }
        ufo_record rec;
        ufo_irheader h;
        if (ufo_recordio_read_image(r, e, &rec, &h) != 0) {
            free(entry);
            free(label);
            return -1;
        }
        float f = ufo_irheader_first_label(&h);
        ufo_record_free(&rec);
        if (label_to_int(f, &label[j]) != 0) {
            free(entry);
            free(label);
            return ufo_errorf("%s: %s: label %g is not a class number (a whole number >= 0)", r->name,
                              what_of(r, e, what, sizeof what), (double)f);
        }
        entry[j] = e;
    }
    *entry_out = entry;
    *label_out = label;
    *n_out = count;
    return 0;
}
