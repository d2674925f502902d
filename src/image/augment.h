// Training-time augmentation (SPEC section 4, issue 6 part 3), matching the
// original project's transform list and Pillow 9.4's pixel arithmetic.
//
// The original (PaddlePaddle/VIMER UFO/OneForAll data/transforms/build.py,
// build_transforms_lazy(is_train=True), the same order as fast-reid's
// build_transforms) applies, per training image:
//
//   1. AutoAugment with probability autoaug_p, on the DECODED image at its own
//      size (before the resize): fast-reid's timm-derived AutoAugment with
//      the "original" ImageNet policy (25 sub-policies of 2 ops), fill
//      (128, 128, 128), affine ops resampled with a random choice of
//      BILINEAR / BICUBIC. (OneForAll's RandomApply applies its transform
//      when random() > prob, i.e. with probability 1 - prob; the recipe's
//      prob is 0.5, so both readings agree. Here autoaug_p is the
//      probability of applying it.)
//   2. Resize to size x size, Pillow BICUBIC (ufo_image_resize_bicubic).
//   3. Pad by `pad` on every side with 0 (black) and crop size x size at a
//      uniformly random offset (i, j) in [0, 2 pad]^2 (paddle.vision
//      Pad + RandomCrop).
//   4. Horizontal flip with probability flip_p.
//   5. To float CHW, (x - 127.5) / 127.5 (mean = std = 0.5 * 255).
//   6. Random erasing with probability erase_p (timm RandomErasing,
//      mode='pixel', max_count=1): one box, up to 10 attempts; area fraction
//      U(erase_area_min, erase_area_max) = U(0.02, 1/3), aspect ratio
//      exp(U(log 0.3, log 1/0.3)), h = round(sqrt(A r)), w = round(sqrt(A / r)),
//      accepted when h < size and w < size, top/left uniform; the box gets
//      per-pixel, per-channel N(0, 1) values IN NORMALISED UNITS (it is
//      applied after the normalisation, like timm's).
//
// Every random decision comes from the caller's ufo_rng, so a result is a
// pure function of (image, options, rng state).
#pragma once
#include "base/rng.h"
#include "image/image.h"
#include <stdint.h>

// Pillow's resampling filter ids (Image.Resampling / IMAGING_TRANSFORM_*).
typedef enum {
    UFO_RESAMPLE_NEAREST = 0,
    UFO_RESAMPLE_BILINEAR = 2,
    UFO_RESAMPLE_BICUBIC = 3,
} ufo_resample;

// ---------------------------------------------------------------------------
// Pillow 9.4 operations on RGB8 images, bit-exact. Functions taking `img`
// work in place (img->rgb may be replaced by a new malloc'd buffer); all
// return 0, or -1 with ufo_error set (bad arguments, out of memory).

// img.transform(img.size, Image.AFFINE, a, resample, fillcolor=fill):
// output pixel (x, y) samples the input at (a0 x' + a1 y' + a2,
// a3 x' + a4 y' + a5) with x' = x + 0.5, y' = y + 0.5.
int ufo_pil_affine(ufo_image *img, const double a[6], ufo_resample rs, const uint8_t fill[3]);
// img.rotate(degrees, resample, fillcolor=fill) (counter-clockwise, about
// the centre, expand=False), including Pillow's exact fast paths for 0, 180
// and (square images) 90 / 270 degrees.
int ufo_pil_rotate(ufo_image *img, double degrees, ufo_resample rs, const uint8_t fill[3]);
// ImageOps.autocontrast(img) (cutoff 0), equalize, invert,
// posterize(bits 0..8), solarize(threshold); timm's solarize_add
// (i < threshold ? min(255, i + add) : i).
int ufo_pil_autocontrast(ufo_image *img);
int ufo_pil_equalize(ufo_image *img);
int ufo_pil_invert(ufo_image *img);
int ufo_pil_posterize(ufo_image *img, int bits);
int ufo_pil_solarize(ufo_image *img, double threshold);
int ufo_pil_solarize_add(ufo_image *img, int add, double threshold);
// ImageEnhance.{Color,Contrast,Brightness,Sharpness}(img).enhance(factor).
int ufo_pil_color(ufo_image *img, double factor);
int ufo_pil_contrast(ufo_image *img, double factor);
int ufo_pil_brightness(ufo_image *img, double factor);
int ufo_pil_sharpness(ufo_image *img, double factor);

// ---------------------------------------------------------------------------
// AutoAugment (fast-reid / timm auto_augment_policy_original).

