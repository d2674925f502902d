#!/usr/bin/python3
"""`ufo embed FOLDER`: the image files under a folder, against Python's own walk.

Builds a tree with images at several depths (.jpg, .JPG, .jpeg, .png), names that
sort differently as whole paths than folder by folder ("a.b/..." before "a/..."),
a hidden folder, a text file, a link to a file and a link back up the tree. The
expected list comes from os.walk here: every non-hidden regular file (or link to
one) with an image extension, hidden names and links to folders skipped, sorted
by the whole path as bytes (C's strcmp). Then:
  - `--paths-out` lists exactly that, and the .npy has one row per path;
  - each row is bit-identical to embedding the same paths named one by one, and
    to a folder given with a trailing slash, and mixed with a file argument;
  - an empty folder, and a folder holding one corrupt image, fail with one line
    naming the folder or the file and leave neither --out nor --paths-out.
Prints "embed_folder: N passed, M failed"; exits 1 on any failure.

Env: UFO_BIN (the CLI). Run with /usr/bin/python3 (numpy + Pillow).
"""
import os
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from oracle_util import Checks, ufo  # noqa: E402

IMAGE_EXT = (".jpg", ".jpeg", ".png")


def expected_images(root):
    """What the folder argument must stand for, found independently of ufo."""
    out = []
    for d, dirs, files in os.walk(root):   # os.walk does not descend into links to folders
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for f in files:
            p = os.path.join(d, f)
            if f.startswith(".") or not f.lower().endswith(IMAGE_EXT) or not os.path.isfile(p):
                continue
            out.append(p)
    # links to folders show up in os.walk's dirs, never in files: nothing to drop
    return sorted(out, key=os.fsencode)


def make_tree(root):
    rng = np.random.RandomState(0)

    def img(rel, fmt):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        Image.fromarray(rng.randint(0, 255, (37, 29, 3), dtype=np.uint8)).save(p, format=fmt)

    img("a/1.jpg", "JPEG")
    img("a/x.JPG", "JPEG")
    img("a/sub/deeper/5.png", "PNG")
    img("a.b/3.jpeg", "JPEG")
    img("b.png", "PNG")
    img(".hidden/4.jpg", "JPEG")
    img("c/.6.jpg", "JPEG")
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("not an image\n")
    os.symlink("../b.png", os.path.join(root, "c", "linked.png"))   # a link to a file counts
    os.symlink("..", os.path.join(root, "a", "up"))                 # a link up the tree does not


def main():
    c = Checks("embed_folder")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m.safetensors")
        ufo("init", "--preset", "tiny", "--depth", "2", "--img-size", "64", "--out", model)
        root = os.path.join(tmp, "tree")
        make_tree(root)
        want = expected_images(root)
        c.check(len(want) == 6, f"the oracle finds the 6 images ({len(want)})")

        feats, listed = os.path.join(tmp, "f.npy"), os.path.join(tmp, "f.txt")
        ufo("embed", "--model", model, "--out", feats, "--paths-out", listed, "--quiet", root)
        got = open(listed).read().splitlines()
        c.check(got == want, f"--paths-out lists the oracle's paths in its order ({got})")
        f = np.load(feats)
        c.check(f.shape == (len(want), 192), f"one row per image ({f.shape})")

        one = os.path.join(tmp, "one.npy")
        ufo("embed", "--model", model, "--out", one, "--quiet", *want)
        c.check(np.array_equal(np.load(one), f), "rows equal embedding the paths one by one")

        slash, slash_list = os.path.join(tmp, "s.npy"), os.path.join(tmp, "s.txt")
        ufo("embed", "--model", model, "--out", slash, "--paths-out", slash_list, "--quiet", root + "/",
            want[0])
        c.check(open(slash_list).read().splitlines() == want + [want[0]],
                "a trailing slash lists the same paths (no '//'), then the file argument")
        c.check(np.array_equal(np.load(slash)[:-1], f) and np.array_equal(np.load(slash)[-1], f[0]),
                "folder + file rows equal the folder's rows and the file's")

        empty = os.path.join(tmp, "empty")
        os.makedirs(os.path.join(empty, "sub"))
        bad_out, bad_list = os.path.join(tmp, "bad.npy"), os.path.join(tmp, "bad.txt")
        r = ufo("embed", "--model", model, "--out", bad_out, "--paths-out", bad_list, empty, check=False)
        err = r.stderr.strip().splitlines()
        c.check(r.returncode != 0 and len(err) == 1 and empty in err[0],
                f"an empty folder: one line naming it, non-zero exit ({r.returncode}: {err})")
        c.check(not os.path.exists(bad_out) and not os.path.exists(bad_list), "... and no output")

        corrupt = os.path.join(tmp, "corrupt")
        os.makedirs(corrupt)
        Image.new("RGB", (20, 20), (1, 2, 3)).save(os.path.join(corrupt, "good.jpg"))
        with open(os.path.join(corrupt, "half.jpg"), "wb") as out_f:
            out_f.write(open(want[0], "rb").read()[:200])
        r = ufo("embed", "--model", model, "--out", bad_out, "--paths-out", bad_list, "--quiet", corrupt,
                check=False)
        err = r.stderr.strip().splitlines()
        c.check(r.returncode != 0 and len(err) == 1 and "half.jpg" in err[0],
                f"a corrupt image in the folder: one line naming it ({r.returncode}: {err})")
        c.check(not os.path.exists(bad_out) and not os.path.exists(bad_list), "... and no output")
        c.check(not [x for x in os.listdir(tmp) if ".tmp." in x], "no temp file left")
    c.finish()


if __name__ == "__main__":
    main()
