"""`--device cuda` from the CLI. Without a usable GPU (or in a CPU-only build):
embed, eval and bench fail with exit 1 and ONE stderr line saying why, write
nothing, and `--device cpu` still works. With a GPU: `ufo embed --device cuda`
matches an independent PyTorch float64 forward (tools/vit_torch.py) on real
image files: fp32 max rel err <= 1e-4, bf16 min cosine >= 0.999."""
import os
import tempfile

import numpy as np
import torch

import safetensors_io
import vit_torch
from oracle_util import Checks, cosine_min, rel_err, ufo

torch.set_num_threads(2)
C = Checks("cuda_cli")


def make_images(d, n=4):
    from PIL import Image
    rng = np.random.default_rng(11)
    paths = []
    for i in range(n):
        a = rng.integers(0, 256, (int(rng.integers(30, 90)), int(rng.integers(30, 90)), 3), dtype=np.uint8)
        p = os.path.join(d, f"img{i}.png")
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


def train_log(path):
    lines = open(path).read().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, map(float, l.split(",")))) for l in lines[1:]]


def train_on_gpu(d):
    """`ufo train --device cuda` end to end on tiny synthetic data (four tasks,
    BNNeck, CosFace, triplet, drop path): the per-step losses of the CPU run
    (fp32) within rel 1e-3 over 3 steps, a model file `ufo embed` reads, and
    bf16 training runs too."""
    import subprocess
    import sys
    # UFO_DEMO_DATA: demo data made elsewhere (a GPU machine without Debian's
    # dataset-fashion-mnist, which make_demo_data.py draws its products from).
    root = os.environ.get("UFO_DEMO_DATA") or os.path.join(d, "data")
    # One job: 0.1 of the demo data takes a second, and no worker pool can fail on a sandboxed machine.
    r = None if os.environ.get("UFO_DEMO_DATA") else subprocess.run([sys.executable, os.path.join(os.path.dirname(vit_torch.__file__), "make_demo_data.py"), root,
                        "--scale", "0.1", "--jobs", "1"], capture_output=True, text=True)
    if r and r.returncode:
        raise SystemExit(f"make_demo_data.py failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    recipe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "demo.ini")
    tiny = ["data.root=" + root, "model.dim=32", "model.depth=2", "model.num_heads=2", "model.img_size=32",
            "model.drop_path=0.1", "data.batch_face=6", "data.batch_person=8", "data.batch_vehicle=8",
            "data.batch_product=8", "data.workers=1", "optim.steps=3", "run.log_every=1", "run.checkpoint_every=0",
            "run.eval_datasets=", "run.precision=fp32"]
    logs = {}
    for dev in ("cpu", "cuda"):
        o = os.path.join(d, "train_" + dev)
        ufo("train", "--config", recipe, "--out", o, "--quiet", "--device", dev, *tiny)
        logs[dev] = train_log(os.path.join(o, "log.csv"))
    worst = max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(logs["cuda"], logs["cpu"]))
    C.check(len(logs["cuda"]) == 3 and worst <= 1e-3,
            f"train --device cuda vs cpu, 3 steps fp32: worst loss rel err {worst:.2e} <= 1e-3")
    feats = os.path.join(d, "train_feats.npy")
    img = os.path.join(d, "img0.png")
    ufo("embed", "--model", os.path.join(d, "train_cuda", "model.safetensors"), "--out", feats, "--quiet", img)
    C.check(np.isfinite(np.load(feats)).all(), "the GPU-trained model embeds")
    o = os.path.join(d, "train_bf16")
    ufo("train", "--config", recipe, "--out", o, "--quiet", "--device", "cuda", *tiny[:-1], "run.precision=bf16")
    l16 = train_log(os.path.join(o, "log.csv"))
    e = abs(l16[0]["loss"] - logs["cpu"][0]["loss"]) / logs["cpu"][0]["loss"]
    C.check(e <= 2e-2, f"train --device cuda bf16: first loss within 2e-2 of fp32 ({e:.2e})")


