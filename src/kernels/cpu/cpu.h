// The fast CPU path: oneDNN matmuls with pre-packed weights (fp32, or bf16 on
// AMX/AVX512-BF16 where the CPU has it), vectorised + OpenMP element-wise ops.
// Same semantics and layouts as kernels/ref; every function here has a twin there.
#pragma once
#include <stddef.h>

typedef enum { UFO_PREC_FP32 = 0, UFO_PREC_BF16 = 1 } ufo_precision;

// Post-operation fused into a linear:
//   NONE:     y  = x W^T + b
//   GELU:     y  = gelu(x W^T + b)           (exact erf GELU)
//   RESIDUAL: y += x W^T + b                 (y holds the residual on entry)
typedef enum { CPU_POST_NONE = 0, CPU_POST_GELU = 1, CPU_POST_RESIDUAL = 2 } cpu_post_op;

typedef struct cpu_linear cpu_linear;

// Packs W [out, in] (and copies b [out], may be NULL) into the layout oneDNN's
// matmul wants, in the requested precision. The caller's arrays may be freed after.
cpu_linear *cpu_linear_create(const float *w, const float *b, int in, int out, ufo_precision prec);
// x [n, in] fp32 -> y [n, out] fp32. Primitives are cached per n. Returns 0 / -1 (ufo_error).
int cpu_linear_forward(cpu_linear *l, float *y, const float *x, int n, cpu_post_op post);
// The same on a bf16 layer with bf16 activations on either side, so a
// producer that can write bf16 (LayerNorm, a GELU matmul feeding the next
// matmul) saves the rounding pass: CPU_LINEAR_SRC_BF16: x is uint16_t bf16
// [n, in]; CPU_LINEAR_DST_BF16: y is bf16 [n, out], the fp32 result (after
// bias and GELU) rounded to nearest even (not with CPU_POST_RESIDUAL).
enum { CPU_LINEAR_SRC_BF16 = 1, CPU_LINEAR_DST_BF16 = 2, CPU_LINEAR_SRC_PACKED = 4, CPU_LINEAR_DST_PACKED = 8 };
// "Packed" bf16 activations: the AMX matmul's blocked layout of a bf16 [n, c]
// matrix, 32 x 32 blocks, block (i/32, k/32) at element ((i/32) * ceil(c/32) +
// k/32) * 1024, row-major inside; rows and columns padded to 32 (padded
// columns are zero; padded rows hold whatever, they only make padded rows).
// A packed input is read with no packing pass, and a packed output is written
// as whole 2 KB blocks. CPU_LINEAR_SRC_PACKED / DST_PACKED (each implying the
// bf16 flag) need cpu_linear_is_amx(l). cpu_packed_bytes: the buffer size.
size_t cpu_packed_bytes(int n, int c);
int cpu_linear_forward_io(cpu_linear *l, void *y, const void *x, int n, cpu_post_op post, int io);
void cpu_linear_free(cpu_linear *l);

// Same contract as ref_attention. bf16 precision computes the two matmuls in bf16
// with fp32 accumulation and an fp32 softmax.
// On CPUs with AMX (and an OS that grants it) bf16 runs a fused AMX kernel
// for head dims that are multiples of 32 up to 256; elsewhere batched oneDNN
// matmuls. fp32 on CPUs with AVX-512 runs a fused kernel for head dims that
// are multiples of 32 and T <= 1024; elsewhere two sgemms per head.
// The environment variable UFO_ATTN=auto|dnnl|amx forces a path: dnnl the
// oneDNN ones in both precisions, amx the bf16 AMX kernel (where it cannot
// run, an error).
int cpu_attention(float *out, const float *qkv, int B, int T, int H, int hd, ufo_precision prec);
// Which path cpu_attention takes for this shape: "avx512" or "sgemm" (fp32),
// "amx" or "onednn" (bf16), or a short reason when UFO_ATTN asks for
// something impossible.
const char *cpu_attention_path(int T, int hd, ufo_precision prec);
// cpu_attention at bf16 with the qkv input and/or the output in bf16 (the
// qkv matmul then writes bf16, and the proj matmul reads it), on the fused
// AMX path only: call when cpu_attention_io_ok(T, hd). The results are those
// of cpu_attention given the same values (it rounds q, k, v to bf16 first,
// and the matmul after it rounds its input). CPU_ATTN_OUT_PACKED: the output
// in bf16 in the packed layout below, for proj.
enum { CPU_ATTN_QKV_BF16 = 1, CPU_ATTN_OUT_BF16 = 2, CPU_ATTN_OUT_PACKED = 4 };
int cpu_attention_io_ok(int T, int hd);
int cpu_attention_io(void *out, const void *qkv, int B, int T, int H, int hd, int io);
// True when l runs on the AMX matmul (bf16 on a CPU with AMX).
int cpu_linear_is_amx(const cpu_linear *l);

// Which code path the matmuls of this precision take: "amx" (our tile matmul,
// bf16 on CPUs with AMX, unless UFO_GEMM=dnnl) or "onednn".
const char *cpu_matmul_path(ufo_precision prec);

void cpu_layernorm(float *y, const float *x, const float *g, const float *b, int n, int c, float eps);
void cpu_gelu(float *y, const float *x, size_t n);
void cpu_batchnorm(float *y, const float *x, const float *g, const float *b, const float *mean,
                   const float *var, int n, int c, float eps);
void cpu_add(float *y, const float *a, size_t n);
// Patch embedding as im2col + a cpu_linear whose weight is w viewed as [C, 3*p*p].
// (cpu_linear_create(w, b, 3*p*p, C, prec) is what the model builds for it.)
int cpu_patch_embed(cpu_linear *proj, float *y, const float *img, int B, int H, int W, int p);

// True if the CPU can run bf16 matmuls natively (AVX512-BF16 or AMX).
int cpu_has_bf16(void);
// Which instruction set oneDNN dispatches to on this machine, e.g. "avx512_core_amx".
const char *cpu_isa_name(void);
