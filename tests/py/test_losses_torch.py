#!/usr/bin/python3
"""PyTorch as the independent peer of src/train: CosFace, batch-hard triplet,
SGD with momentum + weight decay + per-tensor clipping, and the warmup + cosine
learning rate, each written here the way fast-reid / UFO write them and run by
torch autograd / torch.optim, against ufo's driver $UFO_BUILD/test_losses_dump.

Tolerances: loss rel 1e-5, gradients and parameters rel 1e-4 (max abs error
over the tensor relative to its max abs value), learning rates rel 1e-6.
Prints "losses: N passed, M failed"; exits non-zero on failure.
"""
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from oracle_util import Checks, rel_err

BUILD = os.environ.get("UFO_BUILD", "build")
DUMP = os.path.join(BUILD, "test_losses_dump")
warnings.filterwarnings("ignore", category=UserWarning)
torch.set_num_threads(2)

C = Checks("losses")


def run(*args):
    r = subprocess.run([DUMP, *map(str, args)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"test_losses_dump {' '.join(map(str, args))}: {r.stderr.strip()}")


def close(a, ref, tol):
    return rel_err(a, ref) <= tol


# ------------------------------------------------------------------ CosFace

def cosface_torch(f, W, labels, s, m, nonzero_mean, dtype, count=None):
    """fast-reid: F.linear(F.normalize(feat), F.normalize(W)), CosSoftmax (scatter the
    margin, times s), then F.cross_entropy, or fast-reid's cross_entropy_loss
    (eps 0: sum over samples divided by the count of non-zero sample losses;
    `count` imposes that count, for the fp64 run: only fp32 rounds losses to 0)."""
    ft = torch.tensor(f, dtype=dtype, requires_grad=True)
    Wt = torch.tensor(W, dtype=dtype, requires_grad=True)
    y = torch.tensor(labels, dtype=torch.long)
    logits = F.linear(F.normalize(ft), F.normalize(Wt))
    m_hot = torch.zeros_like(logits)
    m_hot.scatter_(1, y[:, None], m)
    out = (logits - m_hot) * s
    if nonzero_mean:
        log_probs = F.log_softmax(out, dim=1)
        per = -log_probs.gather(1, y[:, None]).squeeze(1)
        cnt = max(int(per.detach().nonzero().size(0)), 1) if count is None else count
        loss = per.sum() / cnt
    else:
        cnt = None
        loss = F.cross_entropy(out, y)
    loss.backward()
    acc = float((logits.detach() * s).argmax(1).eq(y).float().mean())
    return float(loss), ft.grad.numpy(), Wt.grad.numpy(), acc, cnt


def check_cosface(name, f, W, labels, s, m, block=0, nonzero_mean=0):
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "f.npy"), f)
        np.save(os.path.join(d, "W.npy"), W)
        np.save(os.path.join(d, "labels.npy"), labels.astype(np.int64))
        t0 = time.time()
        run("cosface", d, s, m, block, nonzero_mean)
        dt = time.time() - t0
        loss, acc, nz = np.load(os.path.join(d, "loss.npy"))
        df = np.load(os.path.join(d, "df.npy"))
        dW = np.load(os.path.join(d, "dW.npy"))
    cnt32 = cosface_torch(f, W, labels, s, m, nonzero_mean, torch.float32)[4]
    for dtype in (torch.float64, torch.float32):
        tl, tdf, tdW, tacc, tcnt = cosface_torch(f, W, labels, s, m, nonzero_mean, dtype, cnt32)
        tag = f"{name} vs torch {str(dtype)[6:]}"
        C.check(abs(loss - tl) <= 1e-5 * abs(tl), f"{tag}: loss {loss:.8g} vs {tl:.8g}")
        C.check(close(df, tdf, 1e-4), f"{tag}: df rel {rel_err(df, tdf):.2e}")
        C.check(close(dW, tdW, 1e-4), f"{tag}: dW rel {rel_err(dW, tdW):.2e}")
        C.check(acc == tacc, f"{tag}: accuracy {acc} vs {tacc}")
        if nonzero_mean and dtype == torch.float32:
            C.check(int(nz) == tcnt, f"{tag}: non-zero sample losses {int(nz)} vs {tcnt}")
    print(f"        ({name}: ufo {dt:.2f} s incl. process start and npy i/o)")


