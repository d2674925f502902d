// VeRi-Wild (the Large test split): VERI-Wild/images/<vid>/<imgid>.jpg, lists
// of `vid/imgid`, cameras from vehicle_info.txt (`vid/imgid;camera;...`).
#include "base/error.h"
#include "data/data_internal.h"
#include <stdlib.h>
#include <string.h>

struct ufo_vw_entry {
    const char *id;       // image id (into info->arena), not NUL-terminated
    const char *vid;      // folder vid
    unsigned id_len, vid_len;
    int camid, lineno;
};

static int cmp_span(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return (al > bl) - (al < bl);
}

static int cmp_entry(const void *pa, const void *pb) {
    const struct ufo_vw_entry *a = pa, *b = pb;
    int c = cmp_span(a->id, a->id_len, b->id, b->id_len);
    if (c) return c;
    return (a->lineno > b->lineno) - (a->lineno < b->lineno);
}

// One record: `vid/imgid;camera[;...]`. 0 ok, -1 not a record (no error set).
static int parse_record(const char *s, size_t len, struct ufo_vw_entry *e) {
    const char *semi = memchr(s, ';', len);
    if (!semi) return -1;
    const char *key = s, *ke = semi;
    while (ke > key && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
    const char *slash = memchr(key, '/', (size_t)(ke - key));
    if (!slash || slash == key || slash + 1 == ke || memchr(slash + 1, '/', (size_t)(ke - slash - 1))) return -1;
    const char *c = semi + 1, *end = s + len;
    const char *ce = memchr(c, ';', (size_t)(end - c));
    if (!ce) ce = end;
    while (c < ce && (*c == ' ' || *c == '\t')) c++;
    while (ce > c && (ce[-1] == ' ' || ce[-1] == '\t')) ce--;
    if (ufo_parse_int(c, (size_t)(ce - c), &e->camid) != 0) return -1;
    e->vid = key;
    e->vid_len = (unsigned)(slash - key);
    e->id = slash + 1;
    e->id_len = (unsigned)(ke - slash - 1);
    return 0;
}

int ufo_parse_veriwild_info(const char *text, size_t n, const char *name, ufo_veriwild_info *info) {
    memset(info, 0, sizeof *info);
    if (n >= (1u << 31)) return ufo_errorf("%s: file too large", name);
    info->arena = malloc(n + 1);
    if (!info->arena) return ufo_errorf("%s: out of memory", name);
    if (n) memcpy(info->arena, text, n);
    info->arena[n] = 0;
    ufo_lines it;
    ufo_lines_init(&it, info->arena, n, name);
    const char *s;
    size_t len;
    int r, cap = 0;
    char snip[64];
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        struct ufo_vw_entry e;
        if (parse_record(s, len, &e) != 0) {
            if (it.lineno == 1) continue;   // the header "id/image;Camera ID;Time;Model;Type;Color"
            r = ufo_errorf("%s:%d: expected '<vid>/<image id>;<camera>;...', found '%s'", name, it.lineno,
                           ufo_snippet(s, len, snip, sizeof snip));
            break;
        }
        e.lineno = it.lineno;
        if (info->n == cap) {
            cap = cap ? cap * 2 : 1024;
            struct ufo_vw_entry *ne = realloc(info->e, (size_t)cap * sizeof *ne);
            if (!ne) {
                r = ufo_errorf("%s: out of memory", name);
                break;
            }
            info->e = ne;
        }
        info->e[info->n++] = e;
    }
    if (r == 0 && info->n > 1) {
        qsort(info->e, (size_t)info->n, sizeof *info->e, cmp_entry);
        for (int i = 1; i < info->n; i++) {
            const struct ufo_vw_entry *a = &info->e[i - 1], *b = &info->e[i];
            if (cmp_span(a->id, a->id_len, b->id, b->id_len) == 0) {
                r = ufo_errorf("%s:%d: image id '%s' repeats line %d", name, b->lineno,
                               ufo_snippet(b->id, b->id_len, snip, sizeof snip), a->lineno);
                break;
            }
        }
    }
    if (r != 0) {
        ufo_veriwild_info_free(info);
        return -1;
    }
    return 0;
}

void ufo_veriwild_info_free(ufo_veriwild_info *info) {
    free(info->e);
    free(info->arena);
    memset(info, 0, sizeof *info);
}

