// One warp-wide tensor-core instruction, PTX's
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D (16 x 8, fp32) =
// A (16 x 16, bf16) B (16 x 8, bf16) + C. Unlike WMMA's opaque fragments, the
// PTX ISA fixes which lane holds which element, so a kernel can run the
// softmax on the accumulators in registers (FlashAttention-2's way). With
// g = lane / 4 and t = lane % 4, each 32-bit register holds two bf16 (the
// lower-indexed in the low half):
//   a[0] = A[g][2t, 2t+1]     a[1] = A[g+8][2t, 2t+1]
//   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   b[0] = B[2t, 2t+1][g]     b[1] = B[2t+8, 2t+9][g]
//   c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]   (D alike)
// All 32 lanes must execute it together. In the CUDA emulator
// (UFO_CUDA_EMU) the same layouts are exchanged between the lanes and
// multiplied on the host (tests/cuda/emu/emu_ptx.h).
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>
#include "kernels/cuda/gpu_vec.cuh"   // pack_bf16
#ifdef UFO_CUDA_EMU
#include "emu_ptx.h"
#endif

__device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2],
                                               const float c[4]) {
#ifdef UFO_CUDA_EMU
    ::emu::mma_bf16_16816(d, a, b, c);
#elif defined(__CUDA_ARCH__)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
          "f"(c[3]));
#endif
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8 x 8 bf16 matrices
// from shared memory in one instruction (instead of 4 to 16 scalar loads per
// fragment). Lane l gives the address of row l % 8 of matrix l / 8 (8
// contiguous bf16, 16-byte aligned); r[i] receives matrix i as a fragment
// register: row g, columns 2t, 2t+1 (lower first), or with .trans rows 2t,
// 2t+1 of column g, i.e. the transposed matrix's fragment. So a row-major tile
// gives A fragments and k-major B fragments without .trans, and n-major B
// fragments (V in P V) with it.
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16 *row) {
#ifdef UFO_CUDA_EMU
    ::emu::ldmatrix_x4(r, row, false);
#elif defined(__CUDA_ARCH__)
    uint32_t a = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16 *row) {
#ifdef UFO_CUDA_EMU
    ::emu::ldmatrix_x4(r, row, true);
#elif defined(__CUDA_ARCH__)
    uint32_t a = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

// cp.async.cg.shared.global: a 16-byte copy from global to shared memory that
// runs in the background (no registers held, so the next tile's loads overlap
// this tile's math); zero-filled when !valid (src is then not read).
// cp_async_wait_all() waits for this thread's copies; a __syncthreads() after
// it publishes them to the block. The emulator copies at once.
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
#ifdef UFO_CUDA_EMU
    if (valid) memcpy(dst, src, 16);
    else memset(dst, 0, 16);
#elif defined(__CUDA_ARCH__)
    uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && !defined(UFO_CUDA_EMU)
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && !defined(UFO_CUDA_EMU)
    asm volatile("cp.async.wait_group 0;\n" ::);
#endif
}

// p[0] += a, p[1] += b in global memory (p 8-byte aligned): one vector atomic
// on sm_90 (half the atomic traffic of the flash backward's dq), two before.
__device__ __forceinline__ void atomic_add2(float *p, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(UFO_CUDA_EMU)
    atomicAdd(reinterpret_cast<float2 *>(p), make_float2(a, b));
#else
    atomicAdd(p, a);
    atomicAdd(p + 1, b);
#endif
}
