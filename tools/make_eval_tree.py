#!/usr/bin/env python3
"""Write a tiny evaluation tree in every one of the twelve layouts of SPEC section 5.

    make_eval_tree.py DIR [--seed N]

DIR becomes a FASTREID_DATASETS root with real (small) JPEG files: each identity
has its own colours and stripe pattern, its images small variations of it, so a
model could in principle tell identities apart. The whole tree is well under 2 MB.
DIR/manifest.json records what was written, independently of the C readers:
for every set the kind, n_query and the images in the order the reader must
list them, so tests compare the readers (and whole pipelines) against it.

Layout under DIR (the default root):

  faces_emore_val/
      <stem>.filelist          calfw cplfw lfw cfp_ff cfp_fp: one line per image,
                               "<stem>/NNNNN.jpg <identity>" (the reader keeps the first token)
      <stem>_label.npy         numpy bool is-same flags, one per pair (images 2i, 2i+1)
      <stem>/NNNNN.jpg         40x40 face crops (24 images = 12 pairs: 10 folds, two of 2 pairs)
      lfw.bin                  ALSO lfw as insightface's .bin: a Python-2 style pickle
                               (protocol 2, py2 str opcodes) of ([JPEG bytes], [bools]),
                               the same JPEG bytes as the files
      agedb_30.bin             agedb_30 ONLY as .bin (no filelist): the reader falls back to it
  Market-1501-v15.09.15/{query,bounding_box_test}/
                               <pid:04d>_c<cam>s1_<frame:06d>_<k:02d>.jpg, 32x64; the gallery
                               also holds pid 0 distractors, pid -1 junk (to be dropped) and a
                               Thumbs.db (not *.jpg: ignored); one query has no valid match
  MSMT17_V1/{test/<pid:04d>/<pid:04d>_<k:03d>_<cam:02d>_0303morning_<frame:04d>_0.jpg,
             list_query.txt, list_gallery.txt}  lines "<pid:04d>/<file> <pid>"
  veri/{image_query,image_test}/<pid:04d>_c<cam:03d>_<frame:08d>_0.jpg, 48x40
  vehicleid/image/<7 digits>.jpg + vehicleid/train_test_split/test_list_2400.txt
                               ("<name> <vid>", shuffled lines)
  VERI-Wild/images/<vid:05d>/<imgid:06d>.jpg
  VERI-Wild/train_test_split/{vehicle_info.txt (with its header line; also lists images that
             are in no test list), test_10000_query.txt, test_10000.txt}  lines "<vid>/<imgid>"
  Stanford_Online_Products/<class>_final/<id>_<k>.JPG + test.txt ("relpath,label", no header,
             as the original reads it); one image is greyscale, one carries EXIF orientation 6
  manifest.json

Alternative roots under DIR/_alt/ (each a FASTREID_DATASETS root of its own):
  _alt/msmt17_v2      MSMT17_V2/{mask_test_v2, list_query.txt, list_gallery.txt}
  _alt/market_flat    Market1501's query/ and bounding_box_test/ directly under the root
  _alt/veriwild_ufo   VERI-Wild as the UFO release had it: vehicle_info.txt without header,
                      lists named test_10000_id_query.txt / test_10000_id.txt
  _alt/sop_ebay       SOP with only the dataset's own Ebay_test.txt

manifest.json:
  {"version": 1, "seed": N,
   "sets": {NAME: EXPECT, ...},            the twelve, read from DIR with default options
   "variants": [{"name": NAME, "root": "_alt/..." or ".", "opts": {...}, "expect": EXPECT}]}
  EXPECT for ReID/retrieval: {"kind": "reid"|"retrieval", "n_query": Q,
                              "items": [[relpath, pid, camid], ...]}  (relpath from its root)
  EXPECT for face files:     {"kind": "verify", "paths": [relpath...], "issame": [0/1...],
                              "identity": [...]}
  EXPECT for a face .bin:    {"kind": "verify", "bin": relpath, "blobs": [[size, fnv1a64 hex]...],
                              "issame": [...], "identity": [...]}
  opts: {"face_source": "bin"|"filelist"} or {"msmt_version": 1|2}.

vehicleid_split(pids, seed) below is the C reader's documented split
(xoshiro256** + unbiased Fisher-Yates), for tests that check it.
"""
import argparse
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image

