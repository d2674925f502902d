// Training data: the RecordIO reader on hand-built bytes (split records,
// hostile lengths), the seven training-set layouts and image folders on small
// trees in a temp folder (contiguous labels, per-part offsets, errors that name
// the missing path), and the samplers (P x K structure, plain random epochs,
// determinism, exact resume) and the heterogeneous / homogeneous batch plan.
#define _XOPEN_SOURCE 700
#include "base/error.h"
#include "check.h"
#include "data/recordio.h"
#include "data/sampler.h"
#include "data/trainset.h"
#include <ftw.h>
#include <stdarg.h>
#include <jpeglib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

// ------------------------------------------------------------------ helpers

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static void mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        mkdirs(dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

// A formatted path in one of 8 rotating buffers.
static char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *P(const char *fmt, ...) {
    static char bufs[8][1024];
    static int k;
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    char *b = bufs[k++ & 7];
    memcpy(b, tmp, sizeof tmp);
    return b;
}

// A w x h RGB JPEG whose colour depends on `seed`.
static unsigned char *make_jpeg(int w, int h, int seed, size_t *n) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &out, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * 3);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; x++) {
            row[3 * x] = (unsigned char)(seed * 40 + x);
            row[3 * x + 1] = (unsigned char)(c.next_scanline * 7);
            row[3 * x + 2] = (unsigned char)(200 - seed);
        }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *n = size;
    return out;
}

static void write_jpeg(const char *path, int w, int h, int seed) {
    size_t n;
    unsigned char *j = make_jpeg(w, h, seed, &n);
    write_bytes(path, j, n);
    free(j);
}

// A growing byte buffer and dmlc's RecordIO writer.
typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put32(buf *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, x, 4);
}
static void put64(buf *b, uint64_t v) {
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}
static void putf(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(b, u);
}
static const unsigned char MAGIC_LE[4] = {0x0a, 0x23, 0xd7, 0xce};

// Writes one record as dmlc's RecordIOWriter: cut at every 4-aligned magic word.
static size_t rec_write(buf *b, const unsigned char *d, size_t len) {
    size_t start = b->n, dptr = 0, lower = len & ~(size_t)3;
    for (size_t i = 0; i < lower; i += 4)
        if (!memcmp(d + i, MAGIC_LE, 4)) {
            put32(b, UFO_RECORDIO_MAGIC);
            put32(b, (dptr == 0 ? 1u : 2u) << 29 | (uint32_t)(i - dptr));
            put(b, d + dptr, i - dptr);
            dptr = i + 4;
        }
    put32(b, UFO_RECORDIO_MAGIC);
    put32(b, (dptr != 0 ? 3u : 0u) << 29 | (uint32_t)(len - dptr));
    put(b, d + dptr, len - dptr);
    static const unsigned char zero[4] = {0};
    put(b, zero, ((len + 3) & ~(size_t)3) - len);
    return start;
}

// An IRHeader + payload. nlab > 0: a label array.
static void irpack(buf *out, float label, const float *labels, int nlab, uint64_t id, const void *img, size_t n) {
    out->n = 0;
    put32(out, (uint32_t)nlab);
    putf(out, nlab ? 0.0f : label);
    put64(out, id);
    put64(out, 0);
    for (int k = 0; k < nlab; k++) putf(out, labels[k]);
    put(out, img, n);
}

static void idx_line(buf *idx, long long key, size_t off) {
    char line[64];
    int l = snprintf(line, sizeof line, "%lld\t%zu\n", key, off);
    put(idx, line, (size_t)l);
}

static int err_has(const char *s) {
    int ok = strstr(ufo_error(), s) != NULL && !strchr(ufo_error(), '\n');
    if (!ok) fprintf(stderr, "  error was: %s\n  expected:  %s\n", ufo_error(), s);
    return ok;
}

// ------------------------------------------------------------------ RecordIO

