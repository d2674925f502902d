"""Metric parity: src/eval (through $UFO_BUILD/test_metrics_dump) against the
numpy / scikit-learn protocols of tools/metrics_ref.py, on random features
with planted structure: identity clusters, exact duplicate features (distance
ties), queries without any valid match, pid-0 distractors, same-camera junk,
same pid on other cameras, singleton SOP classes, folds of unequal size.
Every metric must agree to 1e-6 (percent units)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.model_selection import KFold

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import metrics_ref  # noqa: E402
from oracle_util import Checks  # noqa: E402

BUILD = os.environ.get("UFO_BUILD", "build")
DUMP = os.path.join(BUILD, "test_metrics_dump")
TOL = 1e-6
checks = Checks("metrics")
tmp = tempfile.mkdtemp(prefix="ufo_metrics_")


def save(name, arr):
    p = os.path.join(tmp, name + ".npy")
    np.save(p, arr)
    return p


def run_dump(*args, block=None):
    env = dict(os.environ)
    env.pop("UFO_METRICS_BLOCK", None)
    if block:
        env["UFO_METRICS_BLOCK"] = str(block)
    r = subprocess.run([DUMP, *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{DUMP} {args[0]} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def compare(what, got, ref, keys):
    worst, bad = 0.0, []
    for k in keys:
        a, b = np.asarray(got[k], dtype=np.float64), np.asarray(ref[k], dtype=np.float64)
        if a.shape != b.shape:
            bad.append(f"{k}: shape {a.shape} vs {b.shape}")
            continue
        d = float(np.max(np.abs(a - b))) if a.size else 0.0
        worst = max(worst, d)
        if not d <= TOL:
            bad.append(f"{k}: {got[k] if a.size == 1 else '...'} vs {ref[k] if b.size == 1 else '...'} (|d| {d:.3g})")
    summary = ", ".join(f"{k} {got[k]:.4f}" for k in keys if np.ndim(got[k]) == 0 and k in ("accuracy", "rank1", "mAP", "mINP", "recall@1"))
    checks.check(not bad, f"{what}: {summary}; max |diff| {worst:.2g}" + ("; " + "; ".join(bad) if bad else ""))


def clustered(rng, centers, ids, sigma):
    return (centers[ids] + sigma * rng.standard_normal((len(ids), centers.shape[1]))).astype(np.float32)


# ---------------------------------------------------------------- face verification

def verify_case(seed, P, D, nfolds=10, sigma=0.9):
    rng = np.random.default_rng(seed)
    nid = max(2, P // 3)
    centers = rng.standard_normal((nid, D))
    issame = rng.random(P) < 0.5
    a = rng.integers(0, nid, P)
    b = np.where(issame, a, (a + rng.integers(1, nid, P)) % nid)
    f = np.empty((2 * P, D), np.float32)
    f[0::2] = clustered(rng, centers, a, sigma)
    f[1::2] = clustered(rng, centers, b, sigma)
    # planted: identical pairs (d = 0), scaled copies, repeated pairs (equal distances)
    k = max(1, P // 50)
    dup = rng.choice(P, k, replace=False)
    f[2 * dup + 1] = f[2 * dup]
    sc = rng.choice(P, k, replace=False)
    f[2 * sc + 1] = f[2 * sc] * np.float32(3.0)
    src, dst = rng.choice(P, k, replace=False), rng.choice(P, k, replace=False)
    f[2 * dst], f[2 * dst + 1], issame[dst] = f[2 * src], f[2 * src + 1], issame[src]
    got = run_dump("verify", save("vf", f), save("vs", issame.astype(np.uint8)), nfolds)
    ref = metrics_ref.face_verification(f, issame, nfolds)
    sizes = sorted({len(t) for _, t in (KFold(nfolds).split(np.arange(P)) if nfolds > 1 else [])})
    compare(f"verify seed {seed} P={P} D={D} folds={nfolds} sizes {sizes}", got, ref,
            ["accuracy", "accuracy_std", "threshold", "fold_accuracy", "fold_threshold", "tpr", "fpr"])


# ---------------------------------------------------------------- ReID

def reid_case(seed, nq, ng, D, nid, ncam, sigma, block=None, max_rank=50):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((nid + 1, D))
    # gallery: identities 1..nid on random cameras, 15% pid-0 distractors
    gpid = rng.integers(1, nid + 1, ng)
    gpid[rng.random(ng) < 0.15] = 0
    gcam = rng.integers(0, ncam, ng)
    # identities whose every gallery image is on camera 0: a camera-0 query of theirs has no valid match
    junk_ids = rng.choice(np.arange(1, nid + 1), max(1, nid // 10), replace=False)
    gcam[np.isin(gpid, junk_ids)] = 0
    gf = clustered(rng, centers, gpid, sigma)
    gf[gpid == 0] = rng.standard_normal((int(np.sum(gpid == 0)), D)).astype(np.float32)
    # queries: known identities, some absent from the gallery (pid nid + 1 ..)
    qpid = rng.integers(1, nid + 1, nq)
    qcam = rng.integers(0, ncam, nq)
    qcam[np.isin(qpid, junk_ids)] = 0
    qf = clustered(rng, centers, qpid, sigma)
    absent = rng.random(nq) < 0.05
    qpid[absent] = nid + 1 + np.arange(int(absent.sum()))
    # planted ties: exact duplicate gallery rows under other pids/cameras, queries equal to gallery rows
    k = max(2, ng // 20)
    src, dst = rng.choice(ng, k, replace=False), rng.choice(ng, k, replace=False)
    gf[dst] = gf[src]
    qi, gi = rng.choice(nq, max(1, nq // 20), replace=False), rng.choice(ng, max(1, nq // 20), replace=False)
    qf[qi] = gf[gi]
    p = [save("qf", qf), save("qp", qpid.astype(np.int64)), save("qc", qcam.astype(np.int32)),
         save("gf", gf), save("gp", gpid.astype(np.int64)), save("gc", gcam.astype(np.int64))]
    got = run_dump("reid", *p, max_rank, block=block)
    ref = metrics_ref.reid(qf, qpid, qcam, gf, gpid, gcam, max_rank)
    compare(f"reid seed {seed} {nq}x{ng} D={D} block={block or 'auto'} valid {got['num_valid']}/{nq}", got, ref,
            ["rank1", "rank5", "rank10", "mAP", "mINP", "num_valid", "cmc"])


# ---------------------------------------------------------------- SOP

def sop_case(seed, n, D, sigma, block=None, ks=(1, 10, 100, 1000), quant=None):
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, 13)))   # includes singletons (always misses)
    sizes[-1] -= sum(sizes) - n
    labels = np.repeat(np.arange(len(sizes)) * 7 + 3, sizes)
    labels = labels[rng.permutation(n)]
    centers = rng.standard_normal((labels.max() + 1, D))
    f = clustered(rng, centers, labels, sigma)
    if quant:   # coarse grid: many near-equal similarities for the fp32 screen
        f = (np.round(f * quant) / quant).astype(np.float32)
    k = max(2, n // 25)
    src, dst = rng.choice(n, k, replace=False), rng.choice(n, k, replace=False)
    f[dst] = f[src]
    got = run_dump("sop", save("sf", f), save("sl", labels.astype(np.int64)), ",".join(map(str, ks)), block=block)
    ref = metrics_ref.sop_recall(f, labels, ks)
    compare(f"sop seed {seed} n={n} D={D} block={block or 'auto'}{' quant' if quant else ''}", got, ref,
            [f"recall@{k}" for k in ks] + ["num_no_match"])


def main():
    if not os.path.exists(DUMP):
        print(f"missing {DUMP} (build the test_metrics_dump target)")
        checks.check(False, "test_metrics_dump built")
        checks.finish()
    verify_case(1, 6003, 32)          # folds 601 x 3, 600 x 7
    verify_case(2, 6000, 64, sigma=1.2)
    verify_case(3, 57, 8)             # folds 6 x 7, 5 x 3
    verify_case(4, 1234, 16, nfolds=7)
    verify_case(5, 33, 4, nfolds=1)
    reid_case(11, 300, 2000, 64, 120, 6, 1.0)
    reid_case(12, 257, 1500, 32, 60, 3, 1.3, block=37)
    reid_case(13, 120, 400, 16, 40, 4, 0.8, block=1)
    reid_case(14, 200, 3000, 128, 200, 8, 1.5, block=64, max_rank=20)
    sop_case(21, 2500, 64, 1.0)
    sop_case(22, 1800, 32, 1.4, block=97, ks=(1, 2, 4, 8, 16, 32, 1000))
    sop_case(23, 900, 16, 1.0, block=50, quant=2)
    checks.finish()


if __name__ == "__main__":
    main()
