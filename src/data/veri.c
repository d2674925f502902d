// VeRi-776: veri/{image_query,image_test}/*.jpg named <pid>_c<ccc>_...
#include "base/error.h"
#include "data/data_internal.h"
#include <stdlib.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

// Leftmost match of `(\d+)_c(\d\d\d)`.
int ufo_parse_veri_name(const char *s, int *pid, int *cam) {
    size_t i = 0;
    while (s[i]) {
        if (!is_digit(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (is_digit(s[j])) j++;
        if (s[j] == '_' && s[j + 1] == 'c' && is_digit(s[j + 2]) && is_digit(s[j + 3]) && is_digit(s[j + 4])) {
            if (ufo_parse_int(s + i, j - i, pid) != 0) return -1;
            *cam = (s[j + 2] - '0') * 100 + (s[j + 3] - '0') * 10 + (s[j + 4] - '0');
            return 0;
        }
        i = j;
    }
    return -1;
}

int ufo_load_veri(const char *root, ufo_eval_set *s) {
    char *dir = ufo_pathf("%s/veri", root);
    char *qdir = ufo_pathf("%s/veri/image_query", root);
    char *gdir = ufo_pathf("%s/veri/image_test", root);
    int rc = -1;
    if (!dir || !qdir || !gdir) goto done;
    if (ufo_need_dir(dir) != 0) goto done;
    if (ufo_reid_two_folders(qdir, gdir, ufo_parse_veri_name, "<pid>_c<ccc>", s) != 0) goto done;
    rc = ufo_set_source(s, dir);
done:
    free(dir);
    free(qdir);
    free(gdir);
    return rc;
}
