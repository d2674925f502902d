// The list-file and file-name parsers behind the evaluation-set readers, each
// working on a buffer so that they can be fuzzed and tested without files.
// `name` (the file's path) starts every error: "<name>:<line>: expected ...".
// Text need not be NUL-terminated; a NUL byte inside a line is an error.
// On failure the parsers return -1 and leave what they appended so far in
// `out`; the caller frees it as usual.
#pragma once
#include "formats/pickle.h"
#include <stddef.h>
#include <stdint.h>

// A growing list of (path, pid, camid); the paths live in one arena.
typedef struct {
    int n, cap;
    size_t *off;          // offset of item i's path in arena
    int *pid, *camid;
    char *arena;
    size_t alen, acap;
} ufo_items;

void ufo_items_free(ufo_items *l);   // and zeroes it; a zeroed ufo_items is empty
// Appends join(dir, rel[0..rel_len) + suffix): os.path.join's rule, i.e. an
// absolute rel replaces dir, and dir NULL or "" gives rel alone. suffix may be NULL.
int ufo_items_push(ufo_items *l, const char *dir, const char *rel, size_t rel_len, const char *suffix,
                   int pid, int camid);
static inline const char *ufo_items_path(const ufo_items *l, int i) { return l->arena + l->off[i]; }

// Line reader: LF or CRLF; each line comes back with surrounding blanks
// (space, tab, CR, VT, FF) stripped; lineno is 1-based. `name` is for errors.
typedef struct {
    const char *p, *end;
    int lineno;
    const char *name;
} ufo_lines;
void ufo_lines_init(ufo_lines *it, const char *text, size_t n, const char *name);
// 1: a line (possibly empty) in *s, *len; 0: the end; -1: a NUL byte in the line (error set).
int ufo_lines_next(ufo_lines *it, const char **s, size_t *len);

// Strict decimal int: optional sign, digits only, fits in int. 0 ok, -1 not.
int ufo_parse_int(const char *s, size_t len, int *out);
// Splits on runs of blanks; stores up to max tokens; returns how many there are.
int ufo_split_ws(const char *s, size_t len, const char **tok, size_t *tlen, int max);
// A printable copy of s[0..len) for error messages, cut to fit cap (with "...").
const char *ufo_snippet(const char *s, size_t len, char *buf, size_t cap);

// faces_emore_val/<stem>.filelist: first token of each non-blank line, joined to dir.
int ufo_parse_face_filelist(const char *text, size_t n, const char *name, const char *dir, ufo_items *out);
// MSMT17 list_query.txt / list_gallery.txt: `relpath pid`; camid = third '_' field - 1.
int ufo_parse_msmt_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out);
// VehicleID test_list_*.txt: `name vid` -> image_dir/<name>.jpg, pid vid, camid int(name).
int ufo_parse_vehicleid_list(const char *text, size_t n, const char *name, const char *image_dir, ufo_items *out);
// SOP test.txt: `relpath,label` (split at the last comma); a first line whose label
// is not an integer is a header and skipped.
int ufo_parse_sop_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out);
// SOP Ebay_test.txt: header line, then `image_id class_id super_class_id path`.
int ufo_parse_sop_ebay_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out);
// A SOP split ("train", "test") from <root>/Stanford_Online_Products: <split>.txt
// (path,label) or else the original Ebay_<split>.txt. *src gets the list's path
// (malloc'd; NULL on failure), for messages and provenance.
int ufo_read_sop_split(const char *root, const char *split, ufo_items *items, char **src);

// VeRi-Wild vehicle_info.txt: image id -> (folder vid, camera).
typedef struct {
    int n;
    struct ufo_vw_entry *e;   // sorted by image id
    char *arena;
} ufo_veriwild_info;
// `vid/imgid;camera;...` per line; a first line that is not such a record is a
// header and skipped; a repeated image id is an error (the original asserts).
int ufo_parse_veriwild_info(const char *text, size_t n, const char *name, ufo_veriwild_info *info);
void ufo_veriwild_info_free(ufo_veriwild_info *info);
// test_*_query.txt / test_*.txt: `vid/imgid[.ext]` -> image_dir/<info vid>/<imgid>.jpg,
// pid = vid, camid = info camera. An image id missing from info is an error.
int ufo_parse_veriwild_list(const char *text, size_t n, const char *name, const ufo_veriwild_info *info,
                            const char *image_dir, ufo_items *out);

// File names (basename, NUL-terminated). 0 on a match, -1 otherwise (no error set).
// Market: leftmost `([-\d]+)_c(\d)`, pid must be an int (e.g. -1, 0002); cam = the digit.
int ufo_parse_market_name(const char *base, int *pid, int *cam);
// VeRi: leftmost `(\d+)_c(\d\d\d)`.
int ufo_parse_veri_name(const char *base, int *pid, int *cam);

// insightface <stem>.bin: a pickle of (list of bytes, list of bools) [or an ndarray
// of bools]; the image count must be twice the flag count. blobs point into buf or
// into doc: keep both alive until ufo_face_bin_free.
typedef struct {
    int n;                         // images
    const unsigned char **blobs;
    size_t *sizes;
    uint8_t *issame;               // n / 2
    ufo_pickle *doc;
} ufo_face_bin;
int ufo_parse_face_bin(const unsigned char *buf, size_t n, const char *name, ufo_face_bin *out);
void ufo_face_bin_free(ufo_face_bin *b);
