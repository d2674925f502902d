"""PyTorch side of bench_cuda_attention (tools/gpu_check.sh): the attention
alone, bf16, on the same problem (default ViT-L/16 at 384, batch 32: B 32,
T 577, H 16, hd 64), with F.scaled_dot_product_attention (torch >= 2: its
flash / memory-efficient kernels) on q, k, v [B, H, T, hd]. Times the forward
and the forward + backward (the backward = the difference), the stream
synchronised around `iters` calls after two warm-up calls, and prints one JSON
line with milliseconds and TFLOP/s counted as bench_cuda_attention counts them
(4 B H T^2 hd forward, 2.5x that backward)."""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("B", type=int, nargs="?", default=32)
ap.add_argument("T", type=int, nargs="?", default=577)
ap.add_argument("H", type=int, nargs="?", default=16)
ap.add_argument("hd", type=int, nargs="?", default=64)
ap.add_argument("iters", type=int, nargs="?", default=10)
a = ap.parse_args()

impl = f"torch {torch.__version__} sdpa"
if not torch.cuda.is_available() or not hasattr(F, "scaled_dot_product_attention"):
    print(json.dumps({"impl": impl, "skipped": "no CUDA or no F.scaled_dot_product_attention"}))
    sys.exit(0)
q, k, v = (torch.randn(a.B, a.H, a.T, a.hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
           for _ in range(3))
do = torch.randn(a.B, a.H, a.T, a.hd, device="cuda", dtype=torch.bfloat16)


def timed(fn):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / a.iters


def fwd():
    with torch.no_grad():
        F.scaled_dot_product_attention(q, k, v)


def fwd_bwd():
    o = F.scaled_dot_product_attention(q, k, v)
    torch.autograd.grad(o, (q, k, v), do)


tf, tfb = timed(fwd), timed(fwd_bwd)
tb = max(tfb - tf, 1e-9)
flop = 4.0 * a.B * a.H * a.T * a.T * a.hd
print(json.dumps({"impl": impl, "device": torch.cuda.get_device_name(), "B": a.B, "T": a.T, "H": a.H, "hd": a.hd,
                  "fwd_ms": round(tf * 1e3, 3), "fwd_tflops": round(flop / tf / 1e12, 1),
                  "bwd_ms": round(tb * 1e3, 3), "bwd_tflops": round(2.5 * flop / tb / 1e12, 1)}))
