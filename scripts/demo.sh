#!/usr/bin/env bash
# `make run`: an end-to-end self-check of the inference path on real photos
# that Debian ships (a face, a building, a flower). Until training lands the
# model is freshly initialised, so the embeddings show the pipeline works and
# how fast it is, not what a trained model would say about the photos.
set -euo pipefail
UFO=${1:-build/ufo}
OUT=runs/demo
mkdir -p "$OUT"
FACE=/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg
SK=/usr/lib/python3/dist-packages/sklearn/datasets/images
IMAGES=("$FACE" "$SK/china.jpg" "$SK/flower.jpg")
for f in "${IMAGES[@]}"; do [ -f "$f" ] || { echo "demo: missing $f (run scripts/install-deps.sh)"; exit 1; }; done

echo "== 1. a small AllInOne model: ViT-S/16 at 224, four task heads =="
"$UFO" init --preset small --img-size 224 --seed 0 --out "$OUT/model.safetensors"
"$UFO" info "$OUT/model.safetensors"

echo
echo "== 2. preprocessing: the exact tensor the model sees (Pillow-exact bicubic) =="
"$UFO" preprocess --size 224 "$FACE" --out "$OUT/face_input.npy"

echo
echo "== 3. embeddings: every head, fp32 and bf16 =="
for task in face person vehicle product backbone; do
  for prec in fp32 bf16; do
    "$UFO" embed --model "$OUT/model.safetensors" --task "$task" --precision "$prec" \
      --out "$OUT/${task}_${prec}.npy" --quiet "${IMAGES[@]}"
    printf "  %-9s %-5s -> %s\n" "$task" "$prec" "$OUT/${task}_${prec}.npy"
  done
done

echo
echo "== 4. speed of this model on this machine =="
"$UFO" bench --preset small --img-size 224 --batch 8 --iters 3 --precision fp32
"$UFO" bench --preset small --img-size 224 --batch 8 --iters 3 --precision bf16
echo
echo "demo: done; outputs in $OUT/ (float32 .npy, load with numpy.load)"
