// ufo preprocess: image files -> the exact float32 tensor the model sees, as
// .npy: [3, H, W] for one image, [N, 3, H, W] for several.
#include "cli/cli.h"
#include "base/error.h"
#include "base/mem.h"
#include "formats/npy.h"
#include "image/image.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: ufo preprocess [--size N | --size WxH] IMAGE... --out X.npy\n\n"
    "Runs the test-time preprocessing (SPEC section 3) and writes its result:\n"
    "decode (JPEG/PNG), EXIF orientation, RGB, Pillow-exact BICUBIC resize to\n"
    "W x H ignoring the aspect ratio, (x - 127.5) / 127.5 in float32, CHW.\n\n"
    "options:\n"
    "  --size N        output N x N (default 384)\n"
    "  --size WxH      output W wide, H high\n"
    "  --out FILE      .npy to write: float32 [3,H,W] for one image, [N,3,H,W] for\n"
    "                  several. Written only if every image succeeds.\n"
    "  -h, --help      this text\n";

#define MAX_SIDE 16384

static int parse_size(const char *s, int *w, int *h) {
    const char *x = strchr(s, 'x');
    if (!x) x = strchr(s, 'X');
    if (!x) {
        if (cli_parse_int("preprocess", "--size", s, 1, MAX_SIDE, w) != 0) return -1;
        *h = *w;
        return 0;
    }
    char buf[64];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof buf) return cli_usage_error("preprocess", "--size expects N or WxH, got '%s'", s), -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (cli_parse_int("preprocess", "--size (width)", buf, 1, MAX_SIDE, w) != 0) return -1;
    if (cli_parse_int("preprocess", "--size (height)", x + 1, 1, MAX_SIDE, h) != 0) return -1;
    return 0;
}

int cmd_preprocess(int argc, char **argv) {
    int w = 384, h = 384;
    const char *out = NULL;
    const char **images = malloc(sizeof(char *) * (size_t)(argc > 0 ? argc : 1));
    int n = 0;
    if (!images) {
        ufo_errorf("out of memory");
        return cli_fail();
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            free(images);
            return 0;
        }
        const char *val = NULL;
        if (strcmp(a, "--size") == 0 || strcmp(a, "--out") == 0) {
            if (i + 1 >= argc) {
                free(images);
                return cli_usage_error("preprocess", "%s needs a value", a);
            }
            val = argv[++i];
        } else if (strncmp(a, "--size=", 7) == 0 || strncmp(a, "--out=", 6) == 0) {
            val = strchr(a, '=') + 1;
        }
        if (val && strncmp(a, "--size", 6) == 0) {
            if (parse_size(val, &w, &h) != 0) {
                free(images);
                return 2;
            }
        } else if (val) {
            out = val;
        } else if (a[0] == '-' && a[1] != 0) {
            free(images);
            return cli_usage_error("preprocess", "unknown option '%s'", a);
        } else {
            images[n++] = a;
        }
    }
    if (n == 0) {
        free(images);
        return cli_usage_error("preprocess", "no image given");
    }
    if (!out || !*out) {
        free(images);
        return cli_usage_error("preprocess", "--out is required");
    }
    const size_t per = (size_t)3 * w * h;
    size_t total;
    float *x = NULL;
    if (ufo_mul_overflows(per * sizeof(float), (size_t)n, &total) == 0) x = ufo_alloc(total);
    if (!x) {
        free(images);
        ufo_errorf("out of memory for %d images of %dx%d", n, w, h);
        return cli_fail();
    }
    // Decode in parallel; the first failure in argument order is reported.
    int failed = n;
    char msg[UFO_ERR_MAX] = "";
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        if (ufo_preprocess_file(images[i], w, h, x + (size_t)i * per) != 0) {
#pragma omp critical
            if (i < failed) {
                failed = i;
                snprintf(msg, sizeof msg, "%s", ufo_error());
            }
        }
    }
    int rc = 0;
    if (failed < n) {
        ufo_errorf("%s", msg);
        rc = cli_fail();
    } else {
        int64_t shape4[4] = {n, 3, h, w};
        if (ufo_npy_write(out, UFO_F32, n == 1 ? shape4 + 1 : shape4, n == 1 ? 3 : 4, x) != 0) rc = cli_fail();
    }
    ufo_free(x);
    free(images);
    return rc;
}
