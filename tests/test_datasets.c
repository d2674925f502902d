// Unit tests for the evaluation-set readers (src/data): small trees of empty
// image files in a temp folder (the readers never decode), checked for counts,
// identities, cameras, the query/gallery split, junk handling, the VehicleID
// split invariants, the list parsers on odd text (CRLF, blanks, headers), the
// insightface .bin reader, and every error path (one line, naming the file).
#include "base/error.h"
#include "check.h"
#include "data/dataset.h"
#include "data/lists.h"
#include "formats/npy.h"
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[128];

// ------------------------------------------------------------------ tree helpers

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

// Writes root/<rel> with the given bytes (n < 0: strlen), creating folders.
static void put_n(const char *rel, const void *data, long n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    if (n < 0) n = (long)strlen(data);
    if (n) fwrite(data, 1, (size_t)n, f);
    fclose(f);
}
static void put(const char *rel, const char *text) { put_n(rel, text, -1); }
#define PUT_LIT(rel, lit) put_n(rel, lit, (long)sizeof(lit) - 1)
static void touch(const char *rel) { put_n(rel, "", 0); }

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        char p[1024];
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}
static void rm_rel(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    rm_rf(p);
}
static void clear_root(void) {
    rm_rf(root);
    mkdir(root, 0755);
}

static const char *rp(const char *rel) {   // root-joined path, a rotating buffer
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 1024, "%s/%s", root, rel);
    return b;
}

// Loads NAME, expecting failure with a one-line error that contains every `want`.
static void expect_error(const char *name, const ufo_eval_opts *o, const char *label, ...) {
    ufo_eval_set s;
    int rc = ufo_eval_set_load(name, root, o, &s);
    CHECK(rc == -1, "%s: load succeeded", label);
    const char *e = ufo_error();
    CHECK(strchr(e, '\n') == NULL, "%s: multi-line error: %s", label, e);
    CHECK(strncmp(e, name, strlen(name)) == 0, "%s: error does not start with the set name: %s", label, e);
    CHECK(s.n == 0 && s.paths == NULL && s.pid == NULL, "%s: set not left empty", label);
    va_list ap;
    va_start(ap, label);
    const char *w;
    while ((w = va_arg(ap, const char *)))
        CHECK(strstr(e, w) != NULL, "%s: error '%s' lacks '%s'", label, e, w);
    va_end(ap);
    ufo_eval_set_free(&s);
}

static int load_ok(const char *name, const ufo_eval_opts *o, ufo_eval_set *s, const char *label) {
    int rc = ufo_eval_set_load(name, root, o, s);
    CHECK(rc == 0, "%s: %s", label, ufo_error());
    return rc == 0;
}

static int find_path(const ufo_eval_set *s, const char *rel) {
    const char *p = rp(rel);
    for (int i = 0; i < s->n; i++)
        if (s->paths && strcmp(s->paths[i], p) == 0) return i;
    return -1;
}

// ------------------------------------------------------------------ faces

static void write_npy_bool(const char *rel, const uint8_t *v, int n) {
    int64_t shape[1] = {n};
    CHECK(ufo_npy_write(rp(rel), UFO_BOOL, shape, 1, v) == 0, "%s", ufo_error());
}

