#!/usr/bin/env bash
# Runs the CUDA backend on a machine WITHOUT a GPU, in the CUDA emulator
# (tests/cuda/emu): the backend's own kernels (src/kernels/cuda/*.cu,
# rewritten by tools/cuda_emu_rewrite.pl and compiled by g++) run thread by
# thread on the CPU, cuBLAS/cuBLASLt are host GEMMs, and kernel pointer
# arguments, GEMM operands and copies are checked against live device memory.
# So this checks both the kernels and the code that drives them
# (model/vit_train_cuda.c, train/sgd_cuda.c, train/heads_cuda.c: buffer
# sizes, host/device pointers, op order, SGD, checkpoints); on a GPU,
# tools/gpu_check.sh runs the same tests for real and times them.
#   - test_cuda_ops (every op, the losses and the whole forward against the
#     reference; about 70 s), then again built with AddressSanitizer on the
#     emulated kernels (an access past a device allocation or a shared array
#     aborts), and with cuBLASLt's fallbacks forced (UFO_EMU_LT);
#   - test_cuda_train twice, heads on the device (the default in one process)
#     and on the host (UFO_CUDA_HEADS=cpu);
#   - test_nccl's checks under mpirun -np 2 and 3 with MPI in NCCL's place;
#   - `ufo train --device cuda` (the CLI linked with the emulator) on tiny
#     synthetic data: it says the heads ran on the device, the losses of
#     --device cpu (rel 1e-4; also with Partial-FC sampling, the sampled heads
#     on the device too, and their classifiers rel 1e-3; bf16 with the flash
#     attention forward and backward vs the GEMM attention and the CPU, rel
#     1e-2), stop + --resume ==
#     straight (same model file, device heads saved and restored), and, when
#     mpirun exists, `mpirun -np 2` (the emulator's device memory is host
#     memory, so MPI stands in for NCCL: UFO_TEST_HOST_AS_DEVICE_COMM) with
#     the heads on the device == one process and == np=2 --device cpu (rel
#     1e-4), resume == straight, Partial-FC sharded heads on the device == the
#     CPU's (and their resume == straight), sharded + sampled heads on the
#     device == the CPU's (also at rate 0.05, where some steps leave a shard
#     without a kept class: resume == straight there), ZeRO == without (bit
#     for bit);
#   - tests/py/test_cuda_cli.py with the emulator as the GPU (`ufo embed
#     --device cuda` vs PyTorch float64: fp32 rel 1e-4, bf16 cosine 0.999);
#   - the kNN metrics' screen on the "GPU" (test_cuda_knn, and
#     `ufo eval --device cuda` with it on == off);
#   - last, gpu_check.sh's benchmark commands at a tiny size (they run and
#     print the JSON it parses).
# Usage: bash tools/cuda_emu_check.sh   (from anywhere; builds into build-emu)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${BUILD:-build-emu}
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DUFO_CUDA=OFF -DCMAKE_C_FLAGS="-DUFO_HAVE_CUDA=1" >/dev/null
cmake --build "$B" -j"${JOBS:-2}" --target ufo >/dev/null
bash tools/cuda_emu_build.sh "$B"
DEPS="-ldnnl -ljpeg -lpng -lcjson -lm -lpthread -lstdc++"   # what libufo and the emulator link against
LIBS="$B/libufo.a $B/libufo_cuda_emu.a $DEPS"
FLAGS="-O1 -std=gnu17 -fopenmp -DUFO_HAVE_CUDA=1 -Isrc -Itests -Iinclude"
MPIL=""
if command -v mpicc >/dev/null; then   # libufo links MPI when CMake found it
    MPIL=$(mpicc --showme:link 2>/dev/null || mpicc -link-info 2>/dev/null | cut -d' ' -f2- || true)
