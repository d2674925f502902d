"""Backward kernels against PyTorch autograd, the independent peer.

For every training op (linear with its GELU / residual forms, LayerNorm, GELU,
the attention core in ufo's qkv layout [B, T, 3, H, hd], the patch-embedding
conv, BatchNorm1d in training mode with its running-statistics update) this
makes random float32 inputs, computes outputs and gradients with
torch.autograd in float64, runs the C driver (build/test_backward_dump) with
the reference kernels, the fast fp32 kernels and the fast bf16 kernels, and
compares: fp32 max relative error <= 1e-4 (relative to the largest magnitude
of the PyTorch tensor), bf16 cosine >= 0.999."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from oracle_util import Checks  # noqa: E402

torch.set_num_threads(2)
C = Checks("backward")
DRIVER = os.path.join(os.environ.get("UFO_BUILD", "build"), "test_backward_dump")
RNG = np.random.default_rng(20240605)


def rand(*shape, scale=1.0, offset=0.0):
    return (offset + scale * RNG.uniform(-1, 1, shape)).astype(np.float32)


def t64(a, grad=False):
    return torch.from_numpy(a.astype(np.float64)).requires_grad_(grad)


def rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def cosine(got, ref):
    a, b = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 1.0 if na == 0 and nb == 0 else float(a @ b / max(na * nb, 1e-300))


def run_driver(op, inputs, backend, prec):
    with tempfile.TemporaryDirectory() as d:
        ind, outd = os.path.join(d, "in"), os.path.join(d, "out")
        os.mkdir(ind)
        os.mkdir(outd)
        for k, v in inputs.items():
            np.save(os.path.join(ind, k + ".npy"), np.ascontiguousarray(v, dtype=np.float32))
        r = subprocess.run([DRIVER, op, ind, outd, backend, prec], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{DRIVER} {op} {backend} {prec} failed ({r.returncode}): {r.stderr.strip()}")
        return {f[:-4]: np.load(os.path.join(outd, f)) for f in os.listdir(outd)}


def compare(label, op, inputs, want, bf16=True):
    """want: name -> float64 numpy array from torch. Runs ref fp32, fast fp32 and (if bf16) fast bf16."""
    runs = [("ref", "fp32"), ("fast", "fp32")] + ([("fast", "bf16")] if bf16 else [])
    for backend, prec in runs:
        try:
            got = run_driver(op, inputs, backend, prec)
        except RuntimeError as e:
            C.check(False, f"{label} {backend} {prec}: {e}")
            continue
        for name, ref in want.items():
            g = got.get(name)
            if g is None or g.shape != ref.shape:
                C.check(False, f"{label} {backend} {prec} {name}: shape {None if g is None else g.shape}, want {ref.shape}")
                continue
            if prec == "fp32":
                e = rel_err(g, ref)
                C.check(e <= 1e-4, f"{label} {backend} {prec} {name}: max rel err {e:.2e} <= 1e-4")
            else:
                cs, e = cosine(g, ref), rel_err(g, ref)
                C.check(cs >= 0.999, f"{label} {backend} {prec} {name}: cosine {cs:.6f} >= 0.999 (rel {e:.2e})")


def grads(loss, tensors):
    loss.backward()
    return {k: v.grad.numpy() for k, v in tensors.items()}


def case_linear(n, nin, nout):
    x, w, b = rand(n, nin), rand(nout, nin, scale=nin ** -0.5), rand(nout)
    dy, res = rand(n, nout), rand(n, nout)
    tx, tw, tb = t64(x, True), t64(w, True), t64(b, True)
    y = F.linear(tx, tw, tb)
    want = {"y": y.detach().numpy(), "y_gelu": F.gelu(y).detach().numpy(), "y_res": (t64(res) + y).detach().numpy()}
    g = grads((y * t64(dy)).sum(), {"dx": tx, "dw": tw, "db": tb})
    compare(f"linear n={n} {nin}->{nout}", "linear", dict(x=x, w=w, b=b, dy=dy, res=res), {**want, **g})


def case_layernorm(n, c):
    x, g, b, dy = rand(n, c, scale=2, offset=0.3), rand(c, scale=0.5, offset=1), rand(c), rand(n, c)
    tx, tg, tb = t64(x, True), t64(g, True), t64(b, True)
    y = F.layer_norm(tx, (c,), tg, tb, eps=1e-6)
    want = {"y": y.detach().numpy()}
    want.update(grads((y * t64(dy)).sum(), {"dx": tx, "dg": tg, "db": tb}))
    compare(f"layernorm n={n} c={c}", "layernorm", dict(x=x, g=g, b=b, dy=dy), want, bf16=False)


def case_gelu(shape):
    x, dy = rand(*shape, scale=6), rand(*shape)
    tx = t64(x, True)
    y = F.gelu(tx)
    want = {"y": y.detach().numpy()}
    want.update(grads((y * t64(dy)).sum(), {"dx": tx}))
    compare(f"gelu {shape}", "gelu", dict(x=x, dy=dy), want, bf16=False)


def torch_attention(qkv):
    B, T, _, H, hd = qkv.shape
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))   # [B, H, T, hd]
    p = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1)
    return (p @ v).transpose(1, 2).reshape(B, T, H * hd)


def case_attention(B, T, H, hd):
    qkv, dout = rand(B, T, 3, H, hd, scale=2), rand(B, T, H * hd)
    tq = t64(qkv, True)
    out = torch_attention(tq)
    want = {"out": out.detach().numpy()}
    want.update(grads((out * t64(dout)).sum(), {"dqkv": tq}))
    compare(f"attention B={B} T={T} H={H} hd={hd}", "attention", dict(qkv=qkv, dout=dout), want)


def case_patch_embed(B, H, W, p, Cout):
    img, w, b = rand(B, 3, H, W), rand(Cout, 3, p, p, scale=(3 * p * p) ** -0.5), rand(Cout)
    P = (H // p) * (W // p)
    dy = rand(B, P, Cout)
    tw, tb = t64(w, True), t64(b, True)
    y = F.conv2d(t64(img), tw, tb, stride=p).flatten(2).transpose(1, 2)   # [B, P, C], raster order
    want = {"y": y.detach().numpy()}
    want.update(grads((y * t64(dy)).sum(), {"dw": tw, "db": tb}))
    compare(f"patch_embed B={B} {H}x{W} p={p} C={Cout}", "patch_embed", dict(img=img, w=w, b=b, dy=dy), want)


def case_batchnorm(n, c):
    x, g, b, dy = rand(n, c, scale=2, offset=0.5), rand(c, scale=0.5, offset=1), rand(c), rand(n, c)
    rm, rv = rand(c), rand(c, scale=0.5, offset=1.5)
    trm, trv = t64(rm), t64(rv)
    tx, tg, tb = t64(x, True), t64(g, True), t64(b, True)
    y = F.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5)   # updates trm, trv
    xd = tx.detach()
    want = {"y": y.detach().numpy(), "mean": xd.mean(0).numpy(),
            "rstd": (1 / torch.sqrt(xd.var(0, unbiased=False) + 1e-5)).numpy(),
            "running_mean": trm.numpy(), "running_var": trv.numpy()}
    want.update(grads((y * t64(dy)).sum(), {"dx": tx, "dg": tg, "db": tb}))
    compare(f"batchnorm n={n} c={c}", "batchnorm", dict(x=x, g=g, b=b, running_mean=rm, running_var=rv, dy=dy),
            want, bf16=False)


def main():
    if not os.path.exists(DRIVER):
        print(f"missing {DRIVER} (set UFO_BUILD to the build directory)")
        sys.exit(1)
    case_linear(1, 45, 70)
    case_linear(37, 96, 200)
    case_linear(197, 192, 77)
    case_layernorm(1, 45)
    case_layernorm(33, 768)
    case_gelu((3, 1001))
    case_attention(1, 1, 2, 8)
    case_attention(2, 17, 3, 24)
    case_attention(1, 197, 2, 64)
    case_patch_embed(2, 32, 48, 16, 37)
    case_patch_embed(1, 24, 24, 8, 20)
    case_batchnorm(64, 130)
    case_batchnorm(7, 45)
    C.finish()


if __name__ == "__main__":
    main()
