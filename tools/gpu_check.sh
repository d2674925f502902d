#!/usr/bin/env bash
# The CUDA backend's device check, in one go, for a machine with an NVIDIA GPU
# (written for one H100/H200 with 16 cores and no internet; about 3-5 minutes):
#   1. nvidia-smi
#   2. configure + build into build-gpu (-j16); or, with GPU_CHECK_BUNDLE=ARCHIVE,
#      unpack what tools/gpu_bundle.sh built elsewhere (binaries + the CPU
#      libraries a CUDA image lacks) and link this machine's NCCL and cuBLAS in;
#      if libufo's CPU dependencies (oneDNN, libjpeg, libpng, cJSON) or cmake are
#      missing and there is no bundle, a fallback builds the op checks alone
#      with nvcc + cc from the CUDA and reference sources
#   3. the CUDA tests: test_cuda_ops (every op + the whole forward vs the fp32
#      reference, CosFace / triplet vs the host losses), test_cuda_train (the
#      training pass, SGD and checkpoints vs the reference trainer), test_device,
#      test_nccl (the NCCL transport's collectives on device buffers, one rank),
#      test_cuda_knn (the kNN metrics' screen on the GPU vs the CPU's), ufo search
#      --device cuda (the same screen: the same neighbours as on the CPU), and
#      py_test_cuda_cli (vs PyTorch, and `ufo train --device cuda` vs
#      --device cpu, when /usr/bin/python3 has torch + numpy + PIL)
#   4. benchmark: the attention alone (bench_cuda_attention: ViT-L/16-384's
#      B 32, T 577, H 16, hd 64, bf16, flash and GEMM kernels, forward and
#      backward, ms and TFLOP/s); ViT-L/16-384 inference, batch 32, bf16 (flash
#      attention, the default, and UFO_CUDA_ATTENTION=gemm) and fp32 images/s,
#      random weights (`ufo bench` = `ufo init --preset large --img-size 384`'s model);
#      training (`ufo bench --train`: forward, CosFace 1000 classes + triplet,
#      backward, SGD), ViT-L/16-384 bf16, batch 32, images/s and MFU, flash attention
#      forward and backward (the default) and UFO_CUDA_ATTENTION=gemm; and
#      where a training step's time goes, kernel by kernel (ncu, a 2-block
#      ViT-L/16-384 step; tools/ncu_top.sh ranks them)
#   5. the PyTorch equivalents (scaled_dot_product_attention alone:
#      bench/bench_gpu_attention_torch.py; eager AMP: bench/bench_gpu_torch.py,
#      bench/bench_train_torch.py --device cuda), then torch.compile + SDPA
#      inference (unless GPU_CHECK_NO_COMPILE is set), with the machine's
#      python3 when `import torch` works with CUDA, else "skipped"
# Warnings are not errors here (another compiler version must not stop a
# runtime check; CI builds with -Werror). Run from the repository root:
# bash tools/gpu_check.sh. Logs go to $OUT (or ./gpu_check_out); the last
# lines are a compact summary. Exit 0 if every check that ran passed. Each
# finished step is also appended to $OUT/progress.txt at once, and a TERM (a
# timeout) prints what finished and exits 124.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
JOBS=${JOBS:-16}
BUILD=${BUILD:-build-gpu}
# nvcc: PATH, else the toolkit's usual places.
if ! command -v nvcc >/dev/null; then
    for d in /usr/local/cuda /usr/local/cuda-*; do
        [ -x "$d/bin/nvcc" ] && { export PATH="$PATH:$d/bin"; break; }
    done
fi
T0=$(date +%s)
SUMMARY=()
FAILED=0

