// Tensor-file dumper for the Python cross-checks (tests/py/test_formats_numpy.py).
//
//   test_tensor_dump                    self-check (CTest runs it this way)
//   test_tensor_dump npy FILE           one "tensor" line
//   test_tensor_dump safetensors FILE   one "tensor" line per tensor, in file
//                                       order, then one "meta" line per key
//   test_tensor_dump write-npy OUT      writes arange(12).reshape(3,4)*0.5 (f32)
//   test_tensor_dump write-st OUT       writes the fixed safetensors file below
//
// Lines are tab-separated:
//   tensor <name> <dtype> [<d0>,<d1>,...] <nbytes> <fnv1a64 of the bytes, 16 hex>
//   meta <key> <value>
// with '\\', tab, CR, LF and other bytes below 0x20 in names, keys and values
// written as \\, \t, \r, \n and \xNN. A failure prints the error line on
// stderr and exits 1.
#include "base/error.h"
#include "check.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '\\') fputs("\\\\", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\r') fputs("\\r", out);
        else if (*p < 0x20) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
}

static void dump_entry(FILE *out, const ufo_tensor_entry *e, const char *name) {
    fputs("tensor\t", out);
    put_escaped(out, name);
    fprintf(out, "\t%s\t[", ufo_dtype_name(e->dtype));
    for (int i = 0; i < e->ndim; i++) fprintf(out, "%s%lld", i ? "," : "", (long long)e->shape[i]);
    fprintf(out, "]\t%zu\t%016llx\n", e->nbytes, (unsigned long long)fnv1a64(e->data, e->nbytes));
}

static void dump_file(FILE *out, const ufo_tensor_file *f) {
    for (int i = 0; i < f->n; i++) dump_entry(out, &f->items[i], f->items[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        fputs("meta\t", out);
        put_escaped(out, f->meta_keys[i]);
        fputc('\t', out);
        put_escaped(out, f->meta_vals[i]);
        fputc('\n', out);
    }
}

static int write_npy(const char *path) {
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f;
    const int64_t shape[2] = {3, 4};
    return ufo_npy_write(path, UFO_F32, shape, 2, a);
}

// The fixed file the Python test expects (keep the two in sync).
static int write_st(const char *path) {
    static float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f;
    static uint16_t b[2], e[4];
    b[0] = ufo_f32_to_bf16(1.0f);
    b[1] = ufo_f32_to_bf16(-2.5f);
    const float ev[4] = {0.5f, 1.0f, -1.0f, 2.0f};
    for (int i = 0; i < 4; i++) e[i] = ufo_f32_to_f16(ev[i]);
    static int64_t c = 42;
    static uint8_t f[3] = {1, 0, 1};
    static int32_t g[2] = {-1, 7};
    static double h[3] = {0.1, -1e-300, 12345.678};
    const ufo_tensor_entry items[] = {
        {.name = "a", .dtype = UFO_F32, .ndim = 2, .shape = {3, 4}, .data = a, .nbytes = sizeof a},
        {.name = "b", .dtype = UFO_BF16, .ndim = 1, .shape = {2}, .data = b, .nbytes = sizeof b},
        {.name = "c", .dtype = UFO_I64, .ndim = 0, .data = &c, .nbytes = sizeof c},
        {.name = "d", .dtype = UFO_U8, .ndim = 1, .shape = {0}, .data = NULL, .nbytes = 0},
        {.name = "e", .dtype = UFO_F16, .ndim = 2, .shape = {2, 2}, .data = e, .nbytes = sizeof e},
        {.name = "f", .dtype = UFO_BOOL, .ndim = 1, .shape = {3}, .data = f, .nbytes = sizeof f},
        {.name = "g", .dtype = UFO_I32, .ndim = 1, .shape = {2}, .data = g, .nbytes = sizeof g},
        {.name = "h.\"x\"", .dtype = UFO_F64, .ndim = 1, .shape = {3}, .data = h, .nbytes = sizeof h},
    };
    const char *keys[] = {"format", "note"};
    const char *vals[] = {"pt", "hello \"ufo\"\n\xc3\xa9"};
    return ufo_safetensors_write(path, items, (int)(sizeof items / sizeof items[0]), keys, vals, 2);
}

static int self_check(void) {
    char dir[] = "/tmp/ufo_tensor_dump.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char st[256], npy[256];
    snprintf(st, sizeof st, "%s/x.safetensors", dir);
    snprintf(npy, sizeof npy, "%s/x.npy", dir);
    CHECK(write_st(st) == 0, "%s", ufo_error());
    CHECK(write_npy(npy) == 0, "%s", ufo_error());
    ufo_tensor_file f;
    if (ufo_safetensors_open(st, &f) == 0) {
        CHECK(f.n == 8 && f.n_meta == 2, "%d tensors, %d metadata", f.n, f.n_meta);
        const ufo_tensor_entry *c = ufo_tensor_file_find(&f, "c");
        int64_t cv = 0;  // c sits at offset 52: unaligned for int64, so copy it out
        if (c && c->nbytes == 8) memcpy(&cv, c->data, 8);
        CHECK(c && c->ndim == 0 && c->nbytes == 8 && cv == 42, "scalar c");
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            dump_file(null, &f);
            fclose(null);
        }
        ufo_tensor_file_free(&f);
    } else CHECK(0, "%s", ufo_error());
    ufo_tensor_entry e;
    if (ufo_npy_read(npy, &e) == 0) {
        CHECK(e.ndim == 2 && e.nbytes == 48 && ((const float *)e.data)[11] == 5.5f, "npy contents");
        free(e.owned);
        free(e.name);
    } else CHECK(0, "%s", ufo_error());
    CHECK(fnv1a64("", 0) == 0xcbf29ce484222325ull, "fnv of nothing");
    CHECK(fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull, "fnv of 'a'");
    remove(st);
    remove(npy);
    rmdir(dir);
    return check_summary("tensor_dump");
}

int main(int argc, char **argv) {
    if (argc == 1) return self_check();
    if (argc != 3) {
        fprintf(stderr, "usage: %s [npy|safetensors|write-npy|write-st] FILE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    if (strcmp(mode, "npy") == 0) {
        ufo_tensor_entry e;
        if (ufo_npy_read(path, &e) != 0) goto fail;
        dump_entry(stdout, &e, "-");
        free(e.owned);
        free(e.name);
    } else if (strcmp(mode, "safetensors") == 0) {
        ufo_tensor_file f;
        if (ufo_safetensors_open(path, &f) != 0) goto fail;
        dump_file(stdout, &f);
        ufo_tensor_file_free(&f);
    } else if (strcmp(mode, "write-npy") == 0) {
        if (write_npy(path) != 0) goto fail;
    } else if (strcmp(mode, "write-st") == 0) {
        if (write_st(path) != 0) goto fail;
    } else {
        fprintf(stderr, "unknown mode '%s'\n", mode);
        return 2;
    }
    return fflush(stdout) == 0 ? 0 : 1;
fail:
    fprintf(stderr, "%s\n", ufo_error());
    return 1;
}
