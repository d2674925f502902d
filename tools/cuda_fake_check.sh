#!/usr/bin/env bash
# Runs the CUDA training test (tests/cuda/test_cuda_train.c) and a short
# `ufo train --device cuda` on a machine WITHOUT a GPU, against
# tests/cuda/gpu_fake.c: a CPU stand-in for the CUDA backend's C interface
# that runs the reference kernels on "device" buffers and aborts when an op
# touches memory outside a live device allocation. It checks the code that
# drives the backend (model/vit_train_cuda.c, train/sgd_cuda.c: buffer
# sizes, host/device pointers, op order, SGD, checkpoints), not the CUDA
# kernels (tools/gpu_check.sh on a GPU does). About a minute on 2 cores.
# Usage: bash tools/cuda_fake_check.sh   (from anywhere; builds into build-fake)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${BUILD:-build-fake}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DUFO_CUDA=OFF -DUFO_MPI=OFF -DCMAKE_C_FLAGS="-DUFO_HAVE_CUDA=1" >/dev/null
cmake --build "$B" -j"${JOBS:-2}" --target ufo >/dev/null
LIBS="$B/libufo.a -ldnnl -ljpeg -lpng -lcjson -lm"
FLAGS="-O1 -std=gnu17 -fopenmp -DUFO_HAVE_CUDA=1 -Isrc -Itests -Iinclude"
# shellcheck disable=SC2086
cc $FLAGS tests/cuda/test_cuda_train.c tests/cuda/gpu_fake.c $LIBS -o "$B/test_cuda_train_fake"
# shellcheck disable=SC2086
cc $FLAGS -DUFO_VERSION='"fake-gpu"' src/cli/*.c tests/cuda/gpu_fake.c $LIBS -o "$B/ufo_fake"
"$B/test_cuda_train_fake"
echo "cuda_fake_check: test_cuda_train passed against the CPU stand-in"
