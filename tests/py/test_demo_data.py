"""The demo data generator (tools/make_demo_data.py) against the layouts ufo reads.

Writes the demo root at --scale 0.1 into a temp folder (seconds) and checks,
from the files themselves:
  - every layout file of the four training sets and five evaluation sets exists;
  - the MS1M-style RecordIO parses with a small reader written here from the
    MXNet/dmlc format (magic, lrecord length and cflag, 4-byte alignment, the
    idx offsets, IRHeader '<IfQQ', insightface's header and identity records),
    every image is a 112x112 JPEG, labels are 0..C-1 with 10 images each; the
    writer's split records (magic word inside the data) read back whole;
  - evaluation identities are disjoint from training identities (face, person,
    vehicle) and Fashion-MNIST is split 0-5 train / 6-9 evaluation, its images
    really being the source file's images;
  - the ReID protocol is exercisable: every query has a match on another camera,
    same-camera gallery images and pid 0 distractors exist; pairs are consistent
    with the identities in the face filelists;
  - identities look alike within and differ between (raw-pixel statistics), and
    no two shots of an identity are the same picture;
  - manifest.json and README.txt agree with the files; the output is the same for
    --jobs 1 and --jobs 2;
  - if the ufo CLI exists ($UFO_BIN, default build/ufo), `ufo eval` of a tiny
    random model on LFW,AgeDB_30,Market1501,VeRi,SOP succeeds.
Final line: "demo_data: N passed, M failed". Run with /usr/bin/python3.
"""
import gzip
import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)
from oracle_util import Checks  # noqa: E402
import make_demo_data  # noqa: E402

GEN = os.path.join(TOOLS, "make_demo_data.py")
PY = sys.executable
SCALE = "0.1"
C = Checks("demo_data")
MAGIC = 0xCED7230A


# ------------------------------------------------------------ independent RecordIO reader

def read_rec(rec_path, idx_path):
    """{key: payload} from train.rec + train.idx, and the problems found."""
    data = open(rec_path, "rb").read()
    problems = []
    out = {}
    offsets = []
    for ln, line in enumerate(open(idx_path), 1):
        f = line.rstrip("\n").split("\t")
        if len(f) != 2:
            problems.append("idx line %d: %r" % (ln, line))
            continue
        key, off = int(f[0]), int(f[1])
        offsets.append(off)
        payload, pos, parts = b"", off, 0
        while True:
            if pos % 4:
                problems.append("key %d: piece at unaligned offset %d" % (key, pos))
            magic, lrec = struct.unpack_from("<II", data, pos)
            if magic != MAGIC:
                problems.append("key %d: bad magic %#x at %d" % (key, magic, pos))
                break
            cflag, n = lrec >> 29, lrec & ((1 << 29) - 1)
            payload += data[pos + 8:pos + 8 + n]
            pos += 8 + ((n + 3) & ~3)
            if cflag in (0, 3):
                break
            payload += struct.pack("<I", MAGIC)
            parts += 1
        if key in out:
            problems.append("key %d repeated" % key)
        out[key] = payload
    # the records tile the file with nothing between them
    ends = sorted(offsets)
    if ends and ends[0] != 0:
        problems.append("first record at %d" % ends[0])
    return out, problems, len(data)


def irheader(buf):
    flag, label, id_, id2 = struct.unpack_from("<IfQQ", buf, 0)
    labels = list(struct.unpack_from("<%df" % flag, buf, 24)) if flag else [label]
    return flag, labels, id_, id2, buf[24 + 4 * flag:]


# ------------------------------------------------------------ helpers

def names(d):
    return sorted(f for f in os.listdir(d) if f.lower().endswith(".jpg"))


def market_items(d):
    out = []
    for f in names(d):
        m = re.match(r"^(-?\d+)_c(\d)s\d_\d{6}_\d{2}\.jpg$", f)
        out.append((f, int(m.group(1)), int(m.group(2))) if m else (f, None, None))
    return out


def veri_items(d):
    out = []
    for f in names(d):
        m = re.match(r"^(\d{4})_c(\d{3})_(\d{8})_0\.jpg$", f)
        out.append((f, int(m.group(1)), int(m.group(2))) if m else (f, None, None))
    return out


def thumb(path, size):
    a = np.asarray(Image.open(path).convert("RGB").resize(size, Image.BILINEAR), np.float32).ravel()
    a -= a.mean()
    return a / (np.linalg.norm(a) + 1e-6)


