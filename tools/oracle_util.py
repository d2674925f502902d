"""Shared helpers of the oracle tests: run the ufo CLI, count checks, print the
closing 'N passed, N failed' line."""
import os
import shutil
import subprocess
import sys

UFO = os.environ.get("UFO_BIN", "build/ufo")


class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}")
        return ok

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)


def ufo(*args, check=True):
    r = subprocess.run([UFO, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"ufo {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def rel_err(a, ref):
    import numpy as np
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def cosine_min(a, b):
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(c.min())


def paddle_python():
    """An interpreter with paddlepaddle: $UFO_PADDLE_PYTHON, else the python3 on
    PATH unless it is Debian's (which never has paddle). None if there is none."""
    cands = [os.environ.get("UFO_PADDLE_PYTHON"), shutil.which("python3")]
    for c in cands:
        if not c or not os.path.exists(c):
            continue
        if os.path.realpath(c) == os.path.realpath("/usr/bin/python3") and not os.environ.get("UFO_PADDLE_PYTHON"):
            continue
        try:
            r = subprocess.run([c, "-c", "import paddle, numpy"], capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return c
    return None
