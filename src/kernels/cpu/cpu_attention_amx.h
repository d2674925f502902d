// The fused AMX bf16 attention forward (cpu_attention_amx.c); cpu_attention
// dispatches to it. Internal to kernels/cpu.
#pragma once

// True when amx_attention can run this shape here (hd a multiple of 32, <= 256).
int amx_attention_ok(int T, int hd);
// Same contract as cpu_attention at bf16. Only call when amx_attention_ok().
int amx_attention(float *out, const float *qkv, int B, int T, int H, int hd);