def within_between(paths_by_id, size):
    """Mean cosine of raw-pixel thumbnails within identities and between them."""
    ids = sorted(paths_by_id)
    F = {i: np.stack([thumb(p, size) for p in paths_by_id[i]]) for i in ids}
    w = [float((F[i] @ F[i].T)[np.triu_indices(len(F[i]), 1)].mean()) for i in ids if len(F[i]) > 1]
    allf = np.concatenate([F[i] for i in ids])
    lab = np.concatenate([[k] * len(F[i]) for k, i in enumerate(ids)])
    S = allf @ allf.T
    b = float(S[lab[:, None] != lab[None, :]].mean())
    return float(np.mean(w)), b


def tree_digest(root):
    h = hashlib.sha256()
    for dp, dn, fns in sorted(os.walk(root)):
        dn.sort()
        for f in sorted(fns):
            p = os.path.join(dp, f)
            h.update(os.path.relpath(p, root).encode() + b"\0" + open(p, "rb").read())
    return h.hexdigest()


def fmnist(split):
    base = make_demo_data.FMNIST_DIR
    with gzip.open(os.path.join(base, "%s-images-idx3-ubyte.gz" % split)) as f:
        img = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(base, "%s-labels-idx1-ubyte.gz" % split)) as f:
        lab = np.frombuffer(f.read(), np.uint8, offset=8)
    return img, lab


# ------------------------------------------------------------ the checks

def check_writer():
    magic = struct.pack("<I", MAGIC)
    cases = [b"", b"abc", b"abcd" * 3, magic + b"xyz", b"abcd" + magic + b"efgh" + magic + magic + b"ij",
             b"ab" + magic + b"cd", b"abcd" + magic]
    with tempfile.TemporaryDirectory() as d:
        w = make_demo_data.IndexedRecordIOWriter(os.path.join(d, "t.idx"), os.path.join(d, "t.rec"))
        for k, c in enumerate(cases):
            w.write_idx(k, c)
        w.close()
        got, problems, _ = read_rec(os.path.join(d, "t.rec"), os.path.join(d, "t.idx"))
    C.check(not problems and [got[k] for k in range(len(cases))] == cases,
            "RecordIO writer: records with the magic word inside (split, cflag 1/2/3) read back whole %s" % problems[:2])
    fr = make_demo_data.recordio_frame(b"abcd" + magic + b"ef")
    C.check(struct.unpack_from("<II", fr, 0) == (MAGIC, (1 << 29) | 4) and
            struct.unpack_from("<II", fr, 12) == (MAGIC, (3 << 29) | 2) and len(fr) == 24,
            "RecordIO writer: dmlc's split layout (first piece cflag 1, last cflag 3, padded)")
    h = make_demo_data.recordio_pack(2, [5, 7], 0, 0, b"")
    C.check(irheader(h)[:4] == (2, [5.0, 7.0], 0, 0) and len(h) == 32, "IRHeader with a label array (flag 2)")


