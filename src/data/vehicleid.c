// VehicleID (the Large test list): vehicleid/image/<name>.jpg listed by
// vehicleid/train_test_split/test_list_2400.txt, and its seeded split.
#include "base/error.h"
#include "base/rng.h"
#include "data/data_internal.h"
#include <stdlib.h>
#include <string.h>

int ufo_parse_vehicleid_list(const char *text, size_t n, const char *name, const char *image_dir, ufo_items *out) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, name);
    const char *s;
    size_t len;
    int r;
    char snip[64];
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        const char *tok[2];
        size_t tl[2];
        int vid, num;
        if (ufo_split_ws(s, len, tok, tl, 2) != 2 || ufo_parse_int(tok[1], tl[1], &vid) != 0)
            return ufo_errorf("%s:%d: expected '<image> <vehicle id>', found '%s'", name, it.lineno,
                              ufo_snippet(s, len, snip, sizeof snip));
        // The camera id is the image's own number (int(name) in the original).
        if (ufo_parse_int(tok[0], tl[0], &num) != 0)
            return ufo_errorf("%s:%d: image name '%s' is not a number", name, it.lineno,
                              ufo_snippet(tok[0], tl[0], snip, sizeof snip));
        if (ufo_items_push(out, image_dir, tok[0], tl[0], ".jpg", vid, num) != 0) return -1;
    }
    return r;
}

int ufo_load_vehicleid(const char *root, ufo_eval_set *s) {
    char *dir = ufo_pathf("%s/vehicleid", root);
    char *img = ufo_pathf("%s/vehicleid/image", root);
    char *list = ufo_pathf("%s/vehicleid/train_test_split/test_list_2400.txt", root);
    char *text = NULL;
    size_t n = 0;
    ufo_items items = {0};
    int rc = -1;
    if (!dir || !img || !list) goto done;
    if (ufo_need_dir(dir) != 0 || ufo_need_dir(img) != 0) goto done;
    if (ufo_read_list(list, &text, &n) != 0) goto done;
    if (ufo_parse_vehicleid_list(text, n, list, img, &items) != 0) goto done;
    if (items.n == 0) {
        ufo_errorf("%s lists no images", list);
        goto done;
    }
    if (ufo_set_take_items(s, &items) != 0 || ufo_set_source(s, list) != 0) goto done;
    s->n_query = 0;   // split later: ufo_vehicleid_split
    rc = 0;
done:
    free(dir);
    free(img);
    free(list);
    free(text);
    ufo_items_free(&items);
    return rc;
}

// Unbiased draw in [0, bound): reject r < 2^64 mod bound, then r mod bound.
static uint64_t below(ufo_rng *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;   // == 2^64 mod bound
    for (;;) {
        uint64_t x = ufo_rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

typedef struct {
    int pid, idx;
} pid_idx;

static int cmp_pid_idx(const void *a, const void *b) {
    const pid_idx *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int ufo_vehicleid_split(const ufo_eval_set *all, uint64_t seed, int *order_out, int *n_query_out) {
    int n = all->n;
    if (!all->pid || n <= 0) return ufo_errorf("%s: VehicleID split needs a loaded set with vehicle ids", all->name);
    int *perm = malloc((size_t)n * sizeof *perm);
    pid_idx *byp = malloc((size_t)n * sizeof *byp);
    int *dense = malloc((size_t)n * sizeof *dense);
    unsigned char *seen = calloc((size_t)n, 1);
    if (!perm || !byp || !dense || !seen) {
        free(perm);
        free(byp);
        free(dense);
        free(seen);
        return ufo_errorf("out of memory");
    }
    // Dense vehicle numbers so that "seen" is a flag array.
    for (int i = 0; i < n; i++) byp[i] = (pid_idx){all->pid[i], i};
    qsort(byp, (size_t)n, sizeof *byp, cmp_pid_idx);
    for (int i = 0, d = -1; i < n; i++) {
        if (i == 0 || byp[i].pid != byp[i - 1].pid) d++;
        dense[byp[i].idx] = d;
    }
    ufo_rng r;
    ufo_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)below(&r, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    // First image of each vehicle (in shuffled order) -> gallery, the rest -> query.
    int nq = 0;
    for (int i = 0; i < n; i++)
        if (seen[dense[perm[i]]]) order_out[nq++] = perm[i];
        else seen[dense[perm[i]]] = 1;
    memset(seen, 0, (size_t)n);
    for (int i = 0, g = nq; i < n; i++)
        if (!seen[dense[perm[i]]]) {
            seen[dense[perm[i]]] = 1;
            order_out[g++] = perm[i];
        }
    *n_query_out = nq;
    free(perm);
    free(byp);
    free(dense);
    free(seen);
    return 0;
}
