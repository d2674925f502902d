// Training sets (SPEC section 4): the seven sets of the AllInOne recipe read
// from their usual layouts under a data root (the FASTREID_DATASETS folder),
// plus a generic image-folder layout. A loaded set lists its images (file
// paths, or records of a RecordIO file), each image's raw identity, its
// contiguous class id and its camera. Nothing is decoded until
// ufo_trainset_read.
//
// Set names (ASCII case-insensitive) and layouts, paths relative to the root:
//   MS1M-V3 (aliases MS1MV3, ms1m-retinaface-t1)   face
//       The first of ms1m-retinaface-t1/, ms1mv3/, MS1M-V3/ that is a folder. A
//       folder with train.rec is insightface's RecordIO set: train.rec + train.idx,
//       images and labels as insightface's MXFaceDataset reads them (record 0 a
//       header with flag > 0: images are keys 1 .. label[0]-1; else every record),
//       raw id = the IRHeader label (the first one when flag > 0). A folder
//       without train.rec is read as an image folder (<identity>/<image>), the
//       layout of the UFO release's ms1mv3 reader.
//   Market1501   Market-1501-v15.09.15/bounding_box_train/*.jpg (or bounding_box_train
//       directly under the root, as fast-reid). Name pattern <pid>_c<cam>; pid -1
//       (junk) dropped; camid = cam - 1.
//   MSMT17   MSMT17_V2/{mask_train_v2, list_train.txt, list_val.txt}, else
//       MSMT17_V1/{train, ...}. list_train.txt and list_val.txt (`relpath pid`) are
//       both read, train first: the val images belong to the train identities
//       (fast-reid adds them under combineall; SPEC section 4 trains on both).
//       camid = (third '_'-separated field of relpath) - 1.
//   VeRi   veri/image_train/*.jpg, pattern <pid>_c<ccc>; camid = ccc - 1.
//   VehicleID   vehicleid/train_test_split/train_list.txt (`name vid`) ->
//       vehicleid/image/<name>.jpg; no cameras (camid -1).
//   VeRiWild (alias VeRi-Wild)   VERI-Wild/train_test_split/train_list.txt
//       (`vid/imgid`) -> VERI-Wild/images/<vehicle_info vid>/<imgid>.jpg; camid from
//       VERI-Wild/train_test_split/vehicle_info.txt.
//   SOP   Stanford_Online_Products/train.txt (`relpath,label`, the UFO/fast-reid
//       reader), else the dataset's own Ebay_train.txt (`image_id class_id
//       super_class_id path`, header line); no cameras.
//   folder:<path>   <path> itself (not under the root): if <path>/train.rec exists,
//       a RecordIO set as above; else an image folder: every non-hidden
//       sub-folder is an identity (strcmp order; raw id = its position among the
//       identities that hold images), every non-hidden *.jpg/*.jpeg/*.png
//       (any case) in it an image (strcmp order). Like torchvision's ImageFolder.
//
// Class ids: the sorted unique raw ids of the set mapped to 0 .. C-1 (fast-reid's
// relabel, but numeric order: fast-reid sorts the "<set>_<pid>" strings). Errors
// are one line naming the missing or bad file; on failure the set is empty.
#pragma once
#include "image/image.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[64];        // the set's canonical name (MS1M-V3, Market1501, ..., folder)
    char *source;         // what was read (list file, folder or .rec)
    int first, n;         // its images are [first, first + n) of the whole set
    int class_offset;     // its class ids are [class_offset, class_offset + num_classes)
    int num_classes;
} ufo_trainset_part;

typedef struct {
    char name[128];       // a set's name, or the parts' names joined by '+'
    int n;                // images
    int num_classes;      // C: label[i] in [0, C)
    int *label;           // contiguous class id of image i (offset per part after concat)
    int *raw_id;          // the layout's identity (pid, vid, class, face label, folder index)
    int *camid;           // 0-based camera, -1 where the layout has none
    int n_parts;
    ufo_trainset_part *parts;
    void *priv_;          // internal: image sources
} ufo_trainset;

// The canonical set names: MS1M-V3 Market1501 MSMT17 VeRi VehicleID VeRiWild SOP.
const char *const *ufo_trainset_names(int *n);

// Loads set `name` from the data root (NULL or "": $FASTREID_DATASETS, else
// "datasets"); "folder:<path>" ignores the root. -1 with one error line on failure.
int ufo_trainset_load(const char *name, const char *root, ufo_trainset *s);

// The sets of one task, as SPEC section 4 trains them, concatenated in this order:
//   face = MS1M-V3; person = Market1501 + MSMT17; vehicle = VeRi + VehicleID +
//   VeRiWild; product = SOP.
// `task` may instead be a '+'-separated list of set names ("Market1501+MSMT17",
// "folder:/data/x+folder:/data/y").
int ufo_trainset_load_task(const char *task, const char *root, ufo_trainset *s);

// Concatenates parts[0..n) into dst in that order: image indices follow one
// another and each part's class ids are offset by the classes of the parts
// before it (person: Market1501 0..750, MSMT17 751..1791). The parts are MOVED:
// on success each is left empty (zeroed); on failure they are untouched and dst
// is empty.
int ufo_trainset_concat(ufo_trainset *dst, ufo_trainset *parts, int n);

// Image i's file path, or NULL when it is a record of a RecordIO file.
const char *ufo_trainset_path(const ufo_trainset *s, int i);
// A printable name for image i: its path, or "<rec> record <j> (key <k>)".
const char *ufo_trainset_describe(const ufo_trainset *s, int i, char *buf, size_t cap);
// Decodes image i (file or record) to RGB8. Thread-safe (the set is only read).
// Errors name the image; a corrupt image is an ordinary error here (the
// loader counts, logs and skips it).
int ufo_trainset_read(const ufo_trainset *s, int i, ufo_image *img);

void ufo_trainset_free(ufo_trainset *s);   // frees everything; the struct is zeroed
