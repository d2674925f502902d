"""AutoAugment ("original" ImageNet policy, as timm / fast-reid) with Pillow.

The independent side of ufo's augmentation: tests/py/test_augment_pillow.py
compares src/image/autoaugment.c with these operations byte for byte, and
tools/train_demo_torch.py trains the PyTorch reference of the demo with them.
Written from timm's auto_augment.py: 25 sub-policies of two ops, each op
applied with its probability, magnitude level -> argument as
*_level_to_arg with _MAX_LEVEL 10, rotate / shear / translate negated with
probability 1/2, affine ops resampled with a random choice of BILINEAR /
BICUBIC, fill (128, 128, 128). Run with Debian's /usr/bin/python3.
"""
from PIL import Image, ImageEnhance, ImageOps

FILL = (128, 128, 128)
RS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def solarize_add(img, add, thresh=128):  # timm's, as a LUT through Image.point
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * 3)


def pillow_op(img, op, arg, rs):
    r = RS[rs]
    if op == "affine":
        return img.transform(img.size, Image.AFFINE, tuple(float(v) for v in arg.split(",")), resample=r,
                             fillcolor=FILL)
    a = float(arg)
    if op == "rotate":
        return img.rotate(a, resample=r, fillcolor=FILL)
    if op == "shearx":
        return img.transform(img.size, Image.AFFINE, (1, a, 0, 0, 1, 0), resample=r, fillcolor=FILL)
    if op == "sheary":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, a, 1, 0), resample=r, fillcolor=FILL)
    if op == "translatex":
        return img.transform(img.size, Image.AFFINE, (1, 0, a, 0, 1, 0), resample=r, fillcolor=FILL)
    if op == "translatey":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, a), resample=r, fillcolor=FILL)
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "invert":
        return ImageOps.invert(img)
    if op == "posterize":
        return img if a >= 8 else ImageOps.posterize(img, int(a))  # timm's posterize
    if op == "solarize":
        return ImageOps.solarize(img, a)
    if op == "solarizeadd":
        return solarize_add(img, int(a))
    if op == "color":
        return ImageEnhance.Color(img).enhance(a)
    if op == "contrast":
        return ImageEnhance.Contrast(img).enhance(a)
    if op == "brightness":
        return ImageEnhance.Brightness(img).enhance(a)
    if op == "sharpness":
        return ImageEnhance.Sharpness(img).enhance(a)
    raise ValueError(op)


# timm / fast-reid auto_augment_policy_original ("PosterizeOriginal" as Posterize).
ORIGINAL = [
    [("Posterize", 0.4, 8), ("Rotate", 0.6, 9)], [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)], [("Posterize", 0.6, 7), ("Posterize", 0.6, 6)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)], [("Equalize", 0.4, 4), ("Rotate", 0.8, 8)],
    [("Solarize", 0.6, 3), ("Equalize", 0.6, 7)], [("Posterize", 0.8, 5), ("Equalize", 1.0, 2)],
    [("Rotate", 0.2, 3), ("Solarize", 0.6, 8)], [("Equalize", 0.6, 8), ("Posterize", 0.4, 6)],
    [("Rotate", 0.8, 8), ("Color", 0.4, 0)], [("Rotate", 0.4, 9), ("Equalize", 0.6, 2)],
    [("Equalize", 0.0, 7), ("Equalize", 0.8, 8)], [("Invert", 0.6, 4), ("Equalize", 1.0, 8)],
    [("Color", 0.6, 4), ("Contrast", 1.0, 8)], [("Rotate", 0.8, 8), ("Color", 1.0, 2)],
    [("Color", 0.8, 8), ("Solarize", 0.8, 7)], [("Sharpness", 0.4, 7), ("Invert", 0.6, 8)],
    [("ShearX", 0.6, 5), ("Equalize", 1.0, 9)], [("Color", 0.4, 0), ("Equalize", 0.6, 3)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)], [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Invert", 0.6, 4), ("Equalize", 1.0, 8)], [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)],
]


def level_to_arg(op, level):
    """(arg, negated arg) as timm's *_level_to_arg with _MAX_LEVEL 10."""
    x = level / 10.0
    if op == "Rotate":
        return x * 30.0, -(x * 30.0)
    if op in ("ShearX", "ShearY"):
        return x * 0.3, -(x * 0.3)
    if op in ("TranslateX", "TranslateY"):
        return x * 57.0, -(x * 57.0)
    if op in ("Color", "Contrast", "Brightness", "Sharpness"):
        return x * 1.8 + 0.1, x * 1.8 + 0.1
    if op == "Posterize":  # _posterize_original_level_to_arg
        return int(x * 4) + 4, int(x * 4) + 4
    if op == "Solarize":
        return int(x * 256), int(x * 256)
    if op == "SolarizeAdd":
        return int(x * 110), int(x * 110)
    return 0, 0


PIL_NAME = {"AutoContrast": "autocontrast", "Equalize": "equalize", "Invert": "invert", "Rotate": "rotate",
            "Posterize": "posterize", "Solarize": "solarize", "SolarizeAdd": "solarizeadd", "Color": "color",
            "Contrast": "contrast", "Brightness": "brightness", "Sharpness": "sharpness", "ShearX": "shearx",
            "ShearY": "sheary", "TranslateX": "translatex", "TranslateY": "translatey"}
RS_NAME = {0: "nearest", 2: "bilinear", 3: "bicubic"}

SIGNED = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


def auto_augment(img, rnd):
    """One AutoAugment draw on a PIL RGB image; rnd is a random.Random."""
    for op, prob, level in rnd.choice(ORIGINAL):
        if prob < 1.0 and rnd.random() > prob:
            continue
        arg, neg = level_to_arg(op, level)
        if op in SIGNED and rnd.random() < 0.5:
            arg = neg
        rs = rnd.choice(("bilinear", "bicubic")) if op in SIGNED else "nearest"
        img = pillow_op(img, PIL_NAME[op], arg, rs)
    return img
