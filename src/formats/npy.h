// NumPy .npy files (format versions 1.0-3.0), little-endian, C order.
#pragma once
#include "formats/tensor_file.h"

// Writes atomically: "<path>.tmp.<pid>" then rename.
int ufo_npy_write(const char *path, ufo_dtype t, const int64_t *shape, int ndim, const void *data);
// Parses a buffer; e->data points into buf (e->owned NULL, e->name NULL). `name` is for errors.
int ufo_npy_parse(const unsigned char *buf, size_t size, const char *name, ufo_tensor_entry *e);
// Reads a file into an owned entry (free e->owned and e->name when done).
int ufo_npy_read(const char *path, ufo_tensor_entry *e);
