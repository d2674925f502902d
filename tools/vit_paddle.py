#!/usr/bin/env python3
"""An independent Paddle implementation of the UFO AllInOne model (SPEC section 1).

Written from the spec, not from ufo's C code, so that real `paddle.save` files
and Paddle's own forward pass can check ufo's checkpoint reader and model:

  ViT: conv patch embedding (with bias), class token first, learned pos_embed,
  pre-norm blocks (LayerNorm eps 1e-6; one qkv Linear with bias whose output
  columns are [q | k | v], each `heads` heads of dim/heads contiguous; scale
  head_dim^-0.5; proj Linear; MLP fc1 -> exact GELU -> fc2), final LayerNorm,
  class token. Heads task1..task4: `bottleneck.0` = BatchNorm1D(dim) (eps 1e-5)
  in eval mode (running _mean/_variance). Parameter names are SPEC section 2's
  (backbone.*, heads.taskN.bottleneck.0.*); Paddle Linear weights are [in, out].

Needs paddlepaddle (scripts/install-py-deps.sh installs it into the python3 on
PATH; not the system interpreter).

  vit_paddle.py save --dim D --depth L --heads H --patch P --img S --seed N
                     [--mlp-ratio R] [--protocol 2|3|4] --out model.pdmodel
      random weights (seeded, non-trivial LayerNorm/BatchNorm statistics);
      paddle.save(model.state_dict(), out); the architecture goes to out + ".json".
  vit_paddle.py forward --model model.pdmodel [--config model.pdmodel.json]
                     --input x.npy --task task1..task4|backbone --out y.npy
      x: float32 [N, 3, S, S]; y: float32 [N, dim]: the post-BatchNorm feature
      of the task head, or the class token after the final norm (backbone).
"""
import argparse
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402

TASKS = ("task1", "task2", "task3", "task4")


class PatchEmbed(nn.Layer):
    def __init__(self, img, patch, dim):
        super().__init__()
        self.grid = img // patch
        self.proj = nn.Conv2D(3, dim, kernel_size=patch, stride=patch, bias_attr=True)

    def forward(self, x):
        x = self.proj(x)                       # [N, D, g, g]
        x = x.flatten(2).transpose([0, 2, 1])  # [N, g*g, D], raster order
        return x


class Attention(nn.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias_attr=True)
        self.proj = nn.Linear(dim, dim, bias_attr=True)

    def forward(self, x):
        n, t, d = x.shape
        qkv = self.qkv(x).reshape([n, t, 3, self.heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]       # [N, H, T, hd]
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale
        attn = F.softmax(attn, axis=-1)
        y = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([n, t, d])
        return self.proj(y)


class Mlp(nn.Layer):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=False)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Layer):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, epsilon=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class VisionTransformer(nn.Layer):
    def __init__(self, img, patch, dim, depth, heads, mlp_ratio):
        super().__init__()
        self.patch_embed = PatchEmbed(img, patch, dim)
        ntok = self.patch_embed.grid ** 2 + 1
        self.cls_token = self.create_parameter([1, 1, dim], default_initializer=nn.initializer.Constant(0.0))
        self.pos_embed = self.create_parameter([1, ntok, dim], default_initializer=nn.initializer.Constant(0.0))
        self.blocks = nn.LayerList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, epsilon=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        cls = self.cls_token.expand([x.shape[0], -1, -1])
        x = paddle.concat([cls, x], axis=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]


class Head(nn.Layer):
    def __init__(self, dim):
        super().__init__()
        self.bottleneck = nn.Sequential(nn.BatchNorm1D(dim, epsilon=1e-5))

    def forward(self, x):
        return self.bottleneck(x)


class AllInOne(nn.Layer):
    def __init__(self, cfg):
        super().__init__()
        self.backbone = VisionTransformer(cfg["img"], cfg["patch"], cfg["dim"], cfg["depth"], cfg["heads"],
                                          cfg.get("mlp_ratio", 4.0))
        self.heads = nn.LayerDict({t: Head(cfg["dim"]) for t in TASKS})

    def forward(self, x, task):
        f = self.backbone(x)
        return f if task == "backbone" else self.heads[task](f)


def randomize(model, seed):
    """Seeded random values for every parameter and BN statistic (numpy RNG)."""
    rng = np.random.default_rng(seed)
    for name, p in model.state_dict().items():
        shape = p.shape
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("_variance"):
            v = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("_mean"):
            v = rng.normal(0.0, 0.2, shape)
        elif ("norm" in name or "bottleneck" in name) and leaf == "weight":
            v = 1.0 + rng.normal(0.0, 0.1, shape)
        elif leaf == "bias":
            v = rng.normal(0.0, 0.05, shape)
        elif name.endswith("patch_embed.proj.weight"):
            fan_in = int(np.prod(shape[1:]))
            v = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif leaf == "weight":   # Linear [in, out]
            v = rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
        else:                    # cls_token, pos_embed
            v = rng.normal(0.0, 0.5, shape)
        p.set_value(v.astype(np.float32))


def build(cfg):
    paddle.set_device("cpu")
    m = AllInOne(cfg)
    m.eval()
    return m


def cmd_save(a):
    cfg = {"dim": a.dim, "depth": a.depth, "heads": a.heads, "patch": a.patch, "img": a.img,
           "mlp_ratio": a.mlp_ratio}
    m = build(cfg)
    randomize(m, a.seed)
    if a.protocol is None:
        paddle.save(m.state_dict(), a.out)
    else:
        paddle.save(m.state_dict(), a.out, protocol=a.protocol)
    with open(a.out + ".json", "w") as f:
        json.dump(cfg, f)


def cmd_forward(a):
    cfg_path = a.config or a.model + ".json"
    with open(cfg_path) as f:
        cfg = json.load(f)
    m = build(cfg)
    sd = paddle.load(a.model)
    missing, unexpected = m.set_state_dict(sd)
    if missing or unexpected:
        sys.exit(f"vit_paddle: missing {missing} unexpected {unexpected}")
    x = np.load(a.input).astype(np.float32)
    with paddle.no_grad():
        y = m(paddle.to_tensor(x), a.task).numpy().astype(np.float32)
    np.save(a.out, y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("save")
    s.add_argument("--dim", type=int, required=True)
    s.add_argument("--depth", type=int, required=True)
    s.add_argument("--heads", type=int, required=True)
    s.add_argument("--patch", type=int, default=16)
    s.add_argument("--img", type=int, default=384)
    s.add_argument("--mlp-ratio", type=float, default=4.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--protocol", type=int, choices=(2, 3, 4), default=None)
    s.add_argument("--out", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--model", required=True)
    f.add_argument("--config", default=None, help="architecture JSON (default: MODEL.json, written by save)")
    f.add_argument("--input", required=True)
    f.add_argument("--task", required=True, choices=TASKS + ("backbone",))
    f.add_argument("--out", required=True)
    a = ap.parse_args()
    {"save": cmd_save, "forward": cmd_forward}[a.cmd](a)


if __name__ == "__main__":
    main()
