// The fused AMX bf16 attention forward (cpu_attention_amx.c); cpu_attention
// dispatches to it. Internal to kernels/cpu.
#pragma once
#include "kernels/cpu/cpu.h"

// True when amx_attention can run this shape here (hd a multiple of 32, <= 256).
int amx_attention_ok(int T, int hd);
// Same contract as cpu_attention at bf16, with qkv and out bf16 as io says
// (cpu_attention_io's flags). Only call when amx_attention_ok().
int amx_attention(void *out, const void *qkv, int B, int T, int H, int hd, int io);
