// cpu_gemm_amx: our bf16 matmul on AMX tiles, C = epilogue(A B), for every
// bf16 matmul of the model (inference linears with pre-packed weights, and
// the training forward and backward, which pack both operands per call).
// Internal to kernels/cpu: cpu_linear and cpu_gemm_ex dispatch here when
// cpu_gemm_amx_enabled(); oneDNN stays the path everywhere else.
#pragma once
#include <stddef.h>
#include <stdint.h>

// One operand as it is stored. The logical matrix is A [M, K] or B [K, N];
// trans 0: stored as that matrix, row r at p + r*ld; trans 1: stored
// transposed (A as [K, M], B as [N, K]). bf16 1: uint16_t bf16 elements;
// 0: float, rounded to bf16 (nearest even) while packing.
// packed 1 (A only): bf16 in the packed layout of cpu.h (ld, trans ignored).
typedef struct {
    const void *p;
    long ld;
    int trans, bf16, packed;
} amx_operand;

// What is done to the fp32 accumulator acc[i, j] on the way out:
//   v = acc + bias[j] (bias may be NULL) + beta * C[i, j] (beta 0: C not read),
//   v = gelu(v) if gelu (exact erf form), C[i, j] = v (bf16 when c_bf16,
//   rounded to nearest even; then beta must be 0). Row i of C at C + i*ldc.
//   dgelu (with gelu and c_bf16; else NULL): also dgelu[i, j] = bf16(gelu'(v
//   before the GELU)), laid out like C: the bf16 training forward of fc1.
//   c_packed (with c_bf16, beta 0): C in the packed layout of cpu.h (ldc ignored).
typedef struct {
    const float *bias;
    float beta;
    int gelu, c_bf16;
    long ldc;
    uint16_t *dgelu;
    int c_packed;
} amx_epilogue;

// True when the AMX path runs: the CPU has AMX (cpu_has_amx) and UFO_GEMM is
// unset, "auto" or "amx" ("dnnl" keeps oneDNN's matmul; anything else is
// refused by cpu_gemm_env_check). Read once per process; cpu_debug_gemm_path
// overrides it for tests.
int cpu_gemm_amx_enabled(void);
// 0, or -1 with ufo_error set when UFO_GEMM is not auto/amx/dnnl, or is amx
// where AMX is missing (then the bf16 entry points refuse to run rather than
// quietly take another path).
int cpu_gemm_env_check(void);

// B [K, N] in the tile layout: bytes needed, and packing (OpenMP-parallel).
size_t amx_packed_b_bytes(int K, int N);
void amx_pack_b(uint16_t *bp, amx_operand b, int K, int N);

// C [M, N] = epilogue(A [M, K] B [K, N]). bp: B already packed by amx_pack_b,
// or NULL to pack b here. K may be 0 (then acc = 0). 0, or -1 with ufo_error
// set (out of memory, bad arguments). Only call when cpu_gemm_amx_enabled().
// Each C element is summed in the same order whatever the thread count.
int amx_gemm(void *C, const amx_epilogue *e, amx_operand a, amx_operand b, const uint16_t *bp, int M, int N,
             int K);

// cpu_gemm_ex's contract (C [M, N] fp32 = op(A) op(B) + bias + beta C, then
// GELU; contiguous operands, A [M, K] or stored [K, M] when transA, B [K, N]
// or stored [N, K] when transB) on this path, each operand float (rounded
// while packing) or bf16 as its flag says.
int amx_gemm_simple(float *C, const void *A, int a_bf16, int transA, const void *B, int b_bf16, int transB,
                    const float *bias, int M, int N, int K, float beta, int gelu);
