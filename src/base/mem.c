#include "base/mem.h"
#include "base/error.h"
#include <stdlib.h>
#include <string.h>

void *ufo_alloc(size_t bytes) {
    size_t sz = (bytes + UFO_ALIGN - 1) / UFO_ALIGN * UFO_ALIGN;
    if (sz == 0) sz = UFO_ALIGN;
    void *p = aligned_alloc(UFO_ALIGN, sz);
    if (!p) ufo_errorf("out of memory allocating %zu bytes", bytes);
    return p;
}

void *ufo_calloc(size_t bytes) {
    void *p = ufo_alloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void ufo_free(void *p) { free(p); }

int ufo_mul_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
