"""PyTorch side of `make bench`: the same ViT (tools/vit_torch.py), same size,
batch and thread count as `ufo bench`, fp32 or bf16 (CPU autocast).
Run with Debian's /usr/bin/python3 or bench/torch-latest. Prints one JSON line."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import torch  # noqa: E402

import vit_torch  # noqa: E402

# torch >= 2.0: fused attention, as timm uses it (Debian's 1.13 has none).
vit_torch.FUSED_ATTN = hasattr(torch.nn.functional, "scaled_dot_product_attention")

PRESETS = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}

ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="large")
ap.add_argument("--img-size", type=int, default=384)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--iters", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
a = ap.parse_args()

torch.set_num_threads(a.threads)
dim, depth, heads = PRESETS[a.preset]
model = vit_torch.AllInOne(a.img_size, 16, dim, depth, heads, tasks=("vehicle",)).eval()
x = torch.rand(a.batch, 3, a.img_size, a.img_size) * 2 - 1
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
    model(x, "vehicle")
    t0 = time.perf_counter()
    for _ in range(a.iters):
        model(x, "vehicle")
    dt = time.perf_counter() - t0
ips = a.batch * a.iters / dt
print(json.dumps({"impl": f"torch {torch.__version__}", "preset": a.preset, "precision": a.precision,
                  "batch": a.batch, "threads": a.threads, "images_per_s": ips, "s_per_image": 1 / ips}))
