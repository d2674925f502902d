"""Forward parity of ufo's ViT against an independent PyTorch implementation
(tools/vit_torch.py) on real image files, for several configurations, every
task head, the backbone output, fp32 and bf16, both kernel paths, and a
position embedding resampled to another input size."""
import os
import tempfile

import numpy as np
import torch
from PIL import Image

import safetensors_io
import vit_torch
from oracle_util import Checks, cosine_min, rel_err, ufo

torch.set_num_threads(2)
C = Checks("vit_torch")

CONFIGS = [
    # name, img, patch, dim, depth, heads, mlp, tasks, file dtype
    ("small-2head", 32, 8, 64, 2, 2, 256, ("face", "vehicle"), "F32"),
    ("deeper-4head", 48, 16, 128, 3, 2, 384, vit_torch.TASKS, "F32"),
    ("tiny-bf16file", 64, 16, 192, 2, 3, 768, ("person", "product"), "BF16"),
]


def make_images(d, n=5):
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        w, h = int(rng.integers(20, 140)), int(rng.integers(20, 140))
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), (xx + yy) % 256], -1)
        a = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
        p = os.path.join(d, f"img{i}.{'jpg' if i % 2 == 0 else 'png'}")
        Image.fromarray(a).save(p, quality=90) if p.endswith("jpg") else Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def torch_embed(model, paths, size, task):
    x = torch.from_numpy(np.stack([vit_torch.pil_preprocess(p, size) for p in paths])).double()
    with torch.no_grad():
        return model.double()(x, task).numpy()


def run_config(d, paths, cfg, seed):
    name, img, patch, dim, depth, heads, mlp, tasks, dt = cfg
    model = vit_torch.randomize(vit_torch.AllInOne(img, patch, dim, depth, heads, mlp, tasks), seed)
    sd = vit_torch.state_dict_numpy(model)
    mpath = os.path.join(d, f"{name}.safetensors")
    # A timm-style file with no ufo metadata, except num_heads where dim/64 would be wrong.
    meta = {"num_heads": heads} if dim // 64 != heads else None
    safetensors_io.write(mpath, sd, meta, bf16=set(sd) if dt == "BF16" else ())
    if dt == "BF16":  # the oracle must see the same rounded weights
        rounded, _ = safetensors_io.read(mpath)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in rounded.items()}, strict=False)
    out = os.path.join(d, "f.npy")
    for task in ("backbone",) + tasks:
        ref = torch_embed(model, paths, img, task)
        for backend in ("fast", "reference"):
            extra = ["--reference"] if backend == "reference" else []
            ufo("embed", "--model", mpath, "--task", task, "--out", out, "--quiet", *extra, *paths)
            got = np.load(out)
            e = rel_err(got, ref)
            C.check(got.shape == ref.shape and e <= 1e-4,
                    f"{name} {task} {backend} fp32: shape {got.shape}, max rel err {e:.2e} <= 1e-4")
        ufo("embed", "--model", mpath, "--task", task, "--out", out, "--quiet", "--precision", "bf16", *paths)
        cos = cosine_min(np.load(out), ref)
        C.check(cos >= 0.999, f"{name} {task} bf16: min cosine {cos:.6f} >= 0.999")
    return model, mpath


