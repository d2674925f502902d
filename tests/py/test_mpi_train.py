"""Data-parallel training and evaluation under mpirun (src/dist, src/train).

On tiny synthetic data (tools/make_demo_data.py --scale 0.1: four tasks, a
heterogeneous batch with BNNeck, CosFace, batch-hard triplet and drop path) and
a tiny ViT, with OMP_NUM_THREADS=1 per rank:
  - `mpirun -np 2` takes the same steps as one process with the same global
    batch: per-step losses (every task's CosFace and triplet) within rel 1e-5,
    accuracies equal, final parameters (model, classifiers) within 1e-5 of
    their scale, and the parameter UPDATES (final - initial, which are the
    gradients summed over the steps) within rel 1e-3 overall -- a rank that
    averaged instead of summed, or any cross-sample part left local (BN
    statistics, triplet mining, loss normalisation, drop-path draws,
    clipping), moves them by far more;
  - the same with the face/person/vehicle classifiers sharded by class
    (Partial-FC, run.shard_classes_above=8; product's 6 classes stay
    replicated): the sharded softmax's loss and gradients equal the
    unsharded ones (same checks); tests/test_dist.c checks the sharded
    CosFace alone, gradient by gradient;
  - homogeneous batches (one task per step) likewise (losses);
  - Partial-FC class sampling (run.pfc_sample_rate=0.5 on the 10-class
    face/person/vehicle heads): rate 1 is the unsampled run bit for bit;
    np=2 (sharded) draws the same kept sets as np=1 (UFO_TEST_PFC_DUMP) and
    takes the same steps (same checks as above); every kept set holds the
    step's labels and max(positives, 5) classes; after one step the rows not
    drawn are their initial values with zero momentum, the drawn ones moved;
    resume np=2 (sampled) -> np=1;
  - ZeRO stage 1 (run.zero=1): np=2 == np=2 without ZeRO == np=1 (same
    checks, and the checkpoints' gathered momentum equals the unsharded one),
    np=3 (uneven slices) == np=1, ZeRO with sampling and sharding == np=1
    sampled, resume np=2 ZeRO -> np=1; the momentum bytes per rank are about
    1/N of the model's;
  - resume with a different process count: 2 steps with np=2 (sharded),
    checkpoint, 2 more with np=1 == 4 steps with np=1; and np=1 -> np=2;
  - a rank that exits mid-run ends the job (non-zero, its message, within
    seconds); a rank that hangs makes the others' collective watchdog end the
    job with a message naming the operation (UFO_COMM_TIMEOUT=3);
  - `ufo eval` under mpirun -np 2 gives the single process's metrics, printed
    once.
Final line: "mpi_train: N passed, M failed". Run with /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)
import safetensors_io  # noqa: E402
from oracle_util import UFO, Checks  # noqa: E402

C = Checks("mpi_train")
MPIRUN = shutil.which("mpirun")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1")
for k in ("UFO_TEST_FAIL_RANK", "UFO_TEST_FAIL_STEP", "UFO_TEST_FAIL_HANG", "UFO_COMM_TIMEOUT"):
    ENV.pop(k, None)
RECIPE = os.path.join(HERE, "..", "..", "recipes", "demo.ini")
TINY = ["model.dim=16", "model.depth=2", "model.num_heads=2", "model.img_size=16", "model.drop_path=0.1",
        "data.batch_face=6", "data.batch_person=8", "data.batch_vehicle=8", "data.batch_product=8",
        "data.workers=1", "optim.steps=4", "run.log_every=1", "run.checkpoint_every=0", "run.eval_datasets="]


def run(np_, args, env=None, timeout=120):
    cmd = [UFO] + args if np_ == 0 else [MPIRUN, "-np", str(np_), "--oversubscribe", UFO] + args
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)
    r.seconds = time.time() - t0
    return r


def train(np_, out, root, *extra, resume=None, env=None):
    args = ["train", "--resume", resume] if resume else ["train", "--config", RECIPE, "--out", out,
                                                         "data.root=" + root] + TINY
    r = run(np_, args + list(extra), env=env)
    if r.returncode != 0:
        print(r.stderr)
        raise RuntimeError("ufo train (np=%d) failed" % np_)
    return r


def log(path):
    lines = open(path).read().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, map(float, l.split(",")))) for l in lines[1:]]


def tensors(path):
    t = safetensors_io.read(path)[0]
    return {k: v.astype(np.float64) for k, v in t.items() if "running" not in k and "momentum" not in k}


def momenta(path):
    t = safetensors_io.read(path)[0]
    return {k: v.astype(np.float64) for k, v in t.items() if k.startswith("optimizer.momentum.")}


def pfc_dump(path):
    """UFO_TEST_PFC_DUMP lines: 'step task C: labels | kept'."""
    out = []
    for line in open(path).read().splitlines():
        head, rest = line.split(":")
        step, task, classes = map(int, head.split())
        labels, kept = rest.split("|")
        out.append((step, task, classes, [int(x) for x in labels.split()], [int(x) for x in kept.split()]))
    return out


def compare(name, ref_dir, got_dir, init, steps=range(4)):
    a, b = log(os.path.join(ref_dir, "log.csv")), log(os.path.join(got_dir, "log.csv"))
    a = {int(r["step"]): r for r in a}
    b = {int(r["step"]): r for r in b}
    worst, acc_same = 0.0, True
    for s in steps:
        for k in a[s]:
            if k.startswith(("cosface_", "triplet_")) or k == "loss":
                worst = max(worst, abs(a[s][k] - b[s][k]) / max(abs(a[s][k]), 1e-3))
            if k.startswith("accuracy_"):
                acc_same &= abs(a[s][k] - b[s][k]) < 1e-9
    C.check(worst < 1e-5, "%s: per-step losses (total, CosFace, triplet per task) rel err %.2g < 1e-5" % (name, worst))
    C.check(acc_same, "%s: per-step accuracies equal" % name)
    pa, pb = tensors(os.path.join(ref_dir, "last.safetensors")), tensors(os.path.join(got_dir, "last.safetensors"))
    C.check(set(pa) == set(pb), "%s: the checkpoints hold the same tensors (%d)" % (name, len(pa)))
    # Relative to the parameters' scale (a tensor like the final LayerNorm's
    # bias gets a gradient that is zero up to rounding: its own scale is noise).
    perr = max(np.abs(pa[k] - pb[k]).max() for k in pa) / max(np.abs(pa[k]).max() for k in pa)
    C.check(perr < 1e-5, "%s: final parameters and classifiers max abs err / max abs %.2g < 1e-5" % (name, perr))
    num = sum(((pa[k] - pb[k]) ** 2).sum() for k in pa)
    den = sum(((pa[k] - init[k]) ** 2).sum() for k in pa)
    uerr = (num / den) ** 0.5
    cls = [k for k in pa if k.startswith("classifier.")]
    cerr = max(np.linalg.norm(pa[k] - pb[k]) / np.linalg.norm(pa[k] - init[k]) for k in cls)
    C.check(uerr < 1e-3 and cerr < 1e-3,
            "%s: parameter updates (final - initial) rel err %.2g, classifiers %.2g < 1e-3" % (name, uerr, cerr))
    return worst


def main():
    if not MPIRUN:
        print("  skip  no mpirun on PATH (Debian: openmpi-bin)")
        C.finish()
    h = run(0, ["train", "--help"])
    tmp = tempfile.mkdtemp(prefix="ufo_mpi_")
    try:
        root = os.path.join(tmp, "data")
        subprocess.run([sys.executable, os.path.join(TOOLS, "make_demo_data.py"), root, "--scale", "0.1", "--jobs", "2"],
                       check=True, capture_output=True)
        d = lambda n: os.path.join(tmp, n)  # noqa: E731
        # Initial parameters: lr 0 leaves them as initialised (the classifiers too).
        train(0, d("init"), root, "optim.lr=0", "optim.steps=1", "run.checkpoint_every=1")
        init = tensors(d("init/last.safetensors"))
        lr = "optim.lr=0.001"
        t0 = time.time()
        train(0, d("np1"), root, lr)
        t1 = time.time()
        r2 = train(2, d("np2"), root, lr)
        t2 = time.time()
        print("  info  4 steps: np=1 %.2f s, np=2 %.2f s (with mpirun start-up)" % (t1 - t0, t2 - t1))
        C.check(h.returncode == 0, "ufo train --help")
        compare("np=2 vs np=1", d("np1"), d("np2"), init)
        C.check(not os.path.exists(d("np2/model.safetensors.tmp")) and os.path.exists(d("np2/model.safetensors")),
                "np=2: rank 0 wrote model.safetensors")
        rs = train(2, d("np2s"), root, lr, "run.shard_classes_above=8")
        shard_msg = "face classifier sharded" in rs.stderr and "product classifier sharded" not in rs.stderr
        C.check(shard_msg, "np=2, shard_classes_above=8: face/person/vehicle sharded, product (6 classes) not")
        compare("Partial-FC np=2 vs unsharded np=1", d("np1"), d("np2s"), init)

        # Partial-FC class sampling.
        sam = [lr, "run.shard_classes_above=8", "run.pfc_sample_rate=0.5"]
        train(0, d("rate1"), root, lr, "run.shard_classes_above=8", "run.pfc_sample_rate=1")
        ta, tb = safetensors_io.read(d("np1/last.safetensors"))[0], safetensors_io.read(d("rate1/last.safetensors"))[0]
        cols = lambda p: [l.split(",")[:-3] for l in open(p).read().splitlines()]  # noqa: E731 (no timings)
        C.check(cols(d("np1/log.csv")) == cols(d("rate1/log.csv")) and set(ta) == set(tb)
                and all(np.array_equal(ta[k], tb[k]) for k in ta),
                "pfc_sample_rate=1: losses, parameters, classifiers and momentum bit-identical to the unsampled run")
        e1 = dict(ENV, UFO_TEST_PFC_DUMP=d("kept1.txt"))
        e2 = dict(ENV, UFO_TEST_PFC_DUMP=d("kept2.txt"))
        rs1 = train(0, d("pfc1"), root, *sam, env=e1)
        train(2, d("pfc2"), root, *sam, env=e2)
        k1, k2 = pfc_dump(d("kept1.txt")), pfc_dump(d("kept2.txt"))
        C.check("face classifier: Partial-FC sampling, 5 of 10" in rs1.stderr and "product classifier: Partial" not in rs1.stderr,
                "pfc_sample_rate=0.5: face/person/vehicle (10 classes) sampled, 5 per step, product (6) not")
        C.check(len(k1) == 12 and k1 == k2, "np=2 (sharded) drew the kept sets of np=1: %d (step, task) draws" % len(k1))
        ok = all(set(lab) <= set(kept) and len(kept) == max(len(set(lab)), 5) and kept == sorted(set(kept))
                 and all(0 <= c < C_ for c in kept) for _, _, C_, lab, kept in k1)
        smaller = sum(len(kept) < C_ for _, _, C_, _, kept in k1)
        C.check(ok and smaller > 0, "every kept set holds the step's labels, max(positives, 5) classes, ascending "
                "(%d of %d smaller than the head)" % (smaller, len(k1)))
        la, lb = log(d("np1/log.csv")), log(d("pfc1/log.csv"))
        C.check(la[0]["cosface_face"] != lb[0]["cosface_face"], "sampling changes the face CosFace (%.4f unsampled, %.4f sampled)"
                % (la[0]["cosface_face"], lb[0]["cosface_face"]))
        compare("Partial-FC sampling np=2 (sharded) vs np=1", d("pfc1"), d("pfc2"), init)
        # Rows not drawn keep their weights and (zero) momentum.
        train(0, d("pfc_one"), root, *sam, "optim.steps=1", env=dict(ENV, UFO_TEST_PFC_DUMP=d("kept_one.txt")))
        t1 = safetensors_io.read(d("pfc_one/last.safetensors"))[0]
        frozen, moved = True, True
        for step, task, classes, lab, kept in pfc_dump(d("kept_one.txt")):
            name = ["face", "person", "vehicle", "product"][task]
            w, w0 = t1["classifier.%s.weight" % name], init["classifier.%s.weight" % name]
            mo = t1["optimizer.momentum.classifier.%s.weight" % name]
            other = [c for c in range(classes) if c not in kept]
            frozen &= bool(np.array_equal(w[other], w0[other].astype(np.float32)) and not mo[other].any())
            moved &= bool(all(np.abs(w[c] - w0[c]).max() > 0 and np.abs(mo[c]).max() > 0 for c in kept))
        C.check(frozen and moved, "one sampled step: rows not drawn keep their initial weights and zero momentum, "
                "drawn rows moved")
        train(2, d("pfc21"), root, *sam, "--stop-after", "2")
        train(0, None, root, resume=d("pfc21/last.safetensors"))
        compare("resume np=2 (sampled, sharded) -> np=1", d("pfc1"), d("pfc21"), init)

        # ZeRO stage 1.
        rz = train(2, d("zero2"), root, lr, "run.zero=1")
        mb = [l for l in rz.stderr.splitlines() if "ZeRO stage 1: SGD momentum" in l]
        nums = [int(w) for w in mb[0].replace(",", " ").split() if w.isdigit()] if mb else [0, 1]
        per, full = nums[-2], nums[-1]
        print("  info  ZeRO np=2: SGD momentum %d bytes per rank instead of %d" % (per, full))
        C.check(0 < per <= full // 2 + 4, "ZeRO np=2: momentum bytes per rank %d ~ half of %d" % (per, full))
        compare("ZeRO np=2 vs np=2", d("np2"), d("zero2"), init)
        compare("ZeRO np=2 vs np=1", d("np1"), d("zero2"), init)
        ma, mz = momenta(d("np2/last.safetensors")), momenta(d("zero2/last.safetensors"))
        merr = max(np.abs(ma[k] - mz[k]).max() for k in ma) / max(np.abs(ma[k]).max() for k in ma)
        C.check(set(ma) == set(mz) and merr < 1e-5, "ZeRO checkpoint: the gathered momentum (%d tensors) equals the "
                "unsharded one, max err / max %.2g < 1e-5" % (len(ma), merr))
        train(3, d("zero3"), root, lr, "run.zero=1")
        compare("ZeRO np=3 (uneven slices) vs np=1", d("np1"), d("zero3"), init)
        train(2, d("zero_pfc"), root, *sam, "run.zero=1")
        compare("ZeRO + sampling + sharding np=2 vs sampling np=1", d("pfc1"), d("zero_pfc"), init)
        train(2, d("zero21"), root, lr, "run.zero=1", "--stop-after", "2")
        train(0, None, root, "run.zero=0", resume=d("zero21/last.safetensors"))
        compare("resume np=2 ZeRO -> np=1", d("np1"), d("zero21"), init)

        # Homogeneous batches (one task per step; the others have no rows anywhere).
        hom = ["data.batch_mix=homogeneous", "data.batch_face=8", "data.product=", lr]
        train(0, d("hom1"), root, *hom)
        train(2, d("hom2"), root, *hom, "run.shard_classes_above=8")
        a, b = log(d("hom1/log.csv")), log(d("hom2/log.csv"))
        herr = max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-3) for x, y in zip(a, b) for k in x
                   if k == "loss" or k.startswith(("cosface_", "triplet_")))
        C.check(len(a) == len(b) == 4 and herr < 1e-5, "homogeneous batches, np=2 (sharded) vs np=1: losses rel err %.2g" % herr)

        # Resume with another process count.
        train(2, d("res21"), root, lr, "run.shard_classes_above=8", "--stop-after", "2")
        train(0, None, root, resume=d("res21/last.safetensors"))
        compare("resume np=2 (sharded) -> np=1", d("np1"), d("res21"), init)
        train(0, d("res12"), root, lr, "--stop-after", "2")
        train(2, None, root, "run.shard_classes_above=8", resume=d("res12/last.safetensors"))
        compare("resume np=1 -> np=2 (sharded)", d("np1"), d("res12"), init)

        # Failure handling: a rank that exits, a rank that hangs.
        env = dict(ENV, UFO_TEST_FAIL_RANK="1", UFO_TEST_FAIL_STEP="2")
        r = run(2, ["train", "--config", RECIPE, "--out", d("die"), "data.root=" + root] + TINY, env=env, timeout=60)
        C.check(r.returncode != 0 and "UFO_TEST_FAIL_STEP=2: exiting" in r.stderr and r.seconds < 30,
                "a rank exiting at step 2 ends the job: exit %d in %.1f s with its message" % (r.returncode, r.seconds))
        env = dict(env, UFO_TEST_FAIL_HANG="1", UFO_COMM_TIMEOUT="3")
        r = run(2, ["train", "--config", RECIPE, "--out", d("hang"), "data.root=" + root] + TINY, env=env, timeout=60)
        msg = [l for l in r.stderr.splitlines() if "did not complete within 3 s" in l]
        C.check(r.returncode != 0 and msg and "MPI_" in msg[0] and r.seconds < 30,
                "a hanging rank: the watchdog ends the job in %.1f s naming the operation: %s"
                % (r.seconds, msg[0].strip() if msg else r.stderr[-300:]))

        # Evaluation split over ranks.
        model = d("np1/model.safetensors")
        sets = "LFW,Market1501,SOP"
        e1 = run(0, ["eval", "--model", model, "--datasets", sets, "--data", root, "--json", d("e1.json"), "--quiet"])
        e2 = run(2, ["eval", "--model", model, "--datasets", sets, "--data", root, "--json", d("e2.json"), "--quiet"])
        ok = e1.returncode == 0 and e2.returncode == 0
        C.check(ok, "ufo eval: np=1 and np=2 succeed")
        if ok:
            j1, j2 = json.load(open(d("e1.json"))), json.load(open(d("e2.json")))

            def nums(x, p=""):
                if isinstance(x, dict):
                    for k, v in x.items():
                        if "second" not in k and "time" not in k:
                            yield from nums(v, p + "." + k)
                elif isinstance(x, list):
                    for i, v in enumerate(x):
                        yield from nums(v, p + "[%d]" % i)
                elif isinstance(x, (int, float)) and not isinstance(x, bool):
                    yield p, float(x)
            a, b = dict(nums(j1["results"] if "results" in j1 else j1)), dict(nums(j2["results"] if "results" in j2 else j2))
            diff = max((abs(a[k] - b.get(k, np.inf)) for k in a), default=np.inf)
            C.check(len(a) > 5 and diff < 1e-6, "ufo eval np=2 == np=1: %d metrics, max diff %.2g" % (len(a), diff))
            C.check(e2.stdout.count("LFW") == e1.stdout.count("LFW") > 0, "ufo eval np=2 prints the table once")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    C.finish()


if __name__ == "__main__":
    main()
