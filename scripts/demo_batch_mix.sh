#!/usr/bin/env bash
# The seed's batch-composition experiment at demo scale, over several seeds:
# recipes/demo.ini with heterogeneous batches (every batch holds all four tasks)
# and with homogeneous ones (one task per batch), each for seeds 0..N-1, every
# run scored by `ufo train`'s final evaluation. Prints one row per run and the
# mean +- sample standard deviation per batch mix, as Markdown.
#   bash scripts/demo_batch_mix.sh [UFO] [SEEDS]     (default build/ufo, 3)
# Needs the demo data (`make run` writes it); about 75 s per run on 2 cores.
set -euo pipefail
UFO=${1:-build/ufo}
SEEDS=${2:-3}
DATA=runs/demo/data
OUT=runs/batch_mix
if [ ! -f "$DATA/manifest.json" ]; then
  echo "demo_batch_mix: no demo data in $DATA (run 'make run' first)" >&2
  exit 1
fi
mkdir -p "$OUT"
for ((seed = 0; seed < SEEDS; seed++)); do
  for mix in heterogeneous homogeneous; do
    dir=$OUT/$mix-$seed
    if [ ! -f "$dir/eval.json" ]; then
      echo "== $mix, seed $seed ==" >&2
      rm -rf "$dir"
      "$UFO" train --config recipes/demo.ini --out "$dir" data.root="$DATA" data.batch_mix="$mix" \
        run.seed="$seed" > "$dir.log" 2>&1 || { echo "demo_batch_mix: training failed, see $dir.log" >&2; exit 1; }
    fi
  done
done
/usr/bin/python3 - "$OUT" "$SEEDS" <<'EOF'
import json, statistics, sys
out, seeds = sys.argv[1], int(sys.argv[2])
cols = [("LFW", "accuracy"), ("AgeDB_30", "accuracy"), ("Market1501", "rank1"), ("Market1501", "mAP"),
        ("VeRi", "rank1"), ("VeRi", "mAP"), ("SOP", "recall@1")]
print("| batches | seed | LFW | AgeDB-30 | Market1501 R1 | mAP | VeRi R1 | mAP | SOP R@1 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
summary = {}
for mix in ("heterogeneous", "homogeneous"):
    rows = []
    for seed in range(seeds):
        e = json.load(open(f"{out}/{mix}-{seed}/eval.json"))
        rows.append([float(e[d][k]) for d, k in cols])
        print(f"| {mix} | {seed} | " + " | ".join(f"{v:.2f}" for v in rows[-1]) + " |")
    summary[mix] = rows
for mix, rows in summary.items():
    cells = []
    for c in range(len(cols)):
        v = [r[c] for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        cells.append(f"{statistics.mean(v):.1f} +- {sd:.1f}")
    print(f"| **{mix}, mean +- sd** | {seeds} seeds | " + " | ".join(cells) + " |")
EOF
