#!/usr/bin/env bash
# Builds the CUDA backend's own sources (src/kernels/cuda/*.cu) for the CUDA
# emulator (tests/cuda/emu): each .cu rewritten by tools/cuda_emu_rewrite.pl
# and compiled by g++ against the emulator's headers, with its runtime, into
# $1/libufo_cuda_emu.a. Link it in place of the real ufo_cuda (with -lstdc++).
# Extra compiler flags (sanitizers) come in EMU_CXXFLAGS.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: cuda_emu_build.sh OUTDIR}
mkdir -p "$OUT/emu"
CXX=${CXX:-g++}
FLAGS="-std=gnu++17 -O1 -g -ffp-contract=off -fno-fast-math -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Werror
       -I$ROOT/tests/cuda/emu -I$ROOT/src ${EMU_CXXFLAGS:-}"
objs=()
for cu in "$ROOT"/src/kernels/cuda/*.cu; do
    base=$(basename "$cu" .cu)
    perl "$ROOT/tools/cuda_emu_rewrite.pl" "$cu" >"$OUT/emu/$base.cc.tmp"
    mv "$OUT/emu/$base.cc.tmp" "$OUT/emu/$base.cc"
    objs+=("$OUT/emu/$base.o")
done
# shellcheck disable=SC2086
for cc in "$OUT"/emu/*.cc "$ROOT/tests/cuda/emu/emu_runtime.cc"; do
    base=$(basename "$cc" .cc)
    $CXX $FLAGS -c "$cc" -o "$OUT/emu/$base.o" &
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n; done
done
wait
objs+=("$OUT/emu/emu_runtime.o")
rm -f "$OUT/libufo_cuda_emu.a"
ar rcs "$OUT/libufo_cuda_emu.a" "${objs[@]}"
