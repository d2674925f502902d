// Element types of tensors in files and in memory, and the conversions
// between the float formats (bf16 and fp16 stored as raw uint16).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
    UFO_F32 = 0, UFO_F16, UFO_BF16, UFO_F64,
    UFO_I64, UFO_I32, UFO_I16, UFO_I8, UFO_U8, UFO_BOOL,
    UFO_DTYPE_COUNT
} ufo_dtype;

size_t ufo_dtype_size(ufo_dtype t);
const char *ufo_dtype_name(ufo_dtype t);         // safetensors spelling: "F32", "BF16", ...
int ufo_dtype_from_name(const char *s, ufo_dtype *t);  // -1 if unknown (no error set)
int ufo_dtype_is_float(ufo_dtype t);

static inline float ufo_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}
// Round to nearest even, NaN stays NaN (the same rule as PyTorch and oneDNN).
static inline uint16_t ufo_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t r = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + r) >> 16);
}
float ufo_f16_to_f32(uint16_t h);
uint16_t ufo_f32_to_f16(float f);

// Converts n elements of any float or integer dtype to float32.
void ufo_convert_to_f32(float *dst, const void *src, ufo_dtype t, size_t n);
// Converts n float32 to dst dtype (F32, F16 or BF16 only).
void ufo_convert_from_f32(void *dst, ufo_dtype t, const float *src, size_t n);
