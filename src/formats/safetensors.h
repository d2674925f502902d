// safetensors: 8-byte little-endian header length, a JSON header mapping names
// to {dtype, shape, data_offsets}, optional "__metadata__" (string -> string),
// then the raw data. Everything read is validated against the file's size.
#pragma once
#include "formats/tensor_file.h"

// Maps the file; entries point into the mapping (no copy).
int ufo_safetensors_open(const char *path, ufo_tensor_file *f);
// Parses a buffer the caller keeps alive; f->map stays empty. `name` is for errors.
int ufo_safetensors_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_file *f);
// Writes atomically (temp file + rename). Data offsets are 8-byte aligned... by
// padding the header with spaces, as the reference implementation does.
int ufo_safetensors_write(const char *path, const ufo_tensor_entry *items, int n,
                          const char *const *meta_keys, const char *const *meta_vals, int n_meta);
