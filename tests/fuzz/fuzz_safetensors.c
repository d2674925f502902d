// libFuzzer target: ufo_safetensors_parse on arbitrary bytes. A parse that
// succeeds must describe tensors that lie inside the input (every byte is
// read, so ASan flags anything outside) with nbytes == numel * dtype size; a
// parse that fails must leave one error line and an empty struct.
#include "base/error.h"
#include "formats/safetensors.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ufo_tensor_file f;
    if (ufo_safetensors_parse(data, size, "fuzz", &f) != 0) {
        if (strchr(ufo_error(), '\n') || f.n != 0 || f.items || f.n_meta != 0) abort();
        return 0;
    }
    volatile unsigned char acc = 0;
    size_t total = 0;
    for (int i = 0; i < f.n; i++) {
        const ufo_tensor_entry *e = &f.items[i];
        if (!e->name || e->ndim < 0 || e->ndim > UFO_MAX_DIMS || (unsigned)e->dtype >= UFO_DTYPE_COUNT) abort();
        int64_t numel = ufo_tensor_numel(e);
        if (numel < 0 || (uint64_t)numel * ufo_dtype_size(e->dtype) != e->nbytes) abort();
        const unsigned char *p = e->data;
        if (e->nbytes && (p < data || p + e->nbytes > data + size)) abort();
        for (size_t j = 0; j < e->nbytes; j++) acc ^= p[j];
        total += e->nbytes;
        if (ufo_tensor_file_find(&f, e->name) == NULL) abort();
    }
    if (total > size) abort();  // tensors tile the data section: no overlap
    for (int i = 0; i < f.n_meta; i++) {
        acc ^= (unsigned char)strlen(f.meta_keys[i]);
        acc ^= (unsigned char)strlen(f.meta_vals[i]);
    }
    (void)acc;
    ufo_tensor_file_free(&f);
    return 0;
}
