// paddle.save state dicts (".pdparams", and the released "allinone_vitlarge.pdmodel")
// read through the safe unpickler (formats/pickle.h): nothing is executed.
//
// What paddle.save writes (checked against paddlepaddle 3.3 / numpy 2.4; the
// 2.x releases write the same, with numpy 1.x spelling numpy.core):
//  * a state dict (every value a Tensor, or a dict without tensors):
//    pickle protocol 4 by default (2 or 3 on request) of a plain dict
//      { "<structured name>": ndarray, ..., "StructuredToParameterName@@": {name: "linear_0.w_0", ...} }
//    arrays as numpy.(_)core.multiarray._reconstruct + BUILD (1, shape,
//    numpy.dtype('f4', False, True) + BUILD (3, '<', ...), False, raw bytes);
//    protocol 2 carries the raw bytes as _codecs.encode(str, 'latin1').
//  * with protocol 2 or 3, an array of more than 2^30 - 1 bytes is split into
//    flat slices "<name>@@.0", "<name>@@.1", ... plus an entry
//    "UnpackBigParamInfor@@": {name: {"OriginShape": shape, "slices": [...]}}.
//    They are joined back here under the original name and shape.
//  * any other dict (e.g. tensors mixed with plain numbers): a plain pickle
//    where each tensor is builtins.tuple((tensor_name, ndarray)) and numbers
//    stay numbers. The ndarray is taken, under the dict key.
//
// Entries get the dict keys verbatim: for the UFO AllInOne checkpoint
//   backbone.cls_token [1,1,D]  backbone.pos_embed [1,T,D]
//   backbone.patch_embed.proj.weight [D,3,P,P] / .bias [D]
//   backbone.blocks.N.{norm1,norm2}.{weight,bias} [D]
//   backbone.blocks.N.attn.qkv.weight [D,3D] (Paddle Linear: [in, out]) / .bias [3D]
//   backbone.blocks.N.attn.proj.weight [D,D] / .bias [D]
//   backbone.blocks.N.mlp.fc1.weight [D,4D] / .bias [4D]; mlp.fc2.weight [4D,D] / .bias [D]
//   backbone.norm.{weight,bias} [D]
//   heads.taskK.bottleneck.0.{weight,bias,_mean,_variance} [D]   (K = 1..4)
// in the file's order, with the file's dtype (float32 in practice; float16,
// float64, int8/16/32/64, uint8, bool are passed through) and shape. Fortran
// arrays are transposed to C order. Data is always owned (aligned buffers in
// `owned`, each array's bytes copied once); the file mapping is released, and
// while copying, the pages already copied are dropped so the peak resident
// memory stays about one file size.
// "StructuredToParameterName@@" and "UnpackBigParamInfor@@" are not entries.
// Values that are not arrays (numbers, strings, nested dicts) are skipped
// without error; the metadata says how many:
//   "paddle.skipped"          number of skipped non-array values
//   "paddle.pickle_protocol"  the pickle protocol (0 if the file has no PROTO)
// Duplicate names are an error. A root that is not a dict is an error.
#pragma once
#include "formats/tensor_file.h"

int ufo_paddle_load(const char *path, ufo_tensor_file *f);
// Same from a buffer (kept alive by the caller only during the call: all data
// is copied). `name` is for errors.
int ufo_paddle_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_file *f);
