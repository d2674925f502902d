// Fused fp32 attention on AVX-512 FMA (cpu_attention_fma.c). Internal to
// kernels/cpu: cpu_attention's fp32 path dispatches here when
// fma_attention_ok(); the per-head sgemm path stays everywhere else.
#pragma once

// True when the CPU has AVX-512F and the shape fits: hd a multiple of 32
// (the P v block is 32 columns of a head) and T <= 1024 (the score rows).
int fma_attention_ok(int T, int hd);
// cpu_attention's contract in fp32. 0, or -1 with ufo_error set.
int fma_attention(float *out, const float *qkv, int B, int T, int H, int hd);
