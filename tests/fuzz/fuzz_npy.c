// libFuzzer target: ufo_npy_parse on arbitrary bytes. A parse that succeeds
// must point at exactly numel * itemsize bytes at the end of the input (every
// byte is read); a failure leaves one error line and a cleared entry.
#include "base/error.h"
#include "formats/npy.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ufo_tensor_entry e;
    if (ufo_npy_parse(data, size, "fuzz", &e) != 0) {
        if (strchr(ufo_error(), '\n') || e.data || e.ndim != 0) abort();
        return 0;
    }
    if (e.ndim < 0 || e.ndim > UFO_MAX_DIMS || (unsigned)e.dtype >= UFO_DTYPE_COUNT || e.name || e.owned) abort();
    int64_t numel = ufo_tensor_numel(&e);
    if (numel < 0 || (uint64_t)numel * ufo_dtype_size(e.dtype) != e.nbytes) abort();
    const unsigned char *p = e.data;
    if (p < data || p + e.nbytes != data + size) abort();
    volatile unsigned char acc = 0;
    for (size_t j = 0; j < e.nbytes; j++) acc ^= p[j];
    (void)acc;
    return 0;
}
