// The fused AMX bf16 attention forward (cpu_attention_amx.c); cpu_attention
// dispatches to it. Internal to kernels/cpu.
#pragma once

// True when the CPU has AMX-TILE + AMX-BF16 (+ AVX512-BF16) and the OS granted
// the process tile state (checked once).
int cpu_has_amx(void);
// True when amx_attention can run this shape here (hd a multiple of 32, <= 256).
int amx_attention_ok(int T, int hd);
// Same contract as cpu_attention at bf16. Only call when amx_attention_ok().
int amx_attention(float *out, const float *qkv, int B, int T, int H, int hd);
