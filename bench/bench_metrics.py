"""The numpy reference of bench/bench_metrics.c: the same metrics at the same
scale, computed the realistic numpy way (fast-reid's evaluate_rank style):
features normalised in float32, distances by a float32 matrix product in
blocks of queries, a full np.argsort per block, then fast-reid's per-query
loop; SOP the same way with each row's self removed by index.

Numpy's matrix product here is whatever BLAS numpy links (Debian: the
reference BLAS, single-threaded), so the full run would take hours: only the
first --subset queries are timed, and the per-query time is extrapolated
linearly to all queries (normalisation of every feature is timed in full).
The output says so and gives the matmul and ranking parts separately.

  /usr/bin/python3 bench/bench_metrics.py [--subset N] [--scale F] [--sigma S] DATASET...
Prints one JSON line per dataset.
"""
import argparse
import json
import time

import numpy as np

RANK = 32
SETS = {  # name: (queries, gallery, identities, cameras); sop: (n, classes)
    "veriwild": (10000, 128517, 10000, 174),
    "msmt17": (11659, 82161, 3060, 15),
    "sop": (60502, 11316),
}


def centres(rng, nid, dim):
    z = rng.standard_normal((nid, RANK), dtype=np.float32)
    a = rng.standard_normal((RANK, dim), dtype=np.float32)
    return (z @ a) / np.float32(np.sqrt(RANK))


def rows(rng, cen, ids, sigma, chunk=8192):
    out = np.empty((len(ids), cen.shape[1]), np.float32)
    for i in range(0, len(ids), chunk):
        j = ids[i:i + chunk]
        out[i:i + chunk] = cen[j] + np.float32(sigma) * rng.standard_normal((len(j), cen.shape[1]), dtype=np.float32)
    return out


def normalize_f32(x, chunk=8192):
    """torch.nn.functional.normalize in float32, blockwise."""
    out = np.empty_like(x)
    for i in range(0, len(x), chunk):
        b = x[i:i + chunk]
        out[i:i + chunk] = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), np.float32(1e-12))
    return out


def bench_reid(name, scale, sigma, subset, dim, block=100):
    nq, ng, nid, ncam = SETS[name]
    nq, ng, nid = (max(2, int(v * scale)) for v in (nq, ng, nid))
    rng = np.random.default_rng(12345)
    gp = np.where(np.arange(ng) < nid, np.arange(ng), rng.integers(0, nid, ng))
    qp = np.where(np.arange(nq) < nid, np.arange(nq), rng.integers(0, nid, nq))
    gc, qc = rng.integers(0, ncam, ng), rng.integers(0, ncam, nq)
    cen = centres(rng, nid, dim)
    gf, qf = rows(rng, cen, gp, sigma), rows(rng, cen, qp, sigma)
    del cen
    t0 = time.perf_counter()
    gn, qn = normalize_f32(gf), normalize_f32(qf)
    t_norm = time.perf_counter() - t0
    S = min(subset, nq)
    sub = np.linspace(0, nq - 1, S).astype(np.int64)   # strided: representative queries
    t_mm = t_rank = 0.0
    all_cmc, all_AP, all_INP = [], [], []
    for b0 in range(0, S, block):
        b1 = min(S, b0 + block)
        t0 = time.perf_counter()
        qs = sub[b0:b1]
        distmat = 1 - qn[qs] @ gn.T
        t1 = time.perf_counter()
        indices = np.argsort(distmat, axis=1)
        matches = (gp[indices] == qp[qs, np.newaxis]).astype(np.int32)
        for i in range(b1 - b0):
            q = qs[i]
            order = indices[i]
            keep = np.invert((gp[order] == qp[q]) & (gc[order] == qc[q]))
            raw_cmc = matches[i][keep]
            if not np.any(raw_cmc):
                continue
            cmc = raw_cmc.cumsum()
            pos_idx = np.where(raw_cmc == 1)
            max_pos_idx = np.max(pos_idx)
            all_INP.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
            cmc[cmc > 1] = 1
            all_cmc.append(cmc[:50])
            num_rel = raw_cmc.sum()
            tmp_cmc = raw_cmc.cumsum() / np.arange(1.0, len(raw_cmc) + 1.0)   # vectorised, not fast-reid's list
            all_AP.append((tmp_cmc * raw_cmc).sum() / num_rel)
        t_mm += t1 - t0
        t_rank += time.perf_counter() - t1
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    f = nq / S
    return {"dataset": name, "num_query": nq, "num_gallery": ng, "timed_queries": S, "extrapolated": S < nq,
            "normalize_s": round(t_norm, 3), "matmul_s": round(t_mm * f, 3), "rank_s": round(t_rank * f, 3),
            "numpy_s": round(t_norm + (t_mm + t_rank) * f, 3),
            "matmul_gflops": round(2.0 * S * ng * dim / max(t_mm, 1e-9) / 1e9, 2),
            "subset_rank1": round(float(cmc[0] * 100), 4), "subset_mAP": round(float(np.mean(all_AP) * 100), 4)}


def bench_sop(scale, sigma, subset, dim, block=100):
    n, ncls = (max(2, int(v * scale)) for v in SETS["sop"])
    rng = np.random.default_rng(777)
    lab = np.where(np.arange(n) < 2 * ncls, np.arange(n) // 2, rng.integers(0, ncls, n))
    cen = centres(rng, ncls, dim)
    x = rows(rng, cen, lab, sigma)
    del cen
    t0 = time.perf_counter()
    xn = normalize_f32(x)
    t_norm = time.perf_counter() - t0
    S = min(subset, n)
    sub = np.linspace(0, n - 1, S).astype(np.int64)
    t_mm = t_rank = 0.0
    first = []
    for b0 in range(0, S, block):
        b1 = min(S, b0 + block)
        t0 = time.perf_counter()
        qs = sub[b0:b1]
        sims = xn[qs] @ xn.T
        t1 = time.perf_counter()
        order = np.argsort(-sims, axis=1)
        for i in range(b1 - b0):
            o = order[i][order[i] != qs[i]]
            m = np.nonzero(lab[o] == lab[qs[i]])[0]
            first.append(m[0] if len(m) else -1)
        t_mm += t1 - t0
        t_rank += time.perf_counter() - t1
    first = np.asarray(first)
    f = n / S
    return {"dataset": "sop", "n": n, "timed_queries": S, "extrapolated": S < n,
            "normalize_s": round(t_norm, 3), "matmul_s": round(t_mm * f, 3), "rank_s": round(t_rank * f, 3),
            "numpy_s": round(t_norm + (t_mm + t_rank) * f, 3),
            "matmul_gflops": round(2.0 * S * n * dim / max(t_mm, 1e-9) / 1e9, 2),
            "subset_recall@1": round(float(np.mean((first >= 0) & (first < 1)) * 100), 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", nargs="+", choices=sorted(SETS))
    ap.add_argument("--subset", type=int, default=200, help="queries timed (then extrapolated to all)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--sigma", type=float, default=2.0)
    ap.add_argument("--dim", type=int, default=1024)
    a = ap.parse_args()
    for d in a.datasets:
        r = bench_sop(a.scale, a.sigma, a.subset, a.dim) if d == "sop" else bench_reid(d, a.scale, a.sigma, a.subset, a.dim)
        r["blas"] = "numpy's linked BLAS, timed on a subset and extrapolated linearly" if r["extrapolated"] else "full run"
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
