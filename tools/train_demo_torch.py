#!/usr/bin/python3
"""The PyTorch reference trainer of a ufo recipe, and the side-by-side run of
issue 6: ufo and PyTorch train the same model from the same initial weights
with the same recipe for the same number of steps, then both models are scored
by `ufo eval` (the seed's table) and the product task once more here with
numpy (tools/metrics_ref.py) on PyTorch's own embeddings.

Everything on the PyTorch side is written from SPEC section 4, not from ufo's C:
  data      the demo's layouts read here (MS1M RecordIO, Market-1501
            bounding_box_train, VeRi image_train, SOP train.txt)
  sampler   P identities x K instances for person / vehicle / product
            (fast-reid's NaiveIdentitySampler: identities with < K images drawn
            with replacement), plain random for face; one heterogeneous batch
  augment   AutoAugment (tools/autoaugment_pil.py) with p, BICUBIC resize,
            pad with 0 + random crop, flip, (x - 127.5) / 127.5, random erasing
            (timm, mode 'pixel', one box) -- Pillow + numpy
  model     tools/vit_torch.py with drop path; BNNeck per task in training mode
  losses    tools/losses_torch.py: CosFace (s, m per head) + batch-hard
            soft-margin triplet on the pre-BN feature (not face), summed
  optimiser SGD momentum 0.9, L2 1e-4 on every tensor, per-tensor clipping to
            norm 5 (Paddle's ClipGradByNorm), linear warmup then cosine to 2%

Usage (Debian's interpreter: torch, numpy, Pillow):
  /usr/bin/python3 tools/train_demo_torch.py --ufo build/ufo --data runs/demo/data \
      --config recipes/demo.ini --out runs/compare [--steps N] [--skip-ufo]
Writes OUT/torch/model.safetensors, OUT/ufo/ (the ufo run), OUT/compare.json
and prints both tables and both wall times.
"""
import argparse
import configparser
import io
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageOps

import autoaugment_pil
import losses_torch
import metrics_ref
import safetensors_io
import vit_torch

TASKS = vit_torch.TASKS
COSFACE = {"face": (50.0, 0.3), "person": (30.0, 0.2), "vehicle": (20.0, 0.2), "product": (30.0, 0.2)}
PRESETS = {"tiny": (192, 12, 3), "small": (384, 12, 6), "base": (768, 12, 12), "large": (1024, 24, 16)}
RIO_MAGIC = 0xCED7230A


# ------------------------------------------------------------------ recipe

def read_recipe(path, overrides):
    cp = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    cp.read(path)
    r = {f"{s}.{k}": v.strip() for s in cp.sections() for k, v in cp[s].items()}
    for o in overrides:
        k, v = o.split("=", 1)
        r[k] = v
    return r


def get(r, key, default, cast=str):
    return cast(r[key]) if key in r and r[key] != "" else default


# ------------------------------------------------------------------ training sets

def read_recordio(rec_path, idx_path):
    """[(jpeg bytes, label)] of the image records (IRHeader flag 0)."""
    data = open(rec_path, "rb").read()
    out = []
    for line in open(idx_path):
        key, off = (int(v) for v in line.split("\t"))
        payload, pos = b"", off
        while True:
            magic, lrec = struct.unpack_from("<II", data, pos)
            if magic != RIO_MAGIC:
                raise ValueError("%s: bad magic at %d (key %d)" % (rec_path, pos, key))
            cflag, n = lrec >> 29, lrec & ((1 << 29) - 1)
            payload += data[pos + 8:pos + 8 + n]
            pos += 8 + ((n + 3) & ~3)
            if cflag in (0, 3):
                break
            payload += struct.pack("<I", RIO_MAGIC)
        flag, label = struct.unpack_from("<If", payload, 0)
        if flag == 0:
            out.append((payload[24:], int(label)))
    return out


def folder_items(d, pattern):
    out = []
    for f in sorted(os.listdir(d)):
        m = re.match(pattern, f)
        if m and int(m.group(1)) >= 0:
            out.append((os.path.join(d, f), int(m.group(1))))
    return out


def load_task(task, root):
    """[(source, raw label)], source = a path or JPEG bytes."""
    if task == "face":
        base = os.path.join(root, "ms1m-retinaface-t1")
        return read_recordio(os.path.join(base, "train.rec"), os.path.join(base, "train.idx"))
    if task == "person":
        return folder_items(os.path.join(root, "Market-1501-v15.09.15", "bounding_box_train"),
                            r"^(-?\d+)_c\d+s\d+_.*\.jpg$")
    if task == "vehicle":
        return folder_items(os.path.join(root, "veri", "image_train"), r"^(\d+)_c\d+_.*\.jpg$")
    base = os.path.join(root, "Stanford_Online_Products")
    out = []
    for line in open(os.path.join(base, "train.txt")):
        if line.strip():
            path, label = line.strip().rsplit(",", 1)
            out.append((os.path.join(base, path), int(label)))
    return out