MASK64 = (1 << 64) - 1


# --------------------------------------------------------------- the split

class Xoshiro256ss:
    """xoshiro256** seeded by splitmix64, as src/base/rng.c."""

    def __init__(self, seed):
        x = seed & MASK64
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            s.append(z ^ (z >> 31))
        self.s = s

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, bound):
        threshold = (1 << 64) % bound
        while True:
            x = self.next()
            if x >= threshold:
                return x % bound


def vehicleid_split(pids, seed):
    """(order, n_query): queries' indices then the gallery's, as ufo_vehicleid_split."""
    n = len(pids)
    rng = Xoshiro256ss(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    seen, query, gallery = set(), [], []
    for i in perm:
        if pids[i] in seen:
            query.append(i)
        else:
            seen.add(pids[i])
            gallery.append(i)
    return query + gallery, len(query)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return "%016x" % h


# --------------------------------------------------------------- images

class Painter:
    """Identity-dependent images: two colours, a stripe direction and period."""

    def __init__(self, rng):
        self.rng = rng
        self.looks = {}

    def look(self, key):
        if key not in self.looks:
            r = self.rng
            self.looks[key] = (r.randint(0, 256, 3), r.randint(0, 256, 3), int(r.randint(0, 3)), int(r.randint(3, 9)))
        return self.looks[key]

    def image(self, key, w, h, grey=False):
        c1, c2, direction, period = self.look(key)
        yy, xx = np.mgrid[0:h, 0:w]
        t = (xx if direction == 0 else yy if direction == 1 else xx + yy) // period % 2
        img = np.where(t[..., None] == 0, c1, c2).astype(np.float64)
        img += self.rng.normal(0, 6, img.shape) + self.rng.uniform(-15, 15)   # per-image variation
        img = np.clip(img, 0, 255).astype(np.uint8)
        im = Image.fromarray(img, "RGB")
        return im.convert("L") if grey else im

    def jpeg(self, key, w, h, grey=False, exif_orientation=None):
        buf = io.BytesIO()
        kw = {}
        if exif_orientation:
            ex = Image.Exif()
            ex[0x0112] = exif_orientation
            kw["exif"] = ex.tobytes()
        self.image(key, w, h, grey).save(buf, "JPEG", quality=85, **kw)
        return buf.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --------------------------------------------------------------- py2 pickle

def py2_pickle(bins, flags):
    """What Python 2's cPickle.dump((bins, flags), f, protocol=2) writes: py2 str
    (SHORT_BINSTRING/BINSTRING) items memoised, appended in batches of 1000."""
    out = bytearray(b"\x80\x02")
    memo = [0]

    def put():
        i = memo[0]
        memo[0] += 1
        out.extend(b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i))

    def lst(items, emit):
        out.extend(b"]")
        put()
        for b in range(0, len(items), 1000):
            chunk = items[b:b + 1000]
            if len(chunk) > 1:
                out.extend(b"(")
            for it in chunk:
                emit(it)
            out.extend(b"e" if len(chunk) > 1 else b"a")

    def emit_str(s):
        out.extend((b"U" + bytes([len(s)])) if len(s) < 256 else (b"T" + struct.pack("<I", len(s))))
        out.extend(s)
        put()

    lst(bins, emit_str)
    lst(flags, lambda v: out.extend(b"\x88" if v else b"\x89"))
    out.extend(b"\x86")
    put()
    out.extend(b".")
    return bytes(out)


# --------------------------------------------------------------- the sets

FACE_STEMS = [("CALFW", "calfw"), ("CPLFW", "cplfw"), ("LFW", "lfw"),
              ("CFP_FF", "cfp_ff"), ("CFP_FP", "cfp_fp"), ("AgeDB_30", "agedb_30")]


