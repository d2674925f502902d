// .npy writer (format 1.0): magic, header dict padded so the data starts on a
// 64-byte boundary, then the raw little-endian C-order data.
#include "formats/npy.h"
#include "base/error.h"
#include "base/mem.h"
#include <stdio.h>
#include <string.h>

static const char *npy_descr(ufo_dtype t) {
    switch (t) {
    case UFO_F32: return "<f4";
    case UFO_F16: return "<f2";
    case UFO_F64: return "<f8";
    case UFO_I64: return "<i8";
    case UFO_I32: return "<i4";
    case UFO_I16: return "<i2";
    case UFO_I8: return "|i1";
    case UFO_U8: return "|u1";
    case UFO_BOOL: return "|b1";
    default: return NULL;  // numpy has no bf16
    }
}

int ufo_npy_write(const char *path, ufo_dtype t, const int64_t *shape, int ndim, const void *data) {
    const char *descr = npy_descr(t);
    if (!descr) return ufo_errorf("%s: dtype %s cannot be stored in .npy", path, ufo_dtype_name(t));
    if (ndim < 0 || ndim > UFO_MAX_DIMS) return ufo_errorf("%s: %d dimensions (at most %d)", path, ndim, UFO_MAX_DIMS);
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || ufo_mul_overflows(count, (size_t)shape[i], &count))
            return ufo_errorf("%s: bad shape for .npy (dimension %d = %lld)", path, i, (long long)shape[i]);
    char hdr[512];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(hdr + len, sizeof hdr - len, "%lld,%s", (long long)shape[i],
                        (i + 1 < ndim) ? " " : "");
        n *= (size_t)shape[i];
    }
    if (ndim > 1) len--;  // numpy writes "(3, 4)" but "(3,)"
    len += snprintf(hdr + len, sizeof hdr - len, "), }");
    // magic(6) + version(2) + header_len(2) + header + padding + '\n' == multiple of 64
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    int hlen = len + pad + 1;
    pre[8] = (unsigned char)(hlen & 0xff);
    pre[9] = (unsigned char)(hlen >> 8);
    memset(hdr + len, ' ', pad);
    hdr[len + pad] = '\n';

    ufo_atomic_file f;
    if (ufo_atomic_open(&f, path) != 0) return -1;
    if (ufo_atomic_write(&f, pre, 10) || ufo_atomic_write(&f, hdr, hlen) ||
        ufo_atomic_write(&f, data, n * ufo_dtype_size(t))) {
        ufo_atomic_abort(&f);
        return -1;
    }
    return ufo_atomic_commit(&f);
}
