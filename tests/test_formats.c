// Unit tests for the safetensors and .npy readers/writers: round trips, and
// one malformed input per validation rule (each must fail with a one-line
// error that says what is wrong, never crash or leak).
#include "base/error.h"
#include "base/file.h"
#include "check.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void path_in_tmp(char *out, size_t cap, const char *file) { snprintf(out, cap, "%s/%s", tmpdir, file); }

// Number of entries in dir whose name starts with prefix.
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void rm_rf_tmp(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
        if (remove(p) != 0) rmdir(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

// The current error is one line, names the input and contains `want`.
static void check_error_msg(const char *name, const char *kind, const char *want, const char *label) {
    const char *e = ufo_error();
    CHECK(strchr(e, '\n') == NULL && strchr(e, '\r') == NULL, "%s: multi-line error: %s", label, e);
    CHECK(strncmp(e, name, strlen(name)) == 0, "%s: error does not start with the name: %s", label, e);
    CHECK(strstr(e, kind) != NULL, "%s: error does not say '%s': %s", label, kind, e);
    CHECK(strstr(e, want) != NULL, "%s: error '%s' lacks '%s'", label, e, want);
}

// ------------------------------------------------------------- safetensors

// Builds "<u64 len><header><data>" (hlen overrides the length field if != -1).
static unsigned char *st_buf(const char *header, long long hlen, size_t data_len, size_t *size) {
    size_t hl = strlen(header);
    *size = 8 + hl + data_len;
    unsigned char *b = malloc(*size ? *size : 1);
    uint64_t L = hlen < 0 ? (uint64_t)hl : (uint64_t)hlen;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(L >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)i;
    return b;
}

static void st_expect_fail(const char *label, const char *header, long long hlen, size_t data_len,
                           const char *want) {
    size_t size;
    unsigned char *b = st_buf(header, hlen, data_len, &size);
    ufo_tensor_file f;
    ufo_error_clear();
    int rc = ufo_safetensors_parse(b, size, "bad.safetensors", &f);
    CHECK(rc == -1, "%s: parse accepted a malformed file", label);
    CHECK(f.n == 0 && f.items == NULL && f.n_meta == 0, "%s: output not cleared on error", label);
    if (rc == -1) check_error_msg("bad.safetensors", "safetensors:", want, label);
    if (rc == 0) ufo_tensor_file_free(&f);
    free(b);
}

static void st_expect_ok(const char *label, const char *header, size_t data_len, int n_tensors) {
    size_t size;
    unsigned char *b = st_buf(header, -1, data_len, &size);
    ufo_tensor_file f;
    int rc = ufo_safetensors_parse(b, size, "ok.safetensors", &f);
    CHECK(rc == 0, "%s: %s", label, ufo_error());
    if (rc == 0) {
        CHECK(f.n == n_tensors, "%s: %d tensors, expected %d", label, f.n, n_tensors);
        ufo_tensor_file_free(&f);
    }
    free(b);
}

#define T(name, dt, sh, off) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":" off "}"

static void test_st_malformed(void) {
    // Framing.
    {
        unsigned char small[4] = {1, 0, 0, 0};
        ufo_tensor_file f;
        CHECK(ufo_safetensors_parse(small, 4, "bad.safetensors", &f) == -1, "%s", ufo_error());
        check_error_msg("bad.safetensors", "safetensors:", "too small", "4-byte file");
        CHECK(ufo_safetensors_parse(NULL, 0, "bad.safetensors", &f) == -1, "%s", ufo_error());
        check_error_msg("bad.safetensors", "safetensors:", "too small", "empty buffer");
    }
    st_expect_fail("header length past end", "{}", 100, 0, "past the end");
    st_expect_fail("header length 2^63", "{}", (long long)((1ull << 63) - 1), 0, "limit");
    st_expect_fail("header length 100MB+1", "{}", 100000001, 0, "limit");
    st_expect_fail("header length 0", "", -1, 0, "not a JSON object");
    st_expect_fail("non-JSON header", "{not json}", -1, 0, "not valid JSON");
    st_expect_fail("truncated JSON", "{\"a\":{\"dtype\":\"F32\"", -1, 0, "not valid JSON");
    st_expect_fail("header is an array", "[1,2]", -1, 0, "not a JSON object");
    st_expect_fail("header is a string", "\"x\"", -1, 0, "not a JSON object");
    st_expect_fail("leading space", " {}", -1, 0, "not a JSON object");
    st_expect_fail("trailing junk", "{}x", -1, 0, "trailing");
    st_expect_fail("two objects", "{} {}", -1, 0, "trailing");
    st_expect_fail("invalid UTF-8", "{\"a\xff\":1}", -1, 0, "UTF-8");
    st_expect_fail("overlong UTF-8", "{\"a\xc0\x80\":1}", -1, 0, "UTF-8");
    st_expect_fail("raw control char in string", "{\"a\x01\":1}", -1, 0, "control character");
    st_expect_fail("\\u0000 in a name", "{\"a\\u0000b\":{}}", -1, 0, "\\u0000");
    {   // embedded NUL byte inside the header
        size_t size;
        unsigned char *b = st_buf("{\"aXb\":1}", -1, 0, &size);
        b[8 + 3] = 0;
        ufo_tensor_file f;
        CHECK(ufo_safetensors_parse(b, size, "bad.safetensors", &f) == -1, "%s", ufo_error());
        check_error_msg("bad.safetensors", "safetensors:", "control character", "NUL in header");
        free(b);
    }
    {   // nesting deeper than cJSON's limit: an error, no stack overflow
        char *deep = malloc(2 * 5000 + 16);
        size_t n = 0;
        n += (size_t)sprintf(deep, "{\"a\":");
        for (int i = 0; i < 5000; i++) deep[n++] = '[';
        for (int i = 0; i < 5000; i++) deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = 0;
        st_expect_fail("deep nesting", deep, -1, 0, "not valid JSON");
        free(deep);
    }

    // Tensor entries.
    st_expect_fail("entry not an object", "{\"a\":1}", -1, 0, "not an object (tensor 'a')");
    st_expect_fail("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, "missing \"dtype\"");
    st_expect_fail("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", -1, 4, "missing \"shape\"");
    st_expect_fail("missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -1, 4, "missing \"data_offsets\"");
    st_expect_fail("dtype not a string", "{" T("a", "F32", "[1]", "[0,4]") ",\"b\":{\"dtype\":4,\"shape\":[1],"
                   "\"data_offsets\":[4,8]}}", -1, 8, "\"dtype\" is not a string (tensor 'b')");
    st_expect_fail("unknown dtype", "{" T("w.0", "Q4", "[1]", "[0,4]") "}", -1, 4, "unknown dtype 'Q4' (tensor 'w.0')");
    st_expect_fail("lowercase dtype", "{" T("w", "f32", "[1]", "[0,4]") "}", -1, 4, "unknown dtype 'f32'");
    st_expect_fail("shape not an array", "{" T("a", "F32", "3", "[0,12]") "}", -1, 12, "\"shape\" is not an array");
    st_expect_fail("shape/size mismatch", "{" T("a", "F32", "[3]", "[0,8]") "}", -1, 8, "needs 12 (tensor 'a')");
    st_expect_fail("shape/size mismatch bf16", "{" T("a", "BF16", "[2,2]", "[0,4]") "}", -1, 4, "needs 8");
    st_expect_fail("negative dim", "{" T("a", "F32", "[-1]", "[0,4]") "}", -1, 4, "dimension 0 is negative");
    st_expect_fail("negative zero dim", "{" T("a", "F32", "[2,-0]", "[0,0]") "}", -1, 0, "negative");
    st_expect_fail("fractional dim", "{" T("a", "F32", "[2.5]", "[0,8]") "}", -1, 8, "fraction");
    st_expect_fail("float-syntax dim", "{" T("a", "F32", "[2.0]", "[0,8]") "}", -1, 8, "fraction");
    st_expect_fail("exponent dim", "{" T("a", "F32", "[1e1]", "[0,40]") "}", -1, 40, "exponent");
    st_expect_fail("string dim", "{" T("a", "F32", "[\"2\"]", "[0,8]") "}", -1, 8, "dimension 0 is not a number");
    st_expect_fail("null dim", "{" T("a", "F32", "[1,null]", "[0,4]") "}", -1, 4, "dimension 1 is not a number");
    st_expect_fail("dims product overflows",
                   "{" T("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", -1, 4, "overflows");
    st_expect_fail("dims*size overflows", "{" T("a", "F64", "[4294967296,4294967295]", "[0,8]") "}", -1, 8,
                   "overflows");
    st_expect_fail("dim >= 2^53", "{" T("a", "F32", "[0,9007199254740993]", "[0,0]") "}", -1, 0, "too large");
    st_expect_fail("too many dims", "{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", -1, 4,
                   "9 dimensions");
    st_expect_fail("offsets not an array", "{" T("a", "F32", "[1]", "0") "}", -1, 4, "two integers");
    st_expect_fail("one offset", "{" T("a", "F32", "[1]", "[0]") "}", -1, 4, "two integers");
    st_expect_fail("three offsets", "{" T("a", "F32", "[1]", "[0,4,8]") "}", -1, 8, "two integers");
    st_expect_fail("negative offset", "{" T("a", "F32", "[1]", "[-4,0]") "}", -1, 4, "negative");
    st_expect_fail("string offset", "{" T("a", "F32", "[1]", "[\"0\",4]") "}", -1, 4, "not a number");
    st_expect_fail("end < begin", "{" T("a", "F32", "[0]", "[8,0]") "}", -1, 8, "before begin");
    st_expect_fail("offsets out of range", "{" T("a", "F32", "[2]", "[0,8]") "}", -1, 4, "past the end");
    st_expect_fail("offsets far out of range", "{" T("a", "F32", "[1]", "[1000000000000,1000000000004]") "}", -1,
                   4, "past the end");
    st_expect_fail("overlapping offsets",
                   "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", -1, 12, "overlap");
    st_expect_fail("identical offsets",
                   "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[0,8]") "}", -1, 8, "overlap");
    st_expect_fail("hole between tensors",
                   "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[12,20]") "}", -1, 20, "hole");
    st_expect_fail("hole at the start", "{" T("a", "F32", "[1]", "[4,8]") "}", -1, 8, "hole");
    st_expect_fail("bytes after the last tensor", "{" T("a", "F32", "[2]", "[0,8]") "}", -1, 12,
                   "4 bytes after the last tensor");
    st_expect_fail("data but no tensors", "{}", -1, 3, "after the last tensor");
    st_expect_fail("duplicate names",
                   "{" T("a", "F32", "[1]", "[0,4]") "," T("a", "F32", "[1]", "[4,8]") "}", -1, 8,
                   "duplicate tensor name (tensor 'a')");

    // Metadata.
    st_expect_fail("metadata non-string value", "{\"__metadata__\":{\"k\":1}}", -1, 0,
                   "value for key 'k' is not a string");
    st_expect_fail("metadata nested object", "{\"__metadata__\":{\"k\":{}}}", -1, 0, "not a string");
    st_expect_fail("metadata not an object", "{\"__metadata__\":[\"a\"]}", -1, 0, "\"__metadata__\" is not an object");
    st_expect_fail("metadata a string", "{\"__metadata__\":\"x\"}", -1, 0, "not an object");
    st_expect_fail("duplicate metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", -1, 0, "duplicate");
    st_expect_fail("duplicate metadata key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", -1, 0,
                   "duplicate \"__metadata__\" key 'k'");

    // Accepted corner cases.
    st_expect_ok("empty header object", "{}", 0, 0);
    st_expect_ok("padded header", "{}      ", 0, 0);
    st_expect_ok("metadata null", "{\"__metadata__\":null}", 0, 0);
    st_expect_ok("unknown extra field", "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"x\":[1]}}",
                 2, 1);
    st_expect_ok("out-of-order offsets",
                 "{" T("b", "F32", "[1]", "[4,8]") "," T("a", "F32", "[1]", "[0,4]") "}", 8, 2);
    st_expect_ok("several empty tensors at one offset",
                 "{" T("e1", "F32", "[0]", "[4,4]") "," T("a", "F32", "[1]", "[0,4]") "," T("e2", "I64", "[3,0]", "[4,4]")
                 "," T("e3", "F32", "[0]", "[0,0]") "}", 4, 4);
    st_expect_ok("escaped name", "{\"a\\\"b\\u00e9\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1]}}", 1, 1);
}

static int entry_eq(const ufo_tensor_entry *a, const ufo_tensor_entry *b) {
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

static void test_st_roundtrip(void) {
    float f32[12];
    for (int i = 0; i < 12; i++) f32[i] = (float)i * 0.5f - 2.0f;
    uint16_t bf16[3] = {ufo_f32_to_bf16(1.0f), ufo_f32_to_bf16(-3.5f), ufo_f32_to_bf16(1e30f)};
    uint16_t f16[4] = {ufo_f32_to_f16(1.0f), ufo_f32_to_f16(0.5f), ufo_f32_to_f16(-2.0f), ufo_f32_to_f16(65504.f)};
    double f64[2] = {3.141592653589793, -1e300};
    int64_t i64 = -1234567890123LL;
    int32_t i32[2] = {-7, 2147483647};
    int16_t i16[3] = {-32768, 0, 32767};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint8_t u8dummy = 0, b8[3] = {1, 0, 1};
    ufo_tensor_entry in[] = {
        {.name = "layer.0.weight", .dtype = UFO_F32, .ndim = 2, .shape = {3, 4}, .data = f32, .nbytes = 48},
        {.name = "bf16", .dtype = UFO_BF16, .ndim = 1, .shape = {3}, .data = bf16, .nbytes = 6},
        {.name = "scalar", .dtype = UFO_I64, .ndim = 0, .data = &i64, .nbytes = 8},
        {.name = "empty", .dtype = UFO_U8, .ndim = 2, .shape = {0, 5}, .data = &u8dummy, .nbytes = 0},
        {.name = "f16", .dtype = UFO_F16, .ndim = 3, .shape = {2, 1, 2}, .data = f16, .nbytes = 8},
        {.name = "f64", .dtype = UFO_F64, .ndim = 1, .shape = {2}, .data = f64, .nbytes = 16},
        {.name = "i32", .dtype = UFO_I32, .ndim = 1, .shape = {2}, .data = i32, .nbytes = 8},
        {.name = "i16", .dtype = UFO_I16, .ndim = 1, .shape = {3}, .data = i16, .nbytes = 6},
        {.name = "i8 \"quoted\" \\ \xc3\xa9", .dtype = UFO_I8, .ndim = 1, .shape = {5}, .data = i8, .nbytes = 5},
        {.name = "empty2", .dtype = UFO_F32, .ndim = 1, .shape = {0}, .data = NULL, .nbytes = 0},
        {.name = "bool", .dtype = UFO_BOOL, .ndim = 8, .shape = {1, 1, 1, 1, 1, 1, 1, 3}, .data = b8, .nbytes = 3},
    };
    int n = (int)(sizeof in / sizeof in[0]);
    const char *mk[] = {"format", "note", "empty"};
    const char *mv[] = {"pt", "line1\nline2 \"q\" \\ \t \x01 \xe2\x82\xac", ""};
    char path[256];
    path_in_tmp(path, sizeof path, "rt.safetensors");
    int rc = ufo_safetensors_write(path, in, n, mk, mv, 3);
    CHECK(rc == 0, "write: %s", ufo_error());
    CHECK(count_prefix(tmpdir, "rt.safetensors.tmp.") == 0, "temp file left behind");

    ufo_tensor_file f;
    rc = ufo_safetensors_open(path, &f);
    CHECK(rc == 0, "open: %s", ufo_error());
    if (rc == 0) {
        CHECK(f.n == n, "%d tensors", f.n);
        for (int i = 0; i < n && i < f.n; i++) {
            CHECK(entry_eq(&f.items[i], &in[i]), "tensor %d (%s) differs after the round trip", i, in[i].name);
            const ufo_tensor_entry *e = ufo_tensor_file_find(&f, in[i].name);
            CHECK(e == &f.items[i], "find %s", in[i].name);
        }
        CHECK(ufo_tensor_numel(&f.items[2]) == 1, "0-dim scalar has one element");
        CHECK(f.items[2].ndim == 0, "%s", ufo_error());
        CHECK(ufo_tensor_numel(&f.items[3]) == 0, "%s", ufo_error());
        CHECK(f.n_meta == 3, "%s", ufo_error());
        for (int i = 0; i < 3; i++) {
            const char *v = ufo_tensor_file_meta(&f, mk[i]);
            CHECK(v && strcmp(v, mv[i]) == 0, "metadata %s", mk[i]);
        }
        CHECK(ufo_tensor_file_meta(&f, "absent") == NULL, "%s", ufo_error());
        // The data section starts 8-byte aligned.
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f.map.data[i];
        CHECK((8 + hlen) % 8 == 0, "header length %llu leaves the data unaligned", (unsigned long long)hlen);
        CHECK(f.map.data[8] == '{', "%s", ufo_error());
        CHECK(f.items[0].data == f.map.data + 8 + hlen, "first tensor at the start of the data section");
        CHECK(f.map.size == 8 + hlen + 48 + 6 + 8 + 0 + 8 + 16 + 8 + 6 + 5 + 0 + 3, "file size %zu", f.map.size);
        // Entries point into the mapping.
        CHECK((const unsigned char *)f.items[1].data >= f.map.data &&
              (const unsigned char *)f.items[1].data < f.map.data + f.map.size, "%s", ufo_error());
        ufo_tensor_file_free(&f);
        CHECK(f.n == 0 && f.items == NULL && f.map.data == NULL, "free clears the struct");
    }

    // Parse of the same bytes from a buffer (no mapping).
    char *raw;
    size_t size;
    if (ufo_read_file(path, &raw, &size) == 0) {
        rc = ufo_safetensors_parse((const unsigned char *)raw, size, path, &f);
        CHECK(rc == 0, "parse: %s", ufo_error());
        if (rc == 0) {
            CHECK(f.map.data == NULL && f.n == n, "%s", ufo_error());
            CHECK(f.n > 0 && (const char *)f.items[0].data >= raw && (const char *)f.items[0].data < raw + size, "%s", ufo_error());
            ufo_tensor_file_free(&f);
        }
        // Every truncation of a valid file is rejected cleanly.
        int all_fail = 1;
        for (size_t cut = 0; cut < size; cut++) {
            if (ufo_safetensors_parse((const unsigned char *)raw, cut, path, &f) == 0) {
                all_fail = 0;
                ufo_tensor_file_free(&f);
            }
        }
        CHECK(all_fail, "a truncated file was accepted");
        free(raw);
    }

    // Overwrite an existing file; no tensors, no metadata.
    rc = ufo_safetensors_write(path, NULL, 0, NULL, NULL, 0);
    CHECK(rc == 0, "write empty: %s", ufo_error());
    rc = ufo_safetensors_open(path, &f);
    CHECK(rc == 0, "open empty: %s", ufo_error());
    if (rc == 0) {
        CHECK(f.n == 0 && f.n_meta == 0 && f.map.size == 16, "empty file: %d tensors, %zu bytes", f.n, f.map.size);
        ufo_tensor_file_free(&f);
    }
}

static void test_st_write_errors(void) {
    char path[256], dirpath[256];
    float x[4] = {1, 2, 3, 4};
    ufo_tensor_entry ok = {.name = "x", .dtype = UFO_F32, .ndim = 1, .shape = {4}, .data = x, .nbytes = 16};

    // Unwritable: a missing directory.
    path_in_tmp(path, sizeof path, "no/such/dir/out.safetensors");
    ufo_error_clear();
    CHECK(ufo_safetensors_write(path, &ok, 1, NULL, NULL, 0) == -1, "write into a missing directory");
    CHECK(strchr(ufo_error(), '\n') == NULL && strstr(ufo_error(), "out.safetensors"), "%s", ufo_error());

    // Unwritable: the target is a directory (temp file is written, rename fails).
    path_in_tmp(dirpath, sizeof dirpath, "adir");
    mkdir(dirpath, 0755);
    ufo_error_clear();
    CHECK(ufo_safetensors_write(dirpath, &ok, 1, NULL, NULL, 0) == -1, "write over a directory");
    CHECK(strstr(ufo_error(), "adir") != NULL, "%s", ufo_error());
    struct stat st;
    CHECK(stat(dirpath, &st) == 0 && S_ISDIR(st.st_mode), "directory still there");
    CHECK(count_prefix(tmpdir, "adir.tmp.") == 0, "temp file left behind after a failed rename");

    // Invalid inputs fail before anything is created.
    path_in_tmp(path, sizeof path, "inv.safetensors");
    ufo_tensor_entry bad = ok;
    bad.nbytes = 12;
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "nbytes mismatch");
    CHECK(strstr(ufo_error(), "tensor 'x'") != NULL, "%s", ufo_error());
    ufo_tensor_entry two[2] = {ok, ok};
    CHECK(ufo_safetensors_write(path, two, 2, NULL, NULL, 0) == -1, "duplicate names");
    CHECK(strstr(ufo_error(), "duplicate") != NULL, "%s", ufo_error());
    bad = ok;
    bad.name = "__metadata__";
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "reserved name");
    bad = ok;
    bad.name = "bad\xff";
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "invalid UTF-8 name");
    bad = ok;
    bad.shape[0] = -4;
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "negative dim");
    bad = ok;
    bad.ndim = UFO_MAX_DIMS + 1;
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "too many dims");
    bad = ok;
    bad.dtype = UFO_DTYPE_COUNT;
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "invalid dtype");
    bad = ok;
    bad.data = NULL;
    CHECK(ufo_safetensors_write(path, &bad, 1, NULL, NULL, 0) == -1, "NULL data");
    const char *k2[] = {"k", "k"}, *v2[] = {"a", "b"}, *vnull[] = {NULL};
    CHECK(ufo_safetensors_write(path, &ok, 1, k2, v2, 2) == -1, "duplicate metadata keys");
    CHECK(ufo_safetensors_write(path, &ok, 1, k2, vnull, 1) == -1, "NULL metadata value");
    CHECK(access(path, F_OK) != 0, "nothing written for invalid input");
    CHECK(count_prefix(tmpdir, "inv.safetensors") == 0, "no temp file for invalid input");

    // A failed write leaves an existing file untouched.
    path_in_tmp(path, sizeof path, "keep.safetensors");
    CHECK(ufo_safetensors_write(path, &ok, 1, NULL, NULL, 0) == 0, "%s", ufo_error());
    CHECK(ufo_safetensors_write(path, two, 2, NULL, NULL, 0) == -1, "%s", ufo_error());
    ufo_tensor_file f;
    if (ufo_safetensors_open(path, &f) == 0) {
        CHECK(f.n == 1 && entry_eq(&f.items[0], &ok), "old file intact");
        ufo_tensor_file_free(&f);
    } else CHECK(0, "reopen: %s", ufo_error());
    CHECK(count_prefix(tmpdir, "keep.safetensors.tmp.") == 0, "%s", ufo_error());

    // Open errors.
    path_in_tmp(path, sizeof path, "missing.safetensors");
    CHECK(ufo_safetensors_open(path, &f) == -1 && strstr(ufo_error(), "missing.safetensors"), "%s", ufo_error());
    CHECK(ufo_safetensors_open(tmpdir, &f) == -1, "open a directory");
    path_in_tmp(path, sizeof path, "zero.safetensors");
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    CHECK(ufo_safetensors_open(path, &f) == -1 && strstr(ufo_error(), "too small"), "%s", ufo_error());
}

