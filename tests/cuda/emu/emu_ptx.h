// The CUDA emulator's PTX tensor-core instruction (see cuda_runtime.h):
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 with the PTX ISA's
// fragment layouts (src/kernels/cuda/gpu_mma.cuh lists them). The 32 lanes
// exchange their registers (a warp barrier, so a lane that has exited is an
// error, as on a GPU), each rebuilds A and B and computes its own four
// outputs: products exact in fp32, accumulated in fp32 in k order.
#pragma once
#include "cuda_bf16.h"

namespace emu {

inline float bf16_bits_to_float(uint32_t w, int hi) {
    uint32_t u = (hi ? w >> 16 : w & 0xffffu) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

inline void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
    struct regs {
        uint32_t a[4], b[2];
    } mine, all[32];
    memcpy(mine.a, a, sizeof mine.a);
    memcpy(mine.b, b, sizeof mine.b);
    warp_allgather(&mine, sizeof mine, all);
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l / 4, t = l % 4;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = bf16_bits_to_float(all[l].a[0], h);
            A[g + 8][2 * t + h] = bf16_bits_to_float(all[l].a[1], h);
            A[g][2 * t + 8 + h] = bf16_bits_to_float(all[l].a[2], h);
            A[g + 8][2 * t + 8 + h] = bf16_bits_to_float(all[l].a[3], h);
            B[2 * t + h][g] = bf16_bits_to_float(all[l].b[0], h);
            B[2 * t + 8 + h][g] = bf16_bits_to_float(all[l].b[1], h);
        }
    }
    int g = t_cur->lane / 4, t = t_cur->lane % 4;
    float out[4];
    for (int i = 0; i < 4; i++) {
        int row = g + (i >= 2 ? 8 : 0), col = 2 * t + i % 2;
        float s = c[i];
        for (int k = 0; k < 16; k++) s += A[row][k] * B[k][col];
        out[i] = s;
    }
    memcpy(d, out, sizeof out);
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane l gives row l % 8 of
// matrix l / 8; each lane gets, of matrix i, row g columns 2t, 2t+1, or with
// trans rows 2t, 2t+1 of column g. A warp-wide instruction, like mma.sync.
inline void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16 *row, bool trans) {
    const unsigned short *mine = reinterpret_cast<const unsigned short *>(row), *all[32];
    if ((uintptr_t)mine % 16) fail("ldmatrix: lane %d's row address %p is not 16-byte aligned", t_cur->lane, row);
    warp_allgather(&mine, sizeof mine, all);
    int g = t_cur->lane / 4, t = t_cur->lane % 4;
    for (int i = 0; i < 4; i++) {
        uint32_t lo, hi;
        if (trans) lo = all[i * 8 + 2 * t][g], hi = all[i * 8 + 2 * t + 1][g];
        else lo = all[i * 8 + g][2 * t], hi = all[i * 8 + g][2 * t + 1];
        r[i] = lo | hi << 16;
    }
}

}  // namespace emu
