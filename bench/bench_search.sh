#!/usr/bin/env bash
# `ufo search` beside the numpy recipe people write instead of faiss (normalise,
# fp32 matmul in blocks of queries, argpartition, sort the k), same features,
# same run, both timed from loading the .npy files to holding the k lists.
#   bench/bench_search.sh [UFO]     (default build/ufo)
# Environment: BENCH_SEARCH="GALLERY QUERIES DIM K" (default "100000 2000 512 10").
set -euo pipefail
UFO=${1:-build/ufo}
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
read -r NG NQ DIM K <<<"${BENCH_SEARCH:-100000 2000 512 10}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$PY -c "
import numpy as np
r = np.random.default_rng(0)
np.save('$tmp/g.npy', r.standard_normal(($NG, $DIM)).astype(np.float32))
np.save('$tmp/q.npy', r.standard_normal(($NQ, $DIM)).astype(np.float32))"
t0=$(date +%s.%N)
"$UFO" search --quiet --gallery "$tmp/g.npy" --query "$tmp/q.npy" --k "$K" --indices "$tmp/ufo.npy"
t1=$(date +%s.%N)
$PY - "$tmp" "$K" <<'PYEOF'
import sys, time
import numpy as np
tmp, k = sys.argv[1], int(sys.argv[2])
t = time.time()
g, q = np.load(tmp + "/g.npy"), np.load(tmp + "/q.npy")
g = g / np.linalg.norm(g, axis=1, keepdims=True)
q = q / np.linalg.norm(q, axis=1, keepdims=True)
out = []
for i in range(0, len(q), 256):
    s = q[i:i + 256] @ g.T
    p = np.argpartition(-s, k, axis=1)[:, :k]
    o = np.take_along_axis(s, p, 1)
    out.append(np.take_along_axis(p, np.argsort(-o, axis=1, kind="stable"), 1))
idx = np.concatenate(out)
np.save(tmp + "/numpy_s.npy", np.array([time.time() - t]))
np.save(tmp + "/numpy.npy", idx)
PYEOF
$PY - "$tmp" "$t0" "$t1" "$NG" "$NQ" "$DIM" "$K" <<'PYEOF'
import sys
import numpy as np
tmp, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
ng, nq, d, k = sys.argv[4:8]
us, ns = t1 - t0, float(np.load(tmp + "/numpy_s.npy")[0])
same = (np.load(tmp + "/ufo.npy") == np.load(tmp + "/numpy.npy")).all(axis=1).mean()
print(f"== search: {nq} queries x {ng} gallery rows, d {d}, k {k} (random features) ==")
print(f"ufo search {us:.2f} s (exact), numpy fp32 {ns:.2f} s: {ns / us:.1f}x; identical lists {100 * same:.2f}%")
PYEOF