// --------------------------------------------------------------------- npy

// Builds a .npy buffer: magic, version, header length field, header, data.
static unsigned char *npy_buf(int major, const char *header, long long hlen_field, const void *data,
                              size_t dlen, size_t *size) {
    size_t hl = strlen(header), pre = major == 1 ? 10 : 12;
    *size = pre + hl + dlen;
    unsigned char *b = malloc(*size);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    uint64_t L = hlen_field < 0 ? hl : (uint64_t)hlen_field;
    b[8] = (unsigned char)L;
    b[9] = (unsigned char)(L >> 8);
    if (pre == 12) {
        b[10] = (unsigned char)(L >> 16);
        b[11] = (unsigned char)(L >> 24);
    }
    memcpy(b + pre, header, hl);
    if (dlen) memcpy(b + pre + hl, data, dlen);
    return b;
}

static void npy_expect_fail(const char *label, int major, const char *header, long long hlen, size_t dlen,
                            const char *want) {
    static unsigned char zeros[256];
    size_t size;
    unsigned char *b = npy_buf(major, header, hlen, zeros, dlen, &size);
    ufo_tensor_entry e;
    ufo_error_clear();
    int rc = ufo_npy_parse(b, size, "bad.npy", &e);
    CHECK(rc == -1, "%s: parse accepted a malformed file", label);
    if (rc == -1) {
        check_error_msg("bad.npy", "npy:", want, label);
        CHECK(e.data == NULL && e.ndim == 0, "%s: entry not cleared", label);
    }
    free(b);
}