static void test_face_filelist(void) {
    clear_root();
    // CRLF, a second token, leading/trailing blanks, a blank line, no final newline.
    put("faces_emore_val/lfw.filelist", "lfw/0.jpg 0\r\n  lfw/1.jpg 0  \r\n\r\nlfw/2.jpg\tx\nlfw/3.jpg 1");
    uint8_t same[2] = {1, 0};
    write_npy_bool("faces_emore_val/lfw_label.npy", same, 2);
    ufo_eval_set s;
    if (load_ok("LFW", NULL, &s, "lfw filelist")) {
        CHECK(strcmp(s.name, "LFW") == 0 && s.kind == UFO_EVAL_VERIFY);
        CHECK(s.n == 4 && s.issame && s.issame[0] == 1 && s.issame[1] == 0);
        CHECK(s.paths && !s.blobs && !s.pid && !s.camid);
        CHECK(s.paths && strcmp(s.paths[0], rp("faces_emore_val/lfw/0.jpg")) == 0, "%s", s.paths ? s.paths[0] : "");
        CHECK(s.paths && strcmp(s.paths[1], rp("faces_emore_val/lfw/1.jpg")) == 0);
        CHECK(s.paths && strcmp(s.paths[2], rp("faces_emore_val/lfw/2.jpg")) == 0);
        CHECK(s.source && strstr(s.source, "lfw.filelist"));
    }
    ufo_eval_set_free(&s);
    CHECK(s.n == 0 && s.paths == NULL);
    // Case-insensitive name, canonical spelling kept.
    put("faces_emore_val/agedb_30.filelist", "a/0.jpg\na/1.jpg\n");
    uint8_t one[1] = {1};
    write_npy_bool("faces_emore_val/agedb_30_label.npy", one, 1);
    if (load_ok("agedb_30", NULL, &s, "agedb")) CHECK(strcmp(s.name, "AgeDB_30") == 0 && s.n == 2);
    ufo_eval_set_free(&s);
    // Integer labels are accepted too.
    int64_t shape[1] = {1};
    int32_t lab[1] = {0};
    CHECK(ufo_npy_write(rp("faces_emore_val/agedb_30_label.npy"), UFO_I32, shape, 1, lab) == 0);
    if (load_ok("AgeDB_30", NULL, &s, "agedb int labels")) CHECK(s.issame[0] == 0);
    ufo_eval_set_free(&s);

    // Errors.
    expect_error("CALFW", NULL, "face: missing list", "missing list", rp("faces_emore_val/calfw.filelist"),
                 "calfw.bin", NULL);
    put("faces_emore_val/calfw.filelist", "c/0.jpg\nc/1.jpg\nc/2.jpg\n");
    expect_error("CALFW", NULL, "face: missing labels", rp("faces_emore_val/calfw_label.npy"), NULL);
    uint8_t two[2] = {1, 1};
    write_npy_bool("faces_emore_val/calfw_label.npy", two, 2);
    expect_error("CALFW", NULL, "face: count mismatch", "lists 3 images", "2 is-same flags", NULL);
    put("faces_emore_val/calfw.filelist", "");
    expect_error("CALFW", NULL, "face: empty filelist", "lists no images", NULL);
    float f[2] = {1, 0};
    int64_t sh2[1] = {2};
    CHECK(ufo_npy_write(rp("faces_emore_val/calfw_label.npy"), UFO_F32, sh2, 1, f) == 0);
    put("faces_emore_val/calfw.filelist", "c/0.jpg\nc/1.jpg\nc/2.jpg\nc/3.jpg\n");
    expect_error("CALFW", NULL, "face: float labels", "calfw_label.npy", "bool", NULL);
    put("faces_emore_val/calfw_label.npy", "not an npy");
    expect_error("CALFW", NULL, "face: bad npy", "calfw_label.npy", NULL);
    ufo_eval_opts ob = {.face_source = UFO_FACE_BIN};
    expect_error("LFW", &ob, "face: forced bin missing", "missing file", rp("faces_emore_val/lfw.bin"), NULL);
    clear_root();
    expect_error("CPLFW", NULL, "face: missing folder", "missing folder", rp("faces_emore_val"), NULL);
}

// A py2-style protocol-2 pickle of ([b"...", ...], [True/False, ...]).
static size_t py2_bin(unsigned char *out, const char *const *imgs, int n, const int *flags, int nf) {
    size_t k = 0;
    out[k++] = 0x80, out[k++] = 2;
    out[k++] = '(';   // MARK for the outer tuple (TUPLE)
    out[k++] = ']';
    out[k++] = '(';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(imgs[i]);
        out[k++] = 'U', out[k++] = (unsigned char)l;
        memcpy(out + k, imgs[i], l);
        k += l;
    }
    out[k++] = 'e';
    out[k++] = ']';
    out[k++] = '(';
    for (int i = 0; i < nf; i++) out[k++] = flags[i] ? 0x88 : 0x89;
    out[k++] = 'e';
    out[k++] = 't';
    out[k++] = '.';
    return k;
}

