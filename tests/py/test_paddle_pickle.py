#!/usr/bin/python3
"""Cross-check of ufo's safe unpickler and paddle.save reader against Python's
own pickle module (a restricted Unpickler: only the globals ufo accepts) with
this interpreter's numpy as the peer:

 1. every committed real-Paddle fixture (tests/data/paddle/*): the tensors
    ufo's reader reports ($UFO_BUILD/test_paddle_dump FILE: name, dtype, shape,
    byte count, FNV-1a of the bytes) must equal what Python unpickles, in order;
 2. generic pickles (protocols 0, 2, 4, 5; numpy arrays incl. Fortran order and
    protocol 5's _frombuffer; py2 strings; insightface-style .bin tuples;
    OrderedDict; memo/mark opcodes): ufo's value tree (test_paddle_dump --repr)
    must equal Python's, value for value;
 3. hostile pickles (tools/make_paddle_fixtures.py) must each fail with a
    one-line error naming the problem;
 4. when a Python with paddlepaddle is available ($UFO_PADDLE_PYTHON, or the
    python3 on PATH if it is not /usr/bin/python3), fresh files from
    tools/vit_paddle.py save at two configurations (protocol 4 and 2) are
    checked as in 1, and against paddle.load's own view of them. Otherwise
    that part prints that it was skipped.
"""
import collections
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_paddle_fixtures as mpf  # noqa: E402
from oracle_util import paddle_python, Checks  # noqa: E402

BUILD = os.environ.get("UFO_BUILD", os.path.join(ROOT, "build"))
DUMP = os.path.join(BUILD, "test_paddle_dump")
C = Checks("paddle_pickle")

ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("builtins", "bytes"), ("__builtin__", "bytes"), ("builtins", "tuple"), ("__builtin__", "tuple"),
}


class Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        if module.startswith("numpy._core") and not hasattr(np, "_core"):
            module = "numpy.core" + module[len("numpy._core"):]
        return super().find_class(module, name)


def py_load(data):
    return Restricted(io.BytesIO(data), encoding="bytes").load()


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


DTYPES = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def arr_fields(a):
    b = np.ascontiguousarray(a).tobytes()
    return DTYPES[a.dtype.name], "[" + ",".join(str(d) for d in a.shape) + "]", str(len(b)), fnv1a64(b)


def expected_tensor_lines(data):
    """What the paddle reader must report, from Python's unpickling."""
    d = py_load(data)
    lines, skipped = [], 0
    special = {"StructuredToParameterName@@", "UnpackBigParamInfor@@"}
    for k, v in d.items():
        if not isinstance(k, (str, bytes)):
            skipped += 1
            continue
        name = k if isinstance(k, str) else k.decode("latin-1")
        if name in special:
            continue
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], (str, bytes)) and isinstance(v[1], np.ndarray):
            v = v[1]
        if not isinstance(v, np.ndarray):
            skipped += 1
            continue
        lines.append("\t".join(("tensor", name) + arr_fields(v)))
    proto = data[1] if len(data) > 1 and data[0] == 0x80 else 0
    lines.append(f"meta\tpaddle.skipped\t{skipped}")
    lines.append(f"meta\tpaddle.pickle_protocol\t{proto}")
    return lines


def canon(v):
    if v is None:
        return "N"
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, int):
        return "i%d" % v
    if isinstance(v, float):
        return "f%.17g" % v
    if isinstance(v, (bytes, bytearray)):
        return "b" + bytes(v).hex()
    if isinstance(v, str):
        return "s" + v.encode("utf-8", "surrogatepass").hex()
    if isinstance(v, tuple):
        return "(" + "".join(canon(x) + "," for x in v) + ")"
    if isinstance(v, list):
        return "[" + "".join(canon(x) + "," for x in v) + "]"
    if isinstance(v, dict):
        return "{" + "".join(canon(k) + ":" + canon(x) + "," for k, x in v.items()) + "}"
    if isinstance(v, np.ndarray):
        dt, shape, _, h = arr_fields(v)
        return "a" + dt + shape + h
    if isinstance(v, np.dtype):
        return "d" + DTYPES[v.name]
    raise TypeError(type(v))


def run_dump(*args):
    return subprocess.run([DUMP, *args], capture_output=True, text=True)


def check_paddle_file(path, what):
    with open(path, "rb") as f:
        data = f.read()
    want = expected_tensor_lines(data)
    r = run_dump(path)
    if not C.check(r.returncode == 0, f"{what}: ufo reads it" + (f" ({r.stderr.strip()})" if r.returncode else "")):
        return None
    got = r.stdout.splitlines()
    n = sum(1 for x in want if x.startswith("tensor"))
    C.check(got == want, f"{what}: {n} tensors: names, dtypes, shapes, bytes equal numpy's")
    if got != want:
        for a, b in zip(got, want):
            if a != b:
                print(f"    ufo:   {a}\n    numpy: {b}")
                break
        print(f"    ufo {len(got)} lines, numpy {len(want)}")
    return got


def part_fixtures():
    d = os.path.join(ROOT, "tests", "data", "paddle")
    for name in sorted(os.listdir(d)):
        if name.endswith((".pdmodel", ".pdparams")):
            check_paddle_file(os.path.join(d, name), f"fixture {name}")


