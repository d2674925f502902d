"""PyTorch side of the training benchmark: the same ViT (tools/vit_torch.py),
one vehicle head, CosFace (1000 classes) + batch-hard triplet
(tools/losses_torch.py), backward, SGD with momentum, at the same size, batch
and thread count as `ufo bench --train`. bf16 = autocast (CPU, or CUDA with
--device cuda: eager AMP, fp32 master weights). Prints one JSON line. Run with
Debian's /usr/bin/python3 or bench/torch-latest (or the GPU machine's python3)."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import torch  # noqa: E402

import losses_torch  # noqa: E402
import vit_torch  # noqa: E402

# torch >= 2.0: fused attention, as timm uses it (Debian's 1.13 has none).
vit_torch.FUSED_ATTN = hasattr(torch.nn.functional, "scaled_dot_product_attention")

PRESETS = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="base")
ap.add_argument("--img-size", type=int, default=224)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--iters", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
a = ap.parse_args()
dev = torch.device(a.device)
if a.device == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = False   # fp32 means fp32, as ufo's
    torch.backends.cudnn.allow_tf32 = False

torch.set_num_threads(a.threads)
torch.set_flush_denormal(True)  # fair: denormals otherwise slow its fp32 backward badly
dim, depth, heads = PRESETS[a.preset]
model = vit_torch.AllInOne(a.img_size, 16, dim, depth, heads, tasks=("vehicle",)).train().to(dev)
W = torch.nn.Parameter(torch.randn(1000, dim, device=dev) * 0.001)
opt = torch.optim.SGD(list(model.parameters()) + [W], lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.rand(a.batch, 3, a.img_size, a.img_size, device=dev) * 2 - 1
y = (torch.arange(a.batch) // 4 % 1000).to(dev)


def step():
    opt.zero_grad()
    with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
        feat = model.backbone(x)
        bn = model.heads["vehicle"](feat)
    loss = losses_torch.cosface(bn.float(), W, y, 20.0, 0.2) + losses_torch.triplet(feat.float(), y)
    loss.backward()
    for p in opt.param_groups[0]["params"]:
        torch.nn.utils.clip_grad_norm_([p], 5.0)
    opt.step()


def sync():
    if a.device == "cuda":
        torch.cuda.synchronize()


step()
sync()
t0 = time.perf_counter()
for _ in range(a.iters):
    step()
sync()
dt = time.perf_counter() - t0
ips = a.batch * a.iters / dt
print(json.dumps({"impl": f"torch {torch.__version__}", "mode": "train", "device": a.device, "preset": a.preset,
                  "precision": a.precision,
                  "batch": a.batch, "threads": a.threads, "images_per_s": ips, "s_per_image": 1 / ips}))