static void test_face_bin(void) {
    clear_root();
    unsigned char buf[512];
    const char *imgs[4] = {"JPEG0", "JPEG_one", "", "J3"};
    int flags[2] = {0, 1};
    size_t n = py2_bin(buf, imgs, 4, flags, 2);
    put_n("faces_emore_val/cfp_fp.bin", buf, (long)n);
    ufo_eval_set s;
    if (load_ok("CFP_FP", NULL, &s, "cfp_fp bin (auto)")) {
        CHECK(s.n == 4 && !s.paths && s.blobs && s.blob_sizes && s.blob_owner);
        CHECK(s.blob_sizes[0] == 5 && memcmp(s.blobs[0], "JPEG0", 5) == 0);
        CHECK(s.blob_sizes[1] == 8 && memcmp(s.blobs[1], "JPEG_one", 8) == 0);
        CHECK(s.blob_sizes[2] == 0 && s.blob_sizes[3] == 2);
        CHECK(s.issame[0] == 0 && s.issame[1] == 1);
    }
    ufo_eval_set_free(&s);
    // When both forms exist, AUTO takes the filelist; FILELIST and BIN force one.
    put("faces_emore_val/cfp_fp.filelist", "x/0.jpg\nx/1.jpg\n");
    uint8_t one[1] = {1};
    write_npy_bool("faces_emore_val/cfp_fp_label.npy", one, 1);
    if (load_ok("CFP_FP", NULL, &s, "cfp_fp auto -> filelist")) CHECK(s.n == 2 && s.paths && !s.blobs);
    ufo_eval_set_free(&s);
    ufo_eval_opts ob = {.face_source = UFO_FACE_BIN};
    if (load_ok("CFP_FP", &ob, &s, "cfp_fp forced bin")) CHECK(s.n == 4 && s.blobs && !s.paths);
    ufo_eval_set_free(&s);
    rm_rel("faces_emore_val/cfp_fp.filelist");
    ufo_eval_opts of = {.face_source = UFO_FACE_FILELIST};
    expect_error("CFP_FP", &of, "face forced filelist", "missing list", rp("faces_emore_val/cfp_fp.filelist"), NULL);

    // Malformed bins.
    n = py2_bin(buf, imgs, 4, flags, 1);
    put_n("faces_emore_val/cfp_fp.bin", buf, (long)n);
    expect_error("CFP_FP", NULL, "bin count", "cfp_fp.bin", "4 images but 1 is-same flags", NULL);
    PUT_LIT("faces_emore_val/cfp_fp.bin", "\x80\x02" "K\x05" ".");
    expect_error("CFP_FP", NULL, "bin not a pair", "cfp_fp.bin", "expected a pickled pair", NULL);
    put_n("faces_emore_val/cfp_fp.bin", "", 0);
    expect_error("CFP_FP", NULL, "bin empty", "cfp_fp.bin", "empty", NULL);
    PUT_LIT("faces_emore_val/cfp_fp.bin", "\x80\x02" "]q\x00" "(K\x01" "K\x02" "e]q\x01" "(\x88" "e\x86" ".");
    expect_error("CFP_FP", NULL, "bin int image", "image 0 is a int", NULL);
    PUT_LIT("faces_emore_val/cfp_fp.bin", "\x80\x02" "cos\nsystem\n" ".");
    expect_error("CFP_FP", NULL, "bin evil global", "cfp_fp.bin", "os", NULL);
    // Buffer parser directly: flags as ints, and as a numpy array are fine too.
    ufo_face_bin b;
    const unsigned char ints[] = "\x80\x02" "]q\x00" "(U\x01" "aU\x01" "be]q\x01" "(K\x01" "e\x86" ".";
    CHECK(ufo_parse_face_bin(ints, sizeof ints - 1, "ints", &b) == 0, "%s", ufo_error());
    CHECK(b.n == 2 && b.issame && b.issame[0] == 1);
    ufo_face_bin_free(&b);
}

// ------------------------------------------------------------------ Market / VeRi

static void test_market(void) {
    clear_root();
    const char *M = "Market-1501-v15.09.15";
    char p[256];
    const char *q[] = {"0002_c1s1_000451_03.jpg", "0001_c2s1_000301_01.jpg", "0007_c6s4_002202_00.jpg"};
    const char *g[] = {"0001_c1s1_001051_00.jpg", "-1_c1s1_000401_03.jpg", "0000_c3s1_000151_01.jpg",
                       "0002_c5s1_000976_02.jpg", "-1_c4s2_000001_01.jpg", "1501_c6s1_000001_00.jpg"};
    for (int i = 0; i < 3; i++) snprintf(p, sizeof p, "%s/query/%s", M, q[i]), touch(p);
    for (int i = 0; i < 6; i++) snprintf(p, sizeof p, "%s/bounding_box_test/%s", M, g[i]), touch(p);
    snprintf(p, sizeof p, "%s/bounding_box_test/Thumbs.db", M), touch(p);
    snprintf(p, sizeof p, "%s/bounding_box_test/.0009_c1s1_hidden.jpg", M), touch(p);
    snprintf(p, sizeof p, "%s/bounding_box_test/0009_c1s1_x.png", M), touch(p);
    ufo_eval_set s;
    if (load_ok("Market1501", NULL, &s, "market")) {
        CHECK(s.kind == UFO_EVAL_REID && s.n_query == 3 && s.n == 7, "n_query %d n %d", s.n_query, s.n);
        // Sorted by name within each folder.
        CHECK(strstr(s.paths[0], "/query/0001_c2s1_000301_01.jpg") && s.pid[0] == 1 && s.camid[0] == 1);
        CHECK(strstr(s.paths[1], "/query/0002_c1s1") && s.pid[1] == 2 && s.camid[1] == 0);
        CHECK(s.pid[2] == 7 && s.camid[2] == 5);
        CHECK(strstr(s.paths[3], "/bounding_box_test/0000_c3s1") && s.pid[3] == 0 && s.camid[3] == 2,
              "distractor pid 0 kept");
        CHECK(s.pid[6] == 1501 && s.camid[6] == 5);
        for (int i = 0; i < s.n; i++) CHECK(s.pid[i] != -1, "junk kept at %d", i);
        snprintf(p, sizeof p, "%s/query/0002_c1s1_000451_03.jpg", M);
        CHECK(find_path(&s, p) == 1);
        CHECK(s.source && strcmp(s.source, rp(M)) == 0);
    }
    ufo_eval_set_free(&s);
    // Fallback: folders directly under the root.
    clear_root();
    touch("query/0003_c2s1_000001_00.jpg");
    touch("bounding_box_test/0003_c3s1_000001_00.jpg");
    if (load_ok("Market1501", NULL, &s, "market flat")) {
        CHECK(s.n == 2 && s.n_query == 1 && s.pid[1] == 3 && s.camid[1] == 2);
        CHECK(strcmp(s.paths[0], rp("query/0003_c2s1_000001_00.jpg")) == 0);
    }
    ufo_eval_set_free(&s);
    // Errors.
    touch("bounding_box_test/garbage.jpg");
    expect_error("Market1501", NULL, "market bad name", rp("bounding_box_test/garbage.jpg"), "<pid>_c<cam>", NULL);
    rm_rel("bounding_box_test");
    expect_error("Market1501", NULL, "market missing gallery", "missing folder", rp("bounding_box_test"), NULL);
    rm_rel("query");
    expect_error("Market1501", NULL, "market missing all", "missing folder", rp(M), rp("query"), NULL);
    mkdirs(rp("Market-1501-v15.09.15/query"));
    mkdirs(rp("Market-1501-v15.09.15/bounding_box_test"));
    expect_error("Market1501", NULL, "market empty query", "no query images", NULL);
    touch("Market-1501-v15.09.15/query/0001_c1s1_0.jpg");
    expect_error("Market1501", NULL, "market empty gallery", "no gallery images",
                 rp("Market-1501-v15.09.15/bounding_box_test"), NULL);
    rm_rel("Market-1501-v15.09.15/bounding_box_test");
    expect_error("Market1501", NULL, "market missing versioned gallery", "missing folder",
                 rp("Market-1501-v15.09.15/bounding_box_test"), NULL);

    // Name parsers.
    int pid, cam;
    CHECK(ufo_parse_market_name("-1_c1s1_000401_03.jpg", &pid, &cam) == 0 && pid == -1 && cam == 1);
    CHECK(ufo_parse_market_name("x12_c3.jpg", &pid, &cam) == 0 && pid == 12 && cam == 3);
    CHECK(ufo_parse_market_name("1-2_c3.jpg", &pid, &cam) == -1);
    CHECK(ufo_parse_market_name("0001_cx_0002_c4.jpg", &pid, &cam) == 0 && pid == 2 && cam == 4);
    CHECK(ufo_parse_market_name("0001_c.jpg", &pid, &cam) == -1);
    CHECK(ufo_parse_market_name("99999999999_c1.jpg", &pid, &cam) == -1);
    CHECK(ufo_parse_veri_name("0002_c002_00030600_0.jpg", &pid, &cam) == 0 && pid == 2 && cam == 2);
    CHECK(ufo_parse_veri_name("0002_c02_x.jpg", &pid, &cam) == -1);
    CHECK(ufo_parse_veri_name("a0776_c020_1.jpg", &pid, &cam) == 0 && pid == 776 && cam == 20);
}

