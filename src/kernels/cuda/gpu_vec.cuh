// Four consecutive values as one 16-byte (fp32) or 8-byte (bf16) access, for
// the memory-bound layout kernels (qkv split / merge, heads split): one load
// and one store instruction per four values instead of four, and the index
// arithmetic (divisions by runtime sizes) done once per four. p must be
// aligned to 4 elements: the callers take rows of a multiple of 4 values
// (hd % 4 == 0) from 256-byte aligned buffers.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ void load4(float v[4], const float *p) {
    float4 a = *reinterpret_cast<const float4 *>(p);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
__device__ __forceinline__ float bf16_lo(uint32_t w) {
    return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w & 0xffffu)));
}
__device__ __forceinline__ float bf16_hi(uint32_t w) {
    return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w >> 16)));
}
__device__ __forceinline__ void load4(float v[4], const __nv_bfloat16 *p) {
    uint2 a = *reinterpret_cast<const uint2 *>(p);
    v[0] = bf16_lo(a.x), v[1] = bf16_hi(a.x), v[2] = bf16_lo(a.y), v[3] = bf16_hi(a.y);
}
__device__ __forceinline__ void store4(float *p, const float v[4]) {
    *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
// Two floats rounded to bf16 (round to nearest even) in one register, lo first.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16;
}
__device__ __forceinline__ void store4(__nv_bfloat16 *p, const float v[4]) {
    *reinterpret_cast<uint2 *>(p) = make_uint2(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]));
}

// One value as a float, from fp32 or bf16 (for the element-wise fallbacks of the above).
__device__ __forceinline__ float load1(const float *p) { return *p; }
__device__ __forceinline__ float load1(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