static void test_recordio_bytes(void) {
    // Payloads: plain; magic at 0; two magics in a row; magic at the very end;
    // magic at an unaligned position (not cut); odd length (padding).
    unsigned char p0[] = "hello world!";   // 13 bytes with NUL
    unsigned char p1[16], p2[20], p3[12], p4[11];
    memcpy(p1, MAGIC_LE, 4), memset(p1 + 4, 'a', 12);
    memset(p2, 'b', 20), memcpy(p2 + 4, MAGIC_LE, 4), memcpy(p2 + 8, MAGIC_LE, 4);
    memset(p3, 'c', 12), memcpy(p3 + 8, MAGIC_LE, 4);
    memset(p4, 'd', 11), memcpy(p4 + 1, MAGIC_LE, 4);
    const unsigned char *pl[] = {p0, p1, p2, p3, p4};
    size_t pn[] = {sizeof p0, sizeof p1, sizeof p2, sizeof p3, sizeof p4};
    buf rec = {0}, idx = {0};
    size_t off[5];
    for (int i = 0; i < 5; i++) {
        off[i] = rec_write(&rec, pl[i], pn[i]);
        idx_line(&idx, 100 + i * 7, off[i]);
    }
    CHECK(rec.n % 4 == 0);
    // Record 2 was cut into three pieces of which the middle is empty.
    CHECK(((const uint32_t *)(rec.p + off[2]))[1] >> 29 == 1);
    ufo_recordio r;
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, (const char *)idx.p, idx.n, "mem.rec") == 0, "%s", ufo_error());
    CHECK(r.n == 5);
    for (int i = 0; i < 5 && r.n == 5; i++) {
        ufo_record x;
        CHECK(ufo_recordio_read(&r, i, &x) == 0, "%s", ufo_error());
        CHECK(x.size == pn[i] && !memcmp(x.data, pl[i], pn[i]), "record %d joined wrong", i);
        CHECK((x.owned != NULL) == (i >= 1 && i <= 3), "record %d: copy only for split records", i);
        ufo_record_free(&x);
        CHECK(ufo_recordio_find(&r, 100 + i * 7) == i);
    }
    CHECK(ufo_recordio_find(&r, 101) == -1 && ufo_recordio_find(&r, -5) == -1);
    ufo_record x;
    CHECK(ufo_recordio_read(&r, 5, &x) == -1 && err_has("record 5 does not exist"));
    ufo_recordio_close(&r);
    // Scan mode (no index): the same records keyed 0..4.
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, NULL, 0, "scan.rec") == 0, "%s", ufo_error());
    CHECK(r.n == 5 && r.keys[4] == 4 && r.offsets[3] == off[3]);
    if (r.n == 5) {
        CHECK(ufo_recordio_read(&r, 2, &x) == 0 && x.size == pn[2] && !memcmp(x.data, p2, pn[2]));
        ufo_record_free(&x);
    }
    ufo_recordio_close(&r);
    // Scan: trailing bytes that are not a record.
    buf bad = {0};
    put(&bad, rec.p, rec.n);
    put32(&bad, UFO_RECORDIO_MAGIC);
    CHECK(ufo_recordio_open_mem(&r, bad.p, bad.n, NULL, 0, "t.rec") == -1 && err_has("t.rec: 4 trailing bytes"));
    CHECK(r.n == 0 && r.keys == NULL && r.name == NULL);

    // Index errors name the index file and line.
    const char *bad_idx[][2] = {
        {"0\t0\nx\t4\n", "mem.rec.idx:2: expected '<key>\\t<offset>'"},
        {"0\t0\n1\t999999\n", "mem.rec.idx:2: offset 999999 of key 1 is past the end of mem.rec"},
        {"7\t0\n\n7\t16\n", "mem.rec.idx:3: key 7 repeats line 1"},
        {"0\t-4\n", "mem.rec.idx:1: expected"},
        {"0\t0\t1\n", "mem.rec.idx:1: expected"},
        {"99999999999999999999\t0\n", "mem.rec.idx:1: expected"},
    };
    for (size_t k = 0; k < sizeof bad_idx / sizeof bad_idx[0]; k++) {
        CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, bad_idx[k][0], strlen(bad_idx[k][0]), "mem.rec") == -1 &&
                  err_has(bad_idx[k][1]),
              "bad idx %zu", k);
        CHECK(r.n == 0 && r.keys == NULL);
    }
    // Index CRLF, blanks, negative keys accepted.
    const char *ok_idx = "  -3\t0 \r\n\r\n9 16\r\n";
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, ok_idx, strlen(ok_idx), "mem.rec") == 0 && r.n == 2 && r.keys[0] == -3 &&
          ufo_recordio_find(&r, 9) == 1);
    ufo_recordio_close(&r);

    // Hostile records behind a valid index line.
    struct {
        uint32_t w[4];
        int nw;
        const char *err;
    } hostile[] = {
        {{0xdeadbeef, 4, 0, 0}, 3, "bad magic 0xdeadbeef"},
        {{UFO_RECORDIO_MAGIC, 1000, 0, 0}, 3, "claims 1000 bytes, past the end"},
        {{UFO_RECORDIO_MAGIC, 2u << 29 | 4, 0, 0}, 3, "starts with a middle piece (cflag 2)"},
        {{UFO_RECORDIO_MAGIC, 3u << 29 | 4, 0, 0}, 3, "starts with a last piece (cflag 3)"},
        {{UFO_RECORDIO_MAGIC, 5u << 29 | 4, 0, 0}, 3, "starts with a invalid piece (cflag 5)"},
        {{UFO_RECORDIO_MAGIC, 1u << 29 | 4, 0, 0}, 3, "split record is cut short: piece 1"},
        {{UFO_RECORDIO_MAGIC, 1u << 29 | 0, UFO_RECORDIO_MAGIC, 0u << 29 | 0}, 4, "piece 1 at offset 8 has cflag 0"},
        {{UFO_RECORDIO_MAGIC, 1u << 29 | 0, 0x12345678, 0}, 4, "piece 1 at offset 8: bad magic"},
        {{UFO_RECORDIO_MAGIC, 1u << 29 | 0, UFO_RECORDIO_MAGIC, 3u << 29 | 100}, 4, "piece 1 at offset 8 claims 100 bytes"},
    };
    for (size_t k = 0; k < sizeof hostile / sizeof hostile[0]; k++) {
        buf h = {0};
        for (int i = 0; i < hostile[k].nw; i++) put32(&h, hostile[k].w[i]);
        const char *ix = "5\t0\n";
        CHECK(ufo_recordio_open_mem(&r, h.p, h.n, ix, strlen(ix), "h.rec") == 0, "%s", ufo_error());
        CHECK(ufo_recordio_read(&r, 0, &x) == -1 && err_has("h.rec: record 0 (key 5, offset 0)") && err_has(hostile[k].err),
              "hostile %zu", k);
        CHECK(x.data == NULL && x.owned == NULL);
        ufo_recordio_close(&r);
        // The scanner refuses the same bytes.
        CHECK(ufo_recordio_open_mem(&r, h.p, h.n, NULL, 0, "h.rec") == -1 && err_has(hostile[k].err), "hostile scan %zu", k);
        free(h.p);
    }
    // An offset that leaves fewer than 8 bytes.
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, "0\t" "4\n", 4, "m") == 0);
    ufo_recordio_close(&r);
    char ix2[64];
    snprintf(ix2, sizeof ix2, "0\t%zu\n", rec.n - 4);
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, ix2, strlen(ix2), "m") == -1 && err_has("is past the end of m"));
    // Empty file + empty index: zero records.
    CHECK(ufo_recordio_open_mem(&r, NULL, 0, "", 0, "e") == 0 && r.n == 0);
    ufo_recordio_close(&r);

    // IRHeader.
    buf ir = {0};
    float labs[3] = {5.0f, -1.5f, 2.25f};
    irpack(&ir, 7.0f, NULL, 0, 42, "IMG", 3);
    ufo_irheader h;
    CHECK(ufo_irheader_parse(ir.p, ir.n, &h) == 0 && h.flag == 0 && h.label == 7.0f && h.id == 42 && h.image_size == 3 &&
          !memcmp(h.image, "IMG", 3) && ufo_irheader_first_label(&h) == 7.0f);
    irpack(&ir, 0, labs, 3, 1, "JPEGDATA", 8);
    CHECK(ufo_irheader_parse(ir.p, ir.n, &h) == 0 && h.flag == 3 && ufo_irheader_label(&h, 1) == -1.5f &&
          ufo_irheader_label(&h, 2) == 2.25f && ufo_irheader_first_label(&h) == 5.0f && h.image_size == 8 &&
          !memcmp(h.image, "JPEGDATA", 8));
    CHECK(ufo_irheader_parse(ir.p, 23, &h) == -1 && err_has("shorter than the 24-byte header"));
    CHECK(ufo_irheader_parse(ir.p, 24 + 11, &h) == -1 && err_has("flag 3 announces 3 labels"));
    ir.p[0] = 0xff, ir.p[1] = 0xff, ir.p[2] = 0xff, ir.p[3] = 0xff;
    CHECK(ufo_irheader_parse(ir.p, ir.n, &h) == -1 && err_has("flag 4294967295"));
    free(ir.p);
    free(rec.p);
    free(idx.p);
    free(bad.p);
}

// insightface's layout: record 0 a header (flag 2: label = [N + 1, N + 1 + ids]),
// images 1..N, then identity records. Writes rec/idx into *rec, *idx.
static void build_face_rec(buf *rec, buf *idx, int with_header, const int *labels, int n, int split_one) {
    buf ir = {0};
    int ids = 0;
    for (int i = 0; i < n; i++)
        if (labels[i] + 1 > ids) ids = labels[i] + 1;
    if (with_header) {
        float hl[2] = {(float)(n + 1), (float)(n + 1 + ids)};
        irpack(&ir, 0, hl, 2, 0, NULL, 0);
        idx_line(idx, 0, rec_write(rec, ir.p, ir.n));
    }
    for (int i = 0; i < n; i++) {
        size_t jn;
        unsigned char *j = make_jpeg(12 + i, 10, i, &jn);
        buf img = {0};
        put(&img, j, jn);
        if (split_one && i == 1) {
            // Trailing bytes after the JPEG's EOI carrying an aligned magic word.
            while ((24 + img.n) % 4) put(&img, "\0", 1);
            put(&img, MAGIC_LE, 4);
            put(&img, "tail", 4);
        }
        float two[2] = {(float)labels[i], 99.0f};
        if (i == 2) irpack(&ir, 0, two, 2, (uint64_t)i, img.p, img.n);   // a label-array image record
        else irpack(&ir, (float)labels[i], NULL, 0, (uint64_t)i, img.p, img.n);
        idx_line(idx, with_header ? i + 1 : i, rec_write(rec, ir.p, ir.n));
        free(j);
        free(img.p);
    }
    if (with_header) {
        // Identity records: label = [first key, end key) of the identity's images (never read).
        for (int c = 0; c < ids; c++) {
            float rng[2] = {1, 2};
            irpack(&ir, 0, rng, 2, 0, NULL, 0);
            idx_line(idx, n + 1 + c, rec_write(rec, ir.p, ir.n));
        }
    }
    free(ir.p);
}

