#!/usr/bin/python3
"""`ufo preprocess` against Pillow, byte for byte (SPEC section 3).

Generates the image set of tools/make_test_images.py into a temp folder, runs
`ufo preprocess` on all of it at 384x384 and at 224x160, and compares each
image with Image.open -> ImageOps.exif_transpose -> convert("RGB") ->
resize((W, H), Image.BICUBIC): ufo's floats de-normalised (x * 127.5 + 127.5,
rounded) must equal Pillow's bytes exactly, and the floats must be exactly
(x - 127.5) / 127.5 in float32. Files cut short or with random bytes changed
must be accepted or refused exactly when Pillow accepts or refuses them (and
then give the same pixels). Then the failure paths: a JPEG and a PNG cut
in half, a garbage file, a missing path, and one bad file among good ones must
each exit non-zero with an error naming the file, leaving no --out file and no
temp file. Prints "preprocess: N passed, M failed"; exits 1 on any failure.

Env: UFO_BIN (the CLI). Run with /usr/bin/python3 (numpy + Pillow).
"""
import glob
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import make_test_images  # noqa: E402

warnings.simplefilter("ignore")  # Pillow's palette-transparency notices
UFO = os.environ.get("UFO_BIN", "build/ufo")
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what, flush=True)
    return ok


def run(args):
    return subprocess.run([UFO, "preprocess"] + args, capture_output=True, text=True, timeout=300)


def pillow(path, w, h):
    im = Image.open(path)
    im = ImageOps.exif_transpose(im).convert("RGB")
    return np.asarray(im.resize((w, h), Image.BICUBIC))


def to_bytes(chw):
    """[3, H, W] float32 -> H x W x 3 uint8, checking the values are exact."""
    x = np.rint(chw.astype(np.float64) * 127.5 + 127.5)
    ok = x.min() >= 0 and x.max() <= 255
    u8 = np.clip(x, 0, 255).astype(np.uint8)
    exact = np.array_equal(((u8.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)), chw)
    return u8.transpose(1, 2, 0), ok and exact


def no_leftovers(out):
    return not glob.glob(out + "*")


def parity(paths, w, h, tmp):
    out = os.path.join(tmp, "all_%dx%d.npy" % (w, h))
    t0 = time.time()
    r = run(["--size", "%dx%d" % (w, h) if w != h else str(w)] + paths + ["--out", out])
    t_ufo = time.time() - t0
    if not check(r.returncode == 0, "ufo preprocess (%dx%d) on %d images: rc %d: %s"
                 % (w, h, len(paths), r.returncode, r.stderr.strip())):
        return
    arr = np.load(out)
    check(arr.dtype == np.float32 and arr.shape == (len(paths), 3, h, w),
          "shape %s dtype %s" % (arr.shape, arr.dtype))
    same = 0
    for i, p in enumerate(paths):
        got, exact = to_bytes(arr[i])
        ref = pillow(p, w, h)
        d = np.abs(got.astype(int) - ref.astype(int))
        if check(exact and np.array_equal(got, ref), "%s at %dx%d: %d bytes differ (max %d)%s" % (
                os.path.basename(p), w, h, int((d > 0).sum()), int(d.max()),
                "" if exact else ", floats not exactly (x-127.5)/127.5")):
            same += 1
    passed_images[(w, h)] = same
    print("parity %dx%d: %d/%d images byte-identical to Pillow (ufo %.2f s)" % (w, h, same, len(paths), t_ufo),
          flush=True)