static void test_veri(void) {
    clear_root();
    touch("veri/image_query/0002_c002_00030600_0.jpg");
    touch("veri/image_query/0010_c015_00000001_1.jpg");
    touch("veri/image_test/0002_c003_00030610_0.jpg");
    touch("veri/image_test/0005_c020_00012345_0.jpg");
    touch("veri/image_test/notes.txt");
    ufo_eval_set s;
    if (load_ok("VeRi", NULL, &s, "veri")) {
        CHECK(s.n == 4 && s.n_query == 2);
        CHECK(s.pid[0] == 2 && s.camid[0] == 1 && s.pid[1] == 10 && s.camid[1] == 14);
        CHECK(s.pid[3] == 5 && s.camid[3] == 19);
        CHECK(strcmp(s.paths[2], rp("veri/image_test/0002_c003_00030610_0.jpg")) == 0);
    }
    ufo_eval_set_free(&s);
    touch("veri/image_test/0005_c20_bad.jpg");
    expect_error("VeRi", NULL, "veri bad name", rp("veri/image_test/0005_c20_bad.jpg"), "<pid>_c<ccc>", NULL);
    rm_rel("veri/image_query");
    expect_error("VeRi", NULL, "veri missing query", "missing folder", rp("veri/image_query"), NULL);
    rm_rel("veri");
    expect_error("VeRi", NULL, "veri missing", "missing folder", rp("veri"), NULL);
}

// ------------------------------------------------------------------ MSMT17