def contiguous(items):
    ids = {v: i for i, v in enumerate(sorted({lab for _, lab in items}))}
    return [(src, ids[lab]) for src, lab in items], len(ids)


# ------------------------------------------------------------------ sampler

class RandomSampler:
    def __init__(self, n, batch, rnd):
        self.n, self.batch, self.rnd, self.stream = n, batch, rnd, []

    def draw(self):
        while len(self.stream) < self.batch:
            perm = list(range(self.n))
            self.rnd.shuffle(perm)
            self.stream += perm
        out, self.stream = self.stream[:self.batch], self.stream[self.batch:]
        return out


class PKSampler:
    """fast-reid NaiveIdentitySampler: P distinct identities, K images each; an
    identity's images are used once per epoch; fewer than K: with replacement."""

    def __init__(self, labels, P, K, rnd):
        self.by_id = {}
        for i, lab in enumerate(labels):
            self.by_id.setdefault(lab, []).append(i)
        if P > len(self.by_id):
            raise ValueError("P = %d identities per batch, only %d in the set" % (P, len(self.by_id)))
        self.P, self.K, self.rnd = P, K, rnd
        self.new_epoch()

    def new_epoch(self):
        self.avail = list(self.by_id)
        self.queue = {}

    def draw(self):
        if len(self.avail) < self.P:
            self.new_epoch()
        chosen = self.rnd.sample(self.avail, self.P)
        out = []
        for c in chosen:
            if c not in self.queue:
                imgs = self.by_id[c]
                q = list(imgs) if len(imgs) >= self.K else [self.rnd.choice(imgs) for _ in range(self.K)]
                self.rnd.shuffle(q)
                self.queue[c] = q
            out += self.queue[c][:self.K]
            self.queue[c] = self.queue[c][self.K:]
            if len(self.queue[c]) < self.K:
                self.avail.remove(c)
        return out


# ------------------------------------------------------------------ augmentation

def open_rgb(src):
    return Image.open(io.BytesIO(src) if isinstance(src, bytes) else src).convert("RGB")


def augment(img, S, pad, flip_p, aa_p, erase_p, rnd, nrng):
    if rnd.random() < aa_p:
        img = autoaugment_pil.auto_augment(img, rnd)
    img = img.resize((S, S), Image.BICUBIC)
    if pad:
        img = ImageOps.expand(img, border=pad, fill=0)
        i, j = rnd.randint(0, 2 * pad), rnd.randint(0, 2 * pad)
        img = img.crop((j, i, j + S, i + S))
    if rnd.random() < flip_p:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    x = ((np.asarray(img, np.float32) - 127.5) / 127.5).transpose(2, 0, 1).copy()
    if rnd.random() < erase_p:   # timm RandomErasing(mode='pixel', max_count=1)
        for _ in range(10):
            area = S * S * rnd.uniform(0.02, 1 / 3)
            ratio = math.exp(rnd.uniform(math.log(0.3), math.log(1 / 0.3)))
            h, w = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if w < S and h < S:
                top, left = rnd.randint(0, S - h), rnd.randint(0, S - w)
                x[:, top:top + h, left:left + w] = nrng.standard_normal((3, h, w), dtype=np.float32)
                break
    return x