def part_generic(tmp):
    files = dict(mpf.corpus_pickles())
    files.update(mpf.numpy_corpus())
    # a few more shapes of the same ideas, written by this Python
    od = collections.OrderedDict([("x", 1), ("y", [1.25, None, b"\x00\xff"])])
    files["od_p2.pkl"] = pickle.dumps(od, protocol=2)
    files["od_p0.pkl"] = pickle.dumps(od, protocol=0)
    files["bytes_p2.pkl"] = pickle.dumps([b"", b"\x00\x80\xff" * 50, "\u20ac\U0001f600"], protocol=2)
    files["ints.pkl"] = pickle.dumps([0, 1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31, 2 ** 63 - 1,
                                      -(2 ** 63)], protocol=2)
    files["ints_p0.pkl"] = pickle.dumps([0, -5, 2 ** 40, True, False], protocol=0)
    files["floats.pkl"] = pickle.dumps([0.0, -0.0, 1e300, -2.5e-300, 0.1, float("inf")], protocol=4)
    files["floats_p0.pkl"] = pickle.dumps([0.1, -2.5e-300, 1e16], protocol=0)
    shared = [1, 2]
    files["shared.pkl"] = pickle.dumps({"a": shared, "b": shared, "t": (shared, shared)}, protocol=4)
    a3 = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for proto in (2, 4, 5):
        files[f"fortran3d_p{proto}.pkl"] = pickle.dumps(
            {"f": np.asfortranarray(a3), "t": a3.transpose(2, 0, 1).copy(), "u8": np.arange(5, dtype=np.uint8),
             "i8": np.array([-1, 1], dtype=np.int8), "f8": np.array([[1.5]], dtype=np.float64),
             "s": np.array(1.0, dtype=np.float32)}, protocol=proto)
    for name, data in sorted(files.items()):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        want = canon(py_load(data))
        r = run_dump("--repr", p)
        ok = r.returncode == 0 and r.stdout.strip() == want
        C.check(ok, f"generic {name}: value tree equals Python's")
        if not ok:
            print(f"    ufo:    {r.stdout.strip()[:300]} {r.stderr.strip()}\n    python: {want[:300]}")


def part_hostile(tmp):
    for name, (data, want) in sorted(mpf.hostile_pickles().items()):
        p = os.path.join(tmp, name)
        with open(p, "wb") as f:
            f.write(data)
        r = run_dump(p)
        err = r.stderr.strip()
        ok = r.returncode == 1 and want in err and "\n" not in err and r.stdout == ""
        C.check(ok, f"hostile {name}: rejected: {err[:150]}")
        if not ok:
            print(f"    expected rc 1 and '{want}', got rc {r.returncode}")


PADDLE_VIEW = r"""
import sys, warnings, hashlib
warnings.filterwarnings("ignore")
import numpy as np, paddle
DT = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32", "int16": "I16",
      "int8": "I8", "uint8": "U8", "bool": "BOOL"}
def fnv(b):
    a = np.frombuffer(b, dtype=np.uint8)
    h = 0xCBF29CE484222325
    for c in a.tolist():
        h ^= c
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h
sd = paddle.load(sys.argv[1], return_numpy=True)
for k, v in sd.items():
    if isinstance(v, np.ndarray):
        b = np.ascontiguousarray(v).tobytes()
        print("\t".join(["tensor", k, DT[v.dtype.name], "[" + ",".join(map(str, v.shape)) + "]", str(len(b)), fnv(b)]))
"""


def part_real_paddle(tmp):
    py = paddle_python()
    if not py:
        print("  skip  real-Paddle fixtures: no python3 with paddlepaddle (set UFO_PADDLE_PYTHON or run "
              "scripts/install-py-deps.sh)")
        return
    vp = os.path.join(ROOT, "tools", "vit_paddle.py")
    configs = [("dim64_depth2", ["--dim", "64", "--depth", "2", "--heads", "2", "--patch", "16", "--img", "32"], []),
               ("dim96_depth3_p2", ["--dim", "96", "--depth", "3", "--heads", "3", "--patch", "8", "--img", "32"],
                ["--protocol", "2"])]
    for name, cfg, extra in configs:
        out = os.path.join(tmp, name + ".pdmodel")
        r = subprocess.run([py, vp, "save", *cfg, "--seed", "7", *extra, "--out", out], capture_output=True,
                           text=True, timeout=600)
        if not C.check(r.returncode == 0, f"paddle {name}: vit_paddle.py save" +
                       (f" ({r.stderr.strip()[-200:]})" if r.returncode else "")):
            continue
        got = check_paddle_file(out, f"paddle {name}")
        r = subprocess.run([py, "-c", PADDLE_VIEW, out], capture_output=True, text=True, timeout=600)
        if C.check(r.returncode == 0, f"paddle {name}: paddle.load" +
                   (f" ({r.stderr.strip()[-200:]})" if r.returncode else "")) and got:
            mine = [x for x in got if x.startswith("tensor")]
            C.check(mine == r.stdout.splitlines(), f"paddle {name}: ufo's tensors equal paddle.load's")


def main():
    if not os.path.exists(DUMP):
        print(f"{DUMP} not built")
        sys.exit(1)
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        part_fixtures()
        part_generic(tmp)
        part_hostile(tmp)
        part_real_paddle(tmp)
    C.finish()


if __name__ == "__main__":
    main()