static void test_msmt(void) {
    clear_root();
    mkdirs(rp("MSMT17_V1/test"));
    put("MSMT17_V1/list_query.txt",
        "0000/0000_000_01_0303morning_0015_0.jpg 0\r\n0001/0001_005_15_0303noon_0100_1.jpg 1\r\n");
    put("MSMT17_V1/list_gallery.txt",
        "0000/0000_001_02_0303morning_0016_0.jpg 0\n\n  0003/0003_000_07_0303afternoon_0001_0.jpg   3  \n");
    ufo_eval_set s;
    if (load_ok("MSMT17", NULL, &s, "msmt v1")) {
        CHECK(s.n == 4 && s.n_query == 2);
        CHECK(s.pid[0] == 0 && s.camid[0] == 0 && s.pid[1] == 1 && s.camid[1] == 14);
        CHECK(s.pid[2] == 0 && s.camid[2] == 1 && s.pid[3] == 3 && s.camid[3] == 6);
        CHECK(strcmp(s.paths[1], rp("MSMT17_V1/test/0001/0001_005_15_0303noon_0100_1.jpg")) == 0);
        CHECK(s.source && strcmp(s.source, rp("MSMT17_V1")) == 0);
    }
    ufo_eval_set_free(&s);
    // V2 next to V1: default takes V2, msmt_version forces either.
    mkdirs(rp("MSMT17_V2/mask_test_v2"));
    put("MSMT17_V2/list_query.txt", "0009/0009_000_03_x_0_0.jpg 9\n");
    put("MSMT17_V2/list_gallery.txt", "0009/0009_001_04_x_0_0.jpg 9\n");
    if (load_ok("MSMT17", NULL, &s, "msmt v2 default")) {
        CHECK(s.n == 2 && s.pid[0] == 9 && s.camid[0] == 2 && s.camid[1] == 3);
        CHECK(strcmp(s.paths[0], rp("MSMT17_V2/mask_test_v2/0009/0009_000_03_x_0_0.jpg")) == 0);
    }
    ufo_eval_set_free(&s);
    ufo_eval_opts o1 = {.msmt_version = 1};
    if (load_ok("MSMT17", &o1, &s, "msmt forced v1")) CHECK(s.n == 4);
    ufo_eval_set_free(&s);
    // Errors, each naming the file and line.
    put("MSMT17_V1/list_gallery.txt", "0000/0000_001_02_a_0_0.jpg 0\n0000/0000_001_02_a_0_0.jpg\n");
    expect_error("MSMT17", &o1, "msmt one token", rp("MSMT17_V1/list_gallery.txt:2:"), "expected '<path> <pid>'", NULL);
    put("MSMT17_V1/list_gallery.txt", "a.jpg 0 1\n");
    expect_error("MSMT17", &o1, "msmt three tokens", "list_gallery.txt:1:", "expected '<path> <pid>'", NULL);
    put("MSMT17_V1/list_gallery.txt", "\n\n0000/0000_001_02_a.jpg x7\n");
    expect_error("MSMT17", &o1, "msmt bad pid", "list_gallery.txt:3:", NULL);
    put("MSMT17_V1/list_gallery.txt", "0000/0000_001.jpg 0\n");
    expect_error("MSMT17", &o1, "msmt no camera", "list_gallery.txt:1:", "camera", NULL);
    put("MSMT17_V1/list_gallery.txt", "0000/0000_001_xx_a.jpg 0\n");
    expect_error("MSMT17", &o1, "msmt bad camera", "list_gallery.txt:1:", "camera", NULL);
    put("MSMT17_V1/list_gallery.txt", "\r\n");
    expect_error("MSMT17", &o1, "msmt empty gallery", "list_gallery.txt lists no images", NULL);
    put_n("MSMT17_V1/list_gallery.txt", "a_1_2_3.jpg 0\nb_1_2\0_3.jpg 0\n", 28);
    expect_error("MSMT17", &o1, "msmt NUL byte", "list_gallery.txt:2:", "NUL", NULL);
    rm_rel("MSMT17_V1/list_gallery.txt");
    expect_error("MSMT17", &o1, "msmt missing list", "missing list", rp("MSMT17_V1/list_gallery.txt"), NULL);
    rm_rel("MSMT17_V1/test");
    expect_error("MSMT17", &o1, "msmt missing test", "missing folder", rp("MSMT17_V1/test"), NULL);
    rm_rel("MSMT17_V1");
    expect_error("MSMT17", &o1, "msmt forced v1 missing", "missing folder", rp("MSMT17_V1"), NULL);
    rm_rel("MSMT17_V2");
    expect_error("MSMT17", NULL, "msmt missing", "missing folder", rp("MSMT17_V2"), rp("MSMT17_V1"), NULL);
    ufo_eval_opts o3 = {.msmt_version = 3};
    expect_error("MSMT17", &o3, "msmt v3", "version 3", NULL);
}

// ------------------------------------------------------------------ VehicleID