def check_face(root, man):
    d = os.path.join(root, "ms1m-retinaface-t1")
    rec, idx = os.path.join(d, "train.rec"), os.path.join(d, "train.idx")
    if not C.check(os.path.isfile(rec) and os.path.isfile(idx), "face: ms1m-retinaface-t1/train.rec + train.idx exist"):
        return set()
    recs, problems, size = read_rec(rec, idx)
    C.check(not problems, "face: every record has the magic, a 4-byte-aligned start and fits %s" % problems[:3])
    C.check(size % 4 == 0, "face: train.rec is a whole number of padded records")
    flag, lab0, id0, _, rest = irheader(recs[0])
    n = int(lab0[0]) - 1
    n_ids = int(lab0[1]) - int(lab0[0]) if flag == 2 else 0
    C.check(flag == 2 and rest == b"" and n > 0 and n_ids > 0,
            "face: record 0 is insightface's header (flag 2, label [N+1, N+1+C]): N=%d C=%d" % (n, n_ids))
    C.check(sorted(recs) == list(range(n + 1 + n_ids)), "face: keys 0..N+C, each once")
    labels, bad_hdr, sizes = [], 0, set()
    for k in range(1, n + 1):
        f, lab, id_, id2, img = irheader(recs[k])
        if f != 0 or id_ != k or id2 != 0 or lab[0] != int(lab[0]):
            bad_hdr += 1
        labels.append(int(lab[0]))
        try:
            im = Image.open(io.BytesIO(img))
            sizes.add((im.format, im.size))
        except Exception:
            sizes.add("undecodable")
    C.check(bad_hdr == 0, "face: image records IRHeader(flag=0, label=identity, id=key, id2=0)")
    C.check(sizes == {("JPEG", (112, 112))}, "face: every record is a 112x112 JPEG %s" % sorted(map(str, sizes))[:3])
    cnt = np.bincount(labels)
    C.check(sorted(set(labels)) == list(range(n_ids)) and set(cnt) == {10},
            "face: labels 0..C-1, 10 images each (C=%d)" % n_ids)
    ok = True
    for j in range(n_ids):
        f, lab, id_, _, rest = irheader(recs[n + 1 + j])
        first, end = int(lab[0]), int(lab[1])
        ok &= f == 2 and rest == b"" and id_ == n + 1 + j and all(labels[k - 1] == j for k in range(first, end)) \
            and end - first == 10
    C.check(ok, "face: identity records [first, end) cover each identity's images")
    C.check(os.path.isfile(os.path.join(d, "property")), "face: property file")
    train_ids = set(labels)
    # verification sets
    for stem in ("lfw", "agedb_30"):
        fl = os.path.join(root, "faces_emore_val", stem + ".filelist")
        lb = os.path.join(root, "faces_emore_val", stem + "_label.npy")
        if not C.check(os.path.isfile(fl) and os.path.isfile(lb), "face: faces_emore_val/%s.filelist + _label.npy" % stem):
            continue
        rows = [l.split() for l in open(fl) if l.strip()]
        same = np.load(lb)
        C.check(same.dtype == np.bool_ and same.ndim == 1 and len(rows) == 2 * len(same),
                "%s: %d pairs, 2 lines a pair, bool flags" % (stem, len(same)))
        ids = [int(r[1]) for r in rows]
        C.check(all((ids[2 * i] == ids[2 * i + 1]) == bool(s) for i, s in enumerate(same)),
                "%s: is-same flags agree with the identities of the pair images" % stem)
        C.check(abs(int(same.sum()) - len(same) / 2) <= 1, "%s: half the pairs are the same identity" % stem)
        C.check(not (set(ids) & train_ids) and not (set(ids) & set(range(n_ids))),
                "%s: identities disjoint from training" % stem)
        paths = [os.path.join(root, "faces_emore_val", r[0]) for r in rows]
        ex = [os.path.isfile(p) for p in paths]
        C.check(all(ex), "%s: every listed image exists" % stem)
        C.check({Image.open(p).size for p in set(paths)} == {(112, 112)}, "%s: 112x112 crops" % stem)
        m = man["tasks"]["face"]["eval"]["LFW" if stem == "lfw" else "AgeDB_30"]
        C.check(m["pairs"] == len(same) and m["images"] == len(set(paths)), "%s: manifest counts match" % stem)
    m = man["tasks"]["face"]["train"]
    C.check(m["identities"] == n_ids and m["images"] == n and m["sets"] == ["MS1M-V3"], "face: manifest training counts")
    return train_ids


