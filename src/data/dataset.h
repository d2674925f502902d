// Evaluation sets: the twelve test sets of the seed's table (SPEC section 5),
// each read from its usual folder layout under a data root (the
// FASTREID_DATASETS folder) into one description that the embedding and the
// metrics share. The readers never decode an image; they only list files (or,
// for insightface .bin files, point at the encoded images in memory).
//
// Layouts (paths relative to the root):
//   CALFW CPLFW LFW CFP_FF CFP_FP AgeDB_30   (VERIFY)
//       faces_emore_val/<stem>.filelist   one image a line; the first space-separated
//                                         token is a path relative to faces_emore_val/
//       faces_emore_val/<stem>_label.npy  is-same flags (bool or integer array, 1-D)
//     or faces_emore_val/<stem>.bin       insightface's pickle (list of JPEG byte strings,
//                                         list of bools), read by the safe unpickler.
//       stems: calfw cplfw lfw cfp_ff cfp_fp agedb_30. By default the filelist form
//       is used when <stem>.filelist exists, else the .bin (see ufo_eval_opts).
//   Market1501  Market-1501-v15.09.15/{query,bounding_box_test}/*.jpg, or the two folders
//       directly under the root when Market-1501-v15.09.15 is not a folder (as fast-reid).
//       Name pattern <pid>_c<cam> (leftmost match in the file name); camid = cam - 1;
//       pid -1 (junk) dropped, pid 0 (distractors) kept. Files are listed in strcmp
//       order of their names (the original used glob's unsorted directory order).
//   MSMT17  MSMT17_V2/{mask_test_v2, list_query.txt, list_gallery.txt} or
//       MSMT17_V1/{test, list_query.txt, list_gallery.txt}; V2 is tried first (the
//       original UFO code reads V2 only; fast-reid tries V1 first), opts can force one.
//       Lines `relpath pid`; camid = (third '_'-separated field of relpath) - 1.
//   VeRi  veri/{image_query,image_test}/*.jpg, pattern <pid>_c<ccc>; camid = ccc - 1.
//   LargeVehicleID  vehicleid/image/<name>.jpg listed by
//       vehicleid/train_test_split/test_list_2400.txt (`name vid`). Loaded WHOLE:
//       n_query = 0, pid = vid, camid = the image's number (so the same-camera rule
//       never fires); ufo_vehicleid_split() makes the query/gallery split.
//   LargeVeRiWild  VERI-Wild/images/<vid>/<imgid>.jpg;
//       VERI-Wild/train_test_split/test_10000_query.txt and test_10000.txt (`vid/imgid`;
//       the UFO release's names test_10000_id_query.txt / test_10000_id.txt are accepted
//       when the first are absent); cameras from VERI-Wild/train_test_split/vehicle_info.txt
//       (`vid/imgid;camera;...`; a first line that is not such a record is a header and
//       skipped). pid = the list's vid; the path's folder is vehicle_info's vid.
//   SOP  Stanford_Online_Products/test.txt, lines `relpath,label` (the original reads no
//       header; a first line whose label is not an integer is taken as a header and
//       skipped). When test.txt is absent, the dataset's own Ebay_test.txt
//       (`image_id class_id super_class_id path`, header line) is read instead.
//
// Lists: CRLF or LF line ends, leading/trailing blanks, and blank lines are accepted;
// every other line that does not parse is an error "<file>:<line>: expected ...".
// A missing folder or list is an error naming its full path. All errors are one line
// (ufo_error()), and on failure the set is left empty (safe to free).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum {
    UFO_EVAL_VERIFY,     // face pairs: images (2i, 2i+1), issame[i]
    UFO_EVAL_REID,       // [0, n_query) queries, [n_query, n) gallery; pid, camid
    UFO_EVAL_RETRIEVAL,  // SOP: every image a query against all others; pid = label
} ufo_eval_kind;

typedef enum {
    UFO_FACE_AUTO = 0,   // <stem>.filelist + <stem>_label.npy if the filelist exists, else <stem>.bin
    UFO_FACE_FILELIST,   // only the filelist form
    UFO_FACE_BIN,        // only the insightface .bin form
} ufo_face_source;

typedef struct {
    ufo_face_source face_source;
    int msmt_version;    // 0: MSMT17_V2 if present, else MSMT17_V1; 1 or 2: only that one
} ufo_eval_opts;         // NULL or zero-initialised = defaults

typedef struct {
    char name[32];       // canonical spelling: CALFW ... SOP
    ufo_eval_kind kind;
    int n;               // images
    // Image sources: exactly one of these is non-NULL.
    char **paths;        // n paths (root joined), NUL-terminated
    const unsigned char **blobs;   // .bin sets: n encoded images in memory
    size_t *blob_sizes;
    void *blob_owner;    // internal: keeps blobs alive (file mapping + pickle)
    // VERIFY: n is even, issame[n / 2] is 0/1; pid and camid are NULL.
    uint8_t *issame;
    // REID: n_query queries first. RETRIEVAL: n_query = n; camid all 0.
    // LargeVehicleID: n_query = 0 until split (see ufo_vehicleid_split).
    int n_query;
    int *pid;
    int *camid;
    char *source;        // what was read: the list file or folder (for reports, cache keys)
    void *priv_;         // internal: the path strings
} ufo_eval_set;

// The twelve names in the seed's table order:
// CALFW CPLFW LFW CFP_FF CFP_FP AgeDB_30 Market1501 MSMT17 VeRi LargeVehicleID LargeVeRiWild SOP.
const char *const *ufo_eval_set_names(int *n);
// Index into ufo_eval_set_names() of `name` (ASCII case-insensitive), or -1.
int ufo_eval_set_find(const char *name);
const char *ufo_eval_kind_name(ufo_eval_kind k);  // "verify", "reid", "retrieval"

// Reads set `name` from the data root `root` (the FASTREID_DATASETS folder).
// opts may be NULL. On failure returns -1, ufo_error() says why, *s is empty.
int ufo_eval_set_load(const char *name, const char *root, const ufo_eval_opts *opts, ufo_eval_set *s);
void ufo_eval_set_free(ufo_eval_set *s);   // frees everything; the struct is zeroed

// VehicleID's protocol on a whole loaded LargeVehicleID set (pid = vehicle id):
// shuffle all images, then walk them in shuffled order: the first image of each
// vehicle goes to the gallery, every later one to the query set. Writes
// order_out[n]: the queries' image indices (in shuffled order) then the gallery's,
// and *n_query_out. So one embedding pass can be split any number of times.
//
// The shuffle is NOT numpy's or Python's random.shuffle (the original is unseeded
// anyway): a ufo_rng (xoshiro256** seeded with splitmix64 from `seed`) drives a
// Fisher-Yates shuffle of order = [0, 1, ..., n-1]:
//     for i = n-1 down to 1: j = below(i + 1); swap(order[i], order[j])
// with below(b) = the first r = ufo_rng_next() with r >= (2^64 mod b), taken mod b
// (unbiased rejection sampling). tools/make_eval_tree.py has the same in Python.
// Returns -1 (with an error) if the set has no pids.
int ufo_vehicleid_split(const ufo_eval_set *all, uint64_t seed, int *order_out, int *n_query_out);
