// Aligned allocation. 64-byte alignment so AVX-512 loads and oneDNN buffers
// never straddle cache lines. Allocation failure is reported, not fatal.
#pragma once
#include <stddef.h>

#define UFO_ALIGN 64
void *ufo_alloc(size_t bytes);          // aligned, uninitialised; NULL + ufo_error on failure
void *ufo_calloc(size_t bytes);         // aligned, zeroed
void ufo_free(void *p);
// Overflow-checked n * size, for sizes read from files.
int ufo_mul_overflows(size_t a, size_t b, size_t *out);