class Batches(torch.utils.data.IterableDataset):
    """Heterogeneous batches: every task's rows, in task order, augmented."""

    def __init__(self, sets, counts, K, aug, steps, seed):
        super().__init__()
        self.sets, self.counts, self.K, self.aug, self.steps, self.seed = sets, counts, K, aug, steps, seed

    def __iter__(self):
        rnd, nrng = random.Random(self.seed), np.random.default_rng(self.seed)
        samplers = {}
        for t, items in self.sets.items():
            labels = [lab for _, lab in items]
            samplers[t] = (RandomSampler(len(items), self.counts[t], rnd) if t == "face"
                           else PKSampler(labels, self.counts[t] // self.K, self.K, rnd))
        for _ in range(self.steps):
            xs, ys = [], []
            for t in TASKS:
                if t not in self.sets:
                    continue
                for i in samplers[t].draw():
                    src, lab = self.sets[t][i]
                    xs.append(augment(open_rgb(src), *self.aug, rnd, nrng))
                    ys.append(lab)
            yield torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.long)


# ------------------------------------------------------------------ optimiser

def lr_at(step, base, total, warmup_frac):
    W = int(total * warmup_frac)
    if step < W:
        return base * step / W
    T = max(1, total - W - 1)
    return 0.02 * base + (base - 0.02 * base) * (1 + math.cos(math.pi * min(step - W, T) / T)) / 2


@torch.no_grad()
def sgd_step(params, bufs, lr, momentum=0.9, wd=1e-4, clip=5.0):
    for p, buf in zip(params, bufs):
        g = p.grad
        norm = float(g.double().norm())
        g = g * (clip / max(norm, clip))                 # paddle ClipGradByNorm, per tensor
        d = g + wd * p
        buf.mul_(momentum).add_(d)
        p.sub_(lr * buf)


# ------------------------------------------------------------------ the two runs

def train_torch(r, data, init, out, steps, log):
    torch.manual_seed(get(r, "run.seed", 0, int))
    S = get(r, "model.img_size", 384, int)
    patch = get(r, "model.patch_size", 16, int)
    dim, depth, heads = PRESETS[get(r, "model.preset", "large")]
    dim = get(r, "model.dim", dim, int)
    depth = get(r, "model.depth", depth, int)
    heads = get(r, "model.num_heads", heads, int)
    model = vit_torch.AllInOne(S, patch, dim, depth, heads, 4 * dim, TASKS,
                               drop_path=get(r, "model.drop_path", 0.2, float))
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in safetensors_io.read(init)[0].items()}, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    for bn in model.heads.values():
        bn.momentum = 0.1

    K = get(r, "data.instances", 4, int)
    scale = get(r, "data.batch_scale", 1.0, float)
    sets, counts, cls = {}, {}, {}
    for t in TASKS:
        want = get(r, "data.batch_" + t, 0, int) * scale
        if not get(r, "data." + t, "") or want < 1:
            continue
        sets[t], n_cls = contiguous(load_task(t, data))
        c = int(want + 0.5)
        counts[t] = max(2, c if t == "face" else max(K, c - c % K))
        cls[t] = torch.nn.Parameter(torch.randn(n_cls, dim) * 0.001)
    aug = (S, get(r, "augment.pad", 10, int), get(r, "augment.flip", 0.5, float),
           get(r, "augment.autoaugment", 0.5, float),
           get(r, "augment.random_erasing", 0.5, float))
    loader = torch.utils.data.DataLoader(Batches(sets, counts, K, aug, steps, get(r, "run.seed", 0, int)),
                                         batch_size=None, num_workers=1, prefetch_factor=4)
    params = list(model.parameters()) + [cls[t] for t in TASKS if t in cls]
    bufs = [torch.zeros_like(p) for p in params]
    base_lr, warm = get(r, "optim.lr", 0.2, float), get(r, "optim.warmup", 0.1, float)
    model.train()
    t0 = time.time()
    for step, (x, y) in enumerate(loader):
        feat = model.backbone(x)
        total, lo, parts = 0.0, 0, {}
        for t in TASKS:
            if t not in sets:
                continue
            n = counts[t]
            f, yy = feat[lo:lo + n], y[lo:lo + n]
            s, m = COSFACE[t]
            loss = losses_torch.cosface(model.heads[t](f), cls[t], yy, s, m)
            if t != "face":
                loss = loss + losses_torch.triplet(f, yy)
            parts[t] = float(loss)
            total = total + loss
            lo += n
        for p in params:
            p.grad = None
        total.backward()
        lr = lr_at(step, base_lr, steps, warm)
        sgd_step(params, bufs, lr)
        if step % 50 == 0 or step == steps - 1:
            el = time.time() - t0
            log("torch step %4d/%d  loss %.3f  %s  lr %.4f  %.1f img/s" % (
                step + 1, steps, float(total), " ".join("%s %.3f" % kv for kv in parts.items()), lr,
                (step + 1) * x.shape[0] / max(el, 1e-9)))
    wall = time.time() - t0
    model.eval()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.safetensors")
    safetensors_io.write(path, vit_torch.state_dict_numpy(model))
    return model, path, wall


def sop_recall_here(model, data, S):
    """Product Recall@1 of PyTorch's own embeddings, scored with numpy."""
    base = os.path.join(data, "Stanford_Online_Products")
    paths, labels = [], []
    for line in open(os.path.join(base, "test.txt")):
        if line.strip():
            p, lab = line.strip().rsplit(",", 1)
            paths.append(os.path.join(base, p))
            labels.append(int(lab))
    with torch.no_grad():
        x = torch.from_numpy(np.stack([vit_torch.pil_preprocess(p, S) for p in paths]))
        f = torch.cat([model(x[i:i + 64], "product") for i in range(0, len(x), 64)]).numpy()
    return metrics_ref.sop_recall(f.astype(np.float32), np.array(labels))["recall@1"]