def make_faces(root, P, rng, sets, variants):
    fdir = os.path.join(root, "faces_emore_val")
    for name, stem in FACE_STEMS:
        n_pairs = 12
        ids = ["%s_%d" % (stem, i) for i in range(6)]
        issame = [bool(b) for b in rng.permutation([1] * 6 + [0] * 6)]
        identity, blobs = [], []
        for same in issame:
            a = ids[rng.randint(len(ids))]
            b = a if same else ids[(ids.index(a) + 1 + rng.randint(len(ids) - 1)) % len(ids)]
            for who in (a, b):
                identity.append(who)
                blobs.append(P.jpeg(who, 40, 40))
        assert len(blobs) == 2 * n_pairs
        flags01 = [int(x) for x in issame]
        if stem != "agedb_30":
            rels = ["%s/%05d.jpg" % (stem, i) for i in range(len(blobs))]
            for rel, data in zip(rels, blobs):
                write(os.path.join(fdir, rel), data)
            write(os.path.join(fdir, stem + ".filelist"),
                  "".join("%s %d\n" % (rel, ids.index(who)) for rel, who in zip(rels, identity)))
            np.save(os.path.join(fdir, stem + "_label.npy"), np.array(issame, dtype=bool))
            sets[name] = {"kind": "verify", "paths": ["faces_emore_val/" + r for r in rels],
                          "issame": flags01, "identity": identity}
        if stem in ("lfw", "agedb_30"):
            write(os.path.join(fdir, stem + ".bin"), py2_pickle(blobs, issame))
            exp = {"kind": "verify", "bin": "faces_emore_val/%s.bin" % stem,
                   "blobs": [[len(b), fnv1a64(b)] for b in blobs], "issame": flags01, "identity": identity}
            if stem == "agedb_30":
                sets[name] = exp
            else:
                variants.append({"name": name, "root": ".", "opts": {"face_source": "bin"}, "expect": exp})


def make_market(base, P, rng, tag):
    """Market folders under base; returns EXPECT with paths relative to base."""
    q, g = [], []
    frame = [100]

    def name(pid, cam):
        frame[0] += int(rng.randint(1, 50))
        return "%04d_c%ds1_%06d_%02d.jpg" % (pid, cam, frame[0], 1) if pid >= 0 else \
            "-1_c%ds1_%06d_00.jpg" % (cam, frame[0])

    plan_q = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 2), (1, 6), (3, 1)]
    plan_g = [(1, 2), (1, 3), (2, 1), (2, 5), (3, 2), (3, 4), (4, 1), (4, 6), (5, 1), (5, 3),
              (6, 2), (6, 2),               # pid 6: only its query's camera -> no valid match
              (0, 1), (0, 4),               # distractors: kept
              (-1, 1), (-1, 3)]             # junk: dropped by the reader
    for folder, plan, out in (("query", plan_q, q), ("bounding_box_test", plan_g, g)):
        for pid, cam in plan:
            fn = name(pid, cam)
            write(os.path.join(base, folder, fn), P.jpeg("%s_m%d" % (tag, pid), 32, 64))
            if pid != -1:
                out.append([folder + "/" + fn, pid, cam - 1])
    write(os.path.join(base, "bounding_box_test", "Thumbs.db"), b"not an image")
    q.sort(key=lambda r: r[0].encode())
    g.sort(key=lambda r: r[0].encode())
    return {"kind": "reid", "n_query": len(q), "items": q + g}


