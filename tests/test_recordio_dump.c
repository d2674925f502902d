// Dumps what the RecordIO reader sees, for tests/py/test_recordio_py.py (which
// compares it with what its own Python writer of the format wrote).
//
//   test_recordio_dump                  a trivial self-check (run by CTest)
//   test_recordio_dump REC IDX          IDX "-" = no index (scan the file)
//       one line per record, in index (or file) order:
//       key <TAB> flag <TAB> labels (comma-separated, %.9g) <TAB> id <TAB> id2 <TAB> image size <TAB> fnv1a64 (hex)
//   test_recordio_dump --set NAME [ROOT]   a training set (e.g. folder:DIR), decoding every image:
//       first line: n <TAB> num_classes, then per image:
//       i <TAB> raw id <TAB> class <TAB> camid <TAB> width <TAB> height <TAB> describe
// Errors: "error: <message>" on stderr, exit 1.
#include "base/error.h"
#include "check.h"
#include "data/recordio.h"
#include "data/trainset.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int self_check(void) {
    // One whole record and one split one (payload with the magic at offset 4), no index.
    static const unsigned char rec[] = {
        0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0, 'a', 'b', 'c', 'd',                    // record 0: "abcd"
        0x0a, 0x23, 0xd7, 0xce, 4, 0, 0, 0x20, 'x', 'y', 'z', 'w',                 // record 1 start: "xyzw"
        0x0a, 0x23, 0xd7, 0xce, 2, 0, 0, 0x60, 'q', 'r', 0, 0,                     // record 1 end: "qr"
    };
    ufo_recordio r;
    CHECK(ufo_recordio_open_mem(&r, rec, sizeof rec, NULL, 0, "self") == 0 && r.n == 2);
    ufo_record x;
    if (r.n == 2) {
        CHECK(ufo_recordio_read(&r, 1, &x) == 0 && x.size == 10 && !memcmp(x.data, "xyzw\x0a\x23\xd7\xceqr", 10));
        ufo_record_free(&x);
    }
    ufo_recordio_close(&r);
    CHECK(ufo_recordio_open_mem(&r, rec, sizeof rec - 4, NULL, 0, "self") == -1 && strstr(ufo_error(), "self: record 1"));
    return check_summary("recordio_dump self-check");
}

static int dump_records(const char *rec, const char *idx) {
    ufo_recordio r;
    if (ufo_recordio_open(&r, rec, strcmp(idx, "-") ? idx : NULL) != 0) {
        fprintf(stderr, "error: %s\n", ufo_error());
        return 1;
    }
    for (int i = 0; i < r.n; i++) {
        ufo_record x;
        ufo_irheader h;
        if (ufo_recordio_read_image(&r, i, &x, &h) != 0) {
            fprintf(stderr, "error: %s\n", ufo_error());
            ufo_recordio_close(&r);
            return 1;
        }
        printf("%" PRId64 "\t%u\t", r.keys[i], h.flag);
        uint32_t nl = h.flag ? h.flag : 1;
        for (uint32_t k = 0; k < nl; k++) printf("%s%.9g", k ? "," : "", (double)ufo_irheader_label(&h, k));
        printf("\t%" PRIu64 "\t%" PRIu64 "\t%zu\t%016" PRIx64 "\n", h.id, h.id2, h.image_size, fnv1a64(h.image, h.image_size));
        ufo_record_free(&x);
    }
    ufo_recordio_close(&r);
    return 0;
}

static int dump_set(const char *name, const char *root) {
    ufo_trainset s;
    if (ufo_trainset_load(name, root, &s) != 0) {
        fprintf(stderr, "error: %s\n", ufo_error());
        return 1;
    }
    printf("%d\t%d\n", s.n, s.num_classes);
    int rc = 0;
    for (int i = 0; i < s.n; i++) {
        ufo_image img;
        char d[512];
        if (ufo_trainset_read(&s, i, &img) != 0) {
            fprintf(stderr, "error: %s\n", ufo_error());
            rc = 1;
            break;
        }
        printf("%d\t%d\t%d\t%d\t%d\t%d\t%s\n", i, s.raw_id[i], s.label[i], s.camid[i], img.w, img.h,
               ufo_trainset_describe(&s, i, d, sizeof d));
        ufo_image_free(&img);
    }
    ufo_trainset_free(&s);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return self_check();
    if (!strcmp(argv[1], "--set") && argc >= 3) return dump_set(argv[2], argc >= 4 ? argv[3] : NULL);
    if (argc == 3) return dump_records(argv[1], argv[2]);
    fprintf(stderr, "usage: test_recordio_dump [REC IDX|-] | [--set NAME [ROOT]]\n");
    return 2;
}