static void test_face_list(void) {
    int labels[6] = {3, 3, 0, 5, 0, 3};
    for (int hdr = 0; hdr < 2; hdr++) {
        buf rec = {0}, idx = {0};
        build_face_rec(&rec, &idx, hdr, labels, 6, 1);
        ufo_recordio r;
        CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, (const char *)idx.p, idx.n, "f.rec") == 0, "%s", ufo_error());
        int *entry = NULL, *lab = NULL, n = 0;
        CHECK(ufo_recordio_face_list(&r, &entry, &lab, &n) == 0, "%s", ufo_error());
        CHECK(n == 6, "header %d: n = %d", hdr, n);
        for (int i = 0; i < n && n == 6; i++) CHECK(lab[i] == labels[i] && r.keys[entry[i]] == i + hdr);
        int split = 0;
        for (int i = 0; i < r.n; i++) {
            ufo_record x;
            if (ufo_recordio_read(&r, i, &x) == 0) split += x.owned != NULL;
            ufo_record_free(&x);
        }
        CHECK(split == 1, "one record was written split (found %d)", split);
        free(entry);
        free(lab);
        ufo_recordio_close(&r);
        free(rec.p);
        free(idx.p);
    }
    // A header announcing more images than exist; a non-integer label; a negative label.
    buf rec = {0}, idx = {0}, ir = {0};
    float hl[2] = {4, 5};
    irpack(&ir, 0, hl, 2, 0, NULL, 0);
    idx_line(&idx, 0, rec_write(&rec, ir.p, ir.n));
    irpack(&ir, 1.0f, NULL, 0, 0, "x", 1);
    idx_line(&idx, 1, rec_write(&rec, ir.p, ir.n));
    idx_line(&idx, 2, rec_write(&rec, ir.p, ir.n));
    irpack(&ir, 0.5f, NULL, 0, 0, "x", 1);
    idx_line(&idx, 7, rec_write(&rec, ir.p, ir.n));
    ufo_recordio r;
    int *e = NULL, *l = NULL, n = -1;
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, (const char *)idx.p, idx.n, "g.rec") == 0);
    CHECK(ufo_recordio_face_list(&r, &e, &l, &n) == -1 && err_has("g.rec: image key 3 (announced by the header record) is not in g.rec.idx"));
    CHECK(e == NULL && l == NULL && n == 0);
    ufo_recordio_close(&r);
    // Without key 0 every record is an image: key 7's label 0.5 is refused.
    const char *ix = strchr((const char *)idx.p, '\n') + 1;
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, ix, idx.n - (size_t)(ix - (const char *)idx.p), "g.rec") == 0);
    CHECK(ufo_recordio_face_list(&r, &e, &l, &n) == -1 && err_has("g.rec: record 2 (key 7, offset") && err_has("label 0.5 is not a class number"));
    ufo_recordio_close(&r);
    // Header label[0] = 0.
    rec.n = idx.n = 0;
    float h0[2] = {0, 0};
    irpack(&ir, 0, h0, 2, 0, NULL, 0);
    idx_line(&idx, 0, rec_write(&rec, ir.p, ir.n));
    CHECK(ufo_recordio_open_mem(&r, rec.p, rec.n, (const char *)idx.p, idx.n, "h.rec") == 0);
    CHECK(ufo_recordio_face_list(&r, &e, &l, &n) == -1 && err_has("label[0] = 0 is not an image count + 1"));
    ufo_recordio_close(&r);
    free(rec.p);
    free(idx.p);
    free(ir.p);
}

// ------------------------------------------------------------------ training sets

static int load_ok(const char *name, ufo_trainset *s) {
    int rc = ufo_trainset_load(name, root, s);
    if (rc != 0) fprintf(stderr, "  load %s: %s\n", name, ufo_error());
    return rc == 0;
}

// Labels are contiguous, ordered like the raw ids, and num_classes is their count.
static int contiguous(const ufo_trainset *s) {
    int ok = s->num_classes > 0;
    char *seen = calloc((size_t)s->num_classes + 1, 1);
    for (int i = 0; i < s->n && ok; i++) {
        if (s->label[i] < 0 || s->label[i] >= s->num_classes) ok = 0;
        else seen[s->label[i]] = 1;
        for (int j = 0; j < s->n && ok; j++) {
            if (s->parts[0].n != s->n) break;   // raw ids are only comparable within one part
            if ((s->raw_id[i] < s->raw_id[j]) != (s->label[i] < s->label[j])) ok = 0;
        }
    }
    for (int c = 0; c < s->num_classes && ok; c++) ok = seen[c];
    free(seen);
    return ok;
}

static void build_trees(void) {
    const char *m = P("%s/Market-1501-v15.09.15/bounding_box_train", root);
    const char *mnames[] = {"0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077419_03.jpg",
                            "-1_c1s1_000401_03.jpg", "1500_c6s4_001902_01.jpg", "0007_c1s1_000001_00.jpg"};
    for (int i = 0; i < 6; i++) write_jpeg(P("%s/%s", m, mnames[i]), 8, 16, i);
    write_text(P("%s/Market-1501-v15.09.15/bounding_box_train/Thumbs.db", root), "x");   // not a .jpg: ignored
    // MSMT17_V2
    write_text(P("%s/MSMT17_V2/list_train.txt", root),
               "0000/0000_000_01_0303morning_0015_0.jpg 0\n0000/0000_001_05_0303morning_0016_0.jpg 0\n"
               "0009/0009_002_14_0303noon_0017_0.jpg 9\r\n");
    write_text(P("%s/MSMT17_V2/list_val.txt", root), "0004/0004_000_02_0303morning_0018_0.jpg 4\n");
    mkdirs(P("%s/MSMT17_V2/mask_train_v2", root));
    // VeRi
    write_jpeg(P("%s/veri/image_train/0001_c001_00016450_0.jpg", root), 8, 8, 1);
    write_jpeg(P("%s/veri/image_train/0005_c012_00016450_1.jpg", root), 8, 8, 2);
    write_jpeg(P("%s/veri/image_train/0001_c002_00016450_0.jpg", root), 8, 8, 3);
    // VehicleID
    mkdirs(P("%s/vehicleid/image", root));
    write_text(P("%s/vehicleid/train_test_split/train_list.txt", root), "00001 5\n00002 5\n00010 2\n00011 8\n");
    // VeRi-Wild
    mkdirs(P("%s/VERI-Wild/images", root));
    write_text(P("%s/VERI-Wild/train_test_split/vehicle_info.txt", root),
               "id/image;Camera ID;Time;Model;Type;Color\n00001/000001;12;t;m;t;c\n00001/000002;3;t;m;t;c\n"
               "00007/000010;5;t;m;t;c\n");
    write_text(P("%s/VERI-Wild/train_test_split/train_list.txt", root), "00001/000001\n00007/000010\n00001/000002\n");
    // SOP: train.txt
    write_text(P("%s/Stanford_Online_Products/train.txt", root), "bicycle_final/1_0.JPG,1\nchair_final/2_0.JPG,11318\nbicycle_final/1_1.JPG,1\n");
    // MS1M-V3 as RecordIO
    int labels[5] = {2, 0, 1, 1, 2};
    buf rec = {0}, idx = {0};
    build_face_rec(&rec, &idx, 1, labels, 5, 1);
    write_bytes(P("%s/ms1m-retinaface-t1/train.rec", root), rec.p, rec.n);
    write_bytes(P("%s/ms1m-retinaface-t1/train.idx", root), idx.p, idx.n);
    free(rec.p);
    free(idx.p);
    // An image folder.
    write_jpeg(P("%s/folder/zeta/b.PNG.jpg", root), 9, 9, 1);
    write_jpeg(P("%s/folder/alpha/2.jpeg", root), 9, 9, 2);
    write_jpeg(P("%s/folder/alpha/1.JPG", root), 9, 9, 3);
    write_text(P("%s/folder/alpha/notes.txt", root), "x");
    write_jpeg(P("%s/folder/.hidden/x.jpg", root), 9, 9, 4);
    mkdirs(P("%s/folder/empty", root));
    write_text(P("%s/folder/README.jpg", root), "not an identity");
}