def make_msmt(root, P, rng, version):
    main = "MSMT17_V%d" % version
    test = "test" if version == 1 else "mask_test_v2"
    plan_q = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 15)]
    plan_g = [(0, 2), (0, 3), (1, 1), (1, 5), (2, 6), (2, 3), (3, 7), (4, 14), (4, 15), (5, 9)]
    exp = []
    k = [0]
    for fname, plan in (("list_query.txt", plan_q), ("list_gallery.txt", plan_g)):
        lines = []
        for pid, cam in plan:
            k[0] += 1
            rel = "%04d/%04d_%03d_%02d_0303morning_%04d_0.jpg" % (pid, pid, k[0], cam, 10 + k[0])
            write(os.path.join(root, main, test, rel), P.jpeg("msmt%d" % pid, 32, 64))
            lines.append("%s %d\n" % (rel, pid))
            exp.append(["%s/%s/%s" % (main, test, rel), pid, cam - 1])
        write(os.path.join(root, main, fname), "".join(lines))
    return {"kind": "reid", "n_query": len(plan_q), "items": exp}


def make_veri(root, P, rng):
    q, g = [], []
    plan_q = [(2, 1), (3, 5), (4, 12), (5, 20)]
    plan_g = [(2, 2), (2, 3), (3, 5), (3, 6), (4, 1), (4, 11), (5, 19), (6, 8), (7, 9)]
    for folder, plan, out in (("image_query", plan_q, q), ("image_test", plan_g, g)):
        for i, (pid, cam) in enumerate(plan):
            fn = "%04d_c%03d_%08d_0.jpg" % (pid, cam, 30000 + 37 * i + pid)
            write(os.path.join(root, "veri", folder, fn), P.jpeg("veri%d" % pid, 48, 40))
            out.append(["veri/%s/%s" % (folder, fn), pid, cam - 1])
    q.sort(key=lambda r: r[0].encode())
    g.sort(key=lambda r: r[0].encode())
    return {"kind": "reid", "n_query": len(q), "items": q + g}


def make_vehicleid(root, P, rng):
    rows = []
    num = 1000
    for vid in (11, 12, 13, 14, 15, 16):
        for _ in range(2 + int(rng.randint(0, 4))):
            num += int(rng.randint(1, 40))
            rows.append(("%07d" % num, vid))
    rows = [rows[i] for i in rng.permutation(len(rows))]
    for nm, vid in rows:
        write(os.path.join(root, "vehicleid", "image", nm + ".jpg"), P.jpeg("vid%d" % vid, 48, 40))
    write(os.path.join(root, "vehicleid", "train_test_split", "test_list_2400.txt"),
          "".join("%s %d\n" % r for r in rows))
    return {"kind": "reid", "n_query": 0,
            "items": [["vehicleid/image/%s.jpg" % nm, vid, int(nm)] for nm, vid in rows]}


def make_veriwild(root, P, rng, ufo_style=False):
    base = os.path.join(root, "VERI-Wild")
    info = []       # (vid, imgid, cam)
    imgid = 100
    for vid in (1, 2, 3, 4, 5, 9):
        for _ in range(3 + int(rng.randint(0, 3))):
            imgid += int(rng.randint(1, 20))
            info.append((vid, imgid, int(rng.randint(1, 175))))
    # the first image of each vehicle is the query, the rest gallery; vehicle 9 is "train" only
    q, g, seen = [], [], set()
    for vid, iid, cam in info:
        if vid == 9:
            continue
        (g if vid in seen else q).append((vid, iid, cam))
        seen.add(vid)
        write(os.path.join(base, "images", "%05d" % vid, "%06d.jpg" % iid), P.jpeg("vw%d" % vid, 48, 40))
    lines = ["%05d/%06d;%03d;2018-03-11 11:%02d:29;Nissan-Sylphy;sedan;white\n" % (v, i, c, i % 60)
             for v, i, c in info]
    header = "" if ufo_style else "id/image;Camera ID;Time;Model;Type;Color\n"
    write(os.path.join(base, "train_test_split", "vehicle_info.txt"), header + "".join(lines))
    qn, gn = ("test_10000_id_query.txt", "test_10000_id.txt") if ufo_style else \
        ("test_10000_query.txt", "test_10000.txt")
    write(os.path.join(base, "train_test_split", qn), "".join("%05d/%06d\n" % (v, i) for v, i, _ in q))
    write(os.path.join(base, "train_test_split", gn), "".join("%05d/%06d\n" % (v, i) for v, i, _ in g))
    items = [["VERI-Wild/images/%05d/%06d.jpg" % (v, i), v, c] for v, i, c in q + g]
    return {"kind": "reid", "n_query": len(q), "items": items}