def check_resample(d, paths, model, mpath, img, patch):
    new = img + 2 * patch
    m2 = vit_torch.AllInOne(new, patch, model.pos_embed.shape[-1], len(model.blocks),
                            model.blocks[0].attn.heads, model.blocks[0].mlp.fc1.out_features,
                            tuple(model.heads.keys()))
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["pos_embed"] = vit_torch.resample_pos_embed(model.pos_embed.detach().double(), new // patch).float()
    m2.load_state_dict(sd)
    m2.eval()
    ref = torch_embed(m2, paths, new, "backbone")
    out = os.path.join(d, "r.npy")
    ufo("embed", "--model", mpath, "--img-size", new, "--out", out, "--quiet", *paths)
    e = rel_err(np.load(out), ref)
    C.check(e <= 1e-4, f"pos_embed resampled {img}->{new}: max rel err {e:.2e} <= 1e-4")


def check_flip(d, paths, model, mpath, img, tasks):
    """--flip: (f(x) + f(x mirrored)) / 2, the mirror taken on the preprocessed tensor
    (torch.flip on the batch, as fast-reid's TEST.FLIP), on both embedding paths."""
    x = torch.from_numpy(np.stack([vit_torch.pil_preprocess(p, img) for p in paths])).double()
    out = os.path.join(d, "flip.npy")
    for task in ("backbone", tasks[0]):
        with torch.no_grad():
            ref = ((model.double()(x, task) + model.double()(torch.flip(x, dims=[3]), task)) / 2).numpy()
            plain = model.double()(x, task).numpy()
        for extra in ([], ["--workers", "2", "--batch", "2"]):
            ufo("embed", "--model", mpath, "--task", task, "--out", out, "--quiet", "--flip", *extra, *paths)
            got = np.load(out)
            e, e_plain = rel_err(got, ref), rel_err(got, plain)
            C.check(e <= 1e-4 and e_plain > 1e-3,
                    f"--flip {task} {' '.join(extra) or 'batch'}: max rel err {e:.2e} <= 1e-4 "
                    f"(vs no flip {e_plain:.2e})")


def check_bad_inputs(d, paths, mpath):
    out = os.path.join(d, "bad.npy")
    raw = open(mpath, "rb").read()
    for cut, label in ((len(raw) // 2, "truncated data"), (20, "truncated header"), (4, "4 bytes")):
        bad = os.path.join(d, "cut.safetensors")
        open(bad, "wb").write(raw[:cut])
        r = ufo("embed", "--model", bad, "--out", out, "--quiet", paths[0], check=False)
        lines = r.stderr.strip().splitlines()
        C.check(r.returncode != 0 and len(lines) == 1 and "cut.safetensors" in lines[0] and not os.path.exists(out),
                f"model {label}: exit {r.returncode}, one line naming the file: {lines[-1] if lines else ''}")
    broken = os.path.join(d, "broken.jpg")
    open(broken, "wb").write(open(paths[0], "rb").read()[:200])
    r = ufo("embed", "--model", mpath, "--out", out, "--quiet", paths[1], broken, check=False)
    C.check(r.returncode != 0 and "broken.jpg" in r.stderr and not os.path.exists(out)
            and not any(f.startswith("bad.npy") for f in os.listdir(d)),
            f"corrupt image named, nothing written: {r.stderr.strip()}")
    r = ufo("embed", "--model", mpath, "--out", out, "--quiet", os.path.join(d, "missing.png"), check=False)
    C.check(r.returncode != 0 and "missing.png" in r.stderr and not os.path.exists(out),
            f"missing image named: {r.stderr.strip()}")
    r = ufo("embed", "--model", mpath, "--task", "product", "--out", out, "--quiet", paths[0], check=False)
    C.check(r.returncode != 0 and "product" in r.stderr, f"absent head refused: {r.stderr.strip()}")


def check_info(mpath, cfg, model):
    r = ufo("info", mpath)
    n_backbone = sum(v.numel() for k, v in model.state_dict().items() if not k.startswith("heads."))
    C.check(f"{n_backbone} backbone" in r.stdout and f"depth {cfg[4]}" in r.stdout,
            f"ufo info reports {n_backbone} backbone parameters and depth {cfg[4]}")


def main():
    with tempfile.TemporaryDirectory() as d:
        paths = make_images(d)
        for i, cfg in enumerate(CONFIGS):
            model, mpath = run_config(d, paths, cfg, seed=100 + i)
            if i == 0:
                check_resample(d, paths, model, mpath, cfg[1], cfg[2])
                check_flip(d, paths, model, mpath, cfg[1], cfg[7])
                check_bad_inputs(d, paths, mpath)
                check_info(mpath, cfg, model)
            # convert round trip: ufo's own safetensors (with metadata) embeds identically
            conv = os.path.join(d, "conv.safetensors")
            ufo("convert", mpath, conv)
            a, b = os.path.join(d, "a.npy"), os.path.join(d, "b.npy")
            ufo("embed", "--model", mpath, "--out", a, "--quiet", *paths)
            ufo("embed", "--model", conv, "--out", b, "--quiet", *paths)
            C.check(np.array_equal(np.load(a), np.load(b)), f"{cfg[0]}: convert round trip embeds identically")
    C.finish()


if __name__ == "__main__":
    main()
