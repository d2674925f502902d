// A set of named tensors read from a model file (safetensors, paddle.save
// pickle, ...). Tensor data points either into the file's mapping (safetensors:
// zero copy) or into buffers the reader owns (pickle). Every reader fills this
// one struct so the model loader never knows which format it came from.
#pragma once
#include "base/file.h"
#include "tensor/dtype.h"
#include <stdint.h>

#define UFO_MAX_DIMS 8

typedef struct {
    char *name;
    ufo_dtype dtype;
    int ndim;
    int64_t shape[UFO_MAX_DIMS];
    const void *data;   // little-endian, C order, nbytes long
    size_t nbytes;
    void *owned;        // non-NULL if this entry's data was allocated by the reader
} ufo_tensor_entry;

typedef struct {
    ufo_tensor_entry *items;
    int n;
    // String key/value metadata (safetensors "__metadata__"); may be empty.
    char **meta_keys, **meta_vals;
    int n_meta;
    ufo_mapped map;     // backing mapping, if any
} ufo_tensor_file;

int64_t ufo_tensor_numel(const ufo_tensor_entry *e);
const ufo_tensor_entry *ufo_tensor_file_find(const ufo_tensor_file *f, const char *name);
const char *ufo_tensor_file_meta(const ufo_tensor_file *f, const char *key);  // NULL if absent
void ufo_tensor_file_free(ufo_tensor_file *f);
// Gives back the memory of entry i once its data has been consumed (frees owned
// data; drops the mapped pages from memory), so a loader that copies tensor by
// tensor never holds the file twice. The entry's data is NULL afterwards.
void ufo_tensor_file_release(ufo_tensor_file *f, int i);  // frees names, owned data, metadata, unmaps