# Each line also goes to $OUT/progress.txt at once: if the device session's
# time runs out mid-way, what finished is there (the files under $OUT come back).
note() { SUMMARY+=("$1"); echo "== $1"; echo "$1" >>"$OUT/progress.txt"; }
: >"$OUT/progress.txt"
# A TERM (the caller's timeout) prints what finished. The commands run in the
# background and are waited for, so the trap runs at once, not after the current one.
CHILD=""
stopped() {
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    echo "==== gpu_check stopped after $(($(date +%s) - T0))s; finished so far:"
    for s in "${SUMMARY[@]}"; do echo "  $s"; done
    exit 124
}
trap stopped TERM INT
# run NAME TIMEOUT CMD...: output to $OUT/NAME.log, tail shown on failure.
# GPU_CHECK_STEPS (names, space-separated): run only those steps (the build or
# unpack always runs), for a short device call that re-measures a few things.
wanted() { case " configure build build_ops unpack ${GPU_CHECK_STEPS:-$1} " in *" $1 "*) return 0 ;; esac; return 1; }
run() {
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 2
    local t
    t=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1 &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    local dt=$(($(date +%s) - t))
    if [ $rc -eq 0 ]; then
        note "PASS $name (${dt}s)"
    else
        note "FAIL $name (exit $rc after ${dt}s; log $OUT/$name.log)"
        tail -25 "$OUT/$name.log"
        FAILED=1
    fi
    return $rc
}

# --- 1. the device ---------------------------------------------------------
if command -v nvidia-smi >/dev/null; then
    nvidia-smi >"$OUT/nvidia-smi.log" 2>&1
    note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
else
    note "GPU: nvidia-smi not found"
fi
note "nvcc: $(command -v nvcc >/dev/null && nvcc --version | tail -1 || echo missing)"

# --- 2. build ----------------------------------------------------------------
# find_lib NAME: the machine's copy of a shared library (the loader's cache, the
# CUDA toolkit, pip's nvidia-* wheels), or nothing.
find_lib() {
    local p
    p=$(ldconfig -p 2>/dev/null | awk -v n="$1" '$1 == n { print $NF; exit }')
    [ -n "$p" ] && [ -e "$p" ] && { echo "$p"; return; }
    find /usr/local/cuda/lib64 /usr/local/cuda/targets /usr/local /opt /usr/lib -name "$1" 2>/dev/null | head -1
}
MODE=full
if [ -n "${GPU_CHECK_BUNDLE:-}" ]; then
    # Binaries built elsewhere by tools/gpu_bundle.sh, with the CPU libraries this
    # machine lacks beside them; NCCL and cuBLAS are the machine's own, linked in.
    if run unpack 120 bash -c "tar -C '$ROOT' -xJf '$GPU_CHECK_BUNDLE' 2>/dev/null ||
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' '$GPU_CHECK_BUNDLE' '$ROOT'"; then
        for l in libnccl.so.2 libcublas.so.13 libcublasLt.so.13; do
            p=$(find_lib "$l")
            if [ -n "$p" ]; then ln -sf "$p" "$BUILD/gpu-libs/$l"; note "  $l: $p"; else note "  $l: not found on this machine"; fi
        done
        note "built (bundle $GPU_CHECK_BUNDLE): $("$BUILD/ufo" --version 2>&1)"
    else
        MODE=none
    fi
elif command -v cmake >/dev/null &&
    run configure 120 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
        -DUFO_WERROR=OFF; then
    if ! grep -q "CUDA backend ON" "$OUT/configure.log"; then
        note "FAIL configure: the CUDA backend was not enabled (see $OUT/configure.log)"
        FAILED=1
    fi
    run build 300 cmake --build "$BUILD" -j"$JOBS" || MODE=none
    [ "$MODE" = full ] && note "built: $("$BUILD/ufo" --version)"