def cosface_cases(rng):
    n, D = 64, 128
    f = rng.standard_normal((n, D)).astype(np.float32) * 3
    W = (rng.standard_normal((1000, D)) * 0.001).astype(np.float32)   # SPEC init scale
    y = rng.integers(0, 1000, n)
    check_cosface("cosface n64 D128 C1000 s30 m0.2", f, W, y, 30, 0.2)
    check_cosface("cosface C1000 in blocks of 300", f, W, y, 30, 0.2, block=300)
    # Trained-like: features near their class weight, so the label is often the top-1.
    W2 = rng.standard_normal((20000, D)).astype(np.float32)
    y2 = rng.integers(0, 20000, n)
    f2 = (W2[y2] + 1.5 * rng.standard_normal((n, D))).astype(np.float32)
    check_cosface("cosface C20000 s50 m0.3 (3 blocks of 8192)", f2, W2, y2, 50, 0.3)
    check_cosface("cosface C20000 in blocks of 777", f2, W2, y2, 50, 0.3, block=777)
    # fast-reid's divisor: 16 rows equal to their class weight have fp32 loss 0 at s = 64.
    f3 = f.copy()
    W3 = rng.standard_normal((1000, D)).astype(np.float32)
    f3[:16] = W3[y[:16]] * 2
    check_cosface("cosface nonzero-mean s64 m0.3", f3, W3, y, 64, 0.3, nonzero_mean=1)
    check_cosface("cosface plain mean, same inputs", f3, W3, y, 64, 0.3, nonzero_mean=0)


# ------------------------------------------------------------------ triplet

def triplet_torch(x, labels, margin, dtype, force_fallback=None):
    """fast-reid's triplet_loss(embedding, targets, margin, norm_feat=False, hard_mining=True)."""
    emb = torch.tensor(x, dtype=dtype, requires_grad=True)
    targets = torch.tensor(labels, dtype=torch.long)
    m_, n_ = emb.size(0), emb.size(0)
    xx = torch.pow(emb, 2).sum(1, keepdim=True).expand(m_, n_)
    yy = torch.pow(emb, 2).sum(1, keepdim=True).expand(n_, m_).t()
    dist_mat = (xx + yy - 2 * torch.matmul(emb, emb.t())).clamp(min=1e-12).sqrt()
    N = dist_mat.size(0)
    is_pos = targets.view(N, 1).expand(N, N).eq(targets.view(N, 1).expand(N, N).t()).float()
    is_neg = targets.view(N, 1).expand(N, N).ne(targets.view(N, 1).expand(N, N).t()).float()
    dist_ap, p_idx = torch.max(dist_mat * is_pos, dim=1)
    dist_an, n_idx = torch.min(dist_mat * is_neg + is_pos * 1e9, dim=1)
    y = dist_an.new().resize_as_(dist_an).fill_(1)
    fallback = False
    if margin > 0:
        loss = F.margin_ranking_loss(dist_an, dist_ap, y, margin=margin)
    else:
        loss = F.soft_margin_loss(dist_an - dist_ap, y)
        if force_fallback is None:
            fallback = bool(loss == float("Inf"))
        else:
            fallback = force_fallback
        if fallback:
            loss = F.margin_ranking_loss(dist_an, dist_ap, y, margin=0.3)
    loss.backward()
    return float(loss), emb.grad.numpy(), p_idx.numpy(), n_idx.numpy(), fallback