static void test_sets(void) {
    ufo_trainset s;
    // Market1501: sorted names; -1 dropped; labels 0002 -> 0, 0007 -> 1, 1500 -> 2.
    CHECK(load_ok("market1501", &s) && s.n == 5 && s.num_classes == 3 && contiguous(&s));
    if (s.n == 5) {
        // strcmp order: -1_... (dropped), 0002_c1, 0002_c2, 0007_c1, 0007_c3, 1500_c6
        int lab[5] = {0, 0, 1, 1, 2}, cam[5] = {0, 1, 0, 2, 5}, raw[5] = {2, 2, 7, 7, 1500};
        for (int i = 0; i < 5; i++) CHECK(s.label[i] == lab[i] && s.camid[i] == cam[i] && s.raw_id[i] == raw[i], "market %d", i);
        CHECK(strstr(ufo_trainset_path(&s, 0), "bounding_box_train/0002_c1s1_000451_03.jpg") != NULL);
        CHECK(!strcmp(s.name, "Market1501") && s.n_parts == 1 && strstr(s.parts[0].source, "bounding_box_train"));
        ufo_image img;
        CHECK(ufo_trainset_read(&s, 4, &img) == 0 && img.w == 8 && img.h == 16, "%s", ufo_error());
        ufo_image_free(&img);
    }
    ufo_trainset_free(&s);
    // MSMT17: train then val; cameras from the third field.
    CHECK(load_ok("MSMT17", &s) && s.n == 4 && s.num_classes == 3 && contiguous(&s));
    if (s.n == 4) {
        CHECK(s.raw_id[3] == 4 && s.label[3] == 1 && s.label[2] == 2 && s.camid[0] == 0 && s.camid[1] == 4 && s.camid[2] == 13);
        CHECK(strstr(ufo_trainset_path(&s, 3), "MSMT17_V2/mask_train_v2/0004/0004_000_02") != NULL);
    }
    ufo_trainset_free(&s);
    CHECK(load_ok("VeRi", &s) && s.n == 3 && s.num_classes == 2 && s.camid[0] == 0 && s.camid[1] == 1 && s.camid[2] == 11);
    ufo_trainset_free(&s);
    CHECK(load_ok("VehicleID", &s) && s.n == 4 && s.num_classes == 3 && contiguous(&s) && s.camid[0] == -1);
    if (s.n == 4) CHECK(s.label[0] == 1 && s.label[2] == 0 && s.label[3] == 2 && strstr(ufo_trainset_path(&s, 2), "vehicleid/image/00010.jpg"));
    ufo_trainset_free(&s);
    CHECK(load_ok("VeRi-Wild", &s) && s.n == 3 && s.num_classes == 2 && s.camid[0] == 12 && s.camid[1] == 5 && s.camid[2] == 3);
    if (s.n == 3) CHECK(strstr(ufo_trainset_path(&s, 1), "VERI-Wild/images/00007/000010.jpg") != NULL && s.label[1] == 1);
    ufo_trainset_free(&s);
    CHECK(load_ok("SOP", &s) && s.n == 3 && s.num_classes == 2 && s.label[1] == 1 && s.raw_id[1] == 11318 && s.camid[1] == -1);
    ufo_trainset_free(&s);
    // MS1M-V3 from RecordIO: labels from the IRHeaders, images decodable.
    CHECK(load_ok("MS1M-V3", &s) && s.n == 5 && s.num_classes == 3 && contiguous(&s));
    if (s.n == 5) {
        CHECK(s.raw_id[0] == 2 && s.raw_id[1] == 0 && s.raw_id[2] == 1 && ufo_trainset_path(&s, 0) == NULL);
        for (int i = 0; i < 5; i++) {
            ufo_image img;
            CHECK(ufo_trainset_read(&s, i, &img) == 0 && img.w == 12 + i && img.h == 10, "rec image %d: %s", i, ufo_error());
            ufo_image_free(&img);
        }
        char d[256];
        CHECK(strstr(ufo_trainset_describe(&s, 1, d, sizeof d), "train.rec record 2 (key 2)") != NULL, "%s", d);
    }
    ufo_trainset_free(&s);
    // folder:<path> image folder: alpha (2 images, sorted), zeta; empty and hidden ignored.
    char fname[300];
    snprintf(fname, sizeof fname, "folder:%s/folder/", root);
    CHECK(ufo_trainset_load(fname, NULL, &s) == 0 && s.n == 3 && s.num_classes == 2, "%s", ufo_error());
    if (s.n == 3) {
        CHECK(strstr(ufo_trainset_path(&s, 0), "folder/alpha/1.JPG") && strstr(ufo_trainset_path(&s, 1), "folder/alpha/2.jpeg") &&
              s.label[2] == 1 && s.label[0] == 0 && s.camid[0] == -1);
        ufo_image img;
        CHECK(ufo_trainset_read(&s, 2, &img) == 0 && img.w == 9);
        ufo_image_free(&img);
    }
    ufo_trainset_free(&s);
    // folder:<path> with train.rec is RecordIO.
    snprintf(fname, sizeof fname, "folder:%s/ms1m-retinaface-t1", root);
    CHECK(ufo_trainset_load(fname, "/nonexistent", &s) == 0 && s.n == 5 && ufo_trainset_path(&s, 2) == NULL);
    ufo_trainset_free(&s);
}

