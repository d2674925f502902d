// Market1501 (and VeRi, veri.c): query and gallery folders of JPEGs whose
// names carry the identity and the camera, read like fast-reid's glob + regex.
#include "base/error.h"
#include "data/data_internal.h"
#include <stdlib.h>
#include <string.h>

static int is_pid_char(char c) { return c == '-' || (c >= '0' && c <= '9'); }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

// Leftmost match of `([-\d]+)_c(\d)`: a maximal run of [-0-9] followed by "_c"
// and a digit (a shorter run can never be followed by '_', so the maximal run
// from each start decides, and a failed run can be skipped whole).
int ufo_parse_market_name(const char *s, int *pid, int *cam) {
    size_t i = 0;
    while (s[i]) {
        if (!is_pid_char(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (is_pid_char(s[j])) j++;
        if (s[j] == '_' && s[j + 1] == 'c' && is_digit(s[j + 2])) {
            // The original then calls int() on the run: "1-2" would raise there.
            if (ufo_parse_int(s + i, j - i, pid) != 0) return -1;
            *cam = s[j + 2] - '0';
            return 0;
        }
        i = j;
    }
    return -1;
}

// Appends every *.jpg of dir (sorted) through parse(); pid -1 is junk and dropped.
int ufo_reid_folder(const char *dir, int (*parse)(const char *, int *, int *), const char *pattern,
                    ufo_items *out) {
    char **names = NULL;
    int n = 0, rc = 0;
    if (ufo_list_jpgs(dir, &names, &n) != 0) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        int pid, cam;
        if (parse(names[i], &pid, &cam) != 0) {
            rc = ufo_errorf("%s/%s: file name does not match '%s'", dir, names[i], pattern);
            break;
        }
        if (pid == -1) continue;   // junk images are ignored
        rc = ufo_items_push(out, dir, names[i], strlen(names[i]), NULL, pid, cam - 1);
    }
    ufo_free_names(names, n);
    return rc;
}

// Query folder then gallery folder; both must hold images.
int ufo_reid_two_folders(const char *qdir, const char *gdir, int (*parse)(const char *, int *, int *),
                         const char *pattern, ufo_eval_set *s) {
    ufo_items items = {0};
    int rc = -1;
    if (ufo_need_dir(qdir) != 0 || ufo_need_dir(gdir) != 0) goto done;
    if (ufo_reid_folder(qdir, parse, pattern, &items) != 0) goto done;
    int nq = items.n;
    if (nq == 0) {
        ufo_errorf("no query images (*.jpg named '%s') in %s", pattern, qdir);
        goto done;
    }
    if (ufo_reid_folder(gdir, parse, pattern, &items) != 0) goto done;
    if (items.n == nq) {
        ufo_errorf("no gallery images (*.jpg named '%s') in %s", pattern, gdir);
        goto done;
    }
    if (ufo_set_take_items(s, &items) != 0) goto done;
    s->n_query = nq;
    rc = 0;
done:
    ufo_items_free(&items);
    return rc;
}

int ufo_load_market(const char *root, ufo_eval_set *s) {
    char *sub = ufo_pathf("%s/Market-1501-v15.09.15", root);
    char *qdir = NULL, *gdir = NULL;
    int rc = -1;
    if (!sub) goto done;
    // fast-reid: the versioned folder if it is one, else the folders directly under the root.
    const char *base = ufo_is_dir(sub) ? sub : root;
    qdir = ufo_pathf("%s/query", base);
    gdir = ufo_pathf("%s/bounding_box_test", base);
    if (!qdir || !gdir) goto done;
    if (base == root && !ufo_is_dir(qdir)) {
        ufo_errorf("missing folder %s (nor %s)", sub, qdir);
        goto done;
    }
    if (ufo_reid_two_folders(qdir, gdir, ufo_parse_market_name, "<pid>_c<cam>", s) != 0) goto done;
    rc = ufo_set_source(s, base);
done:
    free(sub);
    free(qdir);
    free(gdir);
    return rc;
}