def main():
    with tempfile.TemporaryDirectory() as d:
        paths = make_images(d)
        model = vit_torch.randomize(vit_torch.AllInOne(64, 16, 128, 2, 2, 512, ("face", "vehicle")), 5)
        mpath = os.path.join(d, "m.safetensors")
        safetensors_io.write(mpath, vit_torch.state_dict_numpy(model), {"num_heads": 2})
        out = os.path.join(d, "f.npy")
        for cmd in ("embed", "eval", "bench", "train"):
            r = ufo(cmd, "--help")
            C.check("--device" in r.stdout, f"ufo {cmd} --help documents --device")
        r = ufo("embed", "--model", mpath, "--out", out, "--device", "gpu", paths[0], check=False)
        C.check(r.returncode == 2 and "--device must be cpu or cuda" in r.stderr, f"bad --device: {r.stderr.strip()}")

        probe = ufo("embed", "--model", mpath, "--out", out, "--quiet", "--device", "cuda", *paths, check=False)
        if probe.returncode != 0:
            lines = probe.stderr.strip().splitlines()
            why = lines[0] if lines else ""
            C.check(probe.returncode == 1 and len(lines) == 1 and
                    ("no CUDA device visible (cudaGetDeviceCount: " in why or "built without CUDA" in why),
                    f"embed --device cuda without a GPU: exit {probe.returncode}, one line: {why}")
            C.check(not os.path.exists(out), "nothing written")
            r = ufo("eval", "--model", mpath, "--data", d, "--datasets", "LFW", "--device", "cuda", check=False)
            C.check(r.returncode == 1 and r.stderr.strip() == why, f"eval --device cuda: {r.stderr.strip()}")
            r = ufo("bench", "--preset", "tiny", "--img-size", "32", "--device", "cuda", check=False)
            C.check(r.returncode == 1 and r.stderr.strip() == why, f"bench --device cuda: {r.stderr.strip()}")
            r = ufo("bench", "--preset", "tiny", "--img-size", "32", "--device", "cuda", "--train", check=False)
            C.check(r.returncode == 1 and r.stderr.strip() == why, f"bench --train --device cuda: {r.stderr.strip()}")
            # train checks the device before reading anything (x.ini does not exist)
            r = ufo("train", "--device", "cuda", "--config", "x.ini", "--out", os.path.join(d, "run"), check=False)
            C.check(r.returncode == 1 and r.stderr.strip() == why and not os.path.exists(os.path.join(d, "run")),
                    f"train --device cuda without a GPU: the same one line: {r.stderr.strip()}")
            ufo("embed", "--model", mpath, "--out", out, "--quiet", "--device", "cpu", "--batch", "3", *paths)
            C.check(np.load(out).shape == (len(paths), 128), "--device cpu still embeds")
        else:
            x = torch.from_numpy(np.stack([vit_torch.pil_preprocess(p, 64) for p in paths])).double()
            for task in ("backbone", "vehicle", "face"):
                with torch.no_grad():
                    ref = model.double()(x, task).numpy()
                ufo("embed", "--model", mpath, "--task", task, "--out", out, "--quiet", "--device", "cuda", *paths)
                e = rel_err(np.load(out), ref)
                C.check(e <= 1e-4, f"{task} cuda fp32 vs torch float64: max rel err {e:.2e} <= 1e-4")
                ufo("embed", "--model", mpath, "--task", task, "--out", out, "--quiet", "--device", "cuda",
                    "--precision", "bf16", "--batch", "3", *paths)
                cs = cosine_min(np.load(out), ref)
                C.check(cs >= 0.999, f"{task} cuda bf16 vs torch float64: min cosine {cs:.6f} >= 0.999")
            train_on_gpu(d)
        # The pipelined path (decode threads beside the model; --device cuda's default) gives
        # the same rows as batch-by-batch decoding on the CPU, and names a broken image.
        a, b = os.path.join(d, "a.npy"), os.path.join(d, "b.npy")
        ufo("embed", "--model", mpath, "--out", a, "--quiet", "--batch", "3", "--task", "face", *paths)
        ufo("embed", "--model", mpath, "--out", b, "--quiet", "--batch", "3", "--task", "face", "--workers", "2", *paths)
        C.check(np.array_equal(np.load(a), np.load(b)), "--workers 2 (pipelined) == batch by batch, bit for bit")
        broken = os.path.join(d, "broken.png")
        open(broken, "wb").write(open(paths[0], "rb").read()[:100])
        r = ufo("embed", "--model", mpath, "--out", out + "2", "--quiet", "--workers", "3", paths[1], broken, *paths,
                check=False)
        C.check(r.returncode == 1 and "broken.png" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
                f"pipelined: a broken image is named: {r.stderr.strip()}")
    C.finish()


if __name__ == "__main__":
    main()