static void test_concat(void) {
    ufo_trainset s;
    // person = Market1501 (3 classes) + MSMT17 (3 classes): MSMT17's classes start at 3.
    CHECK(ufo_trainset_load_task("person", root, &s) == 0, "%s", ufo_error());
    CHECK(s.n == 9 && s.num_classes == 6 && s.n_parts == 2 && !strcmp(s.name, "person"));
    if (s.n == 9) {
        CHECK(!strcmp(s.parts[0].name, "Market1501") && !strcmp(s.parts[1].name, "MSMT17"));
        CHECK(s.parts[1].first == 5 && s.parts[1].n == 4 && s.parts[1].class_offset == 3 && s.parts[1].num_classes == 3);
        CHECK(s.label[5] == 3 && s.label[7] == 5 && s.label[8] == 4 && s.raw_id[8] == 4 && s.label[4] == 2);
        CHECK(strstr(ufo_trainset_path(&s, 4), "1500_c6") && strstr(ufo_trainset_path(&s, 5), "MSMT17_V2"));
        CHECK(ufo_trainset_path(&s, 9) == NULL && ufo_trainset_path(&s, -1) == NULL);
        ufo_image img;
        CHECK(ufo_trainset_read(&s, 9, &img) == -1 && err_has("out of range"));
        // MSMT17 images were never written: the error names the file.
        CHECK(ufo_trainset_read(&s, 6, &img) == -1 && err_has("0000_001_05_0303morning_0016_0.jpg"));
    }
    ufo_trainset_free(&s);
    CHECK(ufo_trainset_load_task("vehicle", root, &s) == 0, "%s", ufo_error());
    CHECK(s.n == 10 && s.num_classes == 7 && s.n_parts == 3 && s.parts[2].class_offset == 5 && s.parts[2].first == 7);
    ufo_trainset_free(&s);
    CHECK(ufo_trainset_load_task("face", root, &s) == 0 && s.n == 5 && s.num_classes == 3 && !strcmp(s.name, "face"));
    ufo_trainset_free(&s);
    CHECK(ufo_trainset_load_task("product", root, &s) == 0 && s.n == 3);
    ufo_trainset_free(&s);
    // Mixed sources: a RecordIO part after a file part.
    char spec[600];
    snprintf(spec, sizeof spec, "SOP+folder:%s/ms1m-retinaface-t1+VeRi", root);
    CHECK(ufo_trainset_load_task(spec, root, &s) == 0 && s.n == 11 && s.num_classes == 7, "%s", ufo_error());
    if (s.n == 11) {
        CHECK(!strcmp(s.name, "SOP+folder+VeRi"));
        CHECK(ufo_trainset_path(&s, 2) != NULL && ufo_trainset_path(&s, 3) == NULL && ufo_trainset_path(&s, 8) != NULL);
        CHECK(s.label[3] == 2 + 2 && s.label[8] == 5);
        ufo_image img;
        CHECK(ufo_trainset_read(&s, 4, &img) == 0 && img.w == 13);
        ufo_image_free(&img);
    }
    ufo_trainset_free(&s);
    // Direct concat moves the parts.
    ufo_trainset parts[2], d;
    CHECK(load_ok("VeRi", &parts[0]) && load_ok("SOP", &parts[1]));
    CHECK(ufo_trainset_concat(&d, parts, 2) == 0 && d.n == 6 && parts[0].n == 0 && parts[0].label == NULL && parts[1].priv_ == NULL);
    ufo_trainset_free(&d);
    ufo_trainset_free(&parts[0]);
    ufo_trainset_free(&parts[1]);
    ufo_trainset e = {0};
    CHECK(ufo_trainset_concat(&d, &e, 1) == -1 && err_has("empty training set"));
    // A failing part: the whole task fails with its message.
    CHECK(ufo_trainset_load_task("VeRi+Nope", root, &s) == -1 && err_has("unknown training set 'Nope'"));
    CHECK(ufo_trainset_load_task("VeRi++SOP", root, &s) == -1 && err_has("empty set name"));
}

static void test_errors(void) {
    ufo_trainset s;
    char other[300];
    snprintf(other, sizeof other, "%s/empty_root", root);
    mkdirs(other);
    const char *names[] = {"Market1501", "MSMT17", "VeRi", "VehicleID", "VeRiWild", "SOP", "MS1M-V3"};
    const char *want[] = {"missing folder", "missing folder", "missing folder", "missing folder", "missing folder",
                          "missing folder", "missing folder"};
    for (int k = 0; k < 7; k++) {
        CHECK(ufo_trainset_load(names[k], other, &s) == -1 && err_has(want[k]) && err_has(other), "%s", names[k]);
        CHECK(s.n == 0 && s.label == NULL && s.priv_ == NULL);
    }
    CHECK(ufo_trainset_load("Market1501", "/no/such/root", &s) == -1 && err_has("data root /no/such/root is not a folder"));
    CHECK(ufo_trainset_load("Duke", root, &s) == -1 && err_has("unknown training set 'Duke'"));
    CHECK(ufo_trainset_load("folder:", root, &s) == -1 && err_has("needs a path"));
    CHECK(ufo_trainset_load("folder:/no/where", root, &s) == -1 && err_has("missing folder /no/where"));
    // Missing lists are named.
    char r2[300];
    snprintf(r2, sizeof r2, "%s/r2", root);
    write_text(P("%s/MSMT17_V1/list_train.txt", r2), "0000/0000_000_01_x.jpg 0\n");
    mkdirs(P("%s/MSMT17_V1/train", r2));
    CHECK(ufo_trainset_load("MSMT17", r2, &s) == -1 && err_has("missing list") && err_has("MSMT17_V1/list_val.txt"));
    mkdirs(P("%s/vehicleid/image", r2));
    CHECK(ufo_trainset_load("VehicleID", r2, &s) == -1 && err_has("missing list") && err_has("vehicleid/train_test_split/train_list.txt"));
    mkdirs(P("%s/VERI-Wild/images", r2));
    write_text(P("%s/VERI-Wild/train_test_split/train_list.txt", r2), "1/2\n");
    CHECK(ufo_trainset_load("VeRiWild", r2, &s) == -1 && err_has("missing list") && err_has("vehicle_info.txt"));
    mkdirs(P("%s/Stanford_Online_Products", r2));
    CHECK(ufo_trainset_load("SOP", r2, &s) == -1 && err_has("missing list") && err_has("Stanford_Online_Products/train.txt"));
    // SOP falls back to Ebay_train.txt.
    write_text(P("%s/Stanford_Online_Products/Ebay_train.txt", r2),
               "image_id class_id super_class_id path\n1 1 1 bicycle_final/111085122871_0.JPG\n2 7 1 bicycle_final/x.JPG\n");
    CHECK(ufo_trainset_load("SOP", r2, &s) == 0 && s.n == 2 && s.raw_id[1] == 7 && strstr(s.parts[0].source, "Ebay_train.txt"));
    ufo_trainset_free(&s);
    // Bad list lines are named by file:line.
    write_text(P("%s/MSMT17_V1/list_val.txt", r2), "oops\n");
    CHECK(ufo_trainset_load("MSMT17", r2, &s) == -1 && err_has("MSMT17_V1/list_val.txt:1: expected"));
    // Market: flat layout, then an empty train folder.
    mkdirs(P("%s/bounding_box_train", r2));
    CHECK(ufo_trainset_load("Market1501", r2, &s) == -1 && err_has("no training images"));
    write_jpeg(P("%s/bounding_box_train/0003_c2s1_0_0.jpg", r2), 4, 4, 0);
    CHECK(ufo_trainset_load("Market1501", r2, &s) == 0 && s.n == 1 && s.camid[0] == 1);
    ufo_trainset_free(&s);
    write_text(P("%s/bounding_box_train/junk.jpg", r2), "x");
    CHECK(ufo_trainset_load("Market1501", r2, &s) == -1 && err_has("junk.jpg: file name does not match"));
    // MS1M-V3: train.rec without train.idx; corrupt record image.
    write_text(P("%s/ms1mv3/train.rec", r2), "");
    CHECK(ufo_trainset_load("MS1M-V3", r2, &s) == -1 && err_has("missing index") && err_has("ms1mv3/train.idx"));
    buf rec = {0}, idx = {0}, ir = {0};
    irpack(&ir, 4.0f, NULL, 0, 0, "not a jpeg", 10);
    idx_line(&idx, 0, rec_write(&rec, ir.p, ir.n));
    write_bytes(P("%s/ms1mv3/train.rec", r2), rec.p, rec.n);
    write_bytes(P("%s/ms1mv3/train.idx", r2), idx.p, idx.n);
    CHECK(ufo_trainset_load("ms1mv3", r2, &s) == 0 && s.n == 1 && s.raw_id[0] == 4 && s.label[0] == 0, "%s", ufo_error());
    ufo_image img;
    CHECK(ufo_trainset_read(&s, 0, &img) == -1 && err_has("ms1mv3/train.rec record 0 (key 0)"));
    ufo_trainset_free(&s);
    // An image folder in place of the RecordIO folder (the UFO release's ms1mv3/<id>/*.jpg).
    remove(P("%s/ms1mv3/train.rec", r2));
    write_jpeg(P("%s/ms1mv3/m.0001/a.jpg", r2), 5, 5, 0);
    CHECK(ufo_trainset_load("MS1M-V3", r2, &s) == 0 && s.n == 1 && s.num_classes == 1);
    ufo_trainset_free(&s);
    free(rec.p);
    free(idx.p);
    free(ir.p);
    int n;
    const char *const *nm = ufo_trainset_names(&n);
    CHECK(n == 7 && !strcmp(nm[0], "MS1M-V3") && !strcmp(nm[6], "SOP"));
}

