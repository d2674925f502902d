#include "formats/tensor_file.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>

int64_t ufo_tensor_numel(const ufo_tensor_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

const ufo_tensor_entry *ufo_tensor_file_find(const ufo_tensor_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->items[i].name, name) == 0) return &f->items[i];
    return NULL;
}

const char *ufo_tensor_file_meta(const ufo_tensor_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

void ufo_tensor_file_free(ufo_tensor_file *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->items[i].name);
        free(f->items[i].owned);
    }
    free(f->items);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    ufo_unmap(&f->map);
    memset(f, 0, sizeof *f);
}

void ufo_tensor_file_release(ufo_tensor_file *f, int i) {
    ufo_tensor_entry *e = &f->items[i];
    if (e->owned) {
        free(e->owned);
        e->owned = NULL;
    } else if (f->map.is_mmap && e->nbytes) {
        // Whole pages strictly inside this tensor only: neighbours may still be unread.
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)e->data + page - 1) & ~(page - 1), hi = ((uintptr_t)e->data + e->nbytes) & ~(page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    e->data = NULL;
}