def check_reid(root, man):
    base = os.path.join(root, "Market-1501-v15.09.15")
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        C.check(os.path.isdir(os.path.join(base, sub)), "person: Market-1501-v15.09.15/%s" % sub)
    tr = market_items(os.path.join(base, "bounding_box_train"))
    q = market_items(os.path.join(base, "query"))
    g = market_items(os.path.join(base, "bounding_box_test"))
    C.check(all(p is not None for _, p, _ in tr + q + g), "person: every name matches <pid>_c<cam>s1_<frame>_<nn>.jpg")
    tr_ids = {p for _, p, _ in tr}
    q_ids = {p for _, p, _ in q}
    g_ids = {p for _, p, _ in g if p > 0}
    C.check(not (tr_ids & (q_ids | g_ids)) and 0 not in tr_ids and -1 not in tr_ids,
            "person: evaluation identities disjoint from training (%d train, %d eval)" % (len(tr_ids), len(g_ids)))
    C.check({c for _, _, c in tr + q + g} <= set(range(1, 7)) and len({c for _, _, c in g}) == 6, "person: 6 cameras")
    C.check(all(any(gp == p and gc != c for _, gp, gc in g) for _, p, c in q),
            "person: every query has a match on another camera")
    C.check(any(gp == p and gc == c for _, p, c in q for _, gp, gc in g),
            "person: some gallery images share the query's camera (the junk rule fires)")
    C.check(sum(p == 0 for _, p, _ in g) >= 2 and sum(p == -1 for _, p, _ in g) >= 1,
            "person: pid 0 distractors and pid -1 junk in the gallery")
    C.check(min(np.bincount([p for _, p, _ in tr])[list(tr_ids)]) >= 4, "person: >= 4 training images per identity")
    m = man["tasks"]["person"]
    C.check(m["train"]["images"] == len(tr) and m["train"]["identities"] == len(tr_ids) and
            m["eval"]["Market1501"]["query"] == len(q) and
            m["eval"]["Market1501"]["gallery"] == sum(p != -1 for _, p, _ in g), "person: manifest counts match")
    C.check({Image.open(os.path.join(base, "query", f)).size for f, _, _ in q} == {(64, 128)}, "person: 64x128 crops")
    by = {}
    for f, p, _ in tr:
        by.setdefault(p, []).append(os.path.join(base, "bounding_box_train", f))
    w, b = within_between(by, (16, 32))
    C.check(w > b + 0.1, "person: raw pixels closer within identities (%.3f) than between (%.3f)" % (w, b))
    digests = [hashlib.md5(open(p, "rb").read()).hexdigest() for ps in by.values() for p in ps]
    C.check(len(set(digests)) == len(digests), "person: no two training images are the same picture")

    vb = os.path.join(root, "veri")
    for sub in ("image_train", "image_query", "image_test"):
        C.check(os.path.isdir(os.path.join(vb, sub)), "vehicle: veri/%s" % sub)
    tr = veri_items(os.path.join(vb, "image_train"))
    q = veri_items(os.path.join(vb, "image_query"))
    g = veri_items(os.path.join(vb, "image_test"))
    C.check(all(p is not None for _, p, _ in tr + q + g), "vehicle: every name matches <vid:4>_c<ccc>_<frame:8>_0.jpg")
    tr_ids, ev_ids = {p for _, p, _ in tr}, {p for _, p, _ in g}
    C.check(not (tr_ids & ev_ids) and {p for _, p, _ in q} <= ev_ids,
            "vehicle: evaluation vehicles disjoint from training (%d train, %d eval)" % (len(tr_ids), len(ev_ids)))
    C.check({c for _, _, c in tr + q + g} <= set(range(1, 21)), "vehicle: cameras c001..c020")
    C.check(all(any(gp == p and gc != c for _, gp, gc in g) for _, p, c in q),
            "vehicle: every query has a match on another camera")
    C.check({f for f, _, _ in q} <= {f for f, _, _ in g}, "vehicle: the queries are also in image_test (as VeRi-776)")
    C.check(min(np.bincount([p for _, p, _ in tr])[list(tr_ids)]) >= 4, "vehicle: >= 4 training images per vehicle")
    m = man["tasks"]["vehicle"]
    C.check(m["train"]["images"] == len(tr) and m["eval"]["VeRi"]["query"] == len(q) and
            m["eval"]["VeRi"]["gallery"] == len(g), "vehicle: manifest counts match")
    C.check({Image.open(os.path.join(vb, "image_train", f)).size for f, _, _ in tr} == {(96, 64)}, "vehicle: 96x64 crops")
    by = {}
    for f, p, _ in tr:
        by.setdefault(p, []).append(os.path.join(vb, "image_train", f))
    w, b = within_between(by, (24, 16))
    C.check(w > b + 0.1, "vehicle: raw pixels closer within identities (%.3f) than between (%.3f)" % (w, b))