static void test_vehicleid(void) {
    clear_root();
    mkdirs(rp("vehicleid/image"));
    // 7 vehicles, 30 images; vehicle 7 has a single image.
    char list[2048] = "";
    int pids[30];
    for (int i = 0; i < 30; i++) {
        int vid = i < 29 ? 1 + (i * 7 + 3) % 6 : 7;
        pids[i] = vid;
        char line[64];
        snprintf(line, sizeof line, "%07d %d%s", 100 + i * 3, vid, i % 2 ? "\r\n" : "\n");
        strcat(list, line);
    }
    put("vehicleid/train_test_split/test_list_2400.txt", list);
    ufo_eval_set s;
    if (!load_ok("LargeVehicleID", NULL, &s, "vehicleid")) return;
    CHECK(s.n == 30 && s.n_query == 0);
    for (int i = 0; i < s.n; i++) CHECK(s.pid[i] == pids[i] && s.camid[i] == 100 + i * 3, "item %d", i);
    char want[64];
    snprintf(want, sizeof want, "vehicleid/image/%07d.jpg", 103);
    CHECK(strcmp(s.paths[1], rp(want)) == 0, "%s", s.paths[1]);

    int o1[30], o2[30], o3[30], nq1, nq2, nq3;
    CHECK(ufo_vehicleid_split(&s, 42, o1, &nq1) == 0);
    CHECK(ufo_vehicleid_split(&s, 42, o2, &nq2) == 0);
    CHECK(ufo_vehicleid_split(&s, 43, o3, &nq3) == 0);
    CHECK(nq1 == 30 - 7 && nq2 == nq1 && nq3 == nq1, "n_query %d", nq1);
    CHECK(memcmp(o1, o2, sizeof o1) == 0, "same seed, same split");
    CHECK(memcmp(o1, o3, sizeof o1) != 0, "different seed, different split");
    // A permutation; every vehicle exactly once in the gallery; queries are the rest.
    int hit[30] = {0}, gal[8] = {0};
    for (int i = 0; i < 30; i++) {
        CHECK(o1[i] >= 0 && o1[i] < 30);
        hit[o1[i]]++;
        if (i >= nq1) gal[pids[o1[i]]]++;
    }
    for (int i = 0; i < 30; i++) CHECK(hit[i] == 1);
    for (int v = 1; v <= 7; v++) CHECK(gal[v] == 1, "vehicle %d has %d gallery images", v, gal[v]);
    // Several seeds: the gallery image of a vehicle varies.
    int differs = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        int o[30], nq;
        CHECK(ufo_vehicleid_split(&s, seed, o, &nq) == 0 && nq == 23);
        differs += memcmp(o + nq, o1 + nq1, 7 * sizeof(int)) != 0;
    }
    CHECK(differs >= 6);
    // Reference values for seed 0, shared with tools/make_eval_tree.py's vehicleid_split
    // (checked there against the same list by tests/py/test_datasets_tree.py).
    ufo_eval_set_free(&s);
    ufo_eval_set empty = {0};
    int dummy[1], nqd;
    CHECK(ufo_vehicleid_split(&empty, 0, dummy, &nqd) == -1);

    put("vehicleid/train_test_split/test_list_2400.txt", "0000100 1\n0000101\n");
    expect_error("LargeVehicleID", NULL, "vid one token", "test_list_2400.txt:2:", "expected '<image> <vehicle id>'",
                 NULL);
    put("vehicleid/train_test_split/test_list_2400.txt", "abc 1\n");
    expect_error("LargeVehicleID", NULL, "vid name not a number", "test_list_2400.txt:1:", "'abc'", NULL);
    put("vehicleid/train_test_split/test_list_2400.txt", "\n");
    expect_error("LargeVehicleID", NULL, "vid empty", "lists no images", NULL);
    rm_rel("vehicleid/train_test_split");
    expect_error("LargeVehicleID", NULL, "vid missing list", "missing list",
                 rp("vehicleid/train_test_split/test_list_2400.txt"), NULL);
    rm_rel("vehicleid/image");
    expect_error("LargeVehicleID", NULL, "vid missing images", "missing folder", rp("vehicleid/image"), NULL);
}

// ------------------------------------------------------------------ VeRi-Wild

