// The training transform's invariants and statistics (src/image/augment.c):
// output size for odd inputs (1x1, 500x20, ...), determinism for an rng
// state, the frequencies of AutoAugment / its sub-policies and ops / flip /
// erasing, uniform crop offsets over 0..2 pad, the erased box's area, aspect,
// placement and N(0, 1) contents, and pixel-level checks of pad + crop +
// flip against the bicubic resize. Pillow parity of the ops themselves is
// tests/py/test_augment_pillow.py.
#include "check.h"
#include "base/error.h"
#include "base/rng.h"
#include "image/augment.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ufo_image make_image(int w, int h, uint64_t seed) {
    ufo_image im = {w, h, malloc((size_t)w * h * 3)};
    ufo_rng r;
    ufo_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        // smooth pattern plus noise, so every op changes something
        size_t px = i / 3;
        int x = (int)(px % (size_t)w), y = (int)(px / (size_t)w);
        im.rgb[i] = (uint8_t)((x * 255 / (w > 1 ? w - 1 : 1) + y * 97 + (int)(i % 3) * 60 + (int)(ufo_rng_next(&r) % 24)) & 255);
    }
    return im;
}

// chi-square statistic of counts against a uniform distribution
static double chi2_uniform(const long *c, int k) {
    long n = 0;
    for (int i = 0; i < k; i++) n += c[i];
    double e = (double)n / k, s = 0;
    for (int i = 0; i < k; i++) s += (c[i] - e) * (c[i] - e) / e;
    return s;
}