// ------------------------------------------------------------------ samplers

// P distinct identities, each exactly K times, each row of its identity.
static int pk_ok(const int *idx, int P, int K, const int *label, int n) {
    for (int p = 0; p < P; p++) {
        int c = -1;
        for (int k = 0; k < K; k++) {
            int i = idx[p * K + k];
            if (i < 0 || i >= n) return 0;
            if (k == 0) c = label[i];
            else if (label[i] != c) return 0;
        }
        for (int q = 0; q < p; q++)
            if (label[idx[q * K]] == c) return 0;
    }
    return 1;
}

static void make_labels(int *label, int n, int C) {
    // Class c has 1 + (c * 7) % 9 images, cycled until n (so some have fewer than K = 4).
    int i = 0;
    while (i < n)
        for (int c = 0; c < C && i < n; c++)
            for (int k = 0; k < 1 + (c * 7) % 9 && i < n; k++) label[i++] = c;
    // Shuffle deterministically so images of a class are not adjacent.
    for (int a = n - 1; a > 0; a--) {
        int b = (a * 2654435761u) % (unsigned)(a + 1);
        int t = label[a];
        label[a] = label[b];
        label[b] = t;
    }
}

static void test_pk(void) {
    enum { N = 300, C = 60 };
    int label[N];
    make_labels(label, N, C);
    int cnt[C] = {0};
    for (int i = 0; i < N; i++) cnt[label[i]]++;
    int small = 0;
    for (int c = 0; c < C; c++) small += cnt[c] > 0 && cnt[c] < 4;
    CHECK(small > 5, "test data should have identities with fewer than K images");
    const int Pp = 8, K = 4;
    ufo_sampler s, t;
    CHECK(ufo_sampler_init_pk(&s, label, N, C, Pp, K, 123) == 0, "%s", ufo_error());
    CHECK(s.batch == Pp * K && s.n_ids <= C);
    int out[64], out2[64];
    int ok = 1, reuse_ok = 1;
    // Within an epoch an image of an identity with >= K images is used at most once.
    unsigned char used[N];
    memset(used, 0, sizeof used);
    uint64_t ep = s.epoch;
    int epochs_seen = 0;
    for (int d = 0; d < 400; d++) {
        ufo_sampler_next(&s, out);
        if (s.epoch != ep) {
            ep = s.epoch;
            epochs_seen++;
            memset(used, 0, sizeof used);
        }
        ok &= pk_ok(out, Pp, K, label, N);
        for (int r = 0; r < Pp * K; r++)
            if (cnt[label[out[r]]] >= K) {
                reuse_ok &= !used[out[r]];
                used[out[r]] = 1;
            }
    }
    CHECK(ok, "P x K structure broken");
    CHECK(reuse_ok, "an image was reused within an epoch");
    CHECK(epochs_seen >= 5, "epochs %d", epochs_seen);
    // Determinism: same seed, same stream; another seed, another stream.
    ufo_sampler_free(&s);
    ufo_sampler_init_pk(&s, label, N, C, Pp, K, 123);
    ufo_sampler_init_pk(&t, label, N, C, Pp, K, 123);
    int same = 1;
    for (int d = 0; d < 50; d++) {
        ufo_sampler_next(&s, out), ufo_sampler_next(&t, out2);
        same &= !memcmp(out, out2, sizeof out[0] * (size_t)(Pp * K));
    }
    CHECK(same);
    ufo_sampler_free(&t);
    ufo_sampler_init_pk(&t, label, N, C, Pp, K, 124);
    ufo_sampler_next(&t, out2);
    ufo_sampler_free(&t);
    // Save/restore at many points (mid-epoch and right at epoch ends): identical continuations.
    int exact = 1;
    for (int at = 0; at < 60; at++) {
        ufo_sampler_state st;
        uint64_t w[UFO_SAMPLER_STATE_WORDS];
        ufo_sampler_get_state(&s, &st);
        ufo_sampler_state_to_words(&st, w);
        ufo_sampler_init_pk(&t, label, N, C, Pp, K, 999);   // another seed: the state overrides it
        ufo_sampler_state st2;
        ufo_sampler_state_from_words(&st2, w);
        if (ufo_sampler_set_state(&t, &st2) != 0) {
            exact = 0;
            fprintf(stderr, "  set_state: %s\n", ufo_error());
        }
        for (int d = 0; d < 13; d++) {
            ufo_sampler_next(&s, out), ufo_sampler_next(&t, out2);
            exact &= !memcmp(out, out2, sizeof out[0] * (size_t)(Pp * K));
        }
        exact &= s.epoch == t.epoch && s.pos == t.pos;
        ufo_sampler_free(&t);
    }
    CHECK(exact, "restored P x K sampler diverged");
    // Other data, hostile positions: refused, sampler unchanged.
    ufo_sampler_state st;
    ufo_sampler_get_state(&s, &st);
    int lab2[N];
    memcpy(lab2, label, sizeof lab2);
    lab2[0] = (lab2[0] + 1) % C;
    ufo_sampler_init_pk(&t, lab2, N, C, Pp, K, 1);
    CHECK(ufo_sampler_set_state(&t, &st) == -1 && err_has("saved for other data"));
    ufo_sampler_free(&t);
    ufo_sampler_init_pk(&t, label, N, C, Pp, K, 1);
    ufo_sampler_next(&t, out2);
    ufo_sampler_state before;
    ufo_sampler_get_state(&t, &before);
    ufo_sampler_state bad = st;
    bad.pos = 1000000;
    CHECK(ufo_sampler_set_state(&t, &bad) == -1 && err_has("do not fit"));
    // A position just past what the epoch can give (found by running one epoch).
    ufo_sampler u;
    ufo_sampler_init_pk(&u, label, N, C, Pp, K, 5);
    while (u.epoch == 0) ufo_sampler_next(&u, out);
    ufo_sampler_state ue;
    ufo_sampler_free(&u);
    ufo_sampler_init_pk(&u, label, N, C, Pp, K, 5);
    uint64_t per_epoch = 0;
    while (u.epoch == 0) {
        ufo_sampler_next(&u, out);
        if (u.epoch == 0) per_epoch = u.pos;
    }
    ufo_sampler_free(&u);
    ufo_sampler_init_pk(&u, label, N, C, Pp, K, 5);
    ufo_sampler_get_state(&u, &ue);
    ue.pos = per_epoch + 1;
    CHECK(ufo_sampler_set_state(&t, &ue) == -1 && err_has("does not fit epoch"), "per epoch %llu", (unsigned long long)per_epoch);
    ufo_sampler_state after;
    ufo_sampler_get_state(&t, &after);
    CHECK(!memcmp(&before, &after, sizeof before), "failed restore changed the sampler");
    ue.pos = per_epoch;
    CHECK(ufo_sampler_set_state(&u, &ue) == 0);
    ufo_sampler_free(&u);
    bad = st;
    memset(bad.rng, 0, sizeof bad.rng);
    CHECK(ufo_sampler_set_state(&s, &bad) == -1 && err_has("all-zero"));
    ufo_sampler_free(&t);
    ufo_sampler_free(&s);

    // Every identity has fewer than K images (K = 4, 1..3 images each), P = all identities.
    int tiny[6] = {0, 1, 1, 2, 2, 2};
    CHECK(ufo_sampler_init_pk(&s, tiny, 6, 3, 3, 4, 7) == 0);
    int ok2 = 1;
    for (int d = 0; d < 20; d++) {
        ufo_sampler_next(&s, out);
        ok2 &= pk_ok(out, 3, 4, tiny, 6);
    }
    CHECK(ok2 && s.epoch == 19, "every draw is its own epoch here (epoch %llu)", (unsigned long long)s.epoch);
    ufo_sampler_free(&s);
    // Class ids with no images are not identities.
    int gaps[8] = {5, 5, 9, 9, 9, 9, 0, 0};
    CHECK(ufo_sampler_init_pk(&s, gaps, 8, 12, 3, 2, 1) == 0 && s.n_ids == 3);
    ufo_sampler_next(&s, out);
    CHECK(pk_ok(out, 3, 2, gaps, 8));
    ufo_sampler_free(&s);
    CHECK(ufo_sampler_init_pk(&s, gaps, 8, 12, 4, 2, 1) == -1 && err_has("4 identities per batch but the set has only 3"));
    CHECK(ufo_sampler_init_pk(&s, gaps, 8, 9, 2, 2, 1) == -1 && err_has("image 2 has class 9, outside [0, 9)"));
    CHECK(ufo_sampler_init_pk(&s, gaps, 8, 12, 0, 2, 1) == -1);
}