def truncation_parity(paths, tmp):
    """Cut files at a few points: ufo and Pillow must agree on accepting or
    refusing each, and on the pixels when both accept. (Cuts inside the last
    IDAT's zlib checksum / CRC are left out: Pillow, which already has every
    row, accepts those, libpng does not; see the report.)"""
    names = {"face112_q95_444.jpg", "w385h383_prog.jpg", "grey_w123h77_prog.jpg", "cmyk_w37h53_prog.jpg",
             "exif_o6.jpg", "rgb_w112h112.png", "hand_interlaced_rgba16.png", "hand_exif_after_idat_o8.png",
             "hand_raw_profile_text_o3.png"}
    agree = total = 0
    cut_path = os.path.join(tmp, "cut.bin")
    out = os.path.join(tmp, "cut.npy")
    for p in paths:
        if os.path.basename(p) not in names:
            continue
        data = open(p, "rb").read()
        n = len(data)
        cuts = {8, 40, n // 4, n // 2, 3 * n // 4, n - 1, n - 2}
        if p.endswith(".png"):
            cuts |= {n - 12, n - 6, n - 30, n - 40}
        for c in sorted(x for x in cuts if 0 < x < n):
            open(cut_path, "wb").write(data[:c])
            try:
                ref = pillow(cut_path, 64, 48)
            except Exception:
                ref = None
            r = run(["--size", "64x48", cut_path, "--out", out])
            got = to_bytes(np.load(out))[0] if r.returncode == 0 else None
            if os.path.exists(out):
                os.remove(out)
            same = (ref is None and got is None) or (ref is not None and got is not None and np.array_equal(ref, got))
            total += 1
            if check(same, "%s cut at %d of %d: Pillow %s, ufo %s" % (
                    os.path.basename(p), c, n, "ok" if ref is not None else "refuses",
                    "ok" if got is not None else "refuses (%s)" % r.stderr.strip())):
                agree += 1
    print("truncation: ufo and Pillow agree on %d/%d cut files" % (agree, total), flush=True)


def corruption_parity(paths, tmp, trials=80):
    """Random byte changes anywhere in the file (fixed seed): ufo and Pillow
    must agree on accepting or refusing, and on the pixels when both accept."""
    rnd = random.Random(1234)
    agree = 0
    cut_path = os.path.join(tmp, "corrupt.bin")
    out = os.path.join(tmp, "corrupt.npy")
    for t in range(trials):
        p = paths[rnd.randrange(len(paths))]
        data = bytearray(open(p, "rb").read())
        for _ in range(rnd.randint(1, 3)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        open(cut_path, "wb").write(bytes(data))
        try:
            ref = pillow(cut_path, 64, 48)
        except Exception:
            ref = None
        r = run(["--size", "64x48", cut_path, "--out", out])
        got = to_bytes(np.load(out))[0] if r.returncode == 0 else None
        if os.path.exists(out):
            os.remove(out)
        same = (ref is None and got is None) or (ref is not None and got is not None and np.array_equal(ref, got))
        if check(same, "%s corrupted (trial %d): Pillow %s, ufo %s" % (
                os.path.basename(p), t, "ok" if ref is not None else "refuses",
                "ok" if got is not None else "refuses (%s)" % r.stderr.strip())):
            agree += 1
    print("corruption: ufo and Pillow agree on %d/%d corrupted files" % (agree, trials), flush=True)


def expect_failure(args, name, out, what):
    r = run(args + ["--out", out])
    check(r.returncode != 0, "%s: exit status 0" % what)
    line = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    check(name in line, "%s: error line does not name %s: %r" % (what, name, line))
    check(no_leftovers(out), "%s: left %s" % (what, glob.glob(out + "*")))
    return line


passed_images = {}


def main():
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="ufo_preprocess_") as tmp:
        img_dir = os.path.join(tmp, "images")
        paths = make_test_images.make_all(img_dir)
        check(len(paths) >= 60, "only %d test images" % len(paths))
        print("%d test images" % len(paths), flush=True)

        parity(paths, 384, 384, tmp)
        parity(paths, 224, 160, tmp)

        truncation_parity(paths, tmp)
        corruption_parity(paths, tmp)

        # one image -> [3, H, W]; default size 384
        one = os.path.join(tmp, "one.npy")
        face = [p for p in paths if os.path.basename(p) == "face112_q95_444.jpg"][0]
        r = run([face, "--out", one])
        if check(r.returncode == 0, "single image: %s" % r.stderr.strip()):
            a = np.load(one)
            check(a.shape == (3, 384, 384), "single image shape %s" % (a.shape,))
            got, exact = to_bytes(a)
            check(exact and np.array_equal(got, pillow(face, 384, 384)), "single image parity")

        # failures: nothing written, error names the file
        data = open(face, "rb").read()
        cut_jpg = os.path.join(tmp, "cut_in_half.jpg")
        open(cut_jpg, "wb").write(data[: len(data) // 2])
        png = [p for p in paths if os.path.basename(p) == "rgb_w500h700.png"][0]
        pdata = open(png, "rb").read()
        cut_png = os.path.join(tmp, "cut_in_half.png")
        open(cut_png, "wb").write(pdata[: len(pdata) // 2])
        garbage = os.path.join(tmp, "garbage.jpg")
        open(garbage, "wb").write(bytes(range(256)) * 8)
        missing = os.path.join(tmp, "does_not_exist.png")
        out = os.path.join(tmp, "fail.npy")
        line = expect_failure([cut_jpg], cut_jpg, out, "truncated JPEG")
        check("truncated" in line, "truncated JPEG message: %r" % line)
        line = expect_failure([cut_png], cut_png, out, "truncated PNG")
        check("truncated" in line, "truncated PNG message: %r" % line)
        line = expect_failure([garbage], garbage, out, "garbage file")
        check("not a JPEG or PNG" in line, "garbage message: %r" % line)
        expect_failure([missing], missing, out, "missing file")
        expect_failure([face, png, cut_jpg, face], cut_jpg, out, "one bad file among good ones")
        # Pillow agrees that these are broken
        for p in (cut_jpg, cut_png, garbage):
            try:
                Image.open(p).load()
                check(False, "Pillow accepted %s" % p)
            except Exception:
                check(True, "")
        # an existing --out stays untouched on failure
        open(out, "wb").write(b"keep")
        r = run([garbage, "--out", out])
        check(r.returncode != 0 and open(out, "rb").read() == b"keep", "failed run replaced an existing --out")
        os.remove(out)

        # usage
        r = run(["--help"])
        check(r.returncode == 0 and "usage" in r.stdout, "--help")
        r = run([face])
        check(r.returncode == 2, "missing --out: rc %d" % r.returncode)
        r = run(["--size", "0", face, "--out", out])
        check(r.returncode == 2 and no_leftovers(out), "--size 0: rc %d" % r.returncode)
        r = run(["--size", "12x", face, "--out", out])
        check(r.returncode == 2 and no_leftovers(out), "--size 12x: rc %d" % r.returncode)
        check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temp files left in %s" % tmp)

    print("parity images: %s" % ", ".join("%dx%d: %d" % (k[0], k[1], v) for k, v in passed_images.items()))
    print("preprocess: %d passed, %d failed (checks; %.1f s)" % (passed, failed, time.time() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
