// The fused AMX bf16 attention forward (cpu_attention_amx.c); cpu_attention
// dispatches to it. Internal to kernels/cpu.
#pragma once
#include "kernels/cpu/cpu.h"
#include <stdint.h>

// True when amx_attention can run this shape here (hd a multiple of 32, <= 256).
int amx_attention_ok(int T, int hd);
// Same contract as cpu_attention at bf16, with qkv and out bf16 as io says
// (cpu_attention_io's flags). Only call when amx_attention_ok().
int amx_attention(void *out, const void *qkv, int B, int T, int H, int hd, int io);
// The gradient of amx_attention w.r.t. qkv ([B, T, 3, H, hd], fp32 or, when
// qkv_bf16, bf16) given dout (fp32 [B, T, H*hd]), fused
// (cpu_attention_amx_bwd.c): into dqkv (fp32), or (dqkv NULL) into dqkvb
// (bf16) with its column sums added to db when db. Only call when
// amx_attention_ok().
int amx_attention_backward(float *dqkv, uint16_t *dqkvb, float *db, const float *dout, const void *qkv, int qkv_bf16,
                           int B, int T, int H, int hd);
