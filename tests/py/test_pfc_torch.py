#!/usr/bin/python3
"""Partial-FC class sampling (src/train/pfc.h) against PyTorch.

ufo's driver ($UFO_BUILD/test_losses_dump pfc) draws a step's kept classes
(ufo_pfc_sample) and runs the sampled CosFace (ufo_pfc_cosface: what the
trainer runs for a sampled classifier). Here, on the kept set ufo reports:
  - the set itself: ascending, no repeats, inside [0, C), holds every label,
    max(positives, ceil(rate * C)) classes;
  - CosFace written the insightface PartialFC way in torch (fp64 autograd):
    W[kept] by index_select of the full W, labels mapped by searchsorted,
    F.normalize, the margin on the label column, times s, F.cross_entropy;
    loss within rel 1e-5, d features and d W within rel 1e-4 (max abs error
    relative to the max abs value), accuracy equal, and the d W rows of the
    classes not kept exactly 0 (ufo writes nothing there).
Cases: positives fewer than the rate keeps, more than it keeps, a 500-class
head at rate 0.05. Prints "pfc_torch: N passed, M failed".
"""
import math
import os
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

from oracle_util import Checks, rel_err

BUILD = os.environ.get("UFO_BUILD", "build")
DUMP = os.path.join(BUILD, "test_losses_dump")
torch.set_num_threads(2)
C = Checks("pfc_torch")


def torch_sampled_cosface(f, W, labels, kept, s, m):
    ft = torch.tensor(f, dtype=torch.float64, requires_grad=True)
    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor(kept, dtype=torch.long)
    y = torch.searchsorted(idx, torch.tensor(labels, dtype=torch.long))
    sub = Wt.index_select(0, idx)
    logits = F.linear(F.normalize(ft), F.normalize(sub))
    m_hot = torch.zeros_like(logits)
    m_hot.scatter_(1, y[:, None], m)
    loss = F.cross_entropy((logits - m_hot) * s, y)
    loss.backward()
    acc = float(logits.detach().argmax(1).eq(y).double().mean())
    return float(loss), ft.grad.numpy(), Wt.grad.numpy(), acc


def case(name, n, D, classes, span, rate, s, m, seed, step):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, D)).astype(np.float32)
    W = rng.standard_normal((classes, D)).astype(np.float32)
    labels = rng.choice(classes, size=span, replace=False)[rng.integers(0, span, n)]
    # Two rows close to their class so the accuracy is not trivially 0.
    f[0] = W[labels[0]] + 0.1 * f[0]
    f[1] = W[labels[1]] + 0.1 * f[1]
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "f.npy"), f)
        np.save(os.path.join(d, "W.npy"), W)
        np.save(os.path.join(d, "labels.npy"), labels.astype(np.int64))
        r = subprocess.run([DUMP, "pfc", d, str(s), str(m), str(rate), str(seed), str(step), "0"],
                           capture_output=True, text=True, timeout=60)
        if not C.check(r.returncode == 0, "%s: test_losses_dump pfc runs %s" % (name, r.stderr.strip())):
            return
        kept = np.load(os.path.join(d, "kept.npy")).astype(np.int64)
        loss, acc, _ = np.load(os.path.join(d, "loss.npy"))
        df = np.load(os.path.join(d, "df.npy"))
        dW = np.load(os.path.join(d, "dW.npy"))
    pos = np.unique(labels)
    want = max(len(pos), min(classes, math.ceil(rate * classes - 1e-9)))
    C.check(len(kept) == want and np.all(np.diff(kept) > 0) and kept.min() >= 0 and kept.max() < classes
            and np.isin(pos, kept).all(),
            "%s: kept %d of %d classes (%d positives, rate %g): ascending, in range, every label" %
            (name, len(kept), classes, len(pos), rate))
    tl, tdf, tdW, tacc = torch_sampled_cosface(f, W, labels, kept, s, m)
    el = abs(loss - tl) / abs(tl)
    edf, edw = rel_err(df, tdf), rel_err(dW[kept], tdW[kept])
    others = np.setdiff1d(np.arange(classes), kept)
    C.check(el < 1e-5, "%s: loss %.6f vs torch %.6f (rel %.2g < 1e-5)" % (name, loss, tl, el))
    C.check(edf < 1e-4 and edw < 1e-4, "%s: d features rel %.2g, d W (kept rows) rel %.2g < 1e-4" % (name, edf, edw))
    C.check(np.all(dW[others] == 0) and np.all(tdW[others] == 0) and len(others) == classes - len(kept),
            "%s: d W of the %d classes not kept is exactly 0" % (name, len(others)))
    C.check(abs(acc - tacc) < 1e-12 and (tacc > 0 or n < 2), "%s: accuracy %.3f == torch %.3f" % (name, acc, tacc))


def main():
    case("rate 0.3, 12 positives of 60", 20, 24, 60, 12, 0.3, 50.0, 0.3, 1, 0)
    case("rate 0.1, positives above ceil(0.1 x 60)", 20, 24, 60, 12, 0.1, 50.0, 0.3, 2, 5)
    case("500 classes, rate 0.05", 64, 32, 500, 10, 0.05, 30.0, 0.2, 3, 123)
    case("500 classes, rate 0.05, 40 labels", 64, 32, 500, 40, 0.05, 30.0, 0.2, 5, 9)
    case("rate 1 keeps every class", 16, 16, 40, 10, 1.0, 30.0, 0.2, 4, 7)
    C.finish()


if __name__ == "__main__":
    main()
