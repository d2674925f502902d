#!/usr/bin/env bash
# `make run`: the AllInOne method end to end at toy scale, on 2 CPU cores in a
# few minutes: demo data in the benchmark layouts (Fashion-MNIST as an open-set
# product task, synthetic face/person/vehicle identities), the untrained
# model's table, then one small ViT trained on all four tasks at once
# (recipes/demo.ini) and its table.
set -euo pipefail
UFO=${1:-build/ufo}
OUT=runs/demo
DATA=$OUT/data
if [ ! -f "$DATA/manifest.json" ]; then
  echo "== 1. demo data: $DATA (Fashion-MNIST product images; synthetic face, person, vehicle identities) =="
  /usr/bin/python3 tools/make_demo_data.py "$DATA"
else
  echo "== 1. demo data: $DATA (already there) =="
fi
SETS=LFW,AgeDB_30,Market1501,VeRi,SOP

echo
echo "== 2. before training: a freshly initialised model of the demo's size =="
"$UFO" init --preset small --dim 128 --depth 4 --num-heads 2 --img-size 32 --patch 8 --seed 0 \
  --out "$OUT/init.safetensors" 2>/dev/null
"$UFO" eval --model "$OUT/init.safetensors" --data "$DATA" --datasets "$SETS" --head Market1501=person --quiet \
  | grep '^|'

echo
echo "== 3. training: one ViT, four tasks in every batch (recipes/demo.ini) =="
rm -rf "$OUT/run"
"$UFO" train --config recipes/demo.ini --out "$OUT/run" data.root="$DATA"

echo
echo "demo: done. $OUT/run holds model.safetensors, log.csv, loss.png, eval.json; try"
echo "  $UFO embed --model $OUT/run/model.safetensors --task product --out f.npy --paths-out f.txt $DATA/Stanford_Online_Products"
echo "  $UFO search --gallery f.npy --gallery-paths f.txt --k 5 --csv neighbours.csv    # each image's 5 nearest others"
