// The image files under a folder, for `ufo embed DIR`: what fast-reid's and
// insightface's demo scripts take as input. Not an evaluation-set reader: no
// layout, no labels, only files whose names end in .jpg, .jpeg or .png (any
// case: the decoders read JPEG and PNG), at any depth.
#pragma once

// Appends to *paths (growing *n, *cap; all may start NULL/0) the paths
// "<dir>/<relative path>" of the image files under dir, sorted by strcmp of
// the whole path, so the order is the same on every file system. Hidden
// entries (names starting with '.') are skipped, and so are symbolic links to
// folders (a link back up the tree would never end); links to files count.
// 0 on success (possibly with no file found); -1 with ufo_error set when dir
// or a folder below it cannot be read, or memory runs out. On failure the
// entries appended so far stay in *paths (the caller frees them).
int ufo_find_images(const char *dir, char ***paths, int *n, int *cap);