static void test_errors(void) {
    ufo_aug_opts o;
    ufo_aug_defaults(&o, 8);
    ufo_rng r;
    ufo_rng_seed(&r, 1);
    float out[3 * 8 * 8];
    ufo_image empty = {0, 0, NULL};
    CHECK(ufo_augment(&empty, &o, &r, out) == -1 && strstr(ufo_error(), "empty"), "%s", ufo_error());
    ufo_image im = make_image(5, 4, 1);
    CHECK(ufo_augment(&im, NULL, &r, out) == -1);
    o.size = 0;
    CHECK(ufo_augment(&im, &o, &r, out) == -1 && strstr(ufo_error(), "size"), "%s", ufo_error());
    ufo_aug_defaults(&o, 8);
    o.flip_p = 1.5;
    CHECK(ufo_augment(&im, &o, &r, out) == -1 && strstr(ufo_error(), "probability"), "%s", ufo_error());
    ufo_aug_defaults(&o, 8);
    o.erase_area_min = 0.5;
    o.erase_area_max = 0.2;
    CHECK(ufo_augment(&im, &o, &r, out) == -1 && strstr(ufo_error(), "area"), "%s", ufo_error());
    CHECK(ufo_pil_posterize(&im, 9) == -1);
    CHECK(ufo_aa_apply(&im, UFO_AA_NUM_OPS, 0, UFO_RESAMPLE_BILINEAR) == -1);
    const double bad[6] = {1, NAN, 0, 0, 1, 0};
    CHECK(ufo_pil_affine(&im, bad, UFO_RESAMPLE_BICUBIC, UFO_AA_FILL) == -1);
    const double id[6] = {1, 0, 0, 0, 1, 0};
    CHECK(ufo_pil_affine(&im, id, (ufo_resample)7, UFO_AA_FILL) == -1);
    CHECK(ufo_pil_rotate(&im, INFINITY, UFO_RESAMPLE_NEAREST, UFO_AA_FILL) == -1);
    CHECK(ufo_autoaugment(&empty, &r, NULL) == -1);
    // a 1x1 image through every op, every filter, both signs: size kept
    for (int op = 0; op < UFO_AA_NUM_OPS; op++)
        for (int rs = 0; rs < 3; rs++)
            for (int neg = 0; neg < 2; neg++) {
                ufo_image one = make_image(1, 1, 3);
                const ufo_resample f = rs == 0 ? UFO_RESAMPLE_NEAREST : rs == 1 ? UFO_RESAMPLE_BILINEAR
                                                                               : UFO_RESAMPLE_BICUBIC;
                int rc = ufo_aa_apply(&one, (ufo_aa_op)op, ufo_aa_level_to_arg((ufo_aa_op)op, 7, neg), f);
                CHECK(rc == 0 && one.w == 1 && one.h == 1, "%s on 1x1", ufo_aa_op_name((ufo_aa_op)op));
                ufo_image_free(&one);
            }
    // odd shapes through every op at the policy's strongest level
    const int shapes[][2] = {{1, 5}, {5, 1}, {2, 2}, {3, 3}, {500, 20}, {20, 500}, {7, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int op = 0; op < UFO_AA_NUM_OPS; op++) {
            ufo_image t = make_image(shapes[s][0], shapes[s][1], 4);
            int rc = ufo_aa_apply(&t, (ufo_aa_op)op, ufo_aa_level_to_arg((ufo_aa_op)op, 10, op & 1),
                                  (op & 2) ? UFO_RESAMPLE_BICUBIC : UFO_RESAMPLE_BILINEAR);
            CHECK(rc == 0 && t.w == shapes[s][0] && t.h == shapes[s][1], "%s on %dx%d",
                  ufo_aa_op_name((ufo_aa_op)op), shapes[s][0], shapes[s][1]);
            ufo_image_free(&t);
        }
    // rotate's exact fast paths: 90 on a square is a transpose, 4 x 90 = identity
    ufo_image sq = make_image(6, 6, 5), sq0 = make_image(6, 6, 5);
    int rc = 0;
    for (int k = 0; k < 4; k++) rc |= ufo_pil_rotate(&sq, 90, UFO_RESAMPLE_BICUBIC, UFO_AA_FILL);
    CHECK(rc == 0 && memcmp(sq.rgb, sq0.rgb, 6 * 6 * 3) == 0, "4 x rotate(90) is the identity");
    rc = ufo_pil_rotate(&sq, -180, UFO_RESAMPLE_BILINEAR, UFO_AA_FILL);
    rc |= ufo_pil_rotate(&sq, 540, UFO_RESAMPLE_BILINEAR, UFO_AA_FILL);
    CHECK(rc == 0 && memcmp(sq.rgb, sq0.rgb, 6 * 6 * 3) == 0, "rotate(-180) then rotate(540) is the identity");
    CHECK(ufo_pil_invert(&sq) == 0 && ufo_pil_invert(&sq) == 0 && memcmp(sq.rgb, sq0.rgb, 6 * 6 * 3) == 0);
    ufo_image_free(&sq);
    ufo_image_free(&sq0);
    ufo_image_free(&im);
}

// Output size / values for odd inputs, and determinism.
static void test_sizes_and_determinism(void) {
    const int shapes[][2] = {{1, 1}, {500, 20}, {20, 500}, {3, 7}, {97, 73}, {2, 1}};
    const int sizes[] = {1, 7, 32};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        ufo_image im = make_image(shapes[s][0], shapes[s][1], 10 + s);
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            const int S = sizes[z];
            const size_t n = (size_t)3 * S * S;
            float *a = malloc((n + 1) * sizeof(float)), *b = malloc((n + 1) * sizeof(float));
            ufo_aug_opts o;
            ufo_aug_defaults(&o, S);
            int bad = 0, diff_seed = 0;
            for (int seed = 0; seed < 24; seed++) {
                a[n] = b[n] = 12345.0f;  // guard: nothing written past 3 x S x S
                ufo_rng r1, r2;
                ufo_rng_seed(&r1, seed);
                r2 = r1;
                ufo_aug_trace t1, t2;
                int rc1 = ufo_augment_ex(&im, &o, &r1, a, &t1);
                int rc2 = ufo_augment_ex(&im, &o, &r2, b, &t2);
                if (rc1 || rc2 || a[n] != 12345.0f) {
                    bad++;
                    continue;
                }
                if (memcmp(a, b, n * sizeof(float)) || memcmp(&r1, &r2, sizeof r1) ||
                    memcmp(&t1, &t2, sizeof t1))
                    bad++;
                for (size_t i = 0; i < n; i++) {
                    int c = (int)(i / ((size_t)S * S)), y = (int)(i % ((size_t)S * S)) / S, x = (int)(i % S);
                    (void)c;
                    int in_box = t1.erased && y >= t1.erase_top && y < t1.erase_top + t1.erase_h &&
                                 x >= t1.erase_left && x < t1.erase_left + t1.erase_w;
                    if (!isfinite(a[i]) || (!in_box && (a[i] < -1.0f || a[i] > 1.0f))) bad++;
                }
                // another seed gives another result
                ufo_rng r3;
                ufo_rng_seed(&r3, 1000 + seed);
                if (ufo_augment(&im, &o, &r3, b) == 0 && memcmp(a, b, n * sizeof(float))) diff_seed++;
            }
            CHECK(bad == 0, "%dx%d -> %d: %d bad outputs (%s)", shapes[s][0], shapes[s][1], S, bad, ufo_error());
            if (S > 1) CHECK(diff_seed >= 20, "%dx%d -> %d: seeds differ in %d/24", shapes[s][0], shapes[s][1], S, diff_seed);
            free(a);
            free(b);
        }
        ufo_image_free(&im);
    }
    // ufo_autoaugment alone is deterministic too
    ufo_image x = make_image(31, 17, 2), y = make_image(31, 17, 2);
    int same = 1;
    for (int seed = 0; seed < 50; seed++) {
        ufo_rng r1, r2;
        ufo_rng_seed(&r1, seed);
        r2 = r1;
        ufo_aa_trace t1, t2;
        if (ufo_autoaugment(&x, &r1, &t1) || ufo_autoaugment(&y, &r2, &t2) || memcmp(x.rgb, y.rgb, 31 * 17 * 3) ||
            memcmp(&t1, &t2, sizeof t1))
            same = 0;
    }
    CHECK(same, "ufo_autoaugment is a function of the rng state");
    ufo_image_free(&x);
    ufo_image_free(&y);
}