static void test_veriwild(void) {
    clear_root();
    mkdirs(rp("VERI-Wild/images"));
    put("VERI-Wild/train_test_split/vehicle_info.txt",
        "id/image;Camera ID;Time;Model;Type;Color\r\n"
        "00001/000001;001;2018-03-11 11:21:29;Nissan;sedan;white\r\n"
        "00001/000002;017;2018-03-11 11:21:30;Nissan;sedan;white\r\n"
        "00002/000010;003;t;m;t;c\r\n"
        "00003/000011;174;t;m;t;c\r\n"
        "00009/000099;005;t;m;t;c\r\n");
    put("VERI-Wild/train_test_split/test_10000_query.txt", "00001/000001\n00002/000010.jpg\n");
    put("VERI-Wild/train_test_split/test_10000.txt", "00001/000002\r\n\r\n00003/000011\r\n");
    ufo_eval_set s;
    if (load_ok("LargeVeRiWild", NULL, &s, "veriwild")) {
        CHECK(s.n == 4 && s.n_query == 2);
        CHECK(s.pid[0] == 1 && s.camid[0] == 1 && s.pid[1] == 2 && s.camid[1] == 3);
        CHECK(s.pid[2] == 1 && s.camid[2] == 17 && s.pid[3] == 3 && s.camid[3] == 174);
        CHECK(strcmp(s.paths[0], rp("VERI-Wild/images/00001/000001.jpg")) == 0);
        CHECK(strcmp(s.paths[1], rp("VERI-Wild/images/00002/000010.jpg")) == 0);
    }
    ufo_eval_set_free(&s);
    // The UFO release's form: no header, *_id lists.
    put("VERI-Wild/train_test_split/vehicle_info.txt", "00001/000001;001;x\n00001/000002;002;x\n");
    rm_rel("VERI-Wild/train_test_split/test_10000_query.txt");
    rm_rel("VERI-Wild/train_test_split/test_10000.txt");
    put("VERI-Wild/train_test_split/test_10000_id_query.txt", "00001/000001\n");
    put("VERI-Wild/train_test_split/test_10000_id.txt", "00001/000002\n");
    if (load_ok("LargeVeRiWild", NULL, &s, "veriwild ufo")) CHECK(s.n == 2 && s.camid[0] == 1 && s.camid[1] == 2);
    ufo_eval_set_free(&s);
    // The list's vid gives the pid; vehicle_info's vid gives the folder.
    put("VERI-Wild/train_test_split/test_10000_id_query.txt", "00005/000001\n");
    if (load_ok("LargeVeRiWild", NULL, &s, "veriwild vid from list")) {
        CHECK(s.pid[0] == 5 && strcmp(s.paths[0], rp("VERI-Wild/images/00001/000001.jpg")) == 0);
    }
    ufo_eval_set_free(&s);
    // Errors.
    put("VERI-Wild/train_test_split/test_10000_id_query.txt", "00001/000003\n");
    expect_error("LargeVeRiWild", NULL, "vw unknown image", "test_10000_id_query.txt:1:", "'000003'",
                 "vehicle_info", NULL);
    put("VERI-Wild/train_test_split/test_10000_id_query.txt", "00001/000001\n000001\n");
    expect_error("LargeVeRiWild", NULL, "vw no slash", "test_10000_id_query.txt:2:", "expected '<vid>/<image id>'",
                 NULL);
    put("VERI-Wild/train_test_split/test_10000_id_query.txt", "00001/000001\n");
    put("VERI-Wild/train_test_split/vehicle_info.txt", "h\n00001/000001;001;x\n00001/000002;bad;x\n");
    expect_error("LargeVeRiWild", NULL, "vw bad camera", "vehicle_info.txt:3:", NULL);
    put("VERI-Wild/train_test_split/vehicle_info.txt", "00001/000001;001\n00002/000002;4\n00001/000001;002\n");
    expect_error("LargeVeRiWild", NULL, "vw duplicate", "vehicle_info.txt:3:", "repeats line 1", NULL);
    rm_rel("VERI-Wild/train_test_split/vehicle_info.txt");
    expect_error("LargeVeRiWild", NULL, "vw missing info", "missing list",
                 rp("VERI-Wild/train_test_split/vehicle_info.txt"), NULL);
    rm_rel("VERI-Wild/train_test_split/test_10000_id.txt");
    expect_error("LargeVeRiWild", NULL, "vw missing gallery", "missing list",
                 rp("VERI-Wild/train_test_split/test_10000.txt"), "test_10000_id.txt", NULL);
    rm_rel("VERI-Wild/images");
    expect_error("LargeVeRiWild", NULL, "vw missing images", "missing folder", rp("VERI-Wild/images"), NULL);
}

// ------------------------------------------------------------------ SOP

static void test_sop(void) {
    clear_root();
    put("Stanford_Online_Products/test.txt",
        "bicycle_final/111085122871_0.JPG,11319\r\nbicycle_final/111085122871_1.JPG , 11319\r\n"
        "chair_final/1_0.JPG,12001\r\n");
    ufo_eval_set s;
    if (load_ok("SOP", NULL, &s, "sop")) {
        CHECK(s.kind == UFO_EVAL_RETRIEVAL && s.n == 3 && s.n_query == 3);
        CHECK(s.pid[0] == 11319 && s.pid[1] == 11319 && s.pid[2] == 12001);
        CHECK(s.camid && s.camid[0] == 0 && s.camid[2] == 0);
        CHECK(strcmp(s.paths[1], rp("Stanford_Online_Products/bicycle_final/111085122871_1.JPG")) == 0, "%s",
              s.paths[1]);
    }
    ufo_eval_set_free(&s);
    // A header line is skipped; a bad line later is an error.
    put("Stanford_Online_Products/test.txt", "path,label\na.JPG,1\nb.JPG,1\n");
    if (load_ok("SOP", NULL, &s, "sop header")) CHECK(s.n == 2 && s.pid[0] == 1);
    ufo_eval_set_free(&s);
    put("Stanford_Online_Products/test.txt", "a.JPG,1\nb.JPG;1\n");
    expect_error("SOP", NULL, "sop bad line", "test.txt:2:", "expected '<path>,<label>'", NULL);
    put("Stanford_Online_Products/test.txt", "a.JPG,1\n,1\n");
    expect_error("SOP", NULL, "sop empty path", "test.txt:2:", NULL);
    put("Stanford_Online_Products/test.txt", "a.JPG,1\n");
    expect_error("SOP", NULL, "sop single image", "at least 2", NULL);
    // Ebay_test.txt when there is no test.txt.
    rm_rel("Stanford_Online_Products/test.txt");
    put("Stanford_Online_Products/Ebay_test.txt",
        "image_id class_id super_class_id path\n1 11319 1 bicycle_final/111085122871_0.JPG\n"
        "2 11319 1 bicycle_final/111085122871_1.JPG\n3 11320 1 bicycle_final/2_0.JPG\n");
    if (load_ok("SOP", NULL, &s, "sop ebay")) {
        CHECK(s.n == 3 && s.pid[2] == 11320 && strstr(s.source, "Ebay_test.txt"));
        CHECK(strcmp(s.paths[0], rp("Stanford_Online_Products/bicycle_final/111085122871_0.JPG")) == 0);
    }
    ufo_eval_set_free(&s);
    put("Stanford_Online_Products/Ebay_test.txt", "image_id class_id super_class_id path\n1 2 3\n");
    expect_error("SOP", NULL, "sop ebay bad", "Ebay_test.txt:2:", NULL);
    rm_rel("Stanford_Online_Products/Ebay_test.txt");
    expect_error("SOP", NULL, "sop missing list", "missing list", rp("Stanford_Online_Products/test.txt"), NULL);
    rm_rel("Stanford_Online_Products");
    expect_error("SOP", NULL, "sop missing folder", "missing folder", rp("Stanford_Online_Products"), NULL);
}