fi
# The emulator's own test (its semantics, and what it must refuse; built by cuda_emu_build.sh).
"$B/test_emu" >"$B/test_emu.log" 2>&1 || { cat "$B/test_emu.log"; exit 1; }
echo "cuda_emu_check: $(tail -1 "$B/test_emu.log")"
# test_cuda_ops: every kernel against its reference, in the emulator.
# shellcheck disable=SC2086
cc $FLAGS tests/cuda/test_cuda_ops.c $LIBS $MPIL -o "$B/test_cuda_ops"
"$B/test_cuda_ops" >"$B/test_cuda_ops.log" 2>&1 || { tail -20 "$B/test_cuda_ops.log"; exit 1; }
echo "cuda_emu_check: $(tail -1 "$B/test_cuda_ops.log") (the backend's kernels in the emulator)"
for v in 2 3; do   # the flash forward's other shapes (gpu_flash.cu: 8 warps; 2 m-tiles per warp)
    UFO_FLASH_FWD=$v "$B/test_cuda_ops" --flash >"$B/test_cuda_ops_fwd$v.log" 2>&1 || { tail -20 "$B/test_cuda_ops_fwd$v.log"; exit 1; }
done
echo "cuda_emu_check: test_cuda_ops --flash passes with UFO_FLASH_FWD=2 and 3"
# cuBLASLt's fallbacks (no algorithm with the bias epilogue: a kernel adds the
# bias; no algorithm at all: cublasGemmEx), which a GPU takes only for odd shapes.
for lt in no-epilogue none; do
    UFO_EMU_LT=$lt "$B/test_cuda_ops" --quick >"$B/test_cuda_ops_$lt.log" 2>&1 || { tail -20 "$B/test_cuda_ops_$lt.log"; exit 1; }
done
echo "cuda_emu_check: test_cuda_ops --quick passes with cuBLASLt offering no bias epilogue, and no algorithm"
# The kernels once more with AddressSanitizer + UBSan: an access past a device
# allocation or a shared array stops the run with the kernel's source line.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
EMU_CXXFLAGS="$SAN" bash tools/cuda_emu_build.sh "$B/asan"
# shellcheck disable=SC2086
cc $FLAGS -g $SAN tests/cuda/test_cuda_ops.c "$B/libufo.a" "$B/asan/libufo_cuda_emu.a" $DEPS $MPIL \
    -o "$B/test_cuda_ops_asan"
ASAN_OPTIONS=detect_leaks=0 "$B/test_cuda_ops_asan" --quick >"$B/test_cuda_ops_asan.log" 2>&1 ||
    { grep -A12 ERROR "$B/test_cuda_ops_asan.log" || tail -20 "$B/test_cuda_ops_asan.log"; exit 1; }
