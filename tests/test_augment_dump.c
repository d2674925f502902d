// Driver for tests/py/test_augment_pillow.py: applies one augmentation op to
// a PNG and writes the result as PNG, for a byte-for-byte comparison with
// Pillow 9.4.
//
//   test_augment_dump                          self-check (CTest runs it this way)
//   test_augment_dump OP ARG IN.png OUT.png [nearest|bilinear|bicubic]
//       OP: autocontrast equalize invert rotate posterize solarize solarizeadd
//           color contrast brightness sharpness shearx sheary translatex
//           translatey (ARG: the op's final argument, see ufo_aa_apply), or
//           affine with ARG "a0,a1,a2,a3,a4,a5" (fill 128).
//   test_augment_dump batch                    the same, one "OP ARG IN OUT [RS]" per stdin line
//   test_augment_dump policy                   the policy table: "i s Op prob level arg arg_negated"
//   test_augment_dump augment SEED SIZE IN.png OUT.f32 [PAD AUTOAUG_P FLIP_P ERASE_P]
//       ufo_augment_ex with seed SEED; writes float32 [3][SIZE][SIZE] raw and
//       prints the trace as one JSON line.
// A failure prints the error line on stderr and exits 1.
#include "base/error.h"
#include "base/rng.h"
#include "image/augment.h"
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    ufo_aa_op op;
} OPS[] = {
    {"autocontrast", UFO_AA_AUTOCONTRAST}, {"equalize", UFO_AA_EQUALIZE},
    {"invert", UFO_AA_INVERT},             {"rotate", UFO_AA_ROTATE},
    {"posterize", UFO_AA_POSTERIZE},       {"solarize", UFO_AA_SOLARIZE},
    {"solarizeadd", UFO_AA_SOLARIZE_ADD},  {"color", UFO_AA_COLOR},
    {"contrast", UFO_AA_CONTRAST},         {"brightness", UFO_AA_BRIGHTNESS},
    {"sharpness", UFO_AA_SHARPNESS},       {"shearx", UFO_AA_SHEAR_X},
    {"sheary", UFO_AA_SHEAR_Y},            {"translatex", UFO_AA_TRANSLATE_X},
    {"translatey", UFO_AA_TRANSLATE_Y},
};

static int write_png(const char *path, const ufo_image *img) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = PNG_FORMAT_RGB;
    if (!png_image_write_to_file(&pi, path, 0, img->rgb, img->w * 3, NULL))
        return ufo_errorf("%s: cannot write PNG: %s", path, pi.message);
    return 0;
}

static int parse_rs(const char *s, ufo_resample *rs) {
    if (!s || !strcmp(s, "nearest")) *rs = UFO_RESAMPLE_NEAREST;
    else if (!strcmp(s, "bilinear")) *rs = UFO_RESAMPLE_BILINEAR;
    else if (!strcmp(s, "bicubic")) *rs = UFO_RESAMPLE_BICUBIC;
    else return ufo_errorf("unknown resampling filter '%s'", s);
    return 0;
}

static int apply_op(const char *op, const char *arg, ufo_image *img, const char *rs_name) {
    ufo_resample rs = UFO_RESAMPLE_NEAREST;
    if (parse_rs(rs_name, &rs)) return -1;
    if (!strcmp(op, "affine")) {
        double a[6];
        if (sscanf(arg, "%lf,%lf,%lf,%lf,%lf,%lf", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5]) != 6)
            return ufo_errorf("affine: bad matrix '%s'", arg);
        return ufo_pil_affine(img, a, rs, UFO_AA_FILL);
    }
    char *end;
    double v = strtod(arg, &end);
    if (*end) return ufo_errorf("bad argument '%s'", arg);
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(op, OPS[i].name)) return ufo_aa_apply(img, OPS[i].op, v, rs);
    return ufo_errorf("unknown op '%s'", op);
}

static int one(const char *op, const char *arg, const char *in, const char *out, const char *rs) {
    ufo_image img;
    if (ufo_image_load(in, &img)) return -1;
    int rc = apply_op(op, arg, &img, rs);
    if (!rc) rc = write_png(out, &img);
    ufo_image_free(&img);
    return rc;
}

static int batch(void) {
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, stdin)) {
        n++;
        char op[64], arg[512], in[2048], out[2048], rs[64];
        int k = sscanf(line, "%63s %511s %2047s %2047s %63s", op, arg, in, out, rs);
        if (k <= 0) continue;
        if (k < 4) return ufo_errorf("line %d: expected OP ARG IN OUT [RS]", n);
        if (one(op, arg, in, out, k == 5 ? rs : NULL)) return ufo_error_wrap("line %d (%s %s)", n, op, arg);
    }
    return 0;
}