def check_triplet(name, x, labels, margin=0.0, expect_fallback=False):
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "labels.npy"), labels.astype(np.int64))
        run("triplet", d, margin)
        loss, fb = np.load(os.path.join(d, "loss.npy"))
        dx = np.load(os.path.join(d, "dx.npy"))
        idx = np.load(os.path.join(d, "idx.npy"))
    # fp32 decides the overflow fallback, as it does in training; fp64 is the
    # accurate reference for values and gradients (fp32 torch leaves rounding
    # noise in the self distances that the fp64 run does not have).
    _, _, _, _, fb32 = triplet_torch(x, labels, margin, torch.float32)
    tl, tdx, tp, tn, _ = triplet_torch(x, labels, margin, torch.float64, force_fallback=fb32)
    C.check(bool(fb) == fb32 == expect_fallback, f"{name}: fallback ufo {bool(fb)} torch {fb32}")
    C.check(abs(loss - tl) <= 1e-5 * abs(tl), f"{name}: loss {loss:.8g} vs {tl:.8g}")
    C.check((idx[0] == tp).all() and (idx[1] == tn).all(),
            f"{name}: mined indices ({(idx[0] != tp).sum()} pos, {(idx[1] != tn).sum()} neg differ)")
    C.check(close(dx, tdx, 1e-4), f"{name}: dx rel {rel_err(dx, tdx):.2e}")


def triplet_cases(rng):
    D = 128
    pk = np.repeat(np.arange(16), 4)
    x = rng.standard_normal((64, D)).astype(np.float32)
    check_triplet("triplet PK 16x4 soft margin", x, pk)
    mixed = np.concatenate([np.repeat(np.arange(10), 5), [10, 11, 12], np.full(7, 13), [14, 15, 16, 17]])
    check_triplet("triplet singletons + uneven labels", x, mixed)
    check_triplet("triplet margin 0.3", x, pk, margin=0.3)
    # Exact ties: small integers (every product and sum exact in fp32 and fp64),
    # duplicated rows within a label and across labels.
    xi = rng.integers(-2, 3, (32, 16)).astype(np.float32)
    lab = np.repeat(np.arange(8), 4)
    xi[1] = xi[2]            # same label: positive ties for anchors 0 and 3
    xi[9] = xi[5]            # label 2 and label 1: a negative at distance ~0
    xi[20] = xi[21] = xi[22]
    check_triplet("triplet integer features with ties", xi, lab)
    # Soft margin overflows in fp32 (ap - an > 88.7): fast-reid's margin-ranking fallback.
    xb = x * 60
    check_triplet("triplet overflow -> margin ranking 0.3", xb, mixed, expect_fallback=True)


# ------------------------------------------------------------------ SGD + LR

def lr_formula(k, base, mn, total, W, T):
    if k < W:
        return base * k / W
    if T <= 0:
        T = max(total - W - 1, 1)
    t = min(k - W, T)
    return mn + (base - mn) * (1 + math.cos(math.pi * t / T)) / 2