// ------------------------------------------------------------------ misc

static void test_misc(void) {
    int n;
    const char *const *names = ufo_eval_set_names(&n);
    const char *want[] = {"CALFW", "CPLFW", "LFW", "CFP_FF", "CFP_FP", "AgeDB_30",
                          "Market1501", "MSMT17", "VeRi", "LargeVehicleID", "LargeVeRiWild", "SOP"};
    CHECK(n == 12);
    for (int i = 0; i < 12 && i < n; i++) CHECK(strcmp(names[i], want[i]) == 0);
    ufo_eval_set s;
    CHECK(ufo_eval_set_load("Nope", root, NULL, &s) == -1 && strstr(ufo_error(), "unknown evaluation set 'Nope'"));
    CHECK(ufo_eval_set_load("SOP", "/nonexistent/ufo-data", NULL, &s) == -1 &&
          strstr(ufo_error(), "/nonexistent/ufo-data") && strstr(ufo_error(), "not a folder"));
    // A root given with a trailing slash still gives clean paths.
    clear_root();
    put("Stanford_Online_Products/test.txt", "a.JPG,1\nb.JPG,2\n");
    char r2[160];
    snprintf(r2, sizeof r2, "%s/", root);
    CHECK(ufo_eval_set_load("SOP", r2, NULL, &s) == 0);
    CHECK(s.n == 2 && strstr(s.paths[0], "//") == NULL, "%s", s.n ? s.paths[0] : "");
    ufo_eval_set_free(&s);
    ufo_eval_set_free(NULL);

    // The line reader and int parser.
    ufo_lines it;
    const char *txt = "a\r\n \t b \r\n\r\nc";
    ufo_lines_init(&it, txt, strlen(txt), "t");
    const char *l;
    size_t len;
    CHECK(ufo_lines_next(&it, &l, &len) == 1 && len == 1 && l[0] == 'a');
    CHECK(ufo_lines_next(&it, &l, &len) == 1 && len == 1 && l[0] == 'b' && it.lineno == 2);
    CHECK(ufo_lines_next(&it, &l, &len) == 1 && len == 0);
    CHECK(ufo_lines_next(&it, &l, &len) == 1 && len == 1 && l[0] == 'c' && it.lineno == 4);
    CHECK(ufo_lines_next(&it, &l, &len) == 0);
    int v;
    CHECK(ufo_parse_int("-17", 3, &v) == 0 && v == -17);
    CHECK(ufo_parse_int("+0", 2, &v) == 0 && v == 0);
    CHECK(ufo_parse_int("2147483647", 10, &v) == 0 && v == 2147483647);
    CHECK(ufo_parse_int("-2147483648", 11, &v) == 0 && v == -2147483647 - 1);
    CHECK(ufo_parse_int("2147483648", 10, &v) == -1);
    CHECK(ufo_parse_int("", 0, &v) == -1 && ufo_parse_int("-", 1, &v) == -1 && ufo_parse_int("1 ", 2, &v) == -1);
    // Paths: an absolute relpath replaces the folder (os.path.join).
    ufo_items items = {0};
    CHECK(ufo_items_push(&items, "/d", "x/y", 3, ".jpg", 1, 2) == 0);
    CHECK(ufo_items_push(&items, "/d/", "/abs", 4, NULL, 3, 4) == 0);
    CHECK(ufo_items_push(&items, NULL, "rel", 3, NULL, 5, 6) == 0);
    CHECK(strcmp(ufo_items_path(&items, 0), "/d/x/y.jpg") == 0 && strcmp(ufo_items_path(&items, 1), "/abs") == 0 &&
          strcmp(ufo_items_path(&items, 2), "rel") == 0 && items.pid[2] == 5 && items.camid[1] == 4);
    for (int i = 0; i < 1000; i++) ufo_items_push(&items, "/some/long/folder/name", "file.jpg", 8, NULL, i, i);
    CHECK(items.n == 1003 && strcmp(ufo_items_path(&items, 1002), "/some/long/folder/name/file.jpg") == 0);
    ufo_items_free(&items);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/ufo_test_datasets_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_misc();
    test_face_filelist();
    test_face_bin();
    test_market();
    test_veri();
    test_msmt();
    test_vehicleid();
    test_veriwild();
    test_sop();
    rm_rf(root);
    return check_summary("datasets");
}