static void policy(void) {
    for (int i = 0; i < UFO_AA_NUM_SUBPOLICIES; i++)
        for (int s = 0; s < 2; s++) {
            const ufo_aa_step *st = &UFO_AA_POLICY_ORIGINAL[i][s];
            printf("%d %d %s %.17g %d %.17g %.17g\n", i, s, ufo_aa_op_name(st->op), st->prob, st->level,
                   ufo_aa_level_to_arg(st->op, st->level, 0), ufo_aa_level_to_arg(st->op, st->level, 1));
        }
}

static int augment(int argc, char **argv) {
    if (argc < 6) return ufo_errorf("augment SEED SIZE IN OUT [PAD AUTOAUG_P FLIP_P ERASE_P]");
    ufo_aug_opts o;
    ufo_aug_defaults(&o, atoi(argv[3]));
    if (argc > 6) o.pad = atoi(argv[6]);
    if (argc > 7) o.autoaug_p = atof(argv[7]);
    if (argc > 8) o.flip_p = atof(argv[8]);
    if (argc > 9) o.erase_p = atof(argv[9]);
    ufo_image img;
    if (ufo_image_load(argv[4], &img)) return -1;
    ufo_rng rng;
    ufo_rng_seed(&rng, strtoull(argv[2], NULL, 10));
    size_t n = (size_t)3 * o.size * o.size;
    float *out = malloc(n * sizeof(float));
    ufo_aug_trace t;
    int rc = out ? ufo_augment_ex(&img, &o, &rng, out, &t) : ufo_errorf("out of memory");
    ufo_image_free(&img);
    if (!rc) {
        FILE *f = fopen(argv[5], "wb");
        if (!f || fwrite(out, sizeof(float), n, f) != n) rc = ufo_errorf("%s: cannot write", argv[5]);
        if (f && fclose(f)) rc = ufo_errorf("%s: cannot write", argv[5]);
    }
    free(out);
    if (rc) return rc;
    printf("{\"autoaug\": %d, \"subpolicy\": %d, \"applied\": [%d, %d], \"arg\": [%.17g, %.17g], "
           "\"rs\": [%d, %d], \"crop_y\": %d, \"crop_x\": %d, \"flipped\": %d, \"erased\": %d, "
           "\"erase_top\": %d, \"erase_left\": %d, \"erase_h\": %d, \"erase_w\": %d}\n",
           t.autoaug, t.autoaug ? t.aa.subpolicy : -1, t.aa.applied[0], t.aa.applied[1], t.aa.arg[0], t.aa.arg[1],
           (int)t.aa.rs[0], (int)t.aa.rs[1], t.crop_y, t.crop_x, t.flipped, t.erased, t.erase_top, t.erase_left,
           t.erase_h, t.erase_w);
    return 0;
}

// No arguments: every op once on a small synthetic image, and one augment.
static int self_check(void) {
    ufo_image img = {7, 5, malloc(7 * 5 * 3)};
    if (!img.rgb) return ufo_errorf("out of memory");
    for (int i = 0; i < 7 * 5 * 3; i++) img.rgb[i] = (uint8_t)(i * 37);
    int rc = 0;
    for (int op = 0; op < UFO_AA_NUM_OPS && !rc; op++)
        rc = ufo_aa_apply(&img, (ufo_aa_op)op, ufo_aa_level_to_arg((ufo_aa_op)op, 5, op & 1),
                          (op & 2) ? UFO_RESAMPLE_BICUBIC : UFO_RESAMPLE_BILINEAR);
    float out[3 * 9 * 9];
    ufo_aug_opts o;
    ufo_aug_defaults(&o, 9);
    ufo_rng rng;
    ufo_rng_seed(&rng, 1);
    if (!rc) rc = ufo_augment(&img, &o, &rng, out);
    ufo_image_free(&img);
    if (!rc) printf("test_augment_dump: self-check passed\n");
    return rc;
}

int main(int argc, char **argv) {
    int rc;
    if (argc == 1) rc = self_check();
    else if (!strcmp(argv[1], "batch")) rc = batch();
    else if (!strcmp(argv[1], "policy")) {
        policy();
        rc = 0;
    } else if (!strcmp(argv[1], "augment")) rc = augment(argc, argv);
    else if (argc >= 5) rc = one(argv[1], argv[2], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
    else rc = ufo_errorf("usage: test_augment_dump [OP ARG IN OUT [RS] | batch | policy | augment ...]");
    if (rc) fprintf(stderr, "test_augment_dump: %s\n", ufo_error());
    return rc ? 1 : 0;
}
