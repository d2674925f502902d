#!/usr/bin/env bash
# Packs what tools/gpu_check.sh needs into one archive a bare GPU machine can run:
# the CUDA build's binaries (made here, where the CPU dependencies are) and the
# shared libraries they load that a CUDA image lacks (oneDNN, libjpeg, libpng,
# cJSON, Open MPI's libraries ...). Why: the lent GPU machines have nvcc, cmake
# and PyTorch but not Debian's libdnnl-dev & co, and nothing can be installed
# there, so building there would fall back to the op checks alone.
#
# Each binary is packed as NAME.bin beside a two-line NAME script that puts
# gpu-libs/ first on LD_LIBRARY_PATH for that process alone (Open MPI's
# libraries carry their own RUNPATH, which an RPATH of ours cannot override),
# so the machine's Python/PyTorch never sees our copies. NCCL and cuBLAS are not
# packed (hundreds of MB): gpu_check.sh links the machine's own into gpu-libs/
# (the same major versions).
#
# Usage: bash tools/gpu_bundle.sh [ARCHIVE]   (default .gpu/bundle.tar.xz)
# then, on the device: GPU_CHECK_BUNDLE=.gpu/bundle.tar.xz bash tools/gpu_check.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ARCHIVE=${1:-.gpu/bundle.tar.xz}
BUILD=build-gpu
ARCHS=${UFO_CUDA_ARCHS:-90}   # H100/H200 only: one fatbin keeps the archive small

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" -DUFO_WERROR=ON >/dev/null
grep -q "UFO_CUDA:BOOL=ON" "$BUILD/CMakeCache.txt" || { echo "gpu_bundle: $BUILD has no CUDA backend (nvcc missing?)" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target ufo_cli test_device test_nccl bench_cuda_attention \
    test_cuda_ops test_cuda_train test_cuda_knn

BINS="ufo test_device test_nccl bench_cuda_attention src/kernels/cuda/test_cuda_ops
      src/kernels/cuda/test_cuda_train src/kernels/cuda/test_cuda_knn"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/$BUILD/gpu-libs" "$STAGE/$BUILD/src/kernels/cuda"
for b in $BINS; do
    strip -o "$STAGE/$BUILD/$b.bin" "$BUILD/$b"
    up=$(dirname "$b" | sed -E 's#[^/.]+#..#g')   # from the binary's folder back to $BUILD
    printf '#!/bin/sh\nd=$(dirname "$0")\nLD_LIBRARY_PATH="$d/%s/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$0.bin" "$@"\n' \
        "$up" >"$STAGE/$BUILD/$b"
    chmod +x "$STAGE/$BUILD/$b"
done
# Every library the binaries load, except glibc's and the compiler runtime's (the
# machine's own are newer and compatible) and NCCL (the machine's, see above).
for b in $BINS; do ldd "$BUILD/$b"; done | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    while read -r name path; do
        case "$name" in
            libc.so* | libm.so* | libdl.so* | librt.so* | libpthread.so* | ld-linux* | libstdc++* | libgcc_s* | libnccl*) ;;
            *) cp -L "$path" "$STAGE/$BUILD/gpu-libs/$name" ;;
        esac
    done
# Demo data for tests/py/test_cuda_cli.py's `ufo train --device cuda` (UFO_DEMO_DATA):
# make_demo_data.py needs Debian's dataset-fashion-mnist, which a CUDA image lacks.
/usr/bin/python3 tools/make_demo_data.py "$STAGE/$BUILD/demo_data" --scale 0.1 --jobs 1 >/dev/null
mkdir -p "$(dirname "$ARCHIVE")"
tar -C "$STAGE" -cJf "$ARCHIVE.tmp" "$BUILD"
mv "$ARCHIVE.tmp" "$ARCHIVE"
echo "gpu_bundle: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)): $(ls "$STAGE/$BUILD/gpu-libs" | tr '\n' ' ')"
