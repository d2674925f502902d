"""An independent PyTorch implementation of the AllInOne ViT (SPEC section 1).

Written from the specification, not from ufo's C code, so that agreement
means something: nn.Conv2d patch embedding, class token + learned position
embedding, pre-norm blocks (LayerNorm eps 1e-6, one qkv Linear whose output
columns are [q | k | v], each `heads` heads of contiguous head_dim, softmax
attention with scale head_dim^-0.5, exact-erf GELU MLP), final LayerNorm,
class token, then a BatchNorm1d (eps 1e-5, eval mode) per task head.

Parameter names follow timm (and ufo): cls_token, pos_embed, patch_embed.proj.*,
blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, norm.*, and
heads.<task>.{weight,bias,running_mean,running_var}.
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TASKS = ("face", "person", "vehicle", "product")
# Benchmarks against a newer PyTorch set this to use its fused attention
# (F.scaled_dot_product_attention, as timm does); the oracles keep the explicit form.
FUSED_ATTN = False


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        hd = C // self.heads
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        if FUSED_ATTN:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            att = (q @ k.transpose(-2, -1)) * hd ** -0.5
            out = att.softmax(dim=-1) @ v                # B, heads, T, hd
        return self.proj(out.transpose(1, 2).reshape(B, T, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))            # exact erf GELU


def drop_path(x, rate, training):
    """Stochastic depth per sample (timm's drop_path): keep with 1 - rate, scale by 1 / (1 - rate)."""
    if rate == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - rate)
    return x * keep / (1.0 - rate)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, drop=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.drop = drop

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.drop, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop, self.training)


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)   # raster order


class AllInOne(nn.Module):
    def __init__(self, img=384, patch=16, dim=1024, depth=24, heads=16, mlp=None, tasks=TASKS, drop_path=0.0):
        super().__init__()
        grid = img // patch
        # SPEC section 1: the rate rises linearly from 0 (first block) to drop_path (last).
        rates = [drop_path * i / (depth - 1) if depth > 1 else drop_path for i in range(depth)]
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp or 4 * dim, rates[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.heads = nn.ModuleDict({t: nn.BatchNorm1d(dim, eps=1e-5) for t in tasks})

    def backbone(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]

    def forward(self, x, task=None):
        f = self.backbone(x)
        return f if task in (None, "backbone") else self.heads[task](f)


def randomize(model, seed, scale=0.05):
    """Non-trivial random weights: every parameter and BN statistic matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight" \
                    or (name.startswith("heads.") and name.endswith(".weight")):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))
        for t, bn in model.heads.items():
            bn.running_mean.copy_(0.3 * torch.randn(bn.running_mean.shape, generator=g))
            bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=g))
    return model.eval()


def state_dict_numpy(model):
    """ufo/timm names -> float32 arrays (BatchNorm's num_batches_tracked dropped)."""
    return {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def resample_pos_embed(pos, new_grid):
    """timm's resample_abs_pos_embed: keep the class token, antialiased bicubic on the grid."""
    cls, grid = pos[:, :1], pos[:, 1:]
    g = int(math.isqrt(grid.shape[1]))
    grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, -1)], dim=1)


def pil_preprocess(path, size):
    """SPEC section 3 with Pillow: exif_transpose, RGB, BICUBIC resize, (x-127.5)/127.5, CHW."""
    from PIL import Image, ImageOps
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((size, size), Image.BICUBIC)
    a = np.asarray(im, dtype=np.float32)
    return ((a - 127.5) / 127.5).transpose(2, 0, 1).copy()