// Frequencies and distributions over many draws with the recipe's defaults.
static void test_statistics(void) {
    const int S = 32, N = 4000;
    ufo_aug_opts o, o_noerase;
    ufo_aug_defaults(&o, S);
    o_noerase = o;
    o_noerase.do_erase = 0;
    ufo_image im = make_image(24, 18, 7);
    const size_t n = (size_t)3 * S * S;
    float *out = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    long n_aa = 0, n_flip = 0, n_erase = 0, sub[UFO_AA_NUM_SUBPOLICIES] = {0};
    long cy[21] = {0}, cx[21] = {0};
    double fired = 0, expect = 0, var = 0;
    long n_signed = 0, n_neg = 0, n_geo = 0, n_bicubic = 0, p0_fired = 0, p1_missed = 0;
    double area_sum = 0, logasp_sum = 0, v_sum = 0, v2_sum = 0;
    long v_n = 0, bad_box = 0, bad_outside = 0, box_same = 0, box_px = 0;
    double area_min = 1, area_max = 0, asp_min = 1e9, asp_max = 0;
    for (int it = 0; it < N; it++) {
        ufo_rng r, r0;
        ufo_rng_seed(&r, 777000 + it);
        r0 = r;
        ufo_aug_trace t, t0;
        if (ufo_augment_ex(&im, &o, &r, out, &t) || ufo_augment_ex(&im, &o_noerase, &r0, ref, &t0)) {
            CHECK(0, "augment failed: %s", ufo_error());
            break;
        }
        if (t.autoaug) {
            n_aa++;
            sub[t.aa.subpolicy]++;
            for (int s = 0; s < 2; s++) {
                const ufo_aa_step *st = &UFO_AA_POLICY_ORIGINAL[t.aa.subpolicy][s];
                fired += t.aa.applied[s];
                expect += st->prob;
                var += st->prob * (1 - st->prob);
                if (st->prob == 0 && t.aa.applied[s]) p0_fired++;
                if (st->prob == 1 && !t.aa.applied[s]) p1_missed++;
                if (t.aa.applied[s] && ufo_aa_op_signed(st->op)) {
                    n_signed++;
                    n_neg += t.aa.arg[s] < 0;
                    n_geo++;
                    n_bicubic += t.aa.rs[s] == UFO_RESAMPLE_BICUBIC;
                }
            }
        }
        n_flip += t.flipped;
        cy[t.crop_y]++;
        cx[t.crop_x]++;
        // everything before the erasing is the same as without it
        if (t.autoaug != t0.autoaug || t.flipped != t0.flipped || t.crop_y != t0.crop_y || t.crop_x != t0.crop_x)
            bad_outside++;
        if (t.erased) {
            n_erase++;
            const int h = t.erase_h, w = t.erase_w;
            const double target = t.erase_area * S * S;
            if (!(t.erase_area >= 0.02 && t.erase_area <= 1.0 / 3 && t.erase_aspect >= 0.3 - 1e-12 &&
                  t.erase_aspect <= 1 / 0.3 + 1e-12 && h == (int)nearbyint(sqrt(target * t.erase_aspect)) &&
                  w == (int)nearbyint(sqrt(target / t.erase_aspect)) && h < S && w < S && t.erase_top >= 0 &&
                  t.erase_top <= S - h && t.erase_left >= 0 && t.erase_left <= S - w && t.erase_attempts >= 1 &&
                  t.erase_attempts <= 10))
                bad_box++;
            area_sum += t.erase_area;
            logasp_sum += log(t.erase_aspect);
            if (t.erase_area < area_min) area_min = t.erase_area;
            if (t.erase_area > area_max) area_max = t.erase_area;
            if (t.erase_aspect < asp_min) asp_min = t.erase_aspect;
            if (t.erase_aspect > asp_max) asp_max = t.erase_aspect;
        } else if (t.erase_attempts != 0 && t.erase_attempts != 10) {
            bad_box++;
        }
        for (size_t i = 0; i < n; i++) {
            const int y = (int)(i % ((size_t)S * S)) / S, x = (int)(i % S);
            const int in_box = t.erased && y >= t.erase_top && y < t.erase_top + t.erase_h && x >= t.erase_left &&
                               x < t.erase_left + t.erase_w;
            if (!in_box) {
                if (out[i] != ref[i]) bad_outside++;
            } else {
                v_sum += out[i];
                v2_sum += (double)out[i] * out[i];
                v_n++;
                box_px++;
                box_same += out[i] == ref[i];
            }
        }
    }
    const double f_aa = (double)n_aa / N, f_flip = (double)n_flip / N, f_er = (double)n_erase / N;
    printf("draws %d: AutoAugment %.3f, flip %.3f, erased %.3f; crop chi2 y %.1f x %.1f (20 dof); "
           "sub-policy chi2 %.1f (24 dof)\n",
           N, f_aa, f_flip, f_er, chi2_uniform(cy, 21), chi2_uniform(cx, 21), chi2_uniform(sub, 25));
    CHECK(fabs(f_aa - 0.5) < 0.04, "AutoAugment frequency %.3f", f_aa);
    CHECK(fabs(f_flip - 0.5) < 0.04, "flip frequency %.3f", f_flip);
    CHECK(fabs(f_er - 0.5) < 0.04, "erasing frequency %.3f", f_er);
    CHECK(chi2_uniform(cy, 21) < 50 && chi2_uniform(cx, 21) < 50, "crop offsets uniform over 0..20");
    for (int k = 0; k < 21; k++) CHECK(cy[k] > 0 && cx[k] > 0, "crop offset %d occurs", k);
    double my = 0, mx = 0;
    for (int k = 0; k < 21; k++) my += k * (double)cy[k], mx += k * (double)cx[k];
    CHECK(fabs(my / N - 10) < 0.4 && fabs(mx / N - 10) < 0.4, "crop offset means %.2f %.2f", my / N, mx / N);
    CHECK(chi2_uniform(sub, 25) < 60, "sub-policies uniform");
    const double z = (fired - expect) / sqrt(var);
    printf("AutoAugment ops fired %.0f, expected %.1f (z %.2f); signed ops negative %ld/%ld, bicubic %ld/%ld\n",
           fired, expect, z, n_neg, n_signed, n_bicubic, n_geo);
    CHECK(fabs(z) < 5, "ops fire with their own probabilities (z %.2f)", z);
    CHECK(p0_fired == 0 && p1_missed == 0, "prob 0 never fires (%ld), prob 1 always (%ld)", p0_fired, p1_missed);
    CHECK(n_signed > 200 && fabs((double)n_neg / n_signed - 0.5) < 0.1, "random sign");
    CHECK(n_geo > 200 && fabs((double)n_bicubic / n_geo - 0.5) < 0.1, "random BILINEAR / BICUBIC");
    printf("erasing: area fraction [%.4f, %.4f] mean %.4f, aspect [%.3f, %.3f] mean log %.3f; box values mean %.4f "
           "var %.4f over %ld\n",
           area_min, area_max, area_sum / n_erase, asp_min, asp_max, logasp_sum / n_erase, v_sum / v_n,
           v2_sum / v_n - (v_sum / v_n) * (v_sum / v_n), v_n);
    CHECK(bad_box == 0, "%ld erase boxes break the rules", bad_box);
    CHECK(bad_outside == 0, "%ld values outside the boxes differ from the transform without erasing", bad_outside);
    CHECK(area_min < 0.03 && area_max > 0.32, "area fractions span [0.02, 1/3]");
    CHECK(fabs(area_sum / n_erase - (0.02 + 1.0 / 3) / 2) < 0.01, "area fraction uniform (mean)");
    CHECK(asp_min < 0.33 && asp_max > 3.0, "aspects span [0.3, 3.33]");
    CHECK(fabs(logasp_sum / n_erase) < 0.08, "log aspect uniform, mean 0");
    CHECK(v_n > 100000 && fabs(v_sum / v_n) < 0.01 && fabs(v2_sum / v_n - 1) < 0.02, "box values N(0, 1)");
    CHECK(box_same * 100 < box_px, "box values replaced (%ld of %ld unchanged)", box_same, box_px);
    ufo_image_free(&im);
    free(out);
    free(ref);
}

