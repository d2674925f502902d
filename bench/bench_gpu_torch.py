"""PyTorch side of the GPU benchmark (tools/gpu_check.sh): the same ViT as
`ufo bench --device cuda` (tools/vit_torch.py, eager, attention written out as
matmul-softmax-matmul like ufo's), same size and batch, bf16 autocast (AMP) or
fp32, timed like ufo's: inputs in pinned host memory, upload + forward + the
features back on the host per iteration. With --sdpa the attention is
F.scaled_dot_product_attention instead (torch >= 2: flash/efficient kernels),
as a second, stronger baseline. With --compile the model goes through
torch.compile first (torch >= 2 with a working Triton; the compile time is
not timed: two warm-up calls run before the clock starts). Prints one JSON line."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import vit_torch  # noqa: E402

PRESETS = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}

ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="large")
ap.add_argument("--img-size", type=int, default=384)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--iters", type=int, default=10)
ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
ap.add_argument("--sdpa", action="store_true")
ap.add_argument("--compile", action="store_true")
a = ap.parse_args()

if not torch.cuda.is_available():
    print(json.dumps({"impl": f"torch {torch.__version__}", "skipped": "torch.cuda.is_available() is False"}))
    sys.exit(0)
if a.sdpa:
    if not hasattr(F, "scaled_dot_product_attention"):
        print(json.dumps({"impl": f"torch {torch.__version__} sdpa", "skipped": "no F.scaled_dot_product_attention"}))
        sys.exit(0)

    def sdpa_forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C))

    vit_torch.Attention.forward = sdpa_forward
if a.compile and not hasattr(torch, "compile"):
    print(json.dumps({"impl": f"torch {torch.__version__} compile", "skipped": "no torch.compile"}))
    sys.exit(0)

torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in ufo
torch.backends.cudnn.allow_tf32 = False
dim, depth, heads = PRESETS[a.preset]
model = vit_torch.AllInOne(a.img_size, 16, dim, depth, heads, tasks=("vehicle",)).eval().cuda()
if a.compile:
    model = torch.compile(model)
x = (torch.rand(a.batch, 3, a.img_size, a.img_size) * 2 - 1).pin_memory()


def step():
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
        return model(x.cuda(non_blocking=True), "vehicle").float().cpu()


with torch.inference_mode():
    step()
    step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
ips = a.batch * a.iters / dt
mode = "compile" if a.compile else "eager"
print(json.dumps({"impl": f"torch {torch.__version__} {mode}{' sdpa' if a.sdpa else ''}", "device":
                  torch.cuda.get_device_name(0), "preset": a.preset, "img_size": a.img_size, "precision": a.precision,
                  "batch": a.batch, "images_per_s": round(ips, 2), "ms_per_batch": round(1000 * dt / a.iters, 2),
                  "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}))
