#!/usr/bin/env bash
# Builds the CUDA backend's own sources (src/kernels/cuda/*.cu) for the CUDA
# emulator (tests/cuda/emu): each .cu rewritten by tools/cuda_emu_rewrite.pl
# and compiled by g++ against the emulator's headers, with its runtime, into
# $1/libufo_cuda_emu.a (link it in place of the real ufo_cuda, with -lstdc++),
# and the emulator's own test, $1/test_emu.
# Extra compiler flags (sanitizers) come in EMU_CXXFLAGS.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: cuda_emu_build.sh OUTDIR}
mkdir -p "$OUT/emu"
CXX=${CXX:-g++}
FLAGS="-std=gnu++17 -O1 -g -DUFO_CUDA_EMU -ffp-contract=off -fno-fast-math -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -Werror
       -I$ROOT/tests/cuda/emu -I$ROOT/src ${EMU_CXXFLAGS:-}"
srcs=()
for cu in "$ROOT"/src/kernels/cuda/*.cu; do
    base=$(basename "$cu" .cu)
    perl "$ROOT/tools/cuda_emu_rewrite.pl" "$cu" >"$OUT/emu/$base.cc.tmp"
    mv "$OUT/emu/$base.cc.tmp" "$OUT/emu/$base.cc"
    srcs+=("$OUT/emu/$base.cc")
done
srcs+=("$ROOT/tests/cuda/emu/emu_runtime.cc")
objs=()
for cc in "${srcs[@]}"; do
    o="$OUT/emu/$(basename "$cc" .cc).o"
    rm -f "$o"   # a compile that fails leaves no object, so ar below fails instead of taking a stale one
    # shellcheck disable=SC2086
    $CXX $FLAGS -c "$cc" -o "$o" &
    objs+=("$o")
    while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do wait -n || true; done
done
wait
rm -f "$OUT/libufo_cuda_emu.a"
ar rcs "$OUT/libufo_cuda_emu.a" "${objs[@]}"
# The emulator's own test (tests/cuda/emu/test_emu.cu), through the same rewrite and flags.
perl "$ROOT/tools/cuda_emu_rewrite.pl" "$ROOT/tests/cuda/emu/test_emu.cu" >"$OUT/emu/test_emu.cc.tmp"
mv "$OUT/emu/test_emu.cc.tmp" "$OUT/emu/test_emu.cc"
# shellcheck disable=SC2086
$CXX $FLAGS "$OUT/emu/test_emu.cc" "$OUT/libufo_cuda_emu.a" -o "$OUT/test_emu"
