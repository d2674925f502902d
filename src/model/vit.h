// The AllInOne Vision Transformer (SPEC section 1): a ViT backbone of any size
// and up to four BNNeck task heads. Parameters live in one contiguous fp32
// buffer, described by a table of named tensors (vit_param_table) that the
// loader, the saver, and (later) the trainer all walk.
#pragma once
#include "kernels/cpu/cpu.h"
#include "ufo.h"  // task ids
#include <stddef.h>
#include <stdint.h>


typedef struct {
    int img_size;     // input is img_size x img_size
    int patch_size;
    int dim;          // embed dim
    int depth;        // blocks
    int heads;        // attention heads; head dim = dim / heads
    int mlp_hidden;   // MLP hidden width (4 * dim in every preset)
    float ln_eps;     // 1e-6
    float bn_eps;     // 1e-5
} vit_config;

// Presets: "tiny" (192/12/3), "small" (384/12/6), "base" (768/12/12), "large" (1024/24/16).
int vit_config_preset(const char *name, int img_size, int patch_size, vit_config *c);
int vit_config_check(const vit_config *c);  // sane sizes, dim % heads == 0, img % patch == 0
static inline int vit_grid(const vit_config *c) { return c->img_size / c->patch_size; }
static inline int vit_tokens(const vit_config *c) { return 1 + vit_grid(c) * vit_grid(c); }

// One named parameter tensor. Names are ufo's (= timm's for the backbone).
typedef enum {
    P_CLS_TOKEN, P_POS_EMBED, P_PATCH_W, P_PATCH_B,
    P_LN1_W, P_LN1_B, P_QKV_W, P_QKV_B, P_PROJ_W, P_PROJ_B,
    P_LN2_W, P_LN2_B, P_FC1_W, P_FC1_B, P_FC2_W, P_FC2_B,
    P_NORM_W, P_NORM_B,
    P_BN_W, P_BN_B, P_BN_MEAN, P_BN_VAR,   // per task head
    P_KIND_COUNT
} vit_param_kind;

typedef struct {
    vit_param_kind kind;
    int block;          // block index for per-block tensors, task for heads, else -1
    char name[64];      // e.g. "blocks.3.attn.qkv.weight", "heads.face.running_var"
    int ndim;
    int64_t shape[4];   // as stored in ufo/timm files (linear weights [out, in])
    size_t numel;
    size_t offset;      // into the parameter buffer, in floats
    int is_matrix;      // a linear/conv weight the fast path packs
} vit_param;

// Lists every parameter of a model with this config and these heads
// (head_mask bit t = task t present). Returns the count; *table is malloc'd.
int vit_param_table(const vit_config *c, unsigned head_mask, vit_param **table, size_t *total_floats);
const char *vit_task_name(int task);   // "face", "person", "vehicle", "product"
int vit_task_from_name(const char *s); // -1 if unknown

typedef struct {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} vit_block_weights;

typedef struct {
    float *cls_token, *pos_embed, *patch_w, *patch_b, *norm_w, *norm_b;
    vit_block_weights *blocks;         // [depth]
    float *bn[UFO_NUM_TASKS][4];       // weight, bias, running_mean, running_var (NULL: no head)
} vit_weights;

// Where parameter p lives in the model's buffer.
float **vit_param_slot(vit_weights *w, const vit_param *p);

// REF: plain-C fp32 reference; CPU: oneDNN + OpenMP; CUDA: the GPU (vit_cuda.c).
typedef enum { VIT_BACKEND_REF = 0, VIT_BACKEND_CPU = 1, VIT_BACKEND_CUDA = 2 } vit_backend;

typedef struct vit_cuda vit_cuda;  // device weights, activations, stream (vit_cuda.c)

typedef struct {
    vit_config cfg;
    unsigned head_mask;
    vit_param *table;
    int n_params;
    size_t n_floats;
    float *params;       // one contiguous fp32 buffer, n_floats long
    vit_weights w;       // pointers into params
    vit_backend backend;
    ufo_precision prec;
    // Fast path: packed weights per block (NULL with the reference backend).
    cpu_linear *patch, **qkv, **proj, **fc1, **fc2;
    // Activations, sized for `act_batch` images; grown on demand.
    int act_batch;
    float *act;
    vit_cuda *cuda;      // the CUDA backend's state (NULL unless backend == CUDA)
} vit_model;

// Allocates the parameter buffer for cfg + heads (zeroed) and sets w.
int vit_alloc(vit_model *m, const vit_config *c, unsigned head_mask);
// Fills params as timm initialises a ViT (trunc-normal 0.02, zero bias, unit norms).
void vit_init_random(vit_model *m, uint64_t seed);
// Builds the fast path's packed weights from params (after loading); with
// VIT_BACKEND_CUDA uploads them to the GPU (fails with one clear line when
// this build has no CUDA or no device is visible).
int vit_prepare(vit_model *m, vit_backend backend, ufo_precision prec);
void vit_free(vit_model *m);

// images [n, 3, S, S] (S = cfg.img_size, normalised) -> out [n, dim].
// task < 0: class token after the final LayerNorm; else that head's BNNeck output.
int vit_forward(vit_model *m, const float *images, int n, int task, float *out);
// vit_forward as the embedding paths call it: flip 0 is vit_forward; flip 1
// the test-time flip (fast-reid's TEST.FLIP; off in the original evaluation):
// out = (f(x) + f(x mirrored left-right)) / 2, in fp32, two forward passes,
// images left mirrored.
int vit_forward_tta(vit_model *m, float *images, int n, int task, int flip, float *out);

// Resamples a [1 + g0*g0, dim] position embedding to [1 + g1*g1, dim]: class token
// kept, the grid interpolated as timm's resample_abs_pos_embed does: PyTorch's
// F.interpolate(mode="bicubic", antialias=True, align_corners=False), i.e. a
// separable cubic filter with a = -0.5 whose support widens when shrinking.
void vit_resample_pos_embed(float *dst, const float *src, int g0, int g1, int dim);

// dst = src with exactly the heads in head_mask: parameters copied by name,
// heads that src lacks start at identity (weight 1, bias 0, mean 0, var 1).
int vit_with_heads(const vit_model *src, unsigned head_mask, vit_model *dst);

// --- CUDA backend (vit_cuda.c; a stub that fails when built without CUDA) ---
// 0 if the GPU can be used, else -1 with ufo_error() = "no CUDA device visible
// (cudaGetDeviceCount: ...)" or "this ufo was built without CUDA ...".
int vit_cuda_check(void);
// "NVIDIA H100 ..., sm_90, 79.1 GiB" once prepared, else "".
const char *vit_cuda_device(const vit_model *m);
// The attention kernel the prepared model runs: "flash" or "gemm" ("" before).
const char *vit_cuda_attention(const vit_model *m);
int vit_cuda_prepare(vit_model *m, ufo_precision prec);
int vit_cuda_forward(vit_model *m, const float *images, int n, int task, float *out);
void vit_cuda_release(vit_model *m);
// Host buffers for images handed to vit_forward: page-locked with the CUDA
// backend (the upload then runs at full PCIe speed), ufo_alloc otherwise.
float *vit_host_alloc(const vit_model *m, size_t bytes);
void vit_host_free(const vit_model *m, float *p);
