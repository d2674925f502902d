#!/usr/bin/env bash
# Installs the optional Python packages used to regenerate real-Paddle fixtures
# (tools/vit_paddle.py, tools/make_paddle_fixtures.py): paddlepaddle (CPU) into
# the first `python3` on PATH (or $UFO_PADDLE_PYTHON). Not /usr/bin/python3:
# the oracle tests run there and must never depend on Paddle.
# Idempotent (skips when `import paddle` already works) and never fatal: when
# PyPI is unreachable it prints a note and the Paddle parts of the tests skip.
set -u
PY="${UFO_PADDLE_PYTHON:-$(command -v python3 || true)}"
if [ -z "$PY" ]; then
  echo "install-py-deps: no python3 on PATH; Paddle fixtures will be skipped"
  exit 0
fi
if [ "$(readlink -f "$PY")" = "$(readlink -f /usr/bin/python3)" ] && [ -z "${UFO_PADDLE_PYTHON:-}" ]; then
  echo "install-py-deps: python3 on PATH is the system interpreter; not installing paddle there (set UFO_PADDLE_PYTHON to override)"
  exit 0
fi
if "$PY" -c "import paddle, numpy" >/dev/null 2>&1; then
  exit 0
fi
echo "install-py-deps: installing paddlepaddle into $PY"
if ! "$PY" -m pip install --quiet --disable-pip-version-check paddlepaddle numpy; then
  echo "install-py-deps: note: could not install paddlepaddle (PyPI unreachable?); Paddle fixture checks will be skipped"
fi
exit 0
