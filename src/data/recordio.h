// MXNet RecordIO (dmlc-core's recordio + MXNet's image record header), the
// format of insightface's face training sets (MS1M-V3: train.rec + train.idx).
//
// train.rec is a sequence of records, every field little-endian:
//     uint32 magic = 0xced7230a
//     uint32 lrecord = (cflag << 29) | length       (length < 2^29)
//     length bytes of data, then zero padding up to a multiple of 4
// cflag 0 is a whole record. The writer never lets the magic word appear at a
// 4-byte-aligned position of a record's data: it cuts the data there, drops the
// magic word and writes the pieces as cflag 1 (first), 2 (middle), 3 (last).
// A reader joins the pieces with the magic word between each two. (Piece
// lengths other than the last are multiples of 4 by construction; this reader
// does not require it.)
//
// train.idx is text, one record a line: `key<TAB>offset` (decimal; offset =
// byte position of the record's first magic word in train.rec). Keys are
// integers (MXIndexedRecordIO's default key_type=int); a repeated key is an
// error here (Python's dict would keep the last one silently).
//
// An image record's data starts with MXNet's IRHeader, struct '<IfQQ' (24 bytes):
//     uint32 flag, float32 label, uint64 id, uint64 id2
// flag 0: `label` is the label. flag > 0: `label` is unused (the writer puts 0)
// and `flag` float32 labels follow the header. The rest is the encoded image.
//
// Every length and offset is checked against the file: a hostile file gives a
// one-line error "<rec>: record <i> (key <k>, offset <o>): ..." and never a
// read outside the mapping. Nothing here decodes images.
#pragma once
#include "base/file.h"
#include <stddef.h>
#include <stdint.h>

#define UFO_RECORDIO_MAGIC 0xced7230au
#define UFO_IRHEADER_SIZE 24

typedef struct {
    char *name;                 // the .rec path (or the name given to open_mem), for errors
    char *idx_name;             // the .idx path, or NULL when the records were scanned
    const unsigned char *data;  // the whole .rec
    size_t size;
    int n;                      // records (idx lines in file order, or scanned records)
    int64_t *keys;              // keys[n]
    uint64_t *offsets;          // offsets[n], each checked: offset + 8 <= size
    int *by_key;                // entry indices sorted by key (for ufo_recordio_find)
    ufo_mapped map_;            // internal: the mapping when opened from a file
} ufo_recordio;

// Opens rec_path (mapped read-only) and idx_path. idx_path NULL: no index, the
// records are found by walking the file from offset 0 and keyed 0, 1, 2, ...
// (what MXRecordIO's sequential reader sees). On failure returns -1 with one
// error line naming the file (and line or record); *r is left empty.
int ufo_recordio_open(ufo_recordio *r, const char *rec_path, const char *idx_path);
// The same on bytes in memory (not copied: keep rec alive until close). idx_text
// NULL: scan. `name` is used in errors (the idx is called "<name>.idx").
int ufo_recordio_open_mem(ufo_recordio *r, const void *rec, size_t rec_size, const char *idx_text,
                          size_t idx_size, const char *name);
void ufo_recordio_close(ufo_recordio *r);   // safe on an empty (zeroed) reader

// Entry index of `key`, or -1 when absent (no error set).
int ufo_recordio_find(const ufo_recordio *r, int64_t key);

// A record's joined data. `data` points into the mapping for a whole record
// (cflag 0); for a split record the pieces are joined into `owned` (malloc'd)
// and data == owned. Free with ufo_record_free (safe on a zeroed record).
typedef struct {
    const unsigned char *data;
    size_t size;
    unsigned char *owned;
} ufo_record;
// Reads entry i (0 <= i < r->n). Thread-safe: the reader is only read.
int ufo_recordio_read(const ufo_recordio *r, int i, ufo_record *rec);
void ufo_record_free(ufo_record *rec);

typedef struct {
    uint32_t flag;
    float label;                 // the header's label field (meaningful when flag == 0)
    uint64_t id, id2;
    const unsigned char *labels; // flag > 0: `flag` float32 LE values (unaligned: use ufo_irheader_label)
    const unsigned char *image;  // the bytes after the header (and the label array)
    size_t image_size;
} ufo_irheader;
// Parses an IRHeader at p[0..n). -1 with the error "IRHeader: ..." when n is too
// short for the header or its label array.
int ufo_irheader_parse(const unsigned char *p, size_t n, ufo_irheader *h);
// Label k: flag == 0 -> `label` (k must be 0); flag > 0 -> labels[k] (k < flag).
float ufo_irheader_label(const ufo_irheader *h, uint32_t k);
// insightface's label of an image record: the header's label, or the first of
// the label array when flag > 0 (`if not isinstance(label, Number): label = label[0]`).
static inline float ufo_irheader_first_label(const ufo_irheader *h) {
    return h->flag > 0 ? ufo_irheader_label(h, 0) : h->label;
}
// ufo_recordio_read + ufo_irheader_parse; errors name the file and the record.
// h's pointers point into rec: free rec when done with h.
int ufo_recordio_read_image(const ufo_recordio *r, int i, ufo_record *rec, ufo_irheader *h);

// insightface's training-set view (MXFaceDataset): if key 0 exists and its
// header has flag > 0, it is the dataset header and the images are keys
// 1 .. int(label[0]) - 1 (each must exist); otherwise every entry, in idx order,
// is an image. Each image's class is its header's first label, which must be a
// whole number in [0, 2^31). Writes malloc'd entry[n] (entry indices) and
// label[n]. Reads every image record's header (one pass over the file).
int ufo_recordio_face_list(const ufo_recordio *r, int **entry, int **label, int *n);

// Printable description of entry i for messages: "<name> record <i> (key <k>)".
const char *ufo_recordio_describe(const ufo_recordio *r, int i, char *buf, size_t cap);
