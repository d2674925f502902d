// Glue shared by the evaluation-set readers (src/data/*.c); not a public API.
#pragma once
#include "base/file.h"
#include "data/dataset.h"
#include "data/lists.h"

// What a .bin set's blobs point into.
typedef struct {
    ufo_mapped map;
    ufo_pickle *doc;
} ufo_blob_owner;

// malloc'd printf; NULL with an error on failure.
char *ufo_pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ufo_is_dir(const char *path);
int ufo_is_file(const char *path);   // exists and is not a folder
// 0 if path is a folder, else the error "missing folder <path>" (or "... is not a folder").
int ufo_need_dir(const char *path);
// Reads a list file; a missing one is the error "missing list <path>".
int ufo_read_list(const char *path, char **text, size_t *n);
// Sorted (strcmp) names of the `*.jpg` entries of dir (no hidden files), as glob would list them.
int ufo_list_jpgs(const char *dir, char ***names, int *n);
// Sorted names of the non-hidden entries of dir for which keep(dir, name) is 1
// (keep returns -1 to fail the listing, with ufo_error set).
int ufo_list_dir(const char *dir, int (*keep)(const char *dir, const char *name), char ***names, int *n);
void ufo_free_names(char **names, int n);

// ReID folders of *.jpg whose names give (pid, cam) through parse (0 on a match);
// camid = cam - 1; pid -1 dropped; a name that does not match is an error.
int ufo_reid_folder(const char *dir, int (*parse)(const char *, int *, int *), const char *pattern,
                    ufo_items *out);
// Query folder then gallery folder into s (n_query set); neither may be empty.
int ufo_reid_two_folders(const char *qdir, const char *gdir, int (*parse)(const char *, int *, int *),
                         const char *pattern, ufo_eval_set *s);

// Moves items' paths, pids and camids into s (s->n = items->n); items is left empty.
int ufo_set_take_items(ufo_eval_set *s, ufo_items *items);
int ufo_set_source(ufo_eval_set *s, const char *source);

// One loader per family. s is zeroed with name and kind set; errors need not
// name the set (the caller prefixes "<NAME>: ").
int ufo_load_face(const char *stem, const char *root, const ufo_eval_opts *o, ufo_eval_set *s);
int ufo_load_market(const char *root, ufo_eval_set *s);
int ufo_load_msmt(const char *root, const ufo_eval_opts *o, ufo_eval_set *s);
int ufo_load_veri(const char *root, ufo_eval_set *s);
int ufo_load_vehicleid(const char *root, ufo_eval_set *s);
int ufo_load_veriwild(const char *root, ufo_eval_set *s);
int ufo_load_sop(const char *root, ufo_eval_set *s);