static void npy_expect_ok(const char *label, int major, const char *header, size_t dlen, ufo_dtype t, int ndim,
                          const int64_t *shape) {
    static unsigned char data[256];
    for (int i = 0; i < 256; i++) data[i] = (unsigned char)(i * 7);
    size_t size;
    unsigned char *b = npy_buf(major, header, -1, data, dlen, &size);
    ufo_tensor_entry e;
    int rc = ufo_npy_parse(b, size, "ok.npy", &e);
    CHECK(rc == 0, "%s: %s", label, ufo_error());
    if (rc == 0) {
        CHECK(e.dtype == t, "%s: dtype %s", label, ufo_dtype_name(e.dtype));
        CHECK(e.ndim == ndim, "%s: ndim %d", label, e.ndim);
        for (int i = 0; i < ndim && i < e.ndim; i++) CHECK(e.shape[i] == shape[i], "%s: dim %d", label, i);
        CHECK(e.nbytes == dlen && e.data == b + size - dlen, "%s: data", label);
        CHECK(e.name == NULL && e.owned == NULL, "%s", ufo_error());
        CHECK(dlen == 0 || memcmp(e.data, data, dlen) == 0, "%s", ufo_error());
    }
    free(b);
}

static void test_npy_parse(void) {
    const int64_t s34[] = {3, 4}, s3[] = {3}, s0[] = {0}, s2x0x5[] = {2, 0, 5};
    npy_expect_ok("v1 f4", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n", 48, UFO_F32, 2, s34);
    npy_expect_ok("v2 f8", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n", 24, UFO_F64, 1, s3);
    npy_expect_ok("v3 i8", 3, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }\n", 24, UFO_I64, 1, s3);
    npy_expect_ok("0-d", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (), }\n", 4, UFO_I32, 0, NULL);
    npy_expect_ok("empty", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (0,), }\n", 0, UFO_F16, 1, s0);
    npy_expect_ok("empty 3-d", 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 0, 5)}", 0, UFO_I16, 3,
                  s2x0x5);
    npy_expect_ok("|u1", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n", 3, UFO_U8, 1, s3);
    npy_expect_ok("<u1", 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }\n", 3, UFO_U8, 1, s3);
    npy_expect_ok("|b1", 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n", 3, UFO_BOOL, 1, s3);
    npy_expect_ok("|i1", 1, "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }\n", 3, UFO_I8, 1, s3);
    npy_expect_ok(">i1", 1, "{'descr': '>i1', 'fortran_order': False, 'shape': (3,), }\n", 3, UFO_I8, 1, s3);
    npy_expect_ok("=f4", 1, "{'descr': '=f4', 'fortran_order': False, 'shape': (3,), }\n", 12, UFO_F32, 1, s3);
    npy_expect_ok("key order, double quotes, no spaces", 1, "{\"shape\":(3,4),\"fortran_order\":False,\"descr\":\"<f4\"}",
                  48, UFO_F32, 2, s34);
    npy_expect_ok("python2 longs", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }\n", 48, UFO_F32,
                  2, s34);
    npy_expect_ok("trailing comma in tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4,), }\n", 48,
                  UFO_F32, 2, s34);

    const char *good = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n";
    {
        ufo_tensor_entry e;
        unsigned char junk[16] = "\x93NUMPX\x01\x00\x00\x00";
        CHECK(ufo_npy_parse(junk, sizeof junk, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "bad magic", "bad magic");
        CHECK(ufo_npy_parse(junk, 3, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "bad magic", "3-byte file");
        CHECK(ufo_npy_parse(NULL, 0, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "bad magic", "empty");
        size_t size;
        unsigned char *b = npy_buf(1, good, -1, NULL, 0, &size);
        CHECK(ufo_npy_parse(b, 7, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "truncated", "no version");
        CHECK(ufo_npy_parse(b, 9, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "truncated", "half a header length");
        CHECK(ufo_npy_parse(b, 30, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "truncated header", "truncated header");
        b[6] = 4;
        CHECK(ufo_npy_parse(b, size, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "version 4.0", "version 4.0");
        b[6] = 1;
        b[7] = 1;
        CHECK(ufo_npy_parse(b, size, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "version 1.1", "version 1.1");
        free(b);
    }
    npy_expect_fail("header length past end", 1, good, 60000, 12, "runs past the end");
    npy_expect_fail("v2 header length past end", 2, good, 0xffffffffLL, 12, "runs past the end");
    npy_expect_fail("header length too short", 1, good, 10, 12, "malformed");
    npy_expect_fail("big-endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "big-endian not supported");
    npy_expect_fail("| on a 4-byte type", 1, "{'descr': '|f4', 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "ambiguous");
    npy_expect_fail("complex descr", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }\n", -1, 24,
                    "unsupported descr '<c8'");
    npy_expect_fail("unsigned 4-byte", 1, "{'descr': '<u4', 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "unsupported descr");
    npy_expect_fail("string descr", 1, "{'descr': '<U10', 'fortran_order': False, 'shape': (3,), }\n", -1, 120,
                    "unsupported descr");
    npy_expect_fail("descr garbage", 1, "{'descr': 'f4x', 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "unsupported descr");
    npy_expect_fail("empty descr", 1, "{'descr': '', 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "unsupported descr");
    npy_expect_fail("descr not a string", 1, "{'descr': 4, 'fortran_order': False, 'shape': (3,), }\n", -1, 12,
                    "quoted string");
    npy_expect_fail("structured descr", 1,
                    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }\n", -1, 12, "structured");
    npy_expect_fail("fortran_order True", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }\n", -1, 48,
                    "fortran_order");
    npy_expect_fail("fortran_order junk", 1, "{'descr': '<f4', 'fortran_order': Truth, 'shape': (3,), }\n", -1, 12,
                    "fortran_order");
    npy_expect_fail("shape mismatch: extra data", 1, good, -1, 16, "4 bytes of unexpected data");
    npy_expect_fail("shape mismatch: 0-d with more data", 1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", -1, 12, "unexpected data");
    npy_expect_fail("truncated data", 1, good, -1, 8, "truncated data");
    npy_expect_fail("no data", 1, good, -1, 0, "truncated data");
    npy_expect_fail("missing shape", 1, "{'descr': '<f4', 'fortran_order': False}\n", -1, 12, "no 'shape'");
    npy_expect_fail("missing descr", 1, "{'fortran_order': False, 'shape': (3,)}\n", -1, 12, "no 'descr'");
    npy_expect_fail("missing fortran_order", 1, "{'descr': '<f4', 'shape': (3,)}\n", -1, 12, "no 'fortran_order'");
    npy_expect_fail("duplicate key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", -1,
                    12, "duplicate key 'descr'");
    npy_expect_fail("unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", -1, 12,
                    "unexpected key 'x'");
    npy_expect_fail("shape not a tuple", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }\n", -1, 12,
                    "not a tuple");
    npy_expect_fail("shape a list", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3], }\n", -1, 12, "'('");
    npy_expect_fail("negative dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }\n", -1, 12,
                    "negative");
    npy_expect_fail("float dim", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,), }\n", -1, 12,
                    "integers");
    npy_expect_fail("too many dims", 1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,3), }\n", -1, 12,
                    "more than 8 dimensions");
    npy_expect_fail("dim too large", 1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", -1, 12,
                    "too large");
    npy_expect_fail("dims overflow", 1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n", -1, 12,
                    "overflows");
    npy_expect_fail("bytes overflow", 1,
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967295), }\n", -1, 12,
                    "overflows");
    npy_expect_fail("unterminated string", 1, "{'descr': '<f4", -1, 0, "unterminated");
    npy_expect_fail("unterminated dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", -1, 12,
                    "malformed");
    npy_expect_fail("not a dict", 1, "['descr']\n", -1, 0, "'{'");
    npy_expect_fail("junk after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x\n", -1, 12,
                    "after the closing");
    npy_expect_fail("empty header", 1, "", -1, 0, "malformed");
    npy_expect_fail("escape in key", 1, "{'de\\scr': '<f4'}", -1, 0, "unsupported character");
    {   // a NUL inside the header
        size_t size;
        unsigned char *b = npy_buf(1, good, -1, "0123456789ab", 12, &size);
        b[12] = 0;
        ufo_tensor_entry e;
        CHECK(ufo_npy_parse(b, size, "bad.npy", &e) == -1, "%s", ufo_error());
        check_error_msg("bad.npy", "npy:", "NUL", "NUL in header");
        free(b);
    }
}

static void test_npy_roundtrip(void) {
    char path[256];
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f;
    int64_t s34[2] = {3, 4};
    path_in_tmp(path, sizeof path, "a.npy");
    CHECK(ufo_npy_write(path, UFO_F32, s34, 2, a) == 0, "%s", ufo_error());
    CHECK(count_prefix(tmpdir, "a.npy.tmp.") == 0, "%s", ufo_error());
    ufo_tensor_entry e;
    int rc = ufo_npy_read(path, &e);
    CHECK(rc == 0, "%s", ufo_error());
    if (rc == 0) {
        CHECK(e.dtype == UFO_F32 && e.ndim == 2 && e.shape[0] == 3 && e.shape[1] == 4 && e.nbytes == 48, "%s", ufo_error());
        CHECK(memcmp(e.data, a, 48) == 0, "%s", ufo_error());
        CHECK(e.owned == e.data && e.name && strcmp(e.name, path) == 0, "%s", ufo_error());
        CHECK(((uintptr_t)e.data & 63) == 0, "owned data is 64-byte aligned");
        free(e.owned);
        free(e.name);
    }
    // The writer pads the header so the data starts on a 64-byte boundary.
    ufo_mapped m;
    if (ufo_map_file(path, &m) == 0) {
        CHECK(m.size == 128 + 48 || m.size == 64 + 48, "file size %zu", m.size);
        CHECK((m.size - 48) % 64 == 0, "%s", ufo_error());
        ufo_unmap(&m);
    }

    struct {
        ufo_dtype t;
        int ndim;
        int64_t shape[3];
    } cases[] = {
        {UFO_I64, 0, {0}}, {UFO_U8, 1, {0}}, {UFO_BOOL, 1, {5}}, {UFO_F16, 3, {2, 1, 3}}, {UFO_F64, 1, {1}},
        {UFO_I32, 2, {2, 2}}, {UFO_I16, 1, {7}}, {UFO_I8, 2, {0, 4}},
    };
    unsigned char src[64];
    for (int i = 0; i < 64; i++) src[i] = (unsigned char)(i * 13 + 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (cases[c].t == UFO_BOOL)
            for (int i = 0; i < 64; i++) src[i] &= 1;
        path_in_tmp(path, sizeof path, "c.npy");
        CHECK(ufo_npy_write(path, cases[c].t, cases[c].shape, cases[c].ndim, src) == 0, "%s", ufo_error());
        rc = ufo_npy_read(path, &e);
        CHECK(rc == 0, "case %zu: %s", c, ufo_error());
        if (rc != 0) continue;
        int64_t numel = 1;
        for (int i = 0; i < cases[c].ndim; i++) numel *= cases[c].shape[i];
        CHECK(e.dtype == cases[c].t && e.ndim == cases[c].ndim, "case %zu", c);
        for (int i = 0; i < e.ndim; i++) CHECK(e.shape[i] == cases[c].shape[i], "case %zu dim %d", c, i);
        CHECK(e.nbytes == (size_t)numel * ufo_dtype_size(cases[c].t), "case %zu nbytes %zu", c, e.nbytes);
        CHECK(e.nbytes == 0 || memcmp(e.data, src, e.nbytes) == 0, "case %zu data", c);
        free(e.owned);
        free(e.name);
    }
    CHECK(ufo_npy_write(path, UFO_BF16, s34, 2, a) == -1, "bf16 cannot be stored in .npy");

    path_in_tmp(path, sizeof path, "missing.npy");
    CHECK(ufo_npy_read(path, &e) == -1 && strstr(ufo_error(), "missing.npy"), "%s", ufo_error());
    CHECK(e.owned == NULL && e.name == NULL, "%s", ufo_error());
    path_in_tmp(path, sizeof path, "no/dir/x.npy");
    CHECK(ufo_npy_write(path, UFO_F32, s34, 2, a) == -1, "npy write to a missing directory");
    // A truncated file on disk.
    path_in_tmp(path, sizeof path, "trunc.npy");
    CHECK(ufo_npy_write(path, UFO_F32, s34, 2, a) == 0, "%s", ufo_error());
    CHECK(truncate(path, 100) == 0, "%s", ufo_error());
    CHECK(ufo_npy_read(path, &e) == -1 && strstr(ufo_error(), "truncated"), "%s", ufo_error());
    CHECK(e.owned == NULL && e.name == NULL, "%s", ufo_error());
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ufo_test_formats.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_st_malformed();
    test_st_roundtrip();
    test_st_write_errors();
    test_npy_parse();
    test_npy_roundtrip();
    rm_rf_tmp();
    return check_summary("formats");
}
