// libFuzzer target: the safe unpickler (ufo_pickle_load) and the paddle.save
// reader on top of it (ufo_paddle_parse), on arbitrary bytes. A failure leaves
// one error line; a success gives a tree whose every reachable byte can be
// read (ASan checks the bounds) and arrays whose sizes add up; nothing leaks.
#include "base/error.h"
#include "formats/paddle.h"
#include "formats/pickle.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned char sink;
static long budget;

static void touch(const void *p, size_t n) {
    const unsigned char *b = p;
    unsigned char acc = 0;
    for (size_t i = 0; i < n; i++) acc ^= b[i];
    sink ^= acc;
}

// Bounded walk: shared values may be reached many times (a DAG).
static void walk(const ufo_pvalue *v, int depth) {
    if (--budget < 0) return;
    if (depth > UFO_PICKLE_MAX_DEPTH) abort();
    switch (v->kind) {
    case UFO_PV_BYTES: case UFO_PV_STR: touch(v->u.s.data, v->u.s.len); break;
    case UFO_PV_TUPLE: case UFO_PV_LIST:
        for (size_t i = 0; i < v->u.seq.n; i++) walk(v->u.seq.items[i], depth + 1);
        break;
    case UFO_PV_DICT:
        for (size_t i = 0; i < 2 * v->u.seq.n; i++) walk(v->u.seq.items[i], depth + 1);
        break;
    case UFO_PV_GLOBAL: touch(v->u.g.module, strlen(v->u.g.module) + strlen(v->u.g.name)); break;
    case UFO_PV_NDARRAY: {
        const ufo_parray *a = v->u.arr;
        if (!a->built || a->ndim < 0 || a->ndim > UFO_PICKLE_MAX_NDIM) abort();
        uint64_t numel = 1;
        for (int i = 0; i < a->ndim; i++) numel *= (uint64_t)a->shape[i];
        if (numel * ufo_dtype_size(a->dtype) != a->nbytes) abort();
        touch(a->data, a->nbytes);
        break;
    }
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ufo_pickle *doc;
    if (ufo_pickle_load(data, size, "fuzz", &doc) != 0) {
        if (strchr(ufo_error(), '\n') || doc) abort();
    } else {
        budget = 100000;
        walk(ufo_pickle_root(doc), 0);
        ufo_pickle_free(doc);
    }
    ufo_tensor_file f;
    if (ufo_paddle_parse(data, size, "fuzz", &f) != 0) {
        if (strchr(ufo_error(), '\n') || f.n || f.items) abort();
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const ufo_tensor_entry *e = &f.items[i];
        if (!e->name || !e->owned || e->data != e->owned || e->ndim < 0 || e->ndim > UFO_MAX_DIMS) abort();
        if ((uint64_t)ufo_tensor_numel(e) * ufo_dtype_size(e->dtype) != e->nbytes) abort();
        touch(e->data, e->nbytes);
    }
    ufo_tensor_file_free(&f);
    return 0;
}
