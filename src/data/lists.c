// Shared pieces of the list parsers: the item list, the line reader, strict
// integers, and error snippets.
#include "data/lists.h"
#include "data/data_internal.h"
#include "base/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void ufo_items_free(ufo_items *l) {
    free(l->off);
    free(l->pid);
    free(l->camid);
    free(l->arena);
    memset(l, 0, sizeof *l);
}

static int grow_items(ufo_items *l) {
    if (l->n < l->cap) return 0;
    if (l->cap >= INT_MAX / 2) return ufo_errorf("too many images (more than %d)", INT_MAX / 2);
    int cap = l->cap ? l->cap * 2 : 256;
    size_t *off = realloc(l->off, (size_t)cap * sizeof *off);
    if (off) l->off = off;
    int *pid = realloc(l->pid, (size_t)cap * sizeof *pid);
    if (pid) l->pid = pid;
    int *camid = realloc(l->camid, (size_t)cap * sizeof *camid);
    if (camid) l->camid = camid;
    if (!off || !pid || !camid) return ufo_errorf("out of memory listing images");
    l->cap = cap;
    return 0;
}

int ufo_items_push(ufo_items *l, const char *dir, const char *rel, size_t rel_len, const char *suffix,
                   int pid, int camid) {
    if (grow_items(l) != 0) return -1;
    size_t dl = (dir && !(rel_len > 0 && rel[0] == '/')) ? strlen(dir) : 0;
    int sep = dl > 0 && dir[dl - 1] != '/';
    size_t sl = suffix ? strlen(suffix) : 0;
    size_t need = dl + (size_t)sep + rel_len + sl + 1;
    if (l->alen + need > l->acap) {
        size_t cap = l->acap ? l->acap : 4096;
        while (cap < l->alen + need) {
            if (cap > SIZE_MAX / 2) return ufo_errorf("out of memory listing images");
            cap *= 2;
        }
        char *a = realloc(l->arena, cap);
        if (!a) return ufo_errorf("out of memory listing images");
        l->arena = a;
        l->acap = cap;
    }
    char *p = l->arena + l->alen;
    if (dl) memcpy(p, dir, dl);
    if (sep) p[dl] = '/';
    if (rel_len) memcpy(p + dl + sep, rel, rel_len);
    if (sl) memcpy(p + dl + sep + rel_len, suffix, sl);
    p[need - 1] = 0;
    l->off[l->n] = l->alen;
    l->pid[l->n] = pid;
    l->camid[l->n] = camid;
    l->alen += need;
    l->n++;
    return 0;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

void ufo_lines_init(ufo_lines *it, const char *text, size_t n, const char *name) {
    it->p = text;
    it->end = text ? text + n : text;
    it->lineno = 0;
    it->name = name;
}

int ufo_lines_next(ufo_lines *it, const char **s, size_t *len) {
    if (!it->p || it->p >= it->end) return 0;
    const char *b = it->p;
    const char *nl = memchr(b, '\n', (size_t)(it->end - b));
    const char *e = nl ? nl : it->end;
    it->p = nl ? nl + 1 : it->end;
    it->lineno++;
    if (memchr(b, 0, (size_t)(e - b))) return ufo_errorf("%s:%d: NUL byte in a text line", it->name, it->lineno);
    while (b < e && is_blank(*b)) b++;
    while (e > b && is_blank(e[-1])) e--;
    *s = b;
    *len = (size_t)(e - b);
    return 1;
}

int ufo_parse_int(const char *s, size_t len, int *out) {
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == len) return -1;
    long long v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
        if (v > (long long)INT_MAX + 1) return -1;
    }
    if (neg) v = -v;
    if (v > INT_MAX || v < INT_MIN) return -1;
    *out = (int)v;
    return 0;
}

int ufo_split_ws(const char *s, size_t len, const char **tok, size_t *tlen, int max) {
    int k = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_blank(s[i])) i++;
        if (i == len) break;
        size_t b = i;
        while (i < len && !is_blank(s[i])) i++;
        if (k < max) {
            tok[k] = s + b;
            tlen[k] = i - b;
        }
        k++;
    }
    return k;
}

const char *ufo_snippet(const char *s, size_t len, char *buf, size_t cap) {
    size_t max = cap > 4 ? cap - 4 : 0, i = 0;
    for (; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f) || c >= 0x80 ? (char)c : '?';
    }
    if (i < len && cap >= 4) memcpy(buf + i, "...", 3), i += 3;
    buf[i] = 0;
    return buf;
}