def check_sgd(name, clip, rng):
    shapes = [(40, 30), (30,), (500,), (7, 7)]
    wds = [1e-4, 1e-4, 0.0, 1e-4]
    mults = [1.0, 1.0, 1.0, 0.5]
    sizes = [int(np.prod(s)) for s in shapes]
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    P = sum(sizes)
    steps, base, mn, total, W = 10, 0.2, 0.004, 10, 1
    p0 = rng.standard_normal(P).astype(np.float32)
    # Gradient scales: tensor 0 usually over the clip norm (5), the others under.
    gs = [0.3, 0.2, 0.1, 2.0]
    grads = np.concatenate([rng.standard_normal((steps, s)) * g for s, g in zip(sizes, gs)], axis=1).astype(np.float32)
    segs = np.array([[o, s, w, m] for o, s, w, m in zip(offs, sizes, wds, mults)], dtype=np.float64)
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "params.npy"), p0)
        np.save(os.path.join(d, "grads.npy"), grads)
        np.save(os.path.join(d, "segs.npy"), segs)
        run("sgd", d, clip, 0.9, 5.0, base, mn, total, W, 0)
        pout = np.load(os.path.join(d, "params_out.npy"))
        mout = np.load(os.path.join(d, "mom_out.npy"))
        lrs = np.load(os.path.join(d, "lr.npy"))

    params = [torch.nn.Parameter(torch.tensor(p0[o:o + s].reshape(sh))) for o, s, sh in zip(offs, sizes, shapes)]
    opt = torch.optim.SGD([{"params": [p], "lr": base * m, "weight_decay": w}
                           for p, w, m in zip(params, wds, mults)], lr=base, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_formula(k, base, mn, total, W, 0) / base)
    clipped = 0
    tlrs = []
    for k in range(steps):
        tlrs.append(opt.param_groups[0]["lr"])
        for p, o, s, sh in zip(params, offs, sizes, shapes):
            p.grad = torch.tensor(grads[k, o:o + s].reshape(sh))
            if clip == "torch":
                n_ = torch.nn.utils.clip_grad_norm_(p, 5.0)
            elif clip == "paddle":
                # paddle.nn.ClipGradByNorm(5): g * 5 / max(||g||, 5)
                n_ = p.grad.norm()
                if n_ > 5.0:
                    p.grad.mul_(5.0 / n_)
            else:
                n_ = p.grad.norm()
            clipped += int(n_ > 5.0)
        opt.step()
        sched.step()
    tp = np.concatenate([p.detach().numpy().ravel() for p in params])
    tm = np.concatenate([opt.state[p]["momentum_buffer"].numpy().ravel() for p in params])
    C.check(clipped >= 5 if clip != "none" else True, f"{name}: clipping exercised ({clipped} tensor-steps over 5)")
    C.check(close(lrs, np.array(tlrs), 1e-6), f"{name}: lr per step rel {rel_err(lrs, np.array(tlrs)):.2e}")
    C.check(close(pout - p0, tp - p0, 1e-4), f"{name}: parameter change rel {rel_err(pout - p0, tp - p0):.2e}")
    C.check(close(pout, tp, 1e-5), f"{name}: parameters rel {rel_err(pout, tp):.2e}")
    C.check(close(mout, tm, 1e-4), f"{name}: momentum buffers rel {rel_err(mout, tm):.2e}")


def check_lr(name, base, mn, total, W, T):
    """ufo's schedule vs torch's own schedulers: LambdaLR (warmup k / W) then
    CosineAnnealingLR(T_max, eta_min), chained by SequentialLR at step W."""
    with tempfile.TemporaryDirectory() as d:
        run("lr", d, base, mn, total, W, T)
        lrs = np.load(os.path.join(d, "lr.npy"))
    Tm = T if T > 0 else max(total - W - 1, 1)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base, momentum=0.9)
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: k / W)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=Tm, eta_min=mn)
    sch = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[W])
    ref = []
    for _ in range(total):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    ref = np.array(ref)
    nz = ref != 0
    err = float(np.max(np.abs(lrs[nz] - ref[nz]) / ref[nz]))
    C.check(err <= 1e-6 and (lrs[~nz] == 0).all(), f"{name}: {total} steps, max rel {err:.1e}")
    C.check(lrs[0] == 0 and abs(lrs[W] - base) <= 1e-12, f"{name}: lr(0) = 0, lr(W) = base")
    if T == 0:
        C.check(abs(lrs[-1] - mn) <= 1e-12 * base, f"{name}: lr(last) = min ({lrs[-1]:.6g})")


def main():
    t0 = time.time()
    rng = np.random.default_rng(20240607)
    if not os.path.exists(DUMP):
        print(f"missing {DUMP} (set UFO_BUILD)", file=sys.stderr)
        sys.exit(1)
    cosface_cases(rng)
    triplet_cases(rng)
    for clip in ("paddle", "torch", "none"):
        check_sgd(f"sgd 10 steps, clip {clip}", clip, rng)
    check_lr("lr SPEC: base 0.2, W 10%, min 0.02 base", 0.2, 0.004, 1000, 100, 0)
    check_lr("lr short run", 0.5, 0.01, 23, 2, 0)
    check_lr("lr UFO T_max = total", 0.2, 0.004, 1000, 100, 1000)
    print(f"        ({time.time() - t0:.1f} s)")
    C.finish()


if __name__ == "__main__":
    main()