static void test_random(void) {
    enum { N = 37 };
    ufo_sampler s, t;
    CHECK(ufo_sampler_init_random(&s, N, 10, 42) == 0);
    // The stream is a concatenation of permutations of [0, N).
    int stream[N * 10], out[10], out2[10];
    for (int d = 0; d < N; d++) {
        ufo_sampler_next(&s, out);
        memcpy(stream + d * 10, out, sizeof out);
    }
    int perm_ok = 1;
    for (int e = 0; e < 10; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) {
            int v = stream[e * N + i];
            if (v < 0 || v >= N || seen[v]++) perm_ok = 0;
        }
    }
    CHECK(perm_ok && s.epoch == 9 && s.pos == N);
    int differs = memcmp(stream, stream + N, N * sizeof stream[0]) != 0;
    CHECK(differs, "epochs should be shuffled differently");
    // Exact resume at every position of an epoch.
    int exact = 1;
    for (int at = 0; at < 2 * N; at++) {
        ufo_sampler_state st;
        ufo_sampler_get_state(&s, &st);
        ufo_sampler_init_random(&t, N, 10, 7);
        exact &= ufo_sampler_set_state(&t, &st) == 0;
        for (int d = 0; d < 9; d++) {
            ufo_sampler_next(&s, out), ufo_sampler_next(&t, out2);
            exact &= !memcmp(out, out2, sizeof out);
        }
        ufo_sampler_free(&t);
        // Step s by one index-worth via a 1-batch sampler? Instead advance by one draw.
        ufo_sampler_next(&s, out);
    }
    CHECK(exact, "restored random sampler diverged");
    ufo_sampler_state st;
    ufo_sampler_get_state(&s, &st);
    ufo_sampler_init_random(&t, N, 9, 7);
    CHECK(ufo_sampler_set_state(&t, &st) == -1 && err_has("other data"));
    ufo_sampler_free(&t);
    ufo_sampler_init_random(&t, N, 10, 7);
    st.pos = N + 1;
    CHECK(ufo_sampler_set_state(&t, &st) == -1 && err_has("does not fit"));
    ufo_sampler_free(&t);
    ufo_sampler_free(&s);
    CHECK(ufo_sampler_init_random(&s, 0, 4, 1) == -1 && ufo_sampler_init_random(&s, 4, 0, 1) == -1);
    // A batch larger than the set spans several epochs.
    CHECK(ufo_sampler_init_random(&s, 3, 7, 1) == 0);
    int big[7];
    ufo_sampler_next(&s, big);
    int c[3] = {0};
    for (int i = 0; i < 7; i++) c[big[i]]++;
    CHECK(c[0] >= 2 && c[1] >= 2 && c[2] >= 2 && s.epoch == 2 && s.pos == 1);
    ufo_sampler_free(&s);
}

