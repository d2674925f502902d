"""One AllInOne training step and ten SGD steps of ufo against an independent
PyTorch implementation (tools/vit_torch.py + tools/losses_torch.py + torch.optim):
a heterogeneous batch with two trained tasks (face: CosFace; vehicle: CosFace +
triplet) through one backbone, BNNecks in training mode on each task's slice.
Checks every parameter's and classifier's gradient (fp32, rel <= 1e-3 per
tensor) for both kernel paths, then the per-task losses of ten steps of SGD with
momentum, weight decay, Paddle-style per-tensor clipping and warmup + cosine.
Then the bf16 CPU path (bf16 activations kept for the weight gradients): step-0
gradients per tensor within cosine >= 0.999 and rel err <= 0.1, step-0 losses
within 1e-2, steps 0-3 within 2e-2, and a mean loss over steps 5-9 near fp64's."""
import math
import os
import subprocess
import tempfile

import numpy as np
import torch

import losses_torch
import safetensors_io
import vit_torch
from oracle_util import Checks

torch.set_num_threads(2)
C = Checks("train_torch")
DRIVER = os.path.join(os.environ.get("UFO_BUILD", "build"), "test_train_dump")
IMG, PATCH, DIM, DEPTH, HEADS = 16, 8, 64, 2, 2   # head dim 32: the fused AMX and AVX-512 attention paths
COUNTS = [6, 0, 8, 0]          # face, person, vehicle, product
CLASSES = [5, 0, 4, 0]
S = {"face": (50.0, 0.3), "vehicle": (20.0, 0.2)}
BASE, MINLR, TOTAL, WARM = 0.05, 0.001, 20, 2
STEPS, CLIP, WD, MOM = 10, 5.0, 1e-4, 0.9


def lr_at(k):
    T = TOTAL - WARM - 1
    if k < WARM:
        return BASE * k / WARM
    return MINLR + (BASE - MINLR) * (1 + math.cos(math.pi * min(k - WARM, T) / T)) / 2


def torch_step(model, cls, x, labels):
    feat = model.backbone(x)
    losses, lo = {}, 0
    for t, task in enumerate(vit_torch.TASKS):
        n = COUNTS[t]
        if not n:
            continue
        f, y = feat[lo:lo + n], labels[lo:lo + n]
        fb = model.heads[task](f)
        s, m = S[task]
        losses[f"cos_{task}"] = losses_torch.cosface(fb, cls[task], y, s, m)
        if task != "face":
            losses[f"tri_{task}"] = losses_torch.triplet(f, y)
        lo += n
    return losses


