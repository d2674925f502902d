// libFuzzer target: the evaluation-set list parsers (src/data/lists.h) on
// arbitrary text. The first byte picks the format, (byte - '0') mod 10:
//   0 face filelist   1 MSMT17 list       2 VehicleID list   3 SOP test.txt
//   4 SOP Ebay_test   5 vehicle_info.txt  6 VeRi-Wild info + list (split at the
//   first '#' line "##\n", else in the middle)  7 Market name  8 VeRi name
//   9 insightface .bin pickle
// Checks: a failure leaves one error line; a success gives well-formed items
// (NUL-terminated paths under the folder, counts in range); nothing leaks.
#include "base/error.h"
#include "data/lists.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(void) {
    const char *e = ufo_error();
    if (!e[0] || !strcmp(e, "unknown error") || strchr(e, '\n') || strchr(e, '\r')) abort();
}

static void check_items(const ufo_items *it, const char *dir) {
    if (it->n < 0 || it->n > it->cap) abort();
    size_t dl = strlen(dir);
    for (int i = 0; i < it->n; i++) {
        const char *p = ufo_items_path(it, i);
        size_t l = strlen(p);
        if (it->off[i] + l >= it->alen) abort();
        if (p[0] != '/' && strncmp(p, dir, dl) != 0) abort();
        (void)it->pid[i];
        (void)it->camid[i];
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int sel = (int)((uint8_t)(data[0] - '0') % 10);
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    const char *dir = "/d";
    ufo_items items = {0};
    int rc = 0;
    ufo_error_clear();
    switch (sel) {
    case 0: rc = ufo_parse_face_filelist(text, n, "f", dir, &items); break;
    case 1: rc = ufo_parse_msmt_list(text, n, "f", dir, &items); break;
    case 2: rc = ufo_parse_vehicleid_list(text, n, "f", dir, &items); break;
    case 3: rc = ufo_parse_sop_list(text, n, "f", dir, &items); break;
    case 4: rc = ufo_parse_sop_ebay_list(text, n, "f", dir, &items); break;
    case 5:
    case 6: {
        size_t cut = n;
        if (sel == 6) {
            const char *m = NULL;
            for (size_t i = 0; i + 3 <= n && !m; i++)
                if (text[i] == '#' && text[i + 1] == '#' && text[i + 2] == '\n') m = text + i;
            cut = m ? (size_t)(m - text) : n / 2;
        }
        ufo_veriwild_info info;
        rc = ufo_parse_veriwild_info(text, cut, "info", &info);
        if (rc != 0) {
            if (info.n != 0 || info.e || info.arena) abort();
            break;
        }
        if (sel == 6) {
            size_t skip = cut < n && text[cut] == '#' ? 3 : 0;
            rc = ufo_parse_veriwild_list(text + cut + skip, n - cut - skip, "list", &info, dir, &items);
        }
        ufo_veriwild_info_free(&info);
        break;
    }
    case 7:
    case 8: {
        char *s = malloc(n + 1);
        if (!s) return 0;
        memcpy(s, text, n);
        s[n] = 0;
        int pid = 0, cam = -1;
        int r = sel == 7 ? ufo_parse_market_name(s, &pid, &cam) : ufo_parse_veri_name(s, &pid, &cam);
        if (r == 0 && (sel == 7 ? (cam < 0 || cam > 9) : (cam < 0 || cam > 999))) abort();
        free(s);
        return 0;
    }
    default: {
        ufo_face_bin b;
        rc = ufo_parse_face_bin((const unsigned char *)text, n, "bin", &b);
        if (rc == 0) {
            if (b.n < 0 || b.n % 2) abort();
            volatile unsigned acc = 0;
            for (int i = 0; i < b.n; i++)
                for (size_t k = 0; k < b.sizes[i]; k++) acc += b.blobs[i][k];
            for (int i = 0; i < b.n / 2; i++)
                if (b.issame[i] > 1) abort();
            (void)acc;
            ufo_face_bin_free(&b);
        } else if (b.doc || b.blobs || b.issame) {
            abort();
        }
        break;
    }
    }
    if (rc != 0) check_error();
    else check_items(&items, dir);
    ufo_items_free(&items);
    return 0;
}