static const struct ufo_vw_entry *find(const ufo_veriwild_info *info, const char *id, size_t len) {
    int lo = 0, hi = info->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = cmp_span(info->e[mid].id, info->e[mid].id_len, id, len);
        if (c == 0) return &info->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int ufo_parse_veriwild_list(const char *text, size_t n, const char *name, const ufo_veriwild_info *info,
                            const char *image_dir, ufo_items *out) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, name);
    const char *s;
    size_t len;
    int r;
    char snip[64];
    char *rel = NULL;
    size_t rel_cap = 0;
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        // vid = int(line.split('/')[0]); imgid = line.split('/')[1].split('.')[0]
        const char *slash = memchr(s, '/', len), *end = s + len;
        int vid;
        if (!slash || ufo_parse_int(s, (size_t)(slash - s), &vid) != 0) {
            r = ufo_errorf("%s:%d: expected '<vid>/<image id>', found '%s'", name, it.lineno,
                           ufo_snippet(s, len, snip, sizeof snip));
            break;
        }
        const char *id = slash + 1, *ie = memchr(id, '/', (size_t)(end - id));
        if (!ie) ie = end;
        const char *dot = memchr(id, '.', (size_t)(ie - id));
        if (dot) ie = dot;
        if (ie == id) {
            r = ufo_errorf("%s:%d: expected '<vid>/<image id>', found '%s'", name, it.lineno,
                           ufo_snippet(s, len, snip, sizeof snip));
            break;
        }
        const struct ufo_vw_entry *e = find(info, id, (size_t)(ie - id));
        if (!e) {
            r = ufo_errorf("%s:%d: image id '%s' is not in vehicle_info.txt", name, it.lineno,
                           ufo_snippet(id, (size_t)(ie - id), snip, sizeof snip));
            break;
        }
        // The path's folder is vehicle_info's vid, as in the original.
        size_t need = (size_t)e->vid_len + 1 + e->id_len;
        if (need > rel_cap) {
            char *nr = realloc(rel, need);
            if (!nr) {
                r = ufo_errorf("%s: out of memory", name);
                break;
            }
            rel = nr;
            rel_cap = need;
        }
        memcpy(rel, e->vid, e->vid_len);
        rel[e->vid_len] = '/';
        memcpy(rel + e->vid_len + 1, e->id, e->id_len);
        if (ufo_items_push(out, image_dir, rel, need, ".jpg", vid, e->camid) != 0) {
            r = -1;
            break;
        }
    }
    free(rel);
    return r;
}

int ufo_load_veriwild(const char *root, ufo_eval_set *s) {
    char *dir = ufo_pathf("%s/VERI-Wild", root);
    char *img = ufo_pathf("%s/VERI-Wild/images", root);
    char *split = ufo_pathf("%s/VERI-Wild/train_test_split", root);
    char *infop = ufo_pathf("%s/VERI-Wild/train_test_split/vehicle_info.txt", root);
    char *q = ufo_pathf("%s/VERI-Wild/train_test_split/test_10000_query.txt", root);
    char *g = ufo_pathf("%s/VERI-Wild/train_test_split/test_10000.txt", root);
    char *q2 = ufo_pathf("%s/VERI-Wild/train_test_split/test_10000_id_query.txt", root);
    char *g2 = ufo_pathf("%s/VERI-Wild/train_test_split/test_10000_id.txt", root);
    char *it = NULL, *qt = NULL, *gt = NULL;
    size_t in = 0, qn = 0, gn = 0;
    ufo_veriwild_info info = {0};
    ufo_items items = {0};
    int rc = -1;
    if (!dir || !img || !split || !infop || !q || !g || !q2 || !g2) goto done;
    if (ufo_need_dir(dir) != 0 || ufo_need_dir(img) != 0 || ufo_need_dir(split) != 0) goto done;
    // The UFO release named its lists test_10000_id_query.txt / test_10000_id.txt.
    const char *qp = !ufo_is_file(q) && ufo_is_file(q2) ? q2 : q;
    const char *gp = !ufo_is_file(g) && ufo_is_file(g2) ? g2 : g;
    if (!ufo_is_file(qp) && !ufo_is_dir(qp)) {
        ufo_errorf("missing list %s (nor %s)", q, q2);
        goto done;
    }
    if (!ufo_is_file(gp) && !ufo_is_dir(gp)) {
        ufo_errorf("missing list %s (nor %s)", g, g2);
        goto done;
    }
    if (ufo_read_list(infop, &it, &in) != 0 || ufo_read_list(qp, &qt, &qn) != 0 || ufo_read_list(gp, &gt, &gn) != 0)
        goto done;
    if (ufo_parse_veriwild_info(it, in, infop, &info) != 0) goto done;
    if (ufo_parse_veriwild_list(qt, qn, qp, &info, img, &items) != 0) goto done;
    int nq = items.n;
    if (nq == 0) {
        ufo_errorf("%s lists no images", qp);
        goto done;
    }
    if (ufo_parse_veriwild_list(gt, gn, gp, &info, img, &items) != 0) goto done;
    if (items.n == nq) {
        ufo_errorf("%s lists no images", gp);
        goto done;
    }
    if (ufo_set_take_items(s, &items) != 0 || ufo_set_source(s, dir) != 0) goto done;
    s->n_query = nq;
    rc = 0;
done:
    free(dir);
    free(img);
    free(split);
    free(infop);
    free(q);
    free(g);
    free(q2);
    free(g2);
    free(it);
    free(qt);
    free(gt);
    ufo_veriwild_info_free(&info);
    ufo_items_free(&items);
    return rc;
}
