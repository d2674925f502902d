"""End to end: `ufo eval` on a tiny tree in every one of the twelve layouts
(tools/make_eval_tree.py, real JPEG files) with a small random model equals a
Python pipeline built from independent parts: the PyTorch model
(tools/vit_torch.py), Pillow preprocessing, the numpy/scikit-learn protocols
(tools/metrics_ref.py). The printed table must agree to the last digit, every
JSON metric to 1e-6. Also: the feature cache, CSV, the test-time flip (`--flip`:
each embedding averaged with that of the mirrored input tensor, in the oracle
too), and clear errors for a missing folder and an absent head."""
import csv
import io
import json
import os
import pickle
import subprocess
import tempfile

import numpy as np
import torch
from PIL import Image, ImageOps

import make_eval_tree
import metrics_ref
import safetensors_io
import vit_torch
from oracle_util import UFO, Checks, ufo

torch.set_num_threads(2)
C = Checks("eval_e2e")
IMG, PATCH, DIM, DEPTH, HEADS = 32, 8, 64, 2, 2
FACE = {"CALFW", "CPLFW", "LFW", "CFP_FF", "CFP_FP", "AgeDB_30"}
SEED, SPLITS = 3, 2


def preprocess(src):
    im = ImageOps.exif_transpose(Image.open(src)).convert("RGB").resize((IMG, IMG), Image.BICUBIC)
    return ((np.asarray(im, dtype=np.float32) - 127.5) / 127.5).transpose(2, 0, 1)


def embed(model, sources, task, flip=False):
    x = torch.from_numpy(np.stack([preprocess(s) for s in sources])).double()
    with torch.no_grad():
        f = model(x, task)
        if flip:   # fast-reid's TEST.FLIP: the batch mirrored along the width
            f = (f + model(torch.flip(x, dims=[3]), task)) / 2
        return f.float().numpy()


def agedb_blobs(root, entry):
    with open(os.path.join(root, entry["bin"]), "rb") as f:
        bins, _ = pickle.load(f, encoding="bytes")
    return [io.BytesIO(bytes(b)) for b in bins]


