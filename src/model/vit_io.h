// Model files <-> vit_model. Three namings are understood (SPEC section 2):
//   ufo / timm:  cls_token, blocks.N.attn.qkv.weight [out, in], heads.<task>.running_mean ...
//   paddle:      backbone.cls_token, backbone.blocks.N.attn.qkv.weight [in, out],
//                heads.task{1..4}.bottleneck.0.{weight,bias,_mean,_variance}
// The file format (safetensors or a paddle.save pickle) is detected by content.
#pragma once
#include "formats/tensor_file.h"
#include "model/vit.h"

typedef struct {
    int img_size;          // 0: the size the file was trained at; else resample pos_embed
    int num_heads;         // 0: from metadata, else dim / 64
    int verbose;           // print unexpected keys (as the original loader does) on stderr
} vit_load_options;

// Opens any supported model file into named tensors.
int vit_open_tensor_file(const char *path, ufo_tensor_file *f);
// Builds the model from named tensors (infers the architecture from shapes and metadata).
// Each tensor's memory is released once copied (ufo_tensor_file_release), so
// peak memory stays near one copy of the weights: f is consumed.
int vit_from_tensors(vit_model *m, ufo_tensor_file *f, const char *path, const vit_load_options *o);
// Both of the above.
int vit_load(vit_model *m, const char *path, const vit_load_options *o);
// Writes the model as ufo safetensors (architecture in __metadata__), atomically.
// dtype: UFO_F32, UFO_BF16 or UFO_F16.
int vit_save(const vit_model *m, const char *path, ufo_dtype dtype);
// The same plus extra tensors (written as given, after the model's) and extra
// string metadata: what a training checkpoint adds.
int vit_save_ex(const vit_model *m, const char *path, ufo_dtype dtype, const ufo_tensor_entry *extra, int n_extra,
                const char *const *extra_keys, const char *const *extra_vals, int n_extra_meta);

// Architecture and heads of a tensor file without loading the weights.
// *naming is "ufo" or "paddle".
int vit_describe(const ufo_tensor_file *f, const vit_load_options *o, vit_config *c, unsigned *head_mask,
                 const char **naming);