static void test_plan(void) {
    enum { NF = 50, NP = 120, NV = 200, NS = 90 };
    static int lp[NP], lv[NV], ls[NS];
    make_labels(lp, NP, 30);
    make_labels(lv, NV, 50);
    make_labels(ls, NS, 25);
    ufo_task_spec tasks[4] = {
        {"face", NULL, NF, 0, 16, 0},
        {"person", lp, NP, 30, 8, 4},
        {"vehicle", lv, NV, 50, 12, 4},
        {"product", ls, NS, 25, 8, 4},
    };
    ufo_batch_plan p, q;
    CHECK(ufo_batch_plan_init(&p, tasks, 4, UFO_MIX_HETEROGENEOUS, 77) == 0, "%s", ufo_error());
    CHECK(p.batch == 44);
    int task[64], idx[64], ts[5], task2[64], idx2[64], ts2[5];
    const int *labs[4] = {NULL, lp, lv, ls};
    const int ns[4] = {NF, NP, NV, NS};
    int ok = 1;
    for (int step = 0; step < 200; step++) {
        ufo_batch_plan_next(&p, task, idx, ts);
        int r = 0;
        for (int t = 0; t < 4; t++) {
            ok &= ts[t] == r;
            for (int k = 0; k < tasks[t].count; k++, r++) ok &= task[r] == t && idx[r] >= 0 && idx[r] < ns[t];
            if (tasks[t].K) ok &= pk_ok(idx + ts[t], tasks[t].count / tasks[t].K, tasks[t].K, labs[t], ns[t]);
        }
        ok &= ts[4] == 44 && r == 44;
    }
    CHECK(ok, "heterogeneous batch broken");
    CHECK(p.step == 200);
    // Save, continue, restore into a fresh plan (another seed), continue: identical.
    size_t nw = ufo_batch_plan_state_words(&p);
    CHECK(nw == 2 + 7 * 4);
    uint64_t w[64];
    ufo_batch_plan_save(&p, w);
    CHECK(ufo_batch_plan_init(&q, tasks, 4, UFO_MIX_HETEROGENEOUS, 1) == 0);
    CHECK(ufo_batch_plan_restore(&q, w, nw) == 0, "%s", ufo_error());
    int same = q.step == 200;
    for (int step = 0; step < 100; step++) {
        ufo_batch_plan_next(&p, task, idx, ts), ufo_batch_plan_next(&q, task2, idx2, ts2);
        same &= !memcmp(task, task2, 44 * sizeof(int)) && !memcmp(idx, idx2, 44 * sizeof(int));
    }
    CHECK(same, "restored heterogeneous plan diverged");
    // Wrong word count, wrong mix, another task's data: refused and q unchanged.
    uint64_t wq[64], wq2[64];
    ufo_batch_plan_save(&q, wq);
    CHECK(ufo_batch_plan_restore(&q, w, nw - 1) == -1 && err_has("expected 30"));
    uint64_t wbad[64];
    memcpy(wbad, w, sizeof w);
    wbad[0] ^= 1u << 4;
    CHECK(ufo_batch_plan_restore(&q, wbad, nw) == -1 && err_has("saved for homogeneous batches"));
    memcpy(wbad, w, sizeof w);
    wbad[2 + 7 * 2 + 6] ^= 1;   // vehicle's fingerprint
    CHECK(ufo_batch_plan_restore(&q, wbad, nw) == -1 && err_has("task 2: sampler state was saved for other data"));
    memcpy(wbad, w, sizeof w);
    wbad[0] = 42;
    CHECK(ufo_batch_plan_restore(&q, wbad, nw) == -1 && err_has("bad magic"));
    ufo_batch_plan_save(&q, wq2);
    CHECK(!memcmp(wq, wq2, nw * sizeof wq[0]), "failed restores changed the plan");
    ufo_batch_plan_free(&q);
    ufo_batch_plan_free(&p);

    // Homogeneous: one task per step, the whole batch; proportional over each period.
    CHECK(ufo_batch_plan_init(&p, tasks, 4, UFO_MIX_HOMOGENEOUS, 77) == 0, "%s", ufo_error());
    CHECK(p.period_ == 11);   // 44 / gcd(16, 8, 12, 8) = 44 / 4
    int hok = 1, per[4] = {0};
    for (int step = 0; step < 110; step++) {
        ufo_batch_plan_next(&p, task, idx, ts);
        int t0 = task[0];
        per[t0]++;
        for (int r = 0; r < 44; r++) hok &= task[r] == t0 && idx[r] >= 0 && idx[r] < ns[t0];
        if (tasks[t0].K) hok &= pk_ok(idx, 44 / tasks[t0].K, tasks[t0].K, labs[t0], ns[t0]);
        for (int t = 0; t < 4; t++) hok &= ts[t + 1] - ts[t] == (t == t0 ? 44 : 0);
        if ((step + 1) % 11 == 0)
            for (int t = 0; t < 4; t++) hok &= p.credit_[t] == 0;
    }
    CHECK(hok, "homogeneous batch broken");
    CHECK(per[0] == 40 && per[1] == 20 && per[2] == 30 && per[3] == 20, "per task %d %d %d %d", per[0], per[1], per[2], per[3]);
    // Resume mid-period.
    for (int step = 0; step < 5; step++) ufo_batch_plan_next(&p, task, idx, ts);
    ufo_batch_plan_save(&p, w);
    CHECK(ufo_batch_plan_init(&q, tasks, 4, UFO_MIX_HOMOGENEOUS, 3) == 0 && ufo_batch_plan_restore(&q, w, nw) == 0);
    same = 1;
    for (int step = 0; step < 60; step++) {
        ufo_batch_plan_next(&p, task, idx, ts), ufo_batch_plan_next(&q, task2, idx2, ts2);
        same &= !memcmp(task, task2, 44 * sizeof(int)) && !memcmp(idx, idx2, 44 * sizeof(int));
    }
    CHECK(same, "restored homogeneous plan diverged");
    ufo_batch_plan_free(&q);
    ufo_batch_plan_free(&p);
    // Homogeneous with a task of fewer identities than B / K (the demo's 6
    // product classes at B = 120): 44 rows = 11 groups of 4 from draws of P = 3
    // distinct classes (3 + 3 + 3 + 2 groups), each group one class.
    {
        int lsmall[14] = {0, 1, 2, 0, 1, 2, 0, 2, 0, 2, 2, 0, 2, 2};   // 3 classes: 5, 2, 7 images
        ufo_task_spec few[2] = {{"face", NULL, NF, 0, 24, 0}, {"product", lsmall, 14, 3, 20, 4}};
        CHECK(ufo_batch_plan_init(&p, few, 2, UFO_MIX_HOMOGENEOUS, 5) == 0, "%s", ufo_error());
        int fok = 1, seen_small = 0;
        for (int step = 0; step < 44; step++) {   // 4 periods of 11 steps: 5 of them the small task
            CHECK(ufo_batch_plan_next(&p, task, idx, ts) == 0, "%s", ufo_error());
            if (task[0] != 1) continue;
            seen_small++;
            for (int d = 0; d < 4; d++) fok &= pk_ok(idx + d * 12, d < 3 ? 3 : 2, 4, lsmall, 14);
        }
        CHECK(fok && seen_small == 20, "homogeneous batch of a 3-class task broken (%d steps)", seen_small);
        ufo_batch_plan_save(&p, w);
        CHECK(ufo_batch_plan_init(&q, few, 2, UFO_MIX_HOMOGENEOUS, 9) == 0 &&
              ufo_batch_plan_restore(&q, w, ufo_batch_plan_state_words(&p)) == 0, "%s", ufo_error());
        same = 1;
        for (int step = 0; step < 20; step++) {
            ufo_batch_plan_next(&p, task, idx, ts), ufo_batch_plan_next(&q, task2, idx2, ts2);
            same &= !memcmp(task, task2, 44 * sizeof(int)) && !memcmp(idx, idx2, 44 * sizeof(int));
        }
        CHECK(same, "restored homogeneous plan of a 3-class task diverged");
        ufo_batch_plan_free(&q);
        ufo_batch_plan_free(&p);
    }
    // Errors: count not a multiple of K; too few identities; homogeneous B not a multiple of K.
    ufo_task_spec bad[2] = {{"face", NULL, NF, 0, 6, 0}, {"person", lp, NP, 30, 10, 4}};
    CHECK(ufo_batch_plan_init(&p, bad, 2, UFO_MIX_HETEROGENEOUS, 1) == -1 && err_has("person: 10 images per batch is not a multiple of K = 4"));
    bad[1].count = 8;
    CHECK(ufo_batch_plan_init(&p, bad, 2, UFO_MIX_HOMOGENEOUS, 1) == -1 && err_has("person: homogeneous batches of 14 images"));
    bad[1].count = 4 * 31;
    CHECK(ufo_batch_plan_init(&p, bad, 2, UFO_MIX_HETEROGENEOUS, 1) == -1 && err_has("person: P x K sampler: 31 identities per batch"));
    CHECK(ufo_batch_plan_init(&p, bad, 0, UFO_MIX_HETEROGENEOUS, 1) == -1);
}

static void test_plan_big_weights(void) {
    // The recipe's counts (face 1024, person/vehicle/product 512): period 5.
    int wts[2][4] = {{1024, 512, 512, 512}, {7, 3, 5, 1}};
    for (int k = 0; k < 2; k++) {
        ufo_task_spec tt[4];
        for (int t = 0; t < 4; t++) tt[t] = (ufo_task_spec){"t", NULL, 10, 0, wts[k][t], 0};
        ufo_batch_plan p;
        CHECK(ufo_batch_plan_init(&p, tt, 4, UFO_MIX_HOMOGENEOUS, 1) == 0);
        int *task = malloc((size_t)p.batch * sizeof *task), *idx = malloc((size_t)p.batch * sizeof *idx);
        int pc[4] = {0}, zero = 1;
        for (uint64_t s = 0; s < 3 * p.period_; s++) {
            ufo_batch_plan_next(&p, task, idx, NULL);
            pc[task[0]]++;
            if ((s + 1) % p.period_ == 0)
                for (int t = 0; t < 4; t++) zero &= p.credit_[t] == 0;
        }
        int g = (int)(p.batch / (int)p.period_);
        for (int t = 0; t < 4; t++) zero &= pc[t] == 3 * wts[k][t] / g;
        CHECK(zero && (k != 0 || p.period_ == 5), "weights %d", k);
        free(task);
        free(idx);
        ufo_batch_plan_free(&p);
    }
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/ufo_test_trainset_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_recordio_bytes();
    test_face_list();
    build_trees();
    test_sets();
    test_concat();
    test_errors();
    test_pk();
    test_random();
    test_plan();
    test_plan_big_weights();
    rm_rf(root);
    return check_summary("trainset");
}