else
    note "cmake or a CPU dependency missing: building the op checks alone (no whole-forward, no CLI, no bench)"
    MODE=ops
    mkdir -p "$BUILD"
    CU=$(dirname "$(dirname "$(command -v nvcc)")")
    run build_ops 300 bash -c "
        set -e
        for f in src/kernels/cuda/*.cu; do nvcc -O2 -std=c++17 -arch=native -Isrc -c \$f -o $BUILD/\$(basename \$f .cu).o; done
        cc -O2 -std=gnu17 -DUFO_CUDA_OPS_ONLY -Isrc -Itests -Iinclude -I$CU/include -c tests/cuda/test_cuda_ops.c -o $BUILD/t.o
        for f in src/kernels/ref/*.c; do cc -O2 -std=gnu17 -Isrc -c \$f -o $BUILD/\$(basename \$f .c).o; done
        nvcc -o $BUILD/test_cuda_ops_only $BUILD/*.o -lcublasLt -lcublas -lm" || MODE=none
fi

# --- 3. tests -----------------------------------------------------------------
# The first of the interpreters given (after the code) that runs `python -c CODE`, by path.
pick_python() {
    local code=$1 c
    shift
    for c in "$@"; do
        command -v "$c" >/dev/null && "$c" -c "$code" 2>/dev/null && { command -v "$c"; return; }
    done
}
# The oracles' interpreter: Debian's /usr/bin/python3 where it has the packages
# (our machines), else the first python3 (a CUDA image's, which holds PyTorch).
OPY=$(pick_python "import torch, numpy, PIL" /usr/bin/python3 python3)
NPY=${OPY:-$(pick_python "import numpy" /usr/bin/python3 python3)}
if [ "$MODE" = full ]; then
    run test_cuda_ops 240 "$BUILD/src/kernels/cuda/test_cuda_ops"
    grep -q "^SKIP" "$OUT/test_cuda_ops.log" && { note "FAIL test_cuda_ops skipped: no GPU visible to CUDA"; FAILED=1; }
    if grep -qE 'passed, [0-9]+ failed' "$OUT/test_cuda_ops.log"; then
        note "  $(grep -E 'passed, [0-9]+ failed' "$OUT/test_cuda_ops.log" | tail -1); $(sed -nE \
            's/.* (fp32|bf16)  max rel err ([^ ]+)  cosine ([^ ]+)$/\1 \2 \3/p' "$OUT/test_cuda_ops.log" | awk '
            $1 == "fp32" && $2 + 0 > f { f = $2 + 0 }
            $1 == "bf16" && (c == "" || $3 + 0 < c) { c = $3 + 0 }
            $1 == "bf16" && $2 + 0 > b { b = $2 + 0 }
            END { printf "worst fp32 max rel err %.3g (bar 1e-4); worst bf16 cosine %.6f (bar 0.999), max rel err %.3g", f, c, b }')"
    fi
    for fv in 2 3; do   # the flash forward's other shapes (UFO_FLASH_FWD), before their timings count
        run "test_cuda_ops_fwd$fv" 60 env UFO_FLASH_FWD=$fv "$BUILD/src/kernels/cuda/test_cuda_ops" --flash
    done
    run test_cuda_train 300 "$BUILD/src/kernels/cuda/test_cuda_train"
    grep -q "^SKIP" "$OUT/test_cuda_train.log" && { note "FAIL test_cuda_train skipped: no GPU visible to CUDA"; FAILED=1; }
    while read -r l; do note "  $l"; done < <(grep -E "vs ref fp32 .*(tensors|one vector)|after 6 steps|resumed" \
        "$OUT/test_cuda_train.log")
    run test_device 60 "$BUILD/test_device"
    if [ -x "$BUILD/test_nccl" ]; then   # the NCCL transport, one rank (#9)
        run test_nccl 120 "$BUILD/test_nccl"
        grep -q "^SKIP" "$OUT/test_nccl.log" && { note "FAIL test_nccl skipped: no GPU visible to CUDA"; FAILED=1; }
    else
        note "SKIP test_nccl: this build found no NCCL"
    fi
    # The kNN metrics' similarity screen on the GPU (model/screen_cuda.c): within the fp32 bound,
    # the CPU screen's metrics bit for bit, and one 6000 x 60000 x 768 ReID timed both ways.
    run test_cuda_knn 180 "$BUILD/src/kernels/cuda/test_cuda_knn"
    grep -q "^SKIP" "$OUT/test_cuda_knn.log" && { note "FAIL test_cuda_knn skipped: no GPU visible to CUDA"; FAILED=1; }
    while read -r l; do note "  $l"; done < <(grep -E "max \|err\||bit for bit|ReID, d" "$OUT/test_cuda_knn.log")
    # `ufo search --device cuda` with its fp32 screen on the GPU against the CPU screen: the same
    # neighbours and scores (bytes), on a crowd of rows a few ulps apart plus random ones.
    if ! wanted search_always; then
        :
    elif [ -n "$NPY" ]; then
        SD="$OUT/search"
        mkdir -p "$SD"
        "$NPY" -c "
import numpy as np
r = np.random.default_rng(1)
v = r.standard_normal(256).astype(np.float32)
crowd = (v + r.integers(-3, 4, (2000, 256)) * np.spacing(v)).astype(np.float32)
np.save('$SD/g.npy', np.concatenate([crowd, r.standard_normal((18000, 256)).astype(np.float32)]))
np.save('$SD/q.npy', np.concatenate([v[None], crowd[:99], r.standard_normal((900, 256)).astype(np.float32)]))"
        for m in always never; do
            run "search_$m" 60 env UFO_METRICS_GPU=$m "$BUILD/ufo" search --device cuda --gallery "$SD/g.npy" \
                --query "$SD/q.npy" --k 10 --indices "$SD/i_$m.npy" --scores "$SD/s_$m.npy"
        done
        if grep -q 'screen on the GPU' "$OUT/search_always.log" && cmp -s "$SD/i_always.npy" "$SD/i_never.npy" &&
            cmp -s "$SD/s_always.npy" "$SD/s_never.npy"; then
            note "  search --device cuda: the GPU screen gives the CPU screen's neighbours and scores (1000 x 20000, d 256)"
        else
            note "FAIL search --device cuda: the GPU screen's results differ from the CPU's (see $SD)"
            FAILED=1
        fi
    else
        note "SKIP search --device cuda: no python3 with numpy"
    fi
    if [ -n "$OPY" ]; then
        DEMO=""
        [ -d "$BUILD/demo_data" ] && DEMO="$ROOT/$BUILD/demo_data"   # from the bundle
        run py_test_cuda_cli 180 env UFO_BIN="$BUILD/ufo" UFO_BUILD="$BUILD" UFO_DEMO_DATA="$DEMO" PYTHONPATH=tools \
            "$OPY" tests/py/test_cuda_cli.py
    else
        note "SKIP py_test_cuda_cli: no python3 with torch/numpy/PIL"
    fi
elif [ "$MODE" = ops ]; then
    run test_cuda_ops_only 240 "$BUILD/test_cuda_ops_only"
fi

# --- 4./5. benchmarks -------------------------------------------------------------
UFO_BF16="n/a" UFO_BF16_FWD3="n/a" UFO_GEMM="n/a" UFO_FP32="n/a" TORCH="skipped" TORCH_SDPA="skipped"
UFO_TRAIN="n/a" UFO_TRAIN_GEMM="n/a" TORCH_TRAIN="skipped" TORCH_COMPILE="skipped"
ATT_UFO="n/a" ATT_TORCH="skipped"
# json_field LOG KEY: the number after "KEY": in LOG's JSON line, or n/a.
json_field() { grep -o "\"$2\": [0-9.]*" "$1" 2>/dev/null | grep -o '[0-9.]*$' || echo n/a; }
if [ "$MODE" = full ]; then
    # The attention alone, ViT-L/16-384 batch 32 (B 32, T 577, H 16, hd 64), bf16: both kernels,
    # forward and backward, ms and TFLOP/s (bench/bench_cuda_attention.c).
    if run bench_attention 90 "$BUILD/bench_cuda_attention"; then
        L="$OUT/bench_attention.log"
        ATT_UFO="flash fwd $(json_field "$L" flash_fwd_qkv_bf16_ms) ms ($(json_field "$L" flash_fwd_qkv_bf16_tflops) TFLOP/s; from fp32 qkv $(json_field "$L" flash_fwd_qkv_fp32_ms) ms), flash bwd $(json_field "$L" flash_bwd_ms) ms ($(json_field "$L" flash_bwd_tflops)), GEMM fwd $(json_field "$L" gemm_fwd_ms) ms ($(json_field "$L" gemm_fwd_tflops)), GEMM bwd $(json_field "$L" gemm_bwd_ms) ms ($(json_field "$L" gemm_bwd_tflops))"
    fi
    # The forward kernel's other shapes (UFO_FLASH_FWD, gpu_flash.cu): registers capped, 8 warps,
    # 2 m-tiles per warp (each K/V fragment feeding two products; 255 registers).
    for fv in 1 2 3; do
        if run "bench_attention_fwd$fv" 90 env UFO_FLASH_FWD=$fv "$BUILD/bench_cuda_attention"; then
            L="$OUT/bench_attention_fwd$fv.log"
            ATT_UFO="$ATT_UFO; UFO_FLASH_FWD=$fv: flash fwd $(json_field "$L" flash_fwd_qkv_bf16_ms) ms ($(json_field "$L" flash_fwd_qkv_bf16_tflops) TFLOP/s)"
        fi
    done
    if run bench_bf16 120 "$BUILD/ufo" bench --device cuda --preset large --img-size 384 --batch 32 \
        --precision bf16 --iters 10 --json; then
        UFO_BF16=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_bf16.log" | grep -o '[0-9.]*$')
    fi
    if run bench_bf16_fwd3 120 env UFO_FLASH_FWD=3 "$BUILD/ufo" bench --device cuda --preset large --img-size 384 \
        --batch 32 --precision bf16 --iters 10 --json; then
        UFO_BF16_FWD3=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_bf16_fwd3.log" | grep -o '[0-9.]*$')
    fi
    if run bench_bf16_gemm 120 env UFO_CUDA_ATTENTION=gemm "$BUILD/ufo" bench --device cuda --preset large \
        --img-size 384 --batch 32 --precision bf16 --iters 10 --json; then
        UFO_GEMM=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_bf16_gemm.log" | grep -o '[0-9.]*$')
    fi
    if run bench_fp32 120 "$BUILD/ufo" bench --device cuda --preset large --img-size 384 --batch 32 \
        --precision fp32 --iters 3 --json; then
        UFO_FP32=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_fp32.log" | grep -o '[0-9.]*$')
    fi
    if run bench_train_bf16 240 "$BUILD/ufo" bench --device cuda --train --preset large --img-size 384 --batch 32 \
        --precision bf16 --iters 5 --json; then
        UFO_TRAIN=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_train_bf16.log" | grep -o '[0-9.]*$')
    fi
    # The same with the GEMM attention (T x T scores stored), to confirm the default.
    if run bench_train_bf16_gemm 240 env UFO_CUDA_ATTENTION=gemm "$BUILD/ufo" bench --device cuda --train \
        --preset large --img-size 384 --batch 32 --precision bf16 --iters 5 --json; then
        UFO_TRAIN_GEMM=$(grep -o '"images_per_s": [0-9.]*' "$OUT/bench_train_bf16_gemm.log" | grep -o '[0-9.]*$')
    fi
fi
PY=$(pick_python "import torch; assert torch.cuda.is_available()" python3 /usr/bin/python3)
if [ -n "$PY" ]; then
    if run torch_attention 90 "$PY" bench/bench_gpu_attention_torch.py; then
        L="$OUT/torch_attention.log"
        ATT_TORCH="sdpa fwd $(json_field "$L" fwd_ms) ms ($(json_field "$L" fwd_tflops) TFLOP/s), bwd $(json_field "$L" bwd_ms) ms ($(json_field "$L" bwd_tflops))"
    fi
    if run torch_bf16 150 "$PY" bench/bench_gpu_torch.py --batch 32 --iters 10 --precision bf16; then
        TORCH=$(grep -o '"images_per_s": [0-9.]*' "$OUT/torch_bf16.log" | grep -o '[0-9.]*$')
    fi
    if run torch_bf16_sdpa 150 "$PY" bench/bench_gpu_torch.py --batch 32 --iters 10 --precision bf16 --sdpa; then
        TORCH_SDPA=$(grep -o '"images_per_s": [0-9.]*' "$OUT/torch_bf16_sdpa.log" | grep -o '[0-9.]*$' || echo skipped)
    fi
    if run torch_train_bf16 240 "$PY" bench/bench_train_torch.py --device cuda --preset large --img-size 384 \
        --batch 32 --iters 5 --precision bf16; then
        TORCH_TRAIN=$(grep -o '"images_per_s": [0-9.]*' "$OUT/torch_train_bf16.log" | grep -o '[0-9.]*$')
    fi
    # torch.compile (Triton) last: its compile time is minutes and must not starve the rest.
    # GPU_CHECK_BUDGET_S: the caller's time limit; the compile runs only if its 240 s still fit.
    if [ -z "${GPU_CHECK_NO_COMPILE:-}" ] && [ $(($(date +%s) - T0 + 240)) -gt "${GPU_CHECK_BUDGET_S:-100000}" ]; then
        note "SKIP torch.compile: its 240 s would not fit in GPU_CHECK_BUDGET_S=${GPU_CHECK_BUDGET_S:-}"
    elif [ -z "${GPU_CHECK_NO_COMPILE:-}" ] && run torch_bf16_compile 240 "$PY" bench/bench_gpu_torch.py --batch 32 \
        --iters 10 --precision bf16 --sdpa --compile; then
        TORCH_COMPILE=$(grep -o '"images_per_s": [0-9.]*' "$OUT/torch_bf16_compile.log" | grep -o '[0-9.]*$' || echo skipped)
    fi
else
    note "SKIP torch benchmark: no python3 with a CUDA-enabled torch"
fi
# Last (the lowest priority): where a training step's time goes, kernel by kernel (#8's MFU):
# ncu on ViT-L/16-384 with 2 blocks (blocks are alike: a block's kernels show its share; heads,
# losses and SGD appear once), one warm-up and one timed step, ranked by tools/ncu_top.sh (times
# at ncu's locked clocks).
if [ "$MODE" = full ] && command -v ncu >/dev/null; then
    if run profile_train 240 ncu --metrics gpu__time_duration.sum --print-summary per-kernel "$BUILD/ufo" bench \
        --device cuda --train --preset large --depth 2 --img-size 384 --batch 32 --precision bf16 --iters 1; then
        bash tools/ncu_top.sh "$OUT/profile_train.log" 30 >"$OUT/profile_train_top.txt" 2>&1
        while read -r l; do note "  $l"; done < <(head -12 "$OUT/profile_train_top.txt")
    fi
elif [ "$MODE" = full ] && wanted profile_train; then
    note "SKIP profile_train: no ncu on this machine"
fi

# Model FLOPs utilisation of training: achieved model FLOPs / the GPU's dense bf16
# peak. A training step is 3 forwards' worth of matmul FLOPs (forward + two
# backward GEMMs per matmul; recomputed attention scores not counted):
#   F_img = 3 * 2 * (L * (12 T D^2 + 2 T^2 D) + P * 3 p^2 * D)
# ViT-L/16-384: L 24, D 1024, T 577 tokens, P 576 patches, p 16.
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
case "$GPU_NAME" in
    *H100*PCIe*) PEAK=756e12 ;;                 # dense bf16
    *H100* | *H200*) PEAK=989e12 ;;   # dense bf16 (SXM; GH200 too)
    *A100*) PEAK=312e12 ;;
    *) PEAK="" ;;
esac
mfu() {   # images/s -> "x.x%" or n/a
    if [ -n "$PEAK" ] && [[ "$1" =~ ^[0-9.]+$ ]]; then
        awk -v ips="$1" -v peak="$PEAK" 'BEGIN { L = 24; D = 1024; T = 577; P = 576; p = 16;
            f = 3 * 2 * (L * (12 * T * D * D + 2 * T * T * D) + P * 3 * p * p * D);
            printf "%.1f%%", 100 * ips * f / peak }'
    else
        echo "n/a"
    fi
}
MFU_NOTE="MFU = images/s * F_img / peak, F_img = 3*2*(L*(12*T*D^2 + 2*T^2*D) + P*3*p^2*D) = $(awk 'BEGIN {
    printf "%.3g", 3 * 2 * (24 * (12 * 577 * 1024 * 1024 + 2 * 577 * 577 * 1024) + 576 * 768 * 1024) }') FLOP/image, peak ${PEAK:-unknown} FLOP/s (${GPU_NAME:-GPU?})"
# ufo runs the last block's query, projection and MLP on the class tokens only (the
# features read nothing else): it executes 3*2*((T-1)*9*D^2 + 2*T*(T-1)*D) FLOPs per image
# fewer than F_img, 3.2% at ViT-L/16-384. MFU keeps the full model's F_img for both sides
# (the usual definition, and the same yardstick as torch's); the share of the GPU's peak
# that ufo's kernels actually execute is MFU x (1 - that).
MFU_NOTE="$MFU_NOTE; ufo executes $(awk 'BEGIN { T = 577; D = 1024;
    full = 24 * (12 * T * D * D + 2 * T * T * D) + 576 * 768 * 1024; skip = (T - 1) * 9 * D * D + 2 * T * (T - 1) * D;
    printf "%.1f%% fewer FLOPs than F_img (the last block on the class tokens): the share of the peak its kernels execute is MFU x %.3f", 100 * skip / full, 1 - skip / full }')"

# --- summary ------------------------------------------------------------------------
{
    echo
    echo "==== gpu_check summary ($(($(date +%s) - T0))s, build mode: $MODE) ===="
    for s in "${SUMMARY[@]}"; do echo "  $s"; done
    echo "  attention B32 T577 H16 hd64 bf16: ufo $ATT_UFO | torch $ATT_TORCH"
    echo "  ViT-L/16-384 batch 32 images/s: ufo bf16 (flash attention) $UFO_BF16 | UFO_FLASH_FWD=3 $UFO_BF16_FWD3 | ufo bf16 GEMM attention $UFO_GEMM | ufo fp32 $UFO_FP32 | torch eager AMP bf16 $TORCH | torch sdpa bf16 $TORCH_SDPA | torch.compile sdpa bf16 $TORCH_COMPILE"
    echo "  ViT-L/16-384 batch 32 TRAINING images/s (bf16): ufo (flash attention) $UFO_TRAIN (MFU $(mfu "$UFO_TRAIN")) | ufo GEMM attention $UFO_TRAIN_GEMM (MFU $(mfu "$UFO_TRAIN_GEMM")) | torch eager AMP (SDPA attention on torch >= 2) $TORCH_TRAIN (MFU $(mfu "$TORCH_TRAIN"))"
    echo "  $MFU_NOTE"
    echo "  result: $([ $FAILED -eq 0 ] && echo ALL PASSED || echo FAILURES)"
} | tee "$OUT/summary.txt"
exit $FAILED
