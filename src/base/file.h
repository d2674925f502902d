// Files: read-only mappings of inputs, and atomic writes of outputs so that an
// interrupted run never leaves a partial file that looks complete.
#pragma once
#include <stdio.h>
#include <stddef.h>

typedef struct {
    const unsigned char *data;  // NULL for an empty file
    size_t size;
    int is_mmap;                // 1: munmap on close; 0: free()
} ufo_mapped;

int ufo_map_file(const char *path, ufo_mapped *m);
void ufo_unmap(ufo_mapped *m);
// Reads a whole (small) file into a malloc'd, NUL-terminated buffer.
int ufo_read_file(const char *path, char **out, size_t *size);

// Atomic writer: writes go to "<path>.tmp.<pid>", commit fsyncs and renames
// over <path>, abort removes the temp file. Exactly one of commit/abort.
typedef struct {
    FILE *fp;
    char *path;
    char *tmp;
} ufo_atomic_file;

int ufo_atomic_open(ufo_atomic_file *f, const char *path);
int ufo_atomic_commit(ufo_atomic_file *f);
void ufo_atomic_abort(ufo_atomic_file *f);
// Writes n bytes; reports a short write (disk full) as an error naming the file.
int ufo_atomic_write(ufo_atomic_file *f, const void *buf, size_t n);
