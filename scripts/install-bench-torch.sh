#!/usr/bin/env bash
# The newest PyTorch from PyPI, for `make bench` only (issue: CPU speed, "ratios
# against the newest PyTorch CPU build the machine can install alongside
# Debian's"). Debian's python3-torch (1.13) stays what the tests use.
#
# PyPI's Linux wheel is the CUDA build; on a CPU-only machine it runs on the CPU
# once the CUDA libraries it links are present, so they are installed too (as
# wheels, --no-deps: no triton, no toolkit). Everything goes into one venv:
#   ${UFO_TORCH_VENV:-$HOME/.cache/ufo/torch-latest}   (~4 GB)
# and bench/torch-latest runs its interpreter with the right LD_LIBRARY_PATH.
# Idempotent; never fatal: offline, the bench compares with Debian's torch only.
set -u
VENV="${UFO_TORCH_VENV:-$HOME/.cache/ufo/torch-latest}"
PY="$(command -v python3 || true)"
if [ -x "$VENV/bin/python" ] && bash "$(dirname "$0")/../bench/torch-latest" -c "import torch" >/dev/null 2>&1; then
  exit 0
fi
if [ -z "$PY" ]; then
  echo "install-bench-torch: no python3 on PATH; the bench compares with Debian's torch only"
  exit 0
fi
echo "install-bench-torch: installing the newest torch from PyPI into $VENV (about 4 GB, once)"
fail() { echo "install-bench-torch: note: $1; the bench compares with Debian's torch only"; exit 0; }
"$PY" -m venv "$VENV" || fail "could not create $VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --no-deps torch || fail "pip install torch failed (PyPI unreachable?)"
"${PIP[@]}" numpy filelock typing-extensions sympy networkx jinja2 fsspec || fail "torch's Python dependencies"
# The CUDA libraries the wheel links at import, at the versions it names.
want=$("$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
req = m.requires("torch") or []
print(" ".join(r.split(";")[0].replace(" ", "") for r in req if r.startswith(("nvidia-", "cuda-toolkit"))))
EOF
)
# cuda-toolkit[cufile] is a meta package; nvidia-cufile (the binary wheel) is what holds libcufile.
want="$(echo "$want" | sed -E 's/cuda-toolkit[^ ]*//g') nvidia-cufile"
# shellcheck disable=SC2086
"${PIP[@]}" --no-deps --only-binary=:all: $want || fail "the CUDA libraries torch links ($want)"
bash "$(dirname "$0")/../bench/torch-latest" -c "import torch; print('install-bench-torch: torch', torch.__version__)" ||
  fail "torch does not import"
exit 0
