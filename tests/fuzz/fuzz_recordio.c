// libFuzzer target: the RecordIO reader (src/data/recordio.h) on arbitrary bytes.
// Input: [mode][idx length, u16 LE][idx text][rec bytes].
//   mode bit 0: open with the index text (else scan the rec bytes)
//   mode bit 1: also build insightface's face list
// Checks: a failure leaves one error line and an empty reader; on success every
// record reads or fails cleanly, a read record's bytes are all inside the input
// or its own copy, headers parse within the record; nothing leaks.
#include "base/error.h"
#include "data/recordio.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(void) {
    const char *e = ufo_error();
    if (!e[0] || !strcmp(e, "unknown error") || strchr(e, '\n') || strchr(e, '\r')) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int mode = data[0];
    size_t il = (size_t)data[1] | (size_t)data[2] << 8;
    if (il > size - 3) il = size - 3;
    const char *idx = (const char *)data + 3;
    const uint8_t *rec = data + 3 + il;
    size_t rn = size - 3 - il;
    // A copy of exactly rn bytes so that ASan sees any read past the end of the file.
    uint8_t *copy = malloc(rn ? rn : 1);
    if (!copy) return 0;
    if (rn) memcpy(copy, rec, rn);
    ufo_recordio r;
    ufo_error_clear();
    if (ufo_recordio_open_mem(&r, copy, rn, (mode & 1) ? idx : NULL, il, "fuzz") != 0) {
        check_error();
        if (r.n != 0 || r.keys || r.offsets || r.by_key || r.name) abort();
        free(copy);
        return 0;
    }
    volatile unsigned acc = 0;
    for (int i = 0; i < r.n && i < 4096; i++) {
        if (ufo_recordio_find(&r, r.keys[i]) != i) abort();   // keys are unique
        ufo_record x;
        ufo_irheader h;
        ufo_error_clear();
        if (ufo_recordio_read_image(&r, i, &x, &h) != 0) {
            check_error();
            if (x.data || x.owned) abort();
            continue;
        }
        if (!x.owned && (x.data < copy || x.data + x.size > copy + rn)) abort();
        if (h.image < x.data || h.image + h.image_size != x.data + x.size) abort();
        for (size_t k = 0; k < x.size; k++) acc += x.data[k];
        for (uint32_t k = 0; k < h.flag && k < 64; k++) acc += (unsigned)ufo_irheader_label(&h, k);
        ufo_record_free(&x);
    }
    if (mode & 2) {
        int *entry = NULL, *label = NULL, n = 0;
        ufo_error_clear();
        if (ufo_recordio_face_list(&r, &entry, &label, &n) == 0) {
            for (int j = 0; j < n; j++)
                if (entry[j] < 0 || entry[j] >= r.n || label[j] < 0) abort();
            free(entry);
            free(label);
        } else {
            check_error();
            if (entry || label || n) abort();
        }
    }
    (void)acc;
    ufo_recordio_close(&r);
    free(copy);
    return 0;
}
