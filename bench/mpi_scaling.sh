#!/usr/bin/env bash
# Data-parallel scaling of `ufo train` on this machine: the demo recipe
# (recipes/demo.ini: ViT dim 128, depth 4, 32x32, 120 images per step over
# four tasks) for STEPS steps, as
#   1 process x 2 OpenMP threads (default and OMP_WAIT_POLICY=passive: on a
#   loaded machine spinning OpenMP barriers collapse), 1 process x 1 thread,
#   2 processes x 1 thread (mpirun),
# printing images/s and the communication share of the step (time inside
# collectives / wall time; for 2 processes it includes waiting for the slower
# rank). Markdown table rows for docs/performance.md.
# Usage: bench/mpi_scaling.sh [build/ufo]   Environment: STEPS (30), DATA (a demo
# data root; default: generated at scale 0.2 into a temp folder), EXTRA (more
# recipe overrides, e.g. "model.dim=384 model.depth=12 model.num_heads=6": a
# ViT-S-sized model, 21M parameters, whose gradient all-reduce is 85 MB a step).
set -euo pipefail
UFO=$(realpath "${1:-build/ufo}")
cd "$(dirname "$0")/.."
STEPS=${STEPS:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
DATA=${DATA:-}
if [ -z "$DATA" ]; then
  DATA=$tmp/data
  /usr/bin/python3 tools/make_demo_data.py "$DATA" --scale 0.2 --jobs 2 > /dev/null
fi
ARGS=(--config recipes/demo.ini data.root="$DATA" optim.steps="$STEPS" run.log_every=0
      run.checkpoint_every=0 run.eval_datasets= data.workers=1)
# shellcheck disable=SC2206
ARGS+=(${EXTRA:-})

# row LABEL NP THREADS
row() {
  local label=$1 np=$2 th=$3 line
  if [ "$np" = 1 ]; then   # log_every = 0: log.csv's one row has the whole run's images/s
    OMP_NUM_THREADS=$th "$UFO" train "${ARGS[@]}" --out "$tmp/r$np$th" --quiet
    line="train: 1 process, $(tail -1 "$tmp/r$np$th/log.csv" | awk -F, '{print $(NF-2)}') img/s, communication 0%"
  else
    line=$(OMP_NUM_THREADS=$th mpirun -np "$np" --oversubscribe "$UFO" train "${ARGS[@]}" --out "$tmp/r$np$th" 2>&1 |
           grep -E '^train: [0-9]+ processes, ')
  fi
  # "train: N processes, S steps, X img/s, communication Y% of the step time"
  local ips comm
  ips=$(sed -E 's/.* ([0-9.]+) img\/s.*/\1/' <<< "$line")
  comm=$(sed -E 's/.*communication ([0-9.]+)%.*/\1/' <<< "$line")
  printf "| %-30s | %9s | %13s |\n" "$label" "$ips" "$comm %"
}

echo "== ufo train, demo recipe${EXTRA:+ + $EXTRA}, $STEPS steps, $(nproc) cores ($(date -u +%F)) =="
printf "| %-30s | %9s | %13s |\n" "processes x threads" "images/s" "communication"
printf "|%s|%s|%s|\n" "--------------------------------" "-----------" "---------------"
row "1 x 2 (one process)" 1 2
OMP_WAIT_POLICY=passive row "1 x 2, OMP_WAIT_POLICY=passive" 1 2
row "1 x 1" 1 1
row "2 x 1 (mpirun -np 2)" 2 1
