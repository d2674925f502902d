#include "data/image_files.h"
#include "base/error.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_DEPTH 64   // deeper trees are refused rather than recursed into

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int push(char ***paths, int *n, int *cap, char *p) {
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 256;
        char **np = *cap < (1 << 29) ? realloc(*paths, (size_t)c * sizeof *np) : NULL;
        if (!np) {
            free(p);
            return ufo_errorf(*cap < (1 << 29) ? "out of memory listing images" : "too many image files");
        }
        *paths = np;
        *cap = c;
    }
    (*paths)[(*n)++] = p;
    return 0;
}

static int walk(const char *dir, int depth, char ***paths, int *n, int *cap) {
    if (depth > MAX_DEPTH) return ufo_errorf("%s: folders nested more than %d deep", dir, MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d) return ufo_errorf("cannot open folder %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.') continue;
        size_t len = strlen(dir) + 1 + strlen(nm) + 1;
        char *p = malloc(len);
        if (!p) {
            rc = ufo_errorf("out of memory listing %s", dir);
            break;
        }
        snprintf(p, len, "%s/%s", dir, nm);
        struct stat ls, st;
        if (lstat(p, &ls) != 0 || (S_ISLNK(ls.st_mode) && stat(p, &st) != 0)) {
            free(p);   // vanished, or a dangling link: not an image we could read anyway
            continue;
        }
        if (!S_ISLNK(ls.st_mode)) st = ls;
        if (S_ISDIR(st.st_mode)) {
            if (!S_ISLNK(ls.st_mode)) rc = walk(p, depth + 1, paths, n, cap);
            free(p);
        } else if (S_ISREG(st.st_mode) && has_image_ext(nm)) {
            rc = push(paths, n, cap, p);
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_path(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int ufo_find_images(const char *dir, char ***paths, int *n, int *cap) {
    int first = *n;
    // "photos/" and "photos" list the same paths, without a double slash.
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    char *root = strndup(dir, len);
    if (!root) return ufo_errorf("out of memory");
    int rc = walk(root, 0, paths, n, cap);
    free(root);
    if (rc == 0 && *n - first > 1) qsort(*paths + first, (size_t)(*n - first), sizeof **paths, cmp_path);
    return rc;
}
