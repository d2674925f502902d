// Stanford Online Products: Stanford_Online_Products/test.txt (`relpath,label`),
// or the dataset's own Ebay_test.txt when test.txt is absent.
#include "base/error.h"
#include "data/data_internal.h"
#include <stdlib.h>
#include <string.h>

int ufo_parse_sop_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, name);
    const char *s;
    size_t len;
    int r;
    char snip[64];
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        // The original does `img_name, label = line.split(',')`: we split at the last comma.
        const char *comma = NULL;
        for (size_t i = len; i-- > 0;)
            if (s[i] == ',') {
                comma = s + i;
                break;
            }
        int label = 0, ok = comma != NULL;
        const char *pe = comma, *l = comma ? comma + 1 : NULL, *le = s + len;
        if (ok) {
            while (pe > s && (pe[-1] == ' ' || pe[-1] == '\t')) pe--;
            while (l < le && (*l == ' ' || *l == '\t')) l++;
            ok = pe > s && ufo_parse_int(l, (size_t)(le - l), &label) == 0;
        }
        if (!ok) {
            if (it.lineno == 1) continue;   // a header line such as "path,label"
            return ufo_errorf("%s:%d: expected '<path>,<label>', found '%s'", name, it.lineno,
                              ufo_snippet(s, len, snip, sizeof snip));
        }
        if (ufo_items_push(out, dir, s, (size_t)(pe - s), NULL, label, 0) != 0) return -1;
    }
    return r;
}

int ufo_parse_sop_ebay_list(const char *text, size_t n, const char *name, const char *dir, ufo_items *out) {
    ufo_lines it;
    ufo_lines_init(&it, text, n, name);
    const char *s;
    size_t len;
    int r;
    char snip[64];
    while ((r = ufo_lines_next(&it, &s, &len)) > 0) {
        if (len == 0) continue;
        const char *tok[4];
        size_t tl[4];
        int id, label, super;
        int k = ufo_split_ws(s, len, tok, tl, 4);
        if (k != 4 || ufo_parse_int(tok[0], tl[0], &id) != 0 || ufo_parse_int(tok[1], tl[1], &label) != 0 ||
            ufo_parse_int(tok[2], tl[2], &super) != 0) {
            if (it.lineno == 1) continue;   // "image_id class_id super_class_id path"
            return ufo_errorf("%s:%d: expected '<image_id> <class_id> <super_class_id> <path>', found '%s'", name,
                              it.lineno, ufo_snippet(s, len, snip, sizeof snip));
        }
        if (ufo_items_push(out, dir, tok[3], tl[3], NULL, label, 0) != 0) return -1;
    }
    return r;
}

int ufo_read_sop_split(const char *root, const char *split, ufo_items *items, char **src_out) {
    char *dir = ufo_pathf("%s/Stanford_Online_Products", root);
    char *list = ufo_pathf("%s/Stanford_Online_Products/%s.txt", root, split);
    char *ebay = ufo_pathf("%s/Stanford_Online_Products/Ebay_%s.txt", root, split);
    char *text = NULL;
    size_t n = 0;
    int rc = -1;
    *src_out = NULL;
    if (!dir || !list || !ebay) goto done;
    if (ufo_need_dir(dir) != 0) goto done;
    int use_ebay = !ufo_is_file(list) && !ufo_is_dir(list) && ufo_is_file(ebay);
    const char *src = use_ebay ? ebay : list;
    if (!use_ebay && !ufo_is_file(list) && !ufo_is_dir(list)) {
        ufo_errorf("missing list %s (nor %s)", list, ebay);
        goto done;
    }
    if (ufo_read_list(src, &text, &n) != 0) goto done;
    rc = use_ebay ? ufo_parse_sop_ebay_list(text, n, src, dir, items) : ufo_parse_sop_list(text, n, src, dir, items);
    if (rc == 0) {
        *src_out = use_ebay ? ebay : list;
        if (use_ebay) ebay = NULL;
        else list = NULL;
    }
done:
    free(dir);
    free(list);
    free(ebay);
    free(text);
    return rc;
}

int ufo_load_sop(const char *root, ufo_eval_set *s) {
    ufo_items items = {0};
    char *src = NULL;
    int rc = -1;
    if (ufo_read_sop_split(root, "test", &items, &src) != 0) goto done;
    if (items.n < 2) {
        ufo_errorf("%s lists %d image%s (retrieval needs at least 2)", src, items.n, items.n == 1 ? "" : "s");
        goto done;
    }
    if (ufo_set_take_items(s, &items) != 0 || ufo_set_source(s, src) != 0) goto done;
    s->n_query = s->n;   // every image is a query against all the others
    rc = 0;
done:
    free(src);
    ufo_items_free(&items);
    return rc;
}
