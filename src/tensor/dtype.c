#include "tensor/dtype.h"
#include <math.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[UFO_DTYPE_COUNT] = {
    [UFO_F32] = {"F32", 4}, [UFO_F16] = {"F16", 2}, [UFO_BF16] = {"BF16", 2},
    [UFO_F64] = {"F64", 8}, [UFO_I64] = {"I64", 8}, [UFO_I32] = {"I32", 4},
    [UFO_I16] = {"I16", 2}, [UFO_I8] = {"I8", 1},   [UFO_U8] = {"U8", 1},
    [UFO_BOOL] = {"BOOL", 1},
};

size_t ufo_dtype_size(ufo_dtype t) { return (unsigned)t < UFO_DTYPE_COUNT ? dtypes[t].size : 0; }
const char *ufo_dtype_name(ufo_dtype t) { return (unsigned)t < UFO_DTYPE_COUNT ? dtypes[t].name : "?"; }
int ufo_dtype_is_float(ufo_dtype t) { return t == UFO_F32 || t == UFO_F16 || t == UFO_BF16 || t == UFO_F64; }

int ufo_dtype_from_name(const char *s, ufo_dtype *t) {
    for (int i = 0; i < UFO_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *t = (ufo_dtype)i;
            return 0;
        }
    return -1;
}

float ufo_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {  // zero or subnormal: value = man * 2^-24
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31) v.u = sign | 0x7f800000u | (man << 13);
    else v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

uint16_t ufo_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {.f = f};
    uint32_t sign = (v.u >> 16) & 0x8000, a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);           // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);          // overflow -> inf
    if (a < 0x38800000u) {                                           // subnormal / zero
        float m = fabsf(f) * 16777216.0f;                            // / 2^-24
        return (uint16_t)(sign | (uint32_t)nearbyintf(m));
    }
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);                     // round to nearest even
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

// Element loads go through memcpy: tensors inside a safetensors file need not
// be aligned to their dtype (the format only orders them), and memcpy of a
// constant size compiles to a plain unaligned load.
#define LOAD(T, p, i) ({ T v_; memcpy(&v_, (const char *)(p) + (i) * sizeof(T), sizeof(T)); v_; })

void ufo_convert_to_f32(float *dst, const void *src, ufo_dtype t, size_t n) {
    switch (t) {
    case UFO_F32: memmove(dst, src, n * 4); break;
    case UFO_F16: for (size_t i = 0; i < n; i++) dst[i] = ufo_f16_to_f32(LOAD(uint16_t, src, i)); break;
    case UFO_BF16: for (size_t i = 0; i < n; i++) dst[i] = ufo_bf16_to_f32(LOAD(uint16_t, src, i)); break;
    case UFO_F64: for (size_t i = 0; i < n; i++) dst[i] = (float)LOAD(double, src, i); break;
    case UFO_I64: for (size_t i = 0; i < n; i++) dst[i] = (float)LOAD(int64_t, src, i); break;
    case UFO_I32: for (size_t i = 0; i < n; i++) dst[i] = (float)LOAD(int32_t, src, i); break;
    case UFO_I16: for (size_t i = 0; i < n; i++) dst[i] = (float)LOAD(int16_t, src, i); break;
    case UFO_I8: for (size_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)src)[i]; break;
    case UFO_U8: case UFO_BOOL: for (size_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)src)[i]; break;
    default: break;
    }
}

void ufo_convert_from_f32(void *dst, ufo_dtype t, const float *src, size_t n) {
    switch (t) {
    case UFO_F32: memmove(dst, src, n * 4); break;
    case UFO_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ufo_f32_to_f16(src[i]);
            memcpy((char *)dst + 2 * i, &h, 2);
        }
        break;
    case UFO_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = ufo_f32_to_bf16(src[i]);
            memcpy((char *)dst + 2 * i, &h, 2);
        }
        break;
    default: break;
    }
}
