#!/usr/bin/env bash
# make bench: ufo against PyTorch on this machine, in the same run, as ratios.
#   ViT-L/16 at 384, batch 8, fp32 and bf16, inference; then peak memory of
#   `ufo embed` at batch 1 on a real ViT-L file.
# Environment: BENCH_PRESET, BENCH_IMG, BENCH_BATCH, BENCH_ITERS, BENCH_THREADS.
set -euo pipefail
UFO=${1:-build/ufo}
cd "$(dirname "$0")/.."
PRESET=${BENCH_PRESET:-large}; IMG=${BENCH_IMG:-384}; BATCH=${BENCH_BATCH:-8}
ITERS=${BENCH_ITERS:-2}; THREADS=${BENCH_THREADS:-$(nproc)}
PY=/usr/bin/python3
field() { $PY -c "import json,sys; print('%.4f' % json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "== inference: ViT-$PRESET/16 at $IMG, batch $BATCH, $THREADS threads, $ITERS timed iterations =="
printf "%-6s %14s %14s %14s %10s\n" precision "ufo s/img" "torch s/img" "ufo/torch" "ufo path"
for prec in fp32 bf16; do
  u=$("$UFO" bench --preset "$PRESET" --img-size "$IMG" --batch "$BATCH" --iters "$ITERS" \
        --threads "$THREADS" --precision "$prec" --json)
  t=$(OMP_NUM_THREADS=$THREADS $PY bench/bench_torch.py --preset "$PRESET" --img-size "$IMG" \
        --batch "$BATCH" --iters "$ITERS" --threads "$THREADS" --precision "$prec")
  us=$(field "$u" s_per_image); ts=$(field "$t" s_per_image)
  isa=$($PY -c "import json,sys; print(json.loads(sys.argv[1])['isa'])" "$u")
  printf "%-9s %14s %14s %13.2fx %10s\n" "$prec" "$us" "$ts" "$($PY -c "print($ts/$us)")" "$isa"
done
echo "(ufo/torch > 1 means ufo is faster; torch = Debian python3-torch $($PY -c 'import torch; print(torch.__version__)'))"

echo
echo "== memory: ufo embed, ViT-$PRESET/16 at $IMG, batch 1, from a model file =="
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$UFO" init --preset "$PRESET" --img-size "$IMG" --out "$tmp/m.safetensors" 2>/dev/null
$PY -c "from PIL import Image; Image.new('RGB', (300, 200), (120, 60, 30)).save('$tmp/x.jpg')"
for prec in fp32 bf16; do
  /usr/bin/time -f "%M" -o "$tmp/rss" "$UFO" embed --model "$tmp/m.safetensors" --task vehicle --batch 1 \
     --precision "$prec" --out "$tmp/f.npy" --quiet "$tmp/x.jpg"
  echo "$prec: peak resident memory $(( $(cat "$tmp/rss") / 1024 )) MB (model file $(( $(stat -c %s "$tmp/m.safetensors") / 1048576 )) MB)"
done

echo
echo "== metrics at full benchmark scale (synthetic 1024-d features) vs numpy =="
bash bench/bench_metrics.sh "$(dirname "$UFO")"
