// A safe unpickler: reads Python pickles (protocols 0 to 5) into a small tree
// of values, and never executes anything.
//
// Accepted: the data opcodes (ints, floats, str, bytes, py2 strings, tuples,
// lists, dicts, None/True/False), the stack/mark/memo/frame opcodes, and
// GLOBAL / STACK_GLOBAL / REDUCE / BUILD / NEWOBJ for a fixed list of globals
// whose effect is reimplemented here (nothing is looked up or called):
//   numpy.core.multiarray._reconstruct, numpy._core.multiarray._reconstruct
//                                  + BUILD (version, shape, dtype, is_fortran, data) -> NDARRAY
//   numpy.core.numeric._frombuffer, numpy._core.numeric._frombuffer
//                                  (buffer, dtype, shape, order): numpy's protocol-5 arrays -> NDARRAY
//   numpy.ndarray                  only as _reconstruct's first argument
//   numpy.dtype                    (typestr, align, copy) + BUILD (version, byteorder, ...) -> DTYPE
//   collections.OrderedDict        () or ([(k, v), ...],) via REDUCE, or NEWOBJ -> DICT
//   _codecs.encode                 (str, 'latin1'): how protocol <= 2 writes bytes -> BYTES
//   builtins.bytes / __builtin__.bytes   () only: protocol 2's empty bytes -> BYTES
//   builtins.tuple / __builtin__.tuple   (sequence,): paddle's (name, ndarray) tensors -> TUPLE
// Any other global is refused where it appears ("refusing global 'os.system'
// at byte N"), and so is every other opcode (PERSID, EXT*, INST, OBJ,
// NEWOBJ_EX, sets, NEXT_BUFFER, ...), each error naming the opcode's offset.
//
// Arrays: little-endian (or byte-order-free) bool, int8/16/32/64, uint8,
// float16/32/64; C order, or Fortran order which is transposed to C order
// here. Big-endian, structured, object and other dtypes are errors. The data
// size must equal product(shape) * itemsize.
//
// Bounds: every length is checked against the input; memo <= 1M entries,
// value stack <= 1M entries, marks and container nesting <= 100 deep; all
// memory the loader allocates (values, copies, decoded strings, memo, stack)
// is limited to 64 MiB + 8x the input size. Recursive structures (a list that
// contains itself) are rejected, so the tree is acyclic and at most
// UFO_PICKLE_MAX_DEPTH deep. Values can be shared (the memo, DUP), so it is a
// DAG: a walker that expands every path of an adversarial file can revisit
// nodes many times; walk only what you expect.
//
// Lifetime: BYTES, STR and NDARRAY data may point INTO the input buffer (zero
// copy, e.g. BINBYTES payloads). Keep `buf` alive and unchanged until
// ufo_pickle_free. Everything else is owned by the document.
#pragma once
#include "tensor/dtype.h"
#include <stddef.h>
#include <stdint.h>

#define UFO_PICKLE_MAX_DEPTH 100
#define UFO_PICKLE_MAX_MEMO (1u << 20)
#define UFO_PICKLE_MAX_STACK (1u << 20)
#define UFO_PICKLE_MAX_NDIM 8

typedef enum {
    UFO_PV_NONE, UFO_PV_BOOL, UFO_PV_INT, UFO_PV_FLOAT,
    UFO_PV_BYTES,   // bytes, bytearray, and py2 str (STRING/BINSTRING/SHORT_BINSTRING)
    UFO_PV_STR,     // unicode, as UTF-8
    UFO_PV_TUPLE, UFO_PV_LIST,
    UFO_PV_DICT,    // dict or OrderedDict: ordered (key, value) pairs
    UFO_PV_GLOBAL,  // a whitelisted global that was not called (e.g. numpy.ndarray)
    UFO_PV_NDARRAY, // a numpy array
    UFO_PV_DTYPE,   // a numpy dtype
} ufo_pkind;

typedef struct ufo_pvalue ufo_pvalue;

typedef struct {
    ufo_dtype dtype;
    int ndim;
    int64_t shape[UFO_PICKLE_MAX_NDIM];
    const void *data;   // C order, little-endian, nbytes long; may be unaligned (input view)
    size_t nbytes;
    // internal
    ufo_pvalue *holder; // value whose `owned` buffer is `data`, or NULL
    int built;
} ufo_parray;

struct ufo_pvalue {
    ufo_pkind kind;
    union {
        int64_t i;                                     // BOOL (0 or 1), INT
        double f;                                      // FLOAT
        struct { const char *data; size_t len; } s;    // BYTES, STR: NOT NUL-terminated
        struct { ufo_pvalue **items; size_t n; } seq;  // TUPLE, LIST: n items; DICT: n pairs,
                                                       // key items[2i], value items[2i+1]
        struct { const char *module, *name; } g;       // GLOBAL (NUL-terminated)
        ufo_parray *arr;                               // NDARRAY
        struct { ufo_dtype dtype; char byteorder; } dt; // DTYPE: byteorder '<', '=', '|' ('>' rejected)
    } u;
    // internal bookkeeping
    uint16_t depth;
    uint8_t tag;
    void *owned;
    size_t cap;
};

typedef struct ufo_pickle ufo_pickle;   // one loaded pickle: owns all its values

typedef struct {
    // Called after the loader has decoded [p, p + len) of the input into memory
    // it owns (protocol-2 _codecs.encode strings, Fortran arrays): the caller
    // may drop those input pages (madvise on a read-only file mapping). NULL: none.
    void (*consumed)(void *ctx, const unsigned char *p, size_t len);
    void *ctx;
} ufo_pickle_opts;

// Parses buf[0..n) up to its STOP opcode (trailing bytes are ignored, as
// Python does). `name` prefixes errors ("<name>: pickle: ... at byte N").
// On failure *doc is NULL and ufo_error() says why.
int ufo_pickle_load(const unsigned char *buf, size_t n, const char *name, ufo_pickle **doc);
int ufo_pickle_load_ex(const unsigned char *buf, size_t n, const char *name,
                       const ufo_pickle_opts *opts, ufo_pickle **doc);
void ufo_pickle_free(ufo_pickle *doc);   // NULL is fine
const ufo_pvalue *ufo_pickle_root(const ufo_pickle *doc);
int ufo_pickle_protocol(const ufo_pickle *doc);   // the PROTO opcode's value, 0 if none

const char *ufo_pkind_name(ufo_pkind k);          // "none", "bool", ..., "ndarray"
// 1 if v is a STR (or BYTES) equal to the NUL-terminated s.
int ufo_pvalue_is_str(const ufo_pvalue *v, const char *s);
// The value of the LAST pair of dict d whose key is the string `key`; NULL if none.
const ufo_pvalue *ufo_pdict_get(const ufo_pvalue *d, const char *key);
// Takes ownership of an NDARRAY's data when the document owns it as a whole
// buffer from ufo_alloc (decoded or transposed data): returns it (free with
// free()/ufo_free) and the document no longer frees it; values that shared the
// buffer stay readable only while the caller keeps it. NULL when the data is a
// view into the input or was taken already: copy it instead.
void *ufo_pickle_take_data(ufo_pickle *doc, const ufo_pvalue *arr);