def check_product(root, man):
    base = os.path.join(root, "Stanford_Online_Products")
    lists = {}
    for split in ("train", "test"):
        p = os.path.join(base, split + ".txt")
        if not C.check(os.path.isfile(p), "product: Stanford_Online_Products/%s.txt" % split):
            return
        lists[split] = [(l.rsplit(",", 1)[0], int(l.rsplit(",", 1)[1])) for l in open(p).read().splitlines() if l]
    C.check({c for _, c in lists["train"]} == {0, 1, 2, 3, 4, 5}, "product: training classes are Fashion-MNIST 0-5")
    C.check({c for _, c in lists["test"]} == {6, 7, 8, 9}, "product: evaluation classes are 6-9 (never trained on)")
    C.check(all(os.path.isfile(os.path.join(base, r)) for r, _ in lists["train"] + lists["test"]),
            "product: every listed image exists")
    ntr = np.bincount([c for _, c in lists["train"]], minlength=10)
    nte = np.bincount([c for _, c in lists["test"]], minlength=10)
    C.check(set(ntr[:6]) == {30} and set(nte[6:]) == {10}, "product: 300*S / 100*S images per class at S=0.1")
    # the images are the source images (by the index in the name), upscaled to 32x32
    worst = 0.0
    for split, src in (("train", "train"), ("test", "t10k")):
        imgs, labs = fmnist(src)
        for rel, c in lists[split][:: max(1, len(lists[split]) // 15)]:
            i = int(re.search(r"_(\d{5})\.jpg$", rel).group(1))
            if labs[i] != c:
                worst = 999
                continue
            ref = np.asarray(Image.fromarray(imgs[i]).resize((32, 32), Image.BICUBIC), np.float32)
            got = np.asarray(Image.open(os.path.join(base, rel)).convert("L"), np.float32)
            worst = max(worst, float(np.abs(got - ref).mean()))
    C.check(worst < 4.0, "product: images are the Fashion-MNIST source images (mean abs diff <= %.2f)" % worst)
    m = man["tasks"]["product"]
    C.check(m["synthetic"] is False and m["train"]["images"] == len(lists["train"]) and
            m["eval"]["SOP"]["images"] == len(lists["test"]), "product: manifest counts match, marked real")


def check_eval(root):
    ufo_bin = os.environ.get("UFO_BIN", "build/ufo")
    if not (os.path.isfile(ufo_bin) and os.access(ufo_bin, os.X_OK)):
        print("  skip  ufo eval (no CLI at %s)" % ufo_bin)
        return
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny.safetensors")
        r = subprocess.run([ufo_bin, "init", "--preset", "tiny", "--img-size", "32", "--patch", "16", "--out", model],
                           capture_output=True, text=True)
        if not C.check(r.returncode == 0, "ufo init --preset tiny --img-size 32 --patch 16"):
            print(r.stderr.strip()[-500:])
            return
        t0 = time.time()
        r = subprocess.run([ufo_bin, "eval", "--model", model, "--data", root, "--datasets",
                            "LFW,AgeDB_30,Market1501,VeRi,SOP", "--quiet", "--json", os.path.join(d, "r.json")],
                           capture_output=True, text=True)
        if not C.check(r.returncode == 0, "ufo eval --datasets LFW,AgeDB_30,Market1501,VeRi,SOP on the demo root (%.1f s)"
                       % (time.time() - t0)):
            print(r.stderr.strip()[-800:])
        else:
            out = r.stdout
            C.check(all(s in out for s in ("LFW", "Market1501", "SOP")), "ufo eval printed the table")


def main():
    check_writer()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "demo")
        t0 = time.time()
        r = subprocess.run([PY, GEN, root, "--scale", SCALE, "--seed", "0", "--jobs", "2"], capture_output=True, text=True)
        dt = time.time() - t0
        if not C.check(r.returncode == 0, "make_demo_data.py --scale %s ran (%.1f s)" % (SCALE, dt)):
            print(r.stderr[-1500:])
            C.finish()
        print(r.stdout.rstrip())
        C.check(dt < 30, "generation at --scale %s takes seconds (%.1f s)" % (SCALE, dt))
        man = json.load(open(os.path.join(root, "manifest.json")))
        readme = open(os.path.join(root, "README.txt")).read()
        C.check("SYNTHETIC" in readme and "Fashion-MNIST" in readme and
                man["synthetic_tasks"] == ["face", "person", "vehicle"] and
                all(man["tasks"][t]["synthetic"] for t in ("face", "person", "vehicle")),
                "README.txt and manifest.json label face/person/vehicle as synthetic")
        C.check(man["ufo_eval_datasets"] == "LFW,AgeDB_30,Market1501,VeRi,SOP" and
                man["recipe_sets"] == {"face": "MS1M-V3", "person": "Market1501", "vehicle": "VeRi", "product": "SOP"},
                "manifest: ufo eval names and training set names")
        check_face(root, man)
        check_reid(root, man)
        check_product(root, man)
        root1 = os.path.join(tmp, "demo_j1")
        r = subprocess.run([PY, GEN, root1, "--scale", SCALE, "--seed", "0", "--jobs", "1"], capture_output=True, text=True)
        C.check(r.returncode == 0 and tree_digest(root) == tree_digest(root1),
                "the tree is a function of (seed, scale): --jobs 1 writes the same bytes as --jobs 2")
        C.check(make_demo_data.face_image(1, 0, 0) != make_demo_data.face_image(0, 0, 0),
                "another seed draws other identities")
        check_eval(root)
    C.finish()


if __name__ == "__main__":
    main()
