#!/usr/bin/python3
"""Augmentation ops against Pillow 9.4, byte for byte (issue 6 part 3).

Every AutoAugment operation (src/image/autoaugment.c) is run by the driver
$UFO_BUILD/test_augment_dump at fixed arguments on real photos that Debian
ships (matplotlib's grace_hopper.jpg, scikit-learn's china.jpg and
flower.jpg, at 97x73 and 128x128 and one at full size), a synthetic gradient,
noise, a constant image, one where equalize's LUT must be clipped, tiny images (1x1, 2x3, 3x3, 4x1), and compared
with what Pillow's Image.transform / rotate, ImageOps and ImageEnhance give
(timm's solarize_add written out as its LUT): both signs, every resampling
filter (NEAREST, BILINEAR, BICUBIC), the policy's own arguments and others.

Then the policy table printed by the driver is checked against the
"original" ImageNet policy of timm / fast-reid (25 sub-policies) and its
level -> argument mapping, and whole ufo_augment draws are re-created with
Pillow from their trace (AutoAugment ops, BICUBIC resize, pad 10 with 0 and
crop, flip, (x - 127.5) / 127.5): every value outside the erased box must be
equal, and the box must hold N(0, 1)-like values.

Prints "augment: N passed, M failed"; exits 1 on any failure.
Env: UFO_BUILD (where test_augment_dump is). Run with /usr/bin/python3.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image, ImageOps

from autoaugment_pil import ORIGINAL, PIL_NAME, RS_NAME, level_to_arg, pillow_op

BUILD = os.environ.get("UFO_BUILD", "build")
DUMP = os.path.join(BUILD, "test_augment_dump")
PHOTOS = [
    "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
    "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg",
]

passed = failed = 0
per_op = {}  # op -> [cases, exact, max abs diff]


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return ok


# ---------------------------------------------------------------- Pillow side

# ---------------------------------------------------------------- inputs

def make_inputs(tmp):
    imgs = {}
    for p in PHOTOS:
        if not os.path.exists(p):
            print("note: missing photo", p)
            continue
        base = os.path.splitext(os.path.basename(p))[0]
        im = Image.open(p).convert("RGB")
        imgs[base + "_97x73"] = im.resize((97, 73), Image.BICUBIC)
        imgs[base + "_128"] = im.resize((128, 128), Image.BICUBIC)
    check(len(imgs) >= 4, "at least two of the Debian photos are present")
    y, x = np.mgrid[0:47, 0:61]
    grad = np.stack([x * 255 // 60, y * 255 // 46, (x + y) * 255 // 106], -1).astype(np.uint8)
    imgs["gradient_61x47"] = Image.fromarray(grad)
    rng = np.random.default_rng(6)
    imgs["noise_33x17"] = Image.fromarray(rng.integers(0, 256, (17, 33, 3), dtype=np.uint8))
    imgs["const_9x7"] = Image.new("RGB", (9, 7), (200, 40, 90))
    imgs["narrow_40x8"] = Image.fromarray(rng.integers(60, 200, (8, 40, 3), dtype=np.uint8))
    # equalize's LUT overshoots 255 here (step 1, 300 pixels below the top value): Image.point clips
    eq = np.full((7, 43, 3), 10, np.uint8)
    eq[3, 20] = (200, 150, 250)
    imgs["eqclip_43x7"] = Image.fromarray(eq)
    for w, h in ((1, 1), (2, 3), (3, 3), (4, 1)):
        imgs["tiny_%dx%d" % (w, h)] = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    paths = {}
    for name, im in imgs.items():
        paths[name] = os.path.join(tmp, name + ".png")
        im.save(paths[name])
    big = None
    if os.path.exists(PHOTOS[0]):
        big = os.path.join(tmp, "grace_hopper_full.png")
        Image.open(PHOTOS[0]).convert("RGB").save(big)
    return imgs, paths, big


def cases_for(w, h):
    out = []
    geo = []
    for s in (1, -1):
        # the policy's own arguments (levels 1..10) and a few others
        for m in sorted({level_to_arg("ShearX", l)[0] for l in range(1, 11)} | {0.03}):
            geo += [("shearx", repr(s * m)), ("sheary", repr(s * m))]
        for m in sorted({level_to_arg("TranslateX", l)[0] for l in (1, 5, 10)} | {0.5, 0.45 * w, 500.0}):
            geo += [("translatex", repr(s * m)), ("translatey", repr(s * m))]
        for m in sorted({level_to_arg("Rotate", l)[0] for l in range(1, 11)} | {45.5, 90.0, 1e-7}):
            geo.append(("rotate", repr(s * m)))
    geo += [("rotate", v) for v in ("0", "180", "270", "360", "720.3", "-180")]
    geo += [("affine", "0.7,0,3.2,0,1.3,-2.1"), ("affine", "0.9,0.2,-3,-0.15,1.1,4"),
            ("affine", "1,0,0,0,1,0"), ("affine", "-1,0.05,%d,0.1,1,-1.5" % w)]
    for op, arg in geo:
        for rs in ("nearest", "bilinear", "bicubic"):
            out.append((op, arg, rs))
    pts = [("autocontrast", "0"), ("equalize", "0"), ("invert", "0")]
    pts += [("posterize", str(b)) for b in range(9)]
    pts += [("solarize", v) for v in ("0", "76", "102", "128", "179", "204", "256", "113.7")]
    pts += [("solarizeadd", v) for v in ("0", "33", "77", "110")]
    factors = sorted({level_to_arg("Color", l)[0] for l in range(11)} | {0.0, 1.0, 0.5, 2.5, -0.3})
    for op in ("color", "contrast", "brightness", "sharpness"):
        pts += [(op, repr(f)) for f in factors]
    out += [(op, arg, "bilinear") for op, arg in pts]
    return out


def run_batch(lines, tmp):
    listing = os.path.join(tmp, "batch.txt")
    with open(listing, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(listing) as f:
        r = subprocess.run([DUMP, "batch"], stdin=f, capture_output=True, text=True, timeout=600)
    return r


def parity(imgs, paths, big, tmp):
    jobs = []
    for name, path in paths.items():
        w, h = imgs[name].size
        for k, (op, arg, rs) in enumerate(cases_for(w, h)):
            jobs.append((name, path, op, arg, rs, os.path.join(tmp, "o_%s_%d.png" % (name, k))))
    if big:
        bigim = Image.open(big)
        for k, (op, arg, rs) in enumerate([("rotate", "27.0", "bicubic"), ("rotate", "-24.0", "bilinear"),
                                           ("shearx", "-0.15", "bicubic"), ("equalize", "0", "bilinear"),
                                           ("sharpness", "1.36", "bilinear"), ("contrast", "1.54", "bilinear"),
                                           ("color", "0.1", "bilinear"), ("autocontrast", "0", "bilinear")]):
            imgs["full"] = bigim
            jobs.append(("full", big, op, arg, rs, os.path.join(tmp, "o_full_%d.png" % k)))
    t0 = time.time()
    r = run_batch(["%s %s %s %s %s" % (op, arg, path, out, rs) for _, path, op, arg, rs, out in jobs], tmp)
    t_c = time.time() - t0
    if not check(r.returncode == 0, "driver batch: rc %d: %s" % (r.returncode, r.stderr.strip())):
        return
    worst = []
    for name, path, op, arg, rs, out in jobs:
        ref = np.asarray(pillow_op(imgs[name], op, arg, rs))
        got = np.asarray(Image.open(out).convert("RGB"))
        key = op if op not in ("shearx", "sheary", "translatex", "translatey", "rotate", "affine") else op + "/" + rs
        st = per_op.setdefault(key, [0, 0, 0])
        st[0] += 1
        same = got.shape == ref.shape and np.array_equal(got, ref)
        if same:
            st[1] += 1
        else:
            d = int(np.abs(got.astype(int) - ref.astype(int)).max()) if got.shape == ref.shape else 999
            st[2] = max(st[2], d)
            worst.append("%s %s %s on %s: max |diff| %d, %d pixels differ" % (
                op, arg, rs, name, d, int((got != ref).any(-1).sum()) if got.shape == ref.shape else -1))
        check(same, "%s(%s, %s) on %s equals Pillow" % (op, arg, rs, name))
    print("parity: %d op applications, C driver %.1f s" % (len(jobs), t_c))
    for key in sorted(per_op):
        n, ok, d = per_op[key]
        print("  %-22s %4d/%4d byte-identical%s" % (key, ok, n, "" if ok == n else "  (max |diff| %d)" % d))
    for line in worst[:20]:
        print("  differs:", line)


# ---------------------------------------------------------------- policy

def check_policy():
    r = subprocess.run([DUMP, "policy"], capture_output=True, text=True, timeout=60)
    if not check(r.returncode == 0, "driver policy: %s" % r.stderr.strip()):
        return None
    rows = [line.split() for line in r.stdout.strip().splitlines()]
    check(len(rows) == 50, "policy has 25 sub-policies of 2 ops")
    table = [[None, None] for _ in range(25)]
    for i, s, op, prob, level, arg, narg in rows:
        i, s = int(i), int(s)
        table[i][s] = (op, float(prob), int(level), float(arg), float(narg))
        want_op, want_p, want_l = ORIGINAL[i][s]
        check((op, float(prob), int(level)) == (want_op, want_p, want_l),
              "sub-policy %d op %d: %s %s %s, expected %s" % (i, s, op, prob, level, ORIGINAL[i][s]))
        a, na = level_to_arg(op, int(level))
        check(float(arg) == a and float(narg) == na, "%s level %s -> %s / %s, expected %s / %s" % (
            op, level, arg, narg, a, na))
    return table


# ---------------------------------------------------------------- whole transform

def check_transform(table, imgs, paths, tmp):
    names = [n for n in paths if n.endswith("_97x73")] + ["gradient_61x47", "tiny_1x1", "narrow_40x8"]
    S, pad = 48, 10
    n_aa = n_er = n_fl = 0
    erased_vals = []
    total = 0
    for name in names:
        for seed in range(40):
            out = os.path.join(tmp, "aug_%s_%d.f32" % (name, seed))
            r = subprocess.run([DUMP, "augment", str(seed), str(S), paths[name], out, str(pad)],
                               capture_output=True, text=True, timeout=60)
            if not check(r.returncode == 0, "augment %s seed %d: %s" % (name, seed, r.stderr.strip())):
                continue
            tr = json.loads(r.stdout)
            got = np.fromfile(out, dtype=np.float32).reshape(3, S, S)
            im = imgs[name]
            if tr["autoaug"]:
                n_aa += 1
                for s in range(2):
                    if tr["applied"][s]:
                        op = table[tr["subpolicy"]][s][0]
                        im = pillow_op(im, PIL_NAME[op], repr(tr["arg"][s]), RS_NAME[tr["rs"][s]])
            im = im.resize((S, S), Image.BICUBIC)
            im = ImageOps.expand(im, border=pad, fill=0)
            y0, x0 = tr["crop_y"], tr["crop_x"]
            im = im.crop((x0, y0, x0 + S, y0 + S))
            if tr["flipped"]:
                n_fl += 1
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            ref = ((np.asarray(im).astype(np.float32) - np.float32(127.5)) / np.float32(127.5)).transpose(2, 0, 1)
            mask = np.ones((S, S), bool)
            if tr["erased"]:
                n_er += 1
                t, l, h, w = tr["erase_top"], tr["erase_left"], tr["erase_h"], tr["erase_w"]
                mask[t:t + h, l:l + w] = False
                box = got[:, t:t + h, l:l + w]
                erased_vals.append(box.ravel())
            total += 1
            check(0 <= y0 <= 2 * pad and 0 <= x0 <= 2 * pad, "crop offsets in range")
            check(np.array_equal(got[:, mask], ref[:, mask]),
                  "augment %s seed %d equals the Pillow re-creation outside the erased box (trace %s)" % (
                      name, seed, tr))
    ev = np.concatenate(erased_vals) if erased_vals else np.zeros(0)
    print("transform: %d draws re-created (AutoAugment %d, flipped %d, erased %d); erased values: n %d, "
          "mean %.3f, std %.3f" % (total, n_aa, n_fl, n_er, ev.size, ev.mean() if ev.size else 0,
                                   ev.std() if ev.size else 0))
    check(0.3 * total < n_aa < 0.7 * total, "AutoAugment fired in about half the draws")
    check(0.3 * total < n_fl < 0.7 * total, "flip fired in about half the draws")
    check(0.3 * total < n_er < 0.7 * total, "erasing fired in about half the draws")
    check(ev.size > 1000 and abs(ev.mean()) < 0.05 and abs(ev.std() - 1) < 0.05,
          "erased values look like N(0, 1) in normalised units")


def main():
    if not os.path.exists(DUMP):
        print("missing %s (set UFO_BUILD)" % DUMP, file=sys.stderr)
        return 1
    r = subprocess.run([DUMP], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "driver self-check: %s" % r.stderr.strip())
    with tempfile.TemporaryDirectory() as tmp:
        imgs, paths, big = make_inputs(tmp)
        parity(imgs, paths, big, tmp)
        table = check_policy()
        if table:
            check_transform(table, imgs, paths, tmp)
        r = subprocess.run([DUMP, "posterize", "9", paths["tiny_1x1"], os.path.join(tmp, "x.png")],
                           capture_output=True, text=True)
        check(r.returncode == 0, "posterize 9 bits is the identity (timm)")
        r = subprocess.run([DUMP, "rotate", "3", os.path.join(tmp, "missing.png"), os.path.join(tmp, "y.png")],
                           capture_output=True, text=True)
        check(r.returncode != 0 and "missing.png" in r.stderr, "a missing input is reported by name")
    print("augment: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