def make_sop(root, P, rng, ebay=False):
    base = os.path.join(root, "Stanford_Online_Products")
    rows = []
    k = 0
    for label, cls in ((11319, "bicycle"), (11320, "bicycle"), (12001, "chair"), (12002, "chair"),
                       (13005, "kettle"), (13006, "mug")):
        prod = 111085122000 + label
        for j in range(2 + int(rng.randint(0, 3))):
            k += 1
            rel = "%s_final/%d_%d.JPG" % (cls, prod, j)
            grey = k == 2
            exif = 6 if k == 5 else None
            write(os.path.join(base, rel), P.jpeg("sop%d" % label, 48, 48, grey=grey, exif_orientation=exif))
            rows.append((k, label, rel, cls))
    if ebay:
        supers = {c: i + 1 for i, c in enumerate(sorted({r[3] for r in rows}))}
        write(os.path.join(base, "Ebay_test.txt"), "image_id class_id super_class_id path\n" +
              "".join("%d %d %d %s\n" % (i, lab, supers[c], rel) for i, lab, rel, c in rows))
    else:
        write(os.path.join(base, "test.txt"), "".join("%s,%d\n" % (rel, lab) for _, lab, rel, _ in rows))
    items = [["Stanford_Online_Products/" + rel, lab, 0] for _, lab, rel, _ in rows]
    return {"kind": "retrieval", "n_query": len(items), "items": items}


def make_tree(root, seed=0):
    """Writes the tree under root and returns the manifest (also written as root/manifest.json)."""
    rng = np.random.RandomState(seed)
    P = Painter(rng)
    sets, variants = {}, []
    os.makedirs(root, exist_ok=True)
    make_faces(root, P, rng, sets, variants)
    sets["Market1501"] = make_market(os.path.join(root, "Market-1501-v15.09.15"), P, rng, "main")
    for it in sets["Market1501"]["items"]:
        it[0] = "Market-1501-v15.09.15/" + it[0]
    sets["MSMT17"] = make_msmt(root, P, rng, 1)
    sets["VeRi"] = make_veri(root, P, rng)
    sets["LargeVehicleID"] = make_vehicleid(root, P, rng)
    sets["LargeVeRiWild"] = make_veriwild(root, P, rng)
    sets["SOP"] = make_sop(root, P, rng)

    alt = os.path.join(root, "_alt")
    variants.append({"name": "MSMT17", "root": "_alt/msmt17_v2", "opts": {},
                     "expect": make_msmt(os.path.join(alt, "msmt17_v2"), P, rng, 2)})
    variants.append({"name": "Market1501", "root": "_alt/market_flat", "opts": {},
                     "expect": make_market(os.path.join(alt, "market_flat"), P, rng, "flat")})
    variants.append({"name": "LargeVeRiWild", "root": "_alt/veriwild_ufo", "opts": {},
                     "expect": make_veriwild(os.path.join(alt, "veriwild_ufo"), P, rng, ufo_style=True)})
    variants.append({"name": "SOP", "root": "_alt/sop_ebay", "opts": {},
                     "expect": make_sop(os.path.join(alt, "sop_ebay"), P, rng, ebay=True)})
    variants.append({"name": "LFW", "root": ".", "opts": {"face_source": "filelist"}, "expect": sets["LFW"]})
    manifest = {"version": 1, "seed": seed, "sets": sets, "variants": variants}
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="root to write (becomes a FASTREID_DATASETS folder)")
    ap.add_argument("--seed", type=int, default=0, help="random seed of the pictures and lists (default 0)")
    a = ap.parse_args(argv)
    m = make_tree(a.dir, a.seed)
    total = 0
    for dp, _, fns in os.walk(a.dir):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fns)
    print("wrote %d sets (+%d variants) under %s, %.0f KiB" % (len(m["sets"]), len(m["variants"]), a.dir, total / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