typedef enum {
    UFO_AA_AUTOCONTRAST,
    UFO_AA_EQUALIZE,
    UFO_AA_INVERT,
    UFO_AA_ROTATE,       // arg: degrees (counter-clockwise)
    UFO_AA_POSTERIZE,    // arg: bits kept (>= 8: unchanged, as timm)
    UFO_AA_SOLARIZE,     // arg: threshold
    UFO_AA_SOLARIZE_ADD, // arg: amount added below 128
    UFO_AA_COLOR,        // arg: enhance factor
    UFO_AA_CONTRAST,
    UFO_AA_BRIGHTNESS,
    UFO_AA_SHARPNESS,
    UFO_AA_SHEAR_X,      // arg: shear factor, matrix (1, arg, 0, 0, 1, 0)
    UFO_AA_SHEAR_Y,      // matrix (1, 0, 0, arg, 1, 0)
    UFO_AA_TRANSLATE_X,  // arg: pixels, matrix (1, 0, arg, 0, 1, 0)
    UFO_AA_TRANSLATE_Y,  // matrix (1, 0, 0, 0, 1, arg)
    UFO_AA_NUM_OPS
} ufo_aa_op;

// The fill colour of AutoAugment's geometric ops: (128, 128, 128).
extern const uint8_t UFO_AA_FILL[3];

const char *ufo_aa_op_name(ufo_aa_op op);   // "Rotate", "ShearX", ...
// Applies one op with its final argument (after the level mapping); `rs` is
// used by the geometric ops only; fill is UFO_AA_FILL.
int ufo_aa_apply(ufo_image *img, ufo_aa_op op, double arg, ufo_resample rs);

// Level (0..10) -> argument, as timm's *_level_to_arg for the policy
// "original": Rotate 30 l/10 deg, ShearX/Y 0.3 l/10, TranslateX/Y 57 l/10
// pixels (translate_const 57), each negated when `negate`; enhance ops
// 1.8 l/10 + 0.1; Posterize (PosterizeOriginal) int(4 l/10) + 4 bits;
// Solarize int(256 l/10); SolarizeAdd int(110 l/10); others 0.
double ufo_aa_level_to_arg(ufo_aa_op op, double level, int negate);
// Whether the op draws a random sign / a random resampling filter.
int ufo_aa_op_signed(ufo_aa_op op);
int ufo_aa_op_geometric(ufo_aa_op op);

typedef struct {
    ufo_aa_op op;
    double prob;
    int level;
} ufo_aa_step;

#define UFO_AA_NUM_SUBPOLICIES 25
// The policy, [sub-policy][step]: timm/fast-reid auto_augment_policy_original.
extern const ufo_aa_step UFO_AA_POLICY_ORIGINAL[UFO_AA_NUM_SUBPOLICIES][2];

typedef struct {
    int subpolicy;        // 0..24
    int applied[2];       // whether each step fired
    double arg[2];        // its argument (signed), when it fired
    ufo_resample rs[2];   // its resampling filter (geometric ops)
} ufo_aa_trace;

// One AutoAugment draw, in place: a uniform sub-policy, then each of its two
// ops with its own probability (timm AugmentOp: fires unless prob < 1 and
// u > prob), a random sign for signed ops (u > 0.5 negates), a uniform
// choice of BILINEAR / BICUBIC for geometric ops. `trace` may be NULL.
int ufo_autoaugment(ufo_image *img, ufo_rng *rng, ufo_aa_trace *trace);

// ---------------------------------------------------------------------------
// The training transform.

typedef struct {
    int size;                 // output side (square); SPEC: 384
    int do_autoaug;           // 1
    double autoaug_p;         // 0.5
    int do_pad_crop;          // 1
    int pad;                  // 10 (fill 0)
    int do_flip;              // 1
    double flip_p;            // 0.5
    int do_erase;             // 1
    double erase_p;           // 0.5
    double erase_area_min;    // 0.02
    double erase_area_max;    // 1/3 (timm's default max_area)
    double erase_aspect_min;  // 0.3
    double erase_aspect_max;  // 1/0.3
} ufo_aug_opts;

// The recipe's defaults (above) for a given output size.
void ufo_aug_defaults(ufo_aug_opts *o, int size);

typedef struct {
    int autoaug;              // AutoAugment ran
    ufo_aa_trace aa;          // valid when autoaug
    int crop_y, crop_x;       // crop offset in the padded image (0 without pad/crop)
    int flipped;
    int erased;               // a box was erased (the p-draw fired and an attempt fit)
    int erase_attempts;       // attempts drawn (0 when the p-draw failed)
    double erase_area;        // accepted attempt: target area fraction
    double erase_aspect;      //   and aspect ratio (h / w)
    int erase_top, erase_left, erase_h, erase_w;
} ufo_aug_trace;

// src (any size >= 1x1) -> out_chw [3][size][size]. `trace` may be NULL.
int ufo_augment_ex(const ufo_image *src, const ufo_aug_opts *o, ufo_rng *rng, float *out_chw,
                   ufo_aug_trace *trace);
int ufo_augment(const ufo_image *src, const ufo_aug_opts *o, ufo_rng *rng, float *out_chw);