def main():
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        model = vit_torch.randomize(vit_torch.AllInOne(IMG, PATCH, DIM, DEPTH, HEADS, 4 * DIM,
                                                       ("face", "vehicle")), 5, scale=0.1)
        safetensors_io.write(os.path.join(d, "model.safetensors"), vit_torch.state_dict_numpy(model), {"num_heads": HEADS})
        n = sum(COUNTS)
        x = rng.normal(0, 0.5, (n, 3, IMG, IMG)).astype(np.float32)
        labels = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1, 1, 2, 2, 3, 3], dtype=np.int32)
        cls = {}
        for t, task in enumerate(vit_torch.TASKS):
            if CLASSES[t]:
                cls[task] = (rng.normal(0, 0.01, (CLASSES[t], DIM))).astype(np.float32)
                np.save(os.path.join(d, f"cls_{task}.npy"), cls[task])
        np.save(os.path.join(d, "images.npy"), x)
        np.save(os.path.join(d, "labels.npy"), labels)
        np.save(os.path.join(d, "counts.npy"), np.array(COUNTS, dtype=np.int32))
        np.save(os.path.join(d, "classes.npy"), np.array(CLASSES, dtype=np.int32))
        np.save(os.path.join(d, "hparams.npy"), np.array([BASE, MINLR, TOTAL, WARM, 0, n], dtype=np.float64))

        # PyTorch: float64 for a precise reference.
        model = model.double().train()
        clsp = {k: torch.nn.Parameter(torch.from_numpy(v).double()) for k, v in cls.items()}
        xt, yt = torch.from_numpy(x).double(), torch.from_numpy(labels).long()
        params = list(model.parameters()) + list(clsp.values())
        opt = torch.optim.SGD(params, lr=BASE, momentum=MOM, weight_decay=WD)
        ref_losses, ref_grads = [], None
        for k in range(STEPS):
            opt.zero_grad()
            losses = torch_step(model, clsp, xt, yt)
            total = sum(losses.values())
            total.backward()
            if k == 0:
                ref_grads = {name: p.grad.detach().clone().numpy() for name, p in model.named_parameters()}
                ref_grads.update({f"classifier.{t}.weight": p.grad.detach().clone().numpy() for t, p in clsp.items()})
            with torch.no_grad():   # Paddle's ClipGradByNorm, per tensor: scale = c / max(norm, c)
                for p in params:
                    p.grad.mul_(CLIP / max(float(p.grad.norm()), CLIP))
            for g in opt.param_groups:
                g["lr"] = lr_at(k)
            opt.step()
            ref_losses.append([float(total)] + [float(v) for v in losses.values()])

        for backend in ("ref", "fast"):
            r = subprocess.run([DRIVER, d, backend, str(STEPS)], capture_output=True, text=True)
            if not C.check(r.returncode == 0, f"{backend}: driver ran ({r.stderr.strip()})"):
                continue
            got, _ = safetensors_io.read(os.path.join(d, "grads.safetensors"))
            worst, wname = 0.0, ""
            for name, g in ref_grads.items():
                e = float(np.abs(got[name] - g).max() / max(np.abs(g).max(), 1e-12))
                if np.abs(g).max() < 1e-9:  # a zero gradient must stay (near) zero
                    e = float(np.abs(got[name]).max())
                if e > worst:
                    worst, wname = e, name
            extra = [k for k in got if k not in ref_grads]   # BN running statistics: buffers, no gradient
            C.check(all(k.endswith(("running_mean", "running_var")) and not got[k].any() for k in extra),
                    f"{backend}: the only other tensors are BN running statistics, with zero gradient ({len(extra)})")
            C.check(all(k in got for k in ref_grads) and worst <= 1e-3,
                    f"{backend}: step-0 gradients of {len(ref_grads)} tensors, worst rel err {worst:.2e} ({wname}) <= 1e-3")
            L = np.load(os.path.join(d, "losses.npy"))
            mine = np.stack([L[:, 0], L[:, 1], L[:, 3], L[:, 7]], 1)   # total, cos face, cos vehicle, tri vehicle
            ref = np.array(ref_losses)
            e0 = float(np.abs(mine[0] - ref[0]).max() / np.abs(ref[0]).max())
            C.check(e0 <= 1e-5, f"{backend}: step-0 per-task losses {np.round(mine[0], 5).tolist()} rel err {e0:.1e}")
            e = float(np.abs(mine - ref).max() / np.abs(ref).max())
            C.check(e <= 1e-3, f"{backend}: {STEPS} SGD steps, losses {ref[0, 0]:.4f} -> {ref[-1, 0]:.4f}, max rel err {e:.1e} <= 1e-3")
        # bf16 (CPU path, bf16 matmul operands, fp32 everything else): the same step-0
        # gradients within bf16 tolerances, per tensor. A tensor whose true gradient is
        # zero (norm.bias: BNNeck and triplet are shift-invariant) is judged by size only.
        r = subprocess.run([DRIVER, d, "fast-bf16", str(STEPS)], capture_output=True, text=True)
        if C.check(r.returncode == 0, f"fast-bf16: driver ran ({r.stderr.strip()})"):
            got, _ = safetensors_io.read(os.path.join(d, "grads.safetensors"))
            gmax = max(float(np.abs(g).max()) for g in ref_grads.values())
            worst_cos, worst_rel, wc, wr = 1.0, 0.0, "", ""
            for name, g in ref_grads.items():
                mine = got[name].astype(np.float64)
                if np.abs(g).max() < 1e-6 * gmax:
                    e = float(np.abs(mine).max()) / gmax
                    cos = 1.0 if e < 1e-4 else 0.0
                else:
                    cos = float((mine * g).sum() / np.sqrt((mine * mine).sum() * (g * g).sum()))
                    e = float(np.abs(mine - g).max() / np.abs(g).max())
                if cos < worst_cos:
                    worst_cos, wc = cos, name
                if e > worst_rel:
                    worst_rel, wr = e, name
            C.check(worst_cos >= 0.999, f"fast-bf16: step-0 gradients, worst cosine {worst_cos:.5f} ({wc}) >= 0.999")
            C.check(worst_rel <= 0.1, f"fast-bf16: step-0 gradients, worst rel err {worst_rel:.3f} ({wr}) <= 0.1")
            L = np.load(os.path.join(d, "losses.npy"))
            mine = np.stack([L[:, 0], L[:, 1], L[:, 3], L[:, 7]], 1)
            ref = np.array(ref_losses)
            e0 = float(np.abs(mine[0] - ref[0]).max() / np.abs(ref[0]).max())
            C.check(e0 <= 1e-2, f"fast-bf16: step-0 per-task losses rel err {e0:.1e} <= 1e-2")
            # the first steps follow fp64 closely; later ones amplify rounding differences
            # (this run's fp64 loss itself goes 1.9 -> 3.3 -> 0.5 over steps 4-9), so there
            # only the mean loss is held to fp64's
            e4 = float(np.abs(mine[:4] - ref[:4]).max() / np.abs(ref).max())
            C.check(e4 <= 2e-2, f"fast-bf16: steps 0-3 losses, max rel err {e4:.1e} <= 2e-2")
            m5, r5 = float(mine[5:, 0].mean()), float(ref[5:, 0].mean())
            C.check(m5 <= 1.5 * r5, f"fast-bf16: mean loss of steps 5-{STEPS - 1} {m5:.3f} <= 1.5 x fp64's {r5:.3f}")
        # bf16 with drop path (per-sample scales from the trainer's seeded RNG, the same
        # for both runs) against fp32 with the same drop path, and with recomputation
        # (must be bit-identical: the same arithmetic, rerun).
        runs = {}
        for tag, args in (("fp32", ["fast", "1", "0.3", "0"]), ("bf16", ["fast-bf16", "1", "0.3", "0"]),
                          ("bf16-recompute", ["fast-bf16", "1", "0.3", "1"])):
            r = subprocess.run([DRIVER, d] + args, capture_output=True, text=True)
            if C.check(r.returncode == 0, f"drop path {tag}: driver ran ({r.stderr.strip()})"):
                runs[tag], _ = safetensors_io.read(os.path.join(d, "grads.safetensors"))
        if len(runs) == 3:
            a, b = runs["fp32"], runs["bf16"]
            gmax = max(float(np.abs(g).max()) for g in a.values())
            cos = min(float((a[k].astype(np.float64) * b[k]).sum() / np.sqrt((a[k].astype(np.float64) ** 2).sum() *
                                                                              (b[k].astype(np.float64) ** 2).sum()))
                      for k in a if np.abs(a[k]).max() >= 1e-6 * gmax)
            C.check(cos >= 0.999, f"drop path 0.3: bf16 step-0 gradients vs fp32, worst cosine {cos:.5f} >= 0.999")
            C.check(all(np.array_equal(runs["bf16"][k], runs["bf16-recompute"][k]) for k in a),
                    "drop path 0.3: bf16 gradients with recomputation are bit-identical")
    C.finish()


if __name__ == "__main__":
    main()
