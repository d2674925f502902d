#!/usr/bin/env bash
# Metric time at full benchmark scale on synthetic 1024-d features, ufo
# (bench_metrics, C) beside the numpy reference (bench_metrics.py) in the same
# run, and ufo's peak resident memory (features included).
#   bench/bench_metrics.sh [BUILD_DIR]      (default build)
# Environment: BENCH_SCALE (1.0), BENCH_SUBSET (numpy queries timed, 200),
#              BENCH_SETS ("veriwild msmt17 sop"), OMP_NUM_THREADS.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
SCALE=${BENCH_SCALE:-1.0}; SUBSET=${BENCH_SUBSET:-200}; SETS=${BENCH_SETS:-veriwild msmt17 sop}
BIN=$BUILD/bench_metrics
[ -x "$BIN" ] || { echo "missing $BIN: cmake --build $BUILD --target bench_metrics" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
get() { $PY -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "== metrics: synthetic 1024-d features, scale $SCALE, $(nproc) cores, OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset} =="
printf "%-9s %-24s %9s %10s %9s %10s  %s\n" dataset size "ufo s" "numpy s" ratio "ufo RSS" "numpy matmul s / rank s (extrapolated from $SUBSET queries)"
for d in $SETS; do
  /usr/bin/time -f "%M" -o "$tmp/rss" "$BIN" --scale "$SCALE" "$d" > "$tmp/u.json"
  u=$(cat "$tmp/u.json"); rss=$(( $(tail -1 "$tmp/rss") / 1024 ))
  n=$($PY bench/bench_metrics.py --scale "$SCALE" --subset "$SUBSET" "$d")
  us=$(get "$u" metric_s); ns=$(get "$n" numpy_s)
  if [ "$d" = sop ]; then size="$(get "$u" n) leave-one-out"; else size="$(get "$u" num_query) x $(get "$u" num_gallery)"; fi
  printf "%-9s %-24s %9.2f %10.1f %8.1fx %7d MB  %s / %s\n" "$d" "$size" "$us" "$ns" \
    "$($PY -c "print($ns / $us)")" "$rss" "$(get "$n" matmul_s)" "$(get "$n" rank_s)"
  echo "  ufo:   $u"
  echo "  numpy: $n"
done
echo "(ratio = numpy / ufo. numpy's matmul runs at the GFLOPS its linked BLAS gives (see matmul_gflops above);"
echo " ufo RSS includes the synthetic features it generated; metric time excludes their generation)"
