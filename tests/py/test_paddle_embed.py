"""The released checkpoint's format, end to end: paddle.save state dicts load
in `ufo embed` / `ufo convert` with the original names (backbone.*, heads.taskN
.bottleneck.0.*, Paddle's [in, out] linear weights).

Peers: (1) always, the committed fixture tests/data/paddle/tiny.pdmodel read by
Python's own pickle and run through the independent PyTorch model
(tools/vit_torch.py); (2) when an interpreter with paddlepaddle is available,
real Paddle: tools/vit_paddle.py writes two random models with paddle.save and
runs Paddle's own forward on Pillow-preprocessed real images."""
import json
import os
import pickle
import subprocess
import tempfile

import numpy as np
import torch
from PIL import Image

import vit_torch
from oracle_util import Checks, paddle_python, rel_err, ufo

C = Checks("paddle_embed")
TASKS = {"task1": "face", "task2": "person", "task3": "vehicle", "task4": "product"}


class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                              ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                              ("builtins", "bytes"), ("__builtin__", "bytes")}:
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def make_images(d, n=4):
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        a = rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), dtype=np.uint8)
        p = os.path.join(d, f"p{i}.jpg" if i % 2 else f"p{i}.png")
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def torch_from_paddle(sd, cfg):
    """Maps a Paddle state dict (numpy) onto tools/vit_torch.py's model, transposing [in, out] linears."""
    m = vit_torch.AllInOne(cfg["img"], cfg["patch"], cfg["dim"], cfg["depth"], cfg["heads"],
                           int(cfg["dim"] * cfg.get("mlp_ratio", 4)))
    new = {}
    for k, v in sd.items():
        if k.startswith("backbone."):
            name = k[len("backbone."):]
            if v.ndim == 2 and ("qkv" in name or "proj" in name or "fc1" in name or "fc2" in name):
                v = v.T
            new[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        elif k.startswith("heads.task"):
            task = TASKS[k.split(".")[1]]
            leaf = {"weight": "weight", "bias": "bias", "_mean": "running_mean", "_variance": "running_var"}[k.split(".")[-1]]
            new[f"heads.{task}.{leaf}"] = torch.from_numpy(np.asarray(v, dtype=np.float32))
    missing, unexpected = m.load_state_dict(new, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return m.eval().double()


def check_committed_fixture(d, paths):
    path = "tests/data/paddle/tiny.pdmodel"
    cfg = json.load(open(path + ".json"))
    with open(path, "rb") as f:
        sd = {k: v for k, v in Restricted(f).load().items() if hasattr(v, "shape")}
    model = torch_from_paddle(sd, cfg)
    x = torch.from_numpy(np.stack([vit_torch.pil_preprocess(p, cfg["img"]) for p in paths])).double()
    out = os.path.join(d, "t.npy")
    for task in ("backbone", "face", "vehicle", "product"):
        with torch.no_grad():
            ref = model(x, task).numpy()
        ufo("embed", "--model", path, "--num-heads", cfg["heads"], "--task", task, "--out", out, "--quiet", *paths)
        e = rel_err(np.load(out), ref)
        C.check(e <= 1e-4, f"committed tiny.pdmodel, {task}: ufo vs PyTorch max rel err {e:.2e} <= 1e-4")
    conv = os.path.join(d, "tiny.safetensors")
    ufo("convert", path, conv, "--num-heads", cfg["heads"])
    ufo("embed", "--model", conv, "--task", "vehicle", "--out", out, "--quiet", *paths)
    a = np.load(out)
    ufo("embed", "--model", path, "--num-heads", cfg["heads"], "--task", "vehicle", "--out", out, "--quiet", *paths)
    C.check(np.array_equal(a, np.load(out)), "ufo convert to safetensors embeds identically (no --num-heads needed)")


def check_real_paddle(d, paths, py):
    tool = os.path.join("tools", "vit_paddle.py")
    for dim, depth, heads, patch, img in ((64, 2, 2, 16, 32), (96, 3, 3, 8, 32)):
        mp = os.path.join(d, f"p{dim}.pdmodel")
        subprocess.run([py, tool, "save", "--dim", str(dim), "--depth", str(depth), "--heads", str(heads),
                        "--patch", str(patch), "--img", str(img), "--seed", str(dim), "--out", mp],
                       check=True, capture_output=True)
        x = np.stack([vit_torch.pil_preprocess(p, img) for p in paths]).astype(np.float32)
        xp = os.path.join(d, "x.npy")
        np.save(xp, x)
        for ptask, task in (("backbone", "backbone"), ("task1", "face"), ("task3", "vehicle"), ("task4", "product")):
            yp = os.path.join(d, "y.npy")
            subprocess.run([py, tool, "forward", "--model", mp, "--input", xp, "--task", ptask, "--out", yp],
                           check=True, capture_output=True)
            out = os.path.join(d, "u.npy")
            ufo("embed", "--model", mp, "--num-heads", heads, "--task", task, "--out", out, "--quiet", *paths)
            e = rel_err(np.load(out), np.load(yp))
            C.check(e <= 1e-4, f"paddle.save dim {dim} depth {depth}, {task}: ufo vs Paddle forward {e:.2e} <= 1e-4")


def main():
    with tempfile.TemporaryDirectory() as d:
        paths = make_images(d)
        check_committed_fixture(d, paths)
        py = paddle_python()
        if py:
            check_real_paddle(d, paths, py)
        else:
            print("  skip  real Paddle: no interpreter with paddlepaddle (scripts/install-py-deps.sh installs it)")
    C.finish()


if __name__ == "__main__":
    main()