echo "cuda_emu_check: $(tail -1 "$B/test_cuda_ops_asan.log") with AddressSanitizer + UBSan on the kernels"
# shellcheck disable=SC2086
cc $FLAGS tests/cuda/test_cuda_train.c $LIBS $MPIL -o "$B/test_cuda_train"
# shellcheck disable=SC2086
cc $FLAGS -DUFO_VERSION='"cuda-emulator"' src/cli/*.c $LIBS $MPIL -o "$B/ufo_emu"
"$B/test_cuda_train"
echo "cuda_emu_check: test_cuda_train passed in the emulator (heads on the device)"
UFO_CUDA_HEADS=cpu "$B/test_cuda_train" >/dev/null
echo "cuda_emu_check: test_cuda_train passed in the emulator (UFO_CUDA_HEADS=cpu: heads on the host)"
if [ -n "$MPIL" ] && command -v mpirun >/dev/null; then
    # test_nccl's checks, with MPI in NCCL's place on the emulator's host "device" buffers.
    # shellcheck disable=SC2086
    cc $FLAGS -DUFO_TEST_NCCL_AS_MPI tests/cuda/test_nccl.c $LIBS $MPIL -o "$B/test_nccl_mpi"
    for np in 2 3; do
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np $np --oversubscribe "$B/test_nccl_mpi" \
            >"$B/test_nccl_mpi.log" 2>&1 || { cat "$B/test_nccl_mpi.log"; exit 1; }
    done
    echo "cuda_emu_check: test_nccl's collectives checks pass with MPI in NCCL's place (np 2, 3)"
fi

# --- the CLI ---------------------------------------------------------------------------
PY=/usr/bin/python3
# tests/py/test_cuda_cli.py's GPU branch with the emulator as the GPU: `ufo embed
# --device cuda` (fp32 and bf16, three heads, the pipelined decoder) against an
# independent PyTorch float64 forward, and `ufo train --device cuda` vs --device cpu.
UFO_BIN="$B/ufo_emu" PYTHONPATH=tools:tests/py "$PY" tests/py/test_cuda_cli.py >"$B/test_cuda_cli.log" 2>&1 &&
    grep -q "cuda fp32 vs torch float64" "$B/test_cuda_cli.log" || { cat "$B/test_cuda_cli.log"; exit 1; }
echo "cuda_emu_check: $(tail -1 "$B/test_cuda_cli.log") (embed --device cuda vs PyTorch float64, in the emulator)"
D="$B/emu_demo"
[ -d "$D/data" ] || "$PY" tools/make_demo_data.py "$D/data" --scale 0.1 --jobs 2 >/dev/null
TINY="data.root=$D/data model.dim=16 model.depth=2 model.num_heads=2 model.img_size=16 model.drop_path=0.1
      data.batch_face=6 data.batch_person=8 data.batch_vehicle=8 data.batch_product=8 data.workers=1
      optim.steps=4 run.log_every=1 run.checkpoint_every=2 run.eval_datasets="
export OMP_NUM_THREADS=1
rm -rf "$D/att_gemm" "$D/att_flash" "$D/att_flash_rec0" "$D/att_flash_rec1" "$D/att_cpu" "$D/cpu" "$D/gpu" "$D/resumed" "$D/np2" "$D/cpu_pfc" "$D/gpu_pfc" "$D/resumed_pfc" "$D/np2_cpu" \
    "$D/np2_resumed" "$D/np2_shard" "$D/np2_shard_cpu" "$D/np2_shard_resumed" "$D/np2_pfc" "$D/np2_pfc_cpu" "$D/zero2" \
    "$D/np2_low" "$D/np2_low_cpu" "$D/np2_low_resumed"
# shellcheck disable=SC2086
"$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/cpu" --device cpu $TINY
# Not quiet: the start-up lines say where the heads ran (one process: on the device).
# shellcheck disable=SC2086
"$B/ufo_emu" train --config recipes/demo.ini --out "$D/gpu" --device cuda $TINY 2>"$D/gpu.err"
grep -q "losses and classifiers on the GPU too" "$D/gpu.err" || { cat "$D/gpu.err"; echo "cuda_emu_check: FAIL: heads not on the device"; exit 1; }
# shellcheck disable=SC2086
"$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/resumed" --device cuda --stop-after 2 $TINY
"$B/ufo_emu" train --quiet --resume "$D/resumed/last.safetensors" --device cuda
cmp "$D/gpu/model.safetensors" "$D/resumed/model.safetensors"
echo "cuda_emu_check: train --device cuda: stop after 2 + resume == 4 straight (same model file)"
same_losses() {   # log.csv a, log.csv b, tolerance
    "$PY" - "$@" <<'PYEOF'
import sys
rows = [[l.split(",") for l in open(p).read().splitlines()[1:]] for p in sys.argv[1:3]]
worst = max(abs(float(a[2]) - float(b[2])) / abs(float(b[2])) for a, b in zip(*rows))
ok = len(rows[0]) == len(rows[1]) > 0 and worst <= float(sys.argv[3])
print(f"cuda_emu_check: {sys.argv[1]} vs {sys.argv[2]}: worst loss rel err {worst:.2e} ({'ok' if ok else 'FAIL'})")
sys.exit(0 if ok else 1)
PYEOF
}
same_checkpoints() {   # a.safetensors b.safetensors tolerance [name part]: every tensor (model, classifiers,
                      # momentum), or those whose name has the part
    PYTHONPATH=tools "$PY" - "$@" <<'PYEOF'
import sys
import numpy as np
from safetensors_io import read
a, b = read(sys.argv[1])[0], read(sys.argv[2])[0]
assert sorted(a) == sorted(b), "different tensor names"
names = [k for k in a if len(sys.argv) < 5 or sys.argv[4] in k]
worst = max(float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(b[k]))), 1e-30)) for k in names)
ok = worst <= float(sys.argv[3]) and names
print(f"cuda_emu_check: {sys.argv[1]} vs {sys.argv[2]}: {len(names)} tensors, worst rel err {worst:.2e} ({'ok' if ok else 'FAIL'})")
sys.exit(0 if ok else 1)
PYEOF
}
same_losses "$D/gpu/log.csv" "$D/cpu/log.csv" 1e-4
# bf16 with head dim 64: the flash attention forward and backward in the training
# pass (UFO_CUDA_ATTENTION=flash) against the GEMM attention and --device cpu bf16.
ATT="model.dim=64 model.num_heads=1 run.precision=bf16"
for a in gemm flash; do
    # shellcheck disable=SC2086
    UFO_CUDA_ATTENTION=$a "$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/att_$a" --device cuda $TINY $ATT
done
# shellcheck disable=SC2086
"$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/att_cpu" --device cpu $TINY $ATT
same_losses "$D/att_flash/log.csv" "$D/att_gemm/log.csv" 1e-2
same_losses "$D/att_flash/log.csv" "$D/att_cpu/log.csv" 1e-2
# run.recompute reruns each block's forward in the backward, the flash attention's saved row
# statistics with it: the same model file, bit for bit (3 blocks: two full ones keep statistics).
for rec in 0 1; do
    # shellcheck disable=SC2086
    UFO_CUDA_ATTENTION=flash "$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/att_flash_rec$rec" \
        --device cuda $TINY $ATT model.depth=3 run.recompute=$rec
done
cmp "$D/att_flash_rec0/model.safetensors" "$D/att_flash_rec1/model.safetensors"
echo "cuda_emu_check: flash attention training with run.recompute = 1 gives the same model file"
# Partial-FC sampling in one process (face, person and vehicle have 10 classes
# here, product 6): every head on the device, the sampled ones over their kept
# rows (gathered, the gradient rows added back, only those rows stepped).
PFC="run.pfc_sample_rate=0.5 run.shard_classes_above=8"
# shellcheck disable=SC2086
"$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/cpu_pfc" --device cpu $TINY $PFC
# shellcheck disable=SC2086
"$B/ufo_emu" train --config recipes/demo.ini --out "$D/gpu_pfc" --device cuda $TINY $PFC 2>"$D/gpu_pfc.err"
grep -q "on the GPU too, the Partial-FC sampled ones on the GPU" "$D/gpu_pfc.err" ||
    { cat "$D/gpu_pfc.err"; echo "cuda_emu_check: FAIL: the sampled heads are not on the device"; exit 1; }
same_losses "$D/gpu_pfc/log.csv" "$D/cpu_pfc/log.csv" 1e-4
same_checkpoints "$D/gpu_pfc/last.safetensors" "$D/cpu_pfc/last.safetensors" 1e-3 classifier.
# shellcheck disable=SC2086
"$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/resumed_pfc" --device cuda --stop-after 2 $TINY $PFC
"$B/ufo_emu" train --quiet --resume "$D/resumed_pfc/last.safetensors" --device cuda
cmp "$D/gpu_pfc/model.safetensors" "$D/resumed_pfc/model.safetensors"
echo "cuda_emu_check: the same with Partial-FC sampling: stop after 2 + resume == 4 straight"
if [ -n "$MPIL" ] && command -v mpirun >/dev/null; then
    mpi2() {   # two ranks of the CLI, MPI standing in for NCCL
        UFO_TEST_HOST_AS_DEVICE_COMM=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
            mpirun -x UFO_TEST_HOST_AS_DEVICE_COMM -x OMP_NUM_THREADS -np 2 --oversubscribe "$B/ufo_emu" "$@"
    }
    # Data parallel with the heads on the device (CosFace on each rank's rows,
    # triplet on the features gathered over the device group, the classifiers'
    # gradients summed over it): the losses of one process and of np=2 on the CPU.
    # shellcheck disable=SC2086
    mpi2 train --config recipes/demo.ini --out "$D/np2" --device cuda $TINY 2>"$D/np2.err" || { cat "$D/np2.err"; exit 1; }
    grep -q "losses and classifiers on the GPU too (data parallel" "$D/np2.err" ||
        { cat "$D/np2.err"; echo "cuda_emu_check: FAIL: np=2: heads not on the device"; exit 1; }
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_cpu" --device cpu $TINY
    same_losses "$D/np2/log.csv" "$D/gpu/log.csv" 1e-4
    same_losses "$D/np2/log.csv" "$D/np2_cpu/log.csv" 1e-4
    # The classifiers and their momentum (the model's norm.bias gets ~0 gradient
    # through the BNNecks: noise, rel 1 apart between any two runs).
    same_checkpoints "$D/np2/last.safetensors" "$D/np2_cpu/last.safetensors" 1e-3 classifier.
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_resumed" --device cuda --stop-after 2 $TINY
    mpi2 train --quiet --resume "$D/np2_resumed/last.safetensors" --device cuda
    cmp "$D/np2/model.safetensors" "$D/np2_resumed/model.safetensors"
    echo "cuda_emu_check: np=2 --device cuda, heads on the device: stop after 2 + resume == 4 straight (same model file)"
    # Partial-FC sharding (face, person, vehicle: 10 classes > 8): those heads on
    # the device too, each rank its shard (features gathered over the device
    # group, the per-row softmax state and d f_hat all-reduced, the shard's SGD
    # clipped by the whole tensor's norm), product's replicated: against the CPU's.
    # shellcheck disable=SC2086
    mpi2 train --config recipes/demo.ini --out "$D/np2_shard" --device cuda $TINY run.shard_classes_above=8 \
        2>"$D/np2_shard.err" || { cat "$D/np2_shard.err"; exit 1; }
    grep -q "on the GPU too, the Partial-FC sharded ones on the GPU (data parallel" "$D/np2_shard.err" ||
        { cat "$D/np2_shard.err"; echo "cuda_emu_check: FAIL: np=2 sharded: not on the device"; exit 1; }
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_shard_cpu" --device cpu $TINY run.shard_classes_above=8
    same_losses "$D/np2_shard/log.csv" "$D/np2_shard_cpu/log.csv" 1e-4
    same_checkpoints "$D/np2_shard/last.safetensors" "$D/np2_shard_cpu/last.safetensors" 1e-3 classifier.
    # The device shards come to the host for the checkpoint (rank 0 gathers them) and go back on resume.
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_shard_resumed" --device cuda --stop-after 2 $TINY \
        run.shard_classes_above=8
    mpi2 train --quiet --resume "$D/np2_shard_resumed/last.safetensors" --device cuda
    cmp "$D/np2_shard/model.safetensors" "$D/np2_shard_resumed/model.safetensors"
    cmp "$D/np2_shard/last.safetensors" "$D/np2_shard_resumed/last.safetensors"
    echo "cuda_emu_check: np=2 sharded heads on the device: stop after 2 + resume == 4 straight (same model and checkpoint)"
    # The same heads sharded AND Partial-FC sampled, on the device too (each
    # shard its kept rows, class ids as positions in kept[]), product's replicated.
    # shellcheck disable=SC2086
    mpi2 train --config recipes/demo.ini --out "$D/np2_pfc" --device cuda $TINY $PFC 2>"$D/np2_pfc.err" ||
        { cat "$D/np2_pfc.err"; exit 1; }
    grep -q "sharded ones on the GPU, the Partial-FC sampled ones on the GPU (data parallel" "$D/np2_pfc.err" ||
        { cat "$D/np2_pfc.err"; echo "cuda_emu_check: FAIL: np=2 sampled: not on the device"; exit 1; }
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_pfc_cpu" --device cpu $TINY $PFC
    same_losses "$D/np2_pfc/log.csv" "$D/np2_pfc_cpu/log.csv" 1e-4
    same_checkpoints "$D/np2_pfc/last.safetensors" "$D/np2_pfc_cpu/last.safetensors" 1e-3 classifier.
    # A low rate (kept = the batch's labels, 1 negative at most): in some steps
    # one shard keeps no class (the dump shows it: every kept class of a
    # 10-class head in [0, 5) or in [5, 10)); those steps' CosFace runs the
    # host's sharded one on the device's rows. Against the CPU, and stop + resume.
    LOW="run.pfc_sample_rate=0.05 run.shard_classes_above=8"
    rm -f "$D/np2_low.dump"
    # shellcheck disable=SC2086
    UFO_TEST_PFC_DUMP="$D/np2_low.dump" UFO_TEST_HOST_AS_DEVICE_COMM=1 OMPI_ALLOW_RUN_AS_ROOT=1 \
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -x UFO_TEST_PFC_DUMP -x UFO_TEST_HOST_AS_DEVICE_COMM -x OMP_NUM_THREADS \
        -np 2 --oversubscribe "$B/ufo_emu" train --quiet --config recipes/demo.ini --out "$D/np2_low" --device cuda \
        $TINY $LOW
    awk -F'|' '{ n = split($2, k, " "); lo = 0; for (i = 1; i <= n; i++) lo += k[i] < 5; if (lo == 0 || lo == n) e++ }
        END { exit !(e > 0) }' "$D/np2_low.dump" ||
        { echo "cuda_emu_check: FAIL: np=2 low rate: no step with an empty shard"; exit 1; }
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_low_cpu" --device cpu $TINY $LOW
    same_losses "$D/np2_low/log.csv" "$D/np2_low_cpu/log.csv" 1e-4
    same_checkpoints "$D/np2_low/last.safetensors" "$D/np2_low_cpu/last.safetensors" 1e-3 classifier.
    # shellcheck disable=SC2086
    mpi2 train --quiet --config recipes/demo.ini --out "$D/np2_low_resumed" --device cuda --stop-after 2 $TINY $LOW
    mpi2 train --quiet --resume "$D/np2_low_resumed/last.safetensors" --device cuda
    cmp "$D/np2_low/model.safetensors" "$D/np2_low_resumed/model.safetensors"
    echo "cuda_emu_check: np=2 sharded + sampled heads on the device (a shard keeping no class in some steps): stop after 2 + resume == 4 straight"
    # ZeRO stage 1 on the device buffers: same losses and model as np=2 without it.
    # shellcheck disable=SC2086
    mpi2 train --config recipes/demo.ini --out "$D/zero2" --device cuda $TINY run.zero=1 \
        2>"$D/zero2.err" || { cat "$D/zero2.err"; exit 1; }
    grep -q "ZeRO stage 1" "$D/zero2.err" || { echo "cuda_emu_check: ZeRO did not run"; cat "$D/zero2.err"; exit 1; }
    same_losses "$D/zero2/log.csv" "$D/np2/log.csv" 1e-5
    same_checkpoints "$D/zero2/last.safetensors" "$D/np2/last.safetensors" 1e-5
else
    echo "cuda_emu_check: no MPI in $B: data parallel skipped"
fi

# --- the kNN metrics' similarity screen through the GPU interface (model/screen_cuda.c) ---
# test_cuda_knn (every screened value within the fp32 bound, metrics == the CPU
# screen's on near-tie data), then `ufo eval --device cuda` with the screen
# forced on and off: the same JSON, and the log says where it ran.
# shellcheck disable=SC2086
cc $FLAGS tests/cuda/test_cuda_knn.c $LIBS $MPIL -o "$B/test_cuda_knn"
"$B/test_cuda_knn"
for m in always never; do
    UFO_METRICS_GPU=$m "$B/ufo_emu" eval --model "$D/gpu/model.safetensors" --data "$D/data" --device cuda \
        --datasets Market1501,VeRi,SOP --json "$D/eval_$m.json" >/dev/null 2>"$D/eval_$m.log"
done
if [ "$(grep -c 'kNN screen on the GPU' "$D/eval_always.log")" != 3 ] || grep -q 'kNN screen' "$D/eval_never.log"; then
    echo "cuda_emu_check: FAIL: eval's log does not say the kNN screen ran on the GPU for 3 sets (and only then)"
    exit 1
fi
cmp "$D/eval_always.json" "$D/eval_never.json"
if UFO_METRICS_GPU=sometimes "$B/ufo_emu" eval --model "$D/gpu/model.safetensors" --data "$D/data" --device cuda \
    --datasets SOP >/dev/null 2>"$D/eval_bad.log" || [ "$(wc -l <"$D/eval_bad.log")" != 1 ] ||
    ! grep -q "UFO_METRICS_GPU must be" "$D/eval_bad.log"; then
    echo "cuda_emu_check: FAIL: UFO_METRICS_GPU=sometimes is not refused with one line"
    exit 1
fi
echo "cuda_emu_check: eval --device cuda: kNN screen on the GPU == on the CPU (Market1501, VeRi, SOP: same JSON)"
# `ufo search --device cuda` through the same screen, on a crowd of near-identical rows
# (exact top-k items that an fp32 ranking puts below its k-th): the same neighbours and
# scores with the screen on the "GPU" and on the CPU, and the summary says where it ran.
/usr/bin/python3 -c "
import numpy as np
r = np.random.default_rng(1)
v = r.standard_normal(64).astype(np.float32)
crowd = (v + r.integers(-3, 4, (300, 64)) * np.spacing(v)).astype(np.float32)
np.save('$D/search_g.npy', np.concatenate([crowd, r.standard_normal((200, 64)).astype(np.float32)]))
np.save('$D/search_q.npy', np.concatenate([v[None], crowd[:20]]))"
for m in always never; do
    UFO_METRICS_GPU=$m "$B/ufo_emu" search --device cuda --gallery "$D/search_g.npy" --query "$D/search_q.npy" \
        --k 7 --indices "$D/search_i_$m.npy" --scores "$D/search_s_$m.npy" 2>"$D/search_$m.log"
done
if ! grep -q 'screen on the GPU' "$D/search_always.log" || ! grep -q 'screen on the CPU' "$D/search_never.log"; then
    echo "cuda_emu_check: FAIL: ufo search's summary does not say where its screen ran"
    exit 1
fi
cmp "$D/search_i_always.npy" "$D/search_i_never.npy"
cmp "$D/search_s_always.npy" "$D/search_s_never.npy"
echo "cuda_emu_check: search --device cuda: the screen on the GPU == on the CPU (same neighbours and scores)"
# The benchmark commands tools/gpu_check.sh times on a GPU (inference and --train, GEMM and flash
# attention: the tiny preset has head dim 64), at a tiny size: each runs and prints the JSON it parses,
# naming the attention kernel that ran.
for att in gemm flash; do
    for tr in "" --train; do
        # shellcheck disable=SC2086
        UFO_CUDA_ATTENTION=$att "$B/ufo_emu" bench --device cuda $tr --preset tiny --img-size 32 --patch 8 --batch 4 \
            --iters 1 --precision bf16 --json >"$B/bench_$att.log" 2>&1 &&
            grep -q '"images_per_s": [0-9.]*' "$B/bench_$att.log" &&
            grep -q "\"attention\": \"cuda $att\"" "$B/bench_$att.log" || { cat "$B/bench_$att.log"; exit 1; }
    done
done
# shellcheck disable=SC2086
# --depth (gpu_check.sh's profile of a 2-block step): the model has that many blocks.
"$B/ufo_emu" bench --device cuda --train --preset tiny --depth 2 --img-size 32 --patch 8 --batch 4 --iters 1 \
    --precision bf16 --json >"$B/bench_depth.log" 2>&1 && grep -q '"depth": 2,' "$B/bench_depth.log" ||
    { cat "$B/bench_depth.log"; exit 1; }
# shellcheck disable=SC2086
cc $FLAGS bench/bench_cuda_attention.c $LIBS $MPIL -o "$B/bench_cuda_attention"
"$B/bench_cuda_attention" 1 70 2 64 1 >"$B/bench_attention.log" 2>&1 &&
    grep -q '"gemm_bwd_tflops": [0-9.]*' "$B/bench_attention.log" || { cat "$B/bench_attention.log"; exit 1; }
echo "cuda_emu_check: ufo bench --device cuda (and --train), GEMM and flash attention, and bench_cuda_attention: run and print their JSON"
echo "cuda_emu_check: all passed"