def ufo_eval(ufo, model, data, sets, heads, out_json):
    cmd = [ufo, "eval", "--model", model, "--data", data, "--datasets", sets, "--quiet", "--json", out_json]
    for h in heads:
        cmd += ["--head", h]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit("ufo eval failed: " + res.stderr.strip())
    return [ln for ln in res.stdout.splitlines() if ln.startswith("|")], json.load(open(out_json))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ufo", default="build/ufo")
    ap.add_argument("--data", default="runs/demo/data")
    ap.add_argument("--config", default="recipes/demo.ini")
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("--steps", type=int, default=0, help="override the recipe's steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ufo", action="store_true", help="train only the PyTorch side")
    ap.add_argument("override", nargs="*", help="recipe overrides section.key=value")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    r = read_recipe(a.config, a.override)
    steps = a.steps or get(r, "optim.steps", 100000, int)
    S = get(r, "model.img_size", 384, int)
    dim, depth, heads = PRESETS[get(r, "model.preset", "large")]
    init = os.path.join(a.out, "init.safetensors")
    subprocess.run([a.ufo, "init", "--preset", get(r, "model.preset", "large"),
                    "--dim", str(get(r, "model.dim", dim, int)), "--depth", str(get(r, "model.depth", depth, int)),
                    "--num-heads", str(get(r, "model.num_heads", heads, int)), "--img-size", str(S),
                    "--patch", str(get(r, "model.patch_size", 16, int)), "--seed", str(get(r, "run.seed", 0, int)),
                    "--out", init], check=True, capture_output=True)
    sets = get(r, "run.eval_datasets", "all")
    heads_opt = [h.strip() for h in get(r, "run.eval_heads", "").split(",") if h.strip()]

    result = {"steps": steps, "recipe": a.config}
    if not a.skip_ufo:
        uout = os.path.join(a.out, "ufo")
        subprocess.run(["rm", "-rf", uout], check=True)
        t0 = time.time()
        res = subprocess.run([a.ufo, "train", "--config", a.config, "--out", uout, "--quiet",
                              "data.root=" + a.data, "model.init=" + init, "optim.steps=%d" % steps,
                              "run.eval_every=0"] + a.override, capture_output=True, text=True)
        uwall = time.time() - t0
        if res.returncode:
            sys.exit("ufo train failed: " + res.stderr.strip()[-2000:])
        table, js = ufo_eval(a.ufo, os.path.join(uout, "model.safetensors"), a.data, sets, heads_opt,
                             os.path.join(a.out, "ufo_eval.json"))
        result["ufo"] = {"train_wall_s": uwall, "eval": js, "table": table}
        print("ufo: trained %d steps in %.1f s" % (steps, uwall), flush=True)

    model, tpath, twall = train_torch(r, a.data, init, os.path.join(a.out, "torch"), steps,
                                      lambda s: print(s, flush=True))
    table, js = ufo_eval(a.ufo, tpath, a.data, sets, heads_opt, os.path.join(a.out, "torch_eval.json"))
    own = sop_recall_here(model, a.data, S) if "SOP" in js else None
    result["torch"] = {"train_wall_s": twall, "eval": js, "table": table, "sop_recall1_numpy": own}
    print("torch: trained %d steps in %.1f s" % (steps, twall))
    for side in ("ufo", "torch"):
        if side in result:
            print("\n== %s (%d steps, %.1f s) ==" % (side, steps, result[side]["train_wall_s"]))
            print("\n".join(result[side]["table"]))
    if own is not None:
        print("\nproduct Recall@1 of the PyTorch model, embedded by PyTorch and scored by numpy: %.2f" % own)
    if "ufo" in result and "SOP" in js:
        u, t = result["ufo"]["eval"]["SOP"]["recall@1"], js["SOP"]["recall@1"]
        print("product Recall@1 on unseen classes: ufo %.2f, PyTorch %.2f" % (u, t))
        result["sop_recall1"] = {"ufo": u, "torch": t}
    tmp = os.path.join(a.out, "compare.json.tmp")
    json.dump(result, open(tmp, "w"), indent=1)
    os.replace(tmp, os.path.join(a.out, "compare.json"))


if __name__ == "__main__":
    main()
