// MSMT17: MSMT17_V1/{test,list_query.txt,list_gallery.txt} or
// MSMT17_V2/{mask_test_v2,...}; list lines `relpath pid`.
#include "base/error.h"
#include "data/data_internal.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int ufo_parse_msmt_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out) {
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
        int pid;
        if (ufo_split_ws(s, len, tok, tl, 2) != 2 || ufo_parse_int(tok[1], tl[1], &pid) != 0)
            return ufo_errorf("%s:%d: expected '<path> <pid>', found '%s'", name, it.lineno,
                              ufo_snippet(s, len, snip, sizeof snip));
        // camid = int(relpath.split('_')[2]) - 1, on the whole relative path as the original.
        const char *f = tok[0], *e = tok[0] + tl[0];
        int field = 0;
        while (field < 2 && f < e) {
            const char *u = memchr(f, '_', (size_t)(e - f));
            if (!u) break;
            f = u + 1;
            field++;
        }
        const char *fe = field == 2 ? memchr(f, '_', (size_t)(e - f)) : NULL;
        if (!fe) fe = e;
        int cam;
        if (field != 2 || ufo_parse_int(f, (size_t)(fe - f), &cam) != 0 || cam == INT_MIN)
            return ufo_errorf("%s:%d: cannot read the camera (third '_' field) of '%s'", name, it.lineno,
                              ufo_snippet(tok[0], tl[0], snip, sizeof snip));
        if (ufo_items_push(out, dir, tok[0], tl[0], NULL, pid, cam - 1) != 0) return -1;
    }
    return r;
}

static int load_lists(const char *main_dir, const char *test_dir, ufo_eval_set *s) {
    char *q = ufo_pathf("%s/list_query.txt", main_dir);
    char *g = ufo_pathf("%s/list_gallery.txt", main_dir);
    char *qt = NULL, *gt = NULL;
    size_t qn = 0, gn = 0;
    ufo_items items = {0};
    int rc = -1;
    if (!q || !g) goto done;
    if (ufo_need_dir(test_dir) != 0) goto done;
    if (ufo_read_list(q, &qt, &qn) != 0 || ufo_read_list(g, &gt, &gn) != 0) goto done;
    if (ufo_parse_msmt_list(qt, qn, q, test_dir, &items) != 0) goto done;
    int nq = items.n;
    if (nq == 0) {
        ufo_errorf("%s lists no images", q);
        goto done;
    }
    if (ufo_parse_msmt_list(gt, gn, g, test_dir, &items) != 0) goto done;
    if (items.n == nq) {
        ufo_errorf("%s lists no images", g);
        goto done;
    }
    if (ufo_set_take_items(s, &items) != 0 || ufo_set_source(s, main_dir) != 0) goto done;
    s->n_query = nq;
    rc = 0;
done:
    free(q);
    free(g);
    free(qt);
    free(gt);
    ufo_items_free(&items);
    return rc;
}

int ufo_load_msmt(const char *root, const ufo_eval_opts *o, ufo_eval_set *s) {
    char *v1 = ufo_pathf("%s/MSMT17_V1", root);
    char *v2 = ufo_pathf("%s/MSMT17_V2", root);
    char *t1 = ufo_pathf("%s/MSMT17_V1/test", root);
    char *t2 = ufo_pathf("%s/MSMT17_V2/mask_test_v2", root);
    int rc = -1;
    if (!v1 || !v2 || !t1 || !t2) goto done;
    int v = o->msmt_version;
    if (v != 0 && v != 1 && v != 2) {
        ufo_errorf("unknown MSMT17 version %d (1 or 2)", v);
        goto done;
    }
    if (v == 0) {
        // The UFO release reads MSMT17_V2 only; fast-reid takes the first of V1, V2.
        if (ufo_is_dir(v2)) v = 2;
        else if (ufo_is_dir(v1)) v = 1;
        else {
            ufo_errorf("missing folder %s (nor %s)", v2, v1);
            goto done;
        }
    }
    const char *main_dir = v == 2 ? v2 : v1;
    if (ufo_need_dir(main_dir) != 0) goto done;
    rc = load_lists(main_dir, v == 2 ? t2 : t1, s);
done:
    free(v1);
    free(v2);
    free(t1);
    free(t2);
    return rc;
}