// Pad + crop + flip + normalisation against the bicubic resize, per pixel.
static void test_geometry(void) {
    const int S = 20, P = 10;
    ufo_image im = make_image(37, 23, 9), rs;
    CHECK(ufo_image_resize_bicubic(&im, S, S, &rs) == 0);
    ufo_aug_opts o;
    ufo_aug_defaults(&o, S);
    o.do_autoaug = 0;
    o.do_erase = 0;
    float out[3 * 20 * 20], plain[3 * 20 * 20];
    long bad = 0;
    for (int seed = 0; seed < 200; seed++) {
        ufo_rng r;
        ufo_rng_seed(&r, seed);
        ufo_aug_trace t;
        if (ufo_augment_ex(&im, &o, &r, out, &t)) {
            bad++;
            continue;
        }
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int xc = t.flipped ? S - 1 - x : x;
                    int sy = y + t.crop_y - P, sx = xc + t.crop_x - P;
                    float want = -1.0f;
                    if (sy >= 0 && sy < S && sx >= 0 && sx < S)
                        want = ((float)rs.rgb[((size_t)sy * S + sx) * 3 + c] - 127.5f) / 127.5f;
                    if (out[(c * S + y) * S + x] != want) bad++;
                }
    }
    CHECK(bad == 0, "pad + crop + flip: %ld values wrong", bad);
    // everything off: exactly the test-time preprocessing
    o.do_pad_crop = 0;
    o.do_flip = 0;
    ufo_rng r;
    ufo_rng_seed(&r, 5);
    ufo_rng before = r;
    CHECK(ufo_augment(&im, &o, &r, out) == 0);
    ufo_image_to_chw(&rs, plain);
    CHECK(memcmp(out, plain, sizeof out) == 0, "no augmentation = resize + normalise");
    CHECK(memcmp(&r, &before, sizeof r) == 0, "nothing enabled draws no random numbers");
    // flip_p = 1 always flips, pad 0 with crop on never shifts
    ufo_aug_defaults(&o, S);
    o.do_autoaug = 0;
    o.do_erase = 0;
    o.flip_p = 1.0;
    o.pad = 0;
    ufo_aug_trace t;
    CHECK(ufo_augment_ex(&im, &o, &r, out, &t) == 0 && t.flipped && t.crop_x == 0 && t.crop_y == 0);
    long mism = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) mism += out[(c * S + y) * S + x] != plain[(c * S + y) * S + (S - 1 - x)];
    CHECK(mism == 0, "flip mirrors the columns");
    ufo_image_free(&rs);
    ufo_image_free(&im);
}

int main(void) {
    test_errors();
    test_sizes_and_determinism();
    test_geometry();
    test_statistics();
    return check_summary("test_augment");
}