def python_results(root, manifest, model, flip=False, only=None):
    out = {}
    for name, e in manifest["sets"].items():
        if only and name not in only:
            continue
        if e["kind"] == "verify":
            srcs = agedb_blobs(root, e) if "bin" in e else [os.path.join(root, p) for p in e["paths"]]
            f = embed(model, srcs, "face", flip)
            out[name] = metrics_ref.face_verification(f, np.array(e["issame"]))
            continue
        paths = [os.path.join(root, it[0]) for it in e["items"]]
        pid = np.array([it[1] for it in e["items"]])
        cam = np.array([it[2] for it in e["items"]])
        f = embed(model, paths, "product" if e["kind"] == "retrieval" else "vehicle", flip)
        if e["kind"] == "retrieval":
            out[name] = metrics_ref.sop_recall(f, pid)
        elif e["n_query"] == 0:  # LargeVehicleID: mean over seeded splits
            runs = []
            for k in range(SPLITS):
                order, nq = make_eval_tree.vehicleid_split(list(pid), SEED + k)
                o = np.array(order)
                runs.append(metrics_ref.reid(f[o[:nq]], pid[o[:nq]], cam[o[:nq]], f[o[nq:]], pid[o[nq:]], cam[o[nq:]]))
            out[name] = {k: float(np.mean([r[k] for r in runs])) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")}
        else:
            nq = e["n_query"]
            out[name] = metrics_ref.reid(f[:nq], pid[:nq], cam[:nq], f[nq:], pid[nq:], cam[nq:])
    return out


def table_cells(stdout):
    rows = [line for line in stdout.splitlines() if line.startswith("|")]
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    vals = [c.strip() for c in rows[2].strip("|").split("|")]
    return dict(zip(head[1:], vals[1:]))


COLUMN = {"CALFW": "CALFW", "CPLFW": "CPLFW", "LFW": "LFW", "CFP_FF": "CFP-FF", "CFP_FP": "CFP-FP",
          "AgeDB_30": "AGEDB-30", "Market1501": "Market1501", "MSMT17": "MSMT17", "VeRi": "Veri776",
          "LargeVehicleID": "VehicleID", "LargeVeRiWild": "VeriWild", "SOP": "SOP"}


def expected_cell(name, r):
    if name in FACE:
        return f"{r['accuracy']:.2f}"
    if name == "SOP":
        return f"{r['recall@1']:.2f}"
    return f"{r['rank1']:.2f}/{r['mAP']:.2f}"


def main():
    with tempfile.TemporaryDirectory() as d:
        root = os.path.join(d, "data")
        manifest = make_eval_tree.make_tree(root, seed=0)
        model = vit_torch.randomize(vit_torch.AllInOne(IMG, PATCH, DIM, DEPTH, HEADS, 4 * DIM), 11).double()
        mpath = os.path.join(d, "m.safetensors")
        safetensors_io.write(mpath, vit_torch.state_dict_numpy(model.float()), {"num_heads": HEADS})
        model.double()
        js, cs, cache = os.path.join(d, "r.json"), os.path.join(d, "r.csv"), os.path.join(d, "cache")
        r = ufo("eval", "--model", mpath, "--data", root, "--json", js, "--csv", cs, "--cache", cache,
                "--vehicleid-splits", SPLITS, "--seed", SEED, "--quiet")
        got_cells, got = table_cells(r.stdout), json.load(open(js))
        ref = python_results(root, manifest, model)
        for name, rr in ref.items():
            C.check(got_cells.get(COLUMN[name]) == expected_cell(name, rr),
                    f"{name}: table cell {got_cells.get(COLUMN[name])} == python {expected_cell(name, rr)}")
            keys = [k for k in ("accuracy", "accuracy_std", "threshold", "rank1", "rank5", "rank10", "mAP", "mINP",
                                "recall@1", "recall@10", "recall@100", "recall@1000") if k in rr and k in got[name]]
            worst = max(abs(got[name][k] - rr[k]) for k in keys)
            C.check(len(keys) >= 3 and worst <= 1e-6, f"{name}: {len(keys)} JSON metrics within {worst:.1e} <= 1e-6")
        C.check(got["seed"] == SEED and got["precision"] == "fp32" and "ufo_version" in got, "JSON top-level fields")
        rows = list(csv.DictReader(open(cs)))
        C.check(len(rows) == 12 and rows[6]["dataset"] == "Market1501" and
                abs(float(rows[6]["mAP"]) - got["Market1501"]["mAP"]) < 1e-6, "CSV has 12 rows matching the JSON")
        # Second run: everything from the cache, same numbers.
        r2 = ufo("eval", "--model", mpath, "--data", root, "--json", js, "--cache", cache,
                 "--vehicleid-splits", SPLITS, "--seed", SEED)
        C.check(table_cells(r2.stdout) == got_cells and r2.stdout.count("cached") == 12,
                "second run reads all 12 feature sets from the cache, same table")
        # --flip: against the oracle's flipped embeddings; its features are cached apart.
        some = ("LFW", "Market1501", "SOP")
        rf = ufo("eval", "--model", mpath, "--data", root, "--json", js, "--cache", cache, "--flip",
                 "--datasets", ",".join(some))
        ref_f = python_results(root, manifest, model, flip=True, only=some)
        cells_f, got_f = table_cells(rf.stdout), json.load(open(js))
        for name, rr in ref_f.items():
            C.check(cells_f.get(COLUMN[name]) == expected_cell(name, rr),
                    f"--flip {name}: table cell {cells_f.get(COLUMN[name])} == python {expected_cell(name, rr)}")
        C.check(got_f["flip"] is True and got["flip"] is False and rf.stdout.count("cached") == 0
                and "+ flip" in rf.stdout,
                "--flip: JSON says so, the table's model cell too, nothing read from the unflipped cache")
        keys = ("accuracy", "accuracy_std", "threshold", "rank1", "mAP", "mINP", "recall@1", "recall@10")
        worst = max(abs(got_f[n][k] - ref_f[n][k]) for n in some for k in keys if k in ref_f[n] and k in got_f[n])
        moved = max(abs(ref_f[n][k] - ref[n][k]) for n in some for k in keys if k in ref_f[n] and k in ref[n])
        C.check(worst <= 1e-6 and moved > 1e-6,
                f"--flip: JSON metrics within {worst:.1e} of the oracle's (which the flip moves by up to {moved:.3g})")
        # Errors: a missing folder is named; an absent head is refused before any work.
        r3 = ufo("eval", "--model", mpath, "--data", os.path.join(d, "nowhere"), "--datasets", "VeRi", check=False)
        C.check(r3.returncode != 0 and "nowhere" in r3.stderr and len(r3.stderr.strip().splitlines()) == 1,
                f"missing data folder named: {r3.stderr.strip()}")
        m2 = os.path.join(d, "m2.safetensors")
        sd = {k: v for k, v in vit_torch.state_dict_numpy(model.float()).items() if not k.startswith("heads.product")}
        safetensors_io.write(m2, sd, {"num_heads": HEADS})
        r4 = ufo("eval", "--model", m2, "--data", root, "--datasets", "SOP", check=False)
        C.check(r4.returncode != 0 and "product" in r4.stderr, f"absent head refused: {r4.stderr.strip()}")
        r5 = ufo("eval", "--model", m2, "--data", root, "--datasets", "SOP", "--head", "SOP=backbone", "--quiet")
        C.check(r5.returncode == 0 and "SOP" in r5.stdout, "--head SOP=backbone scores SOP with the backbone")
        r6 = subprocess.run([UFO, "eval", "--model", mpath, "--datasets", "VeRi"], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "FASTREID_DATASETS"})
        C.check(r6.returncode == 2 and "FASTREID_DATASETS" in r6.stderr, "no data root: usage error")
    C.finish()


if __name__ == "__main__":
    main()
