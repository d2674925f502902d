#!/usr/bin/python3
"""`ufo search` against numpy and scikit-learn.

The oracle is written here from the documented contract (src/eval/search.h):
rows L2-normalised in float64 and rounded to float32, similarities the float64
inner products of those, neighbours ranked by similarity with ties to the
smaller gallery row. numpy computes the whole float64 similarity matrix and a
lexsort, which ufo must reproduce exactly (indices equal, scores equal to the
float64 similarity rounded to float32) on:
  - random features (gallery 3000 x 48, 257 queries, k = 1, 10, 100);
  - a gallery built to defeat an fp32 ranking: exact duplicate rows (ties by
    index) and rows a few float32 ulps apart, queried by copies of its rows;
  - the self-search (no --query: each item's own row left out);
  - blocks of 7 query rows (UFO_METRICS_BLOCK) and float64 input.
scikit-learn's brute-force cosine NearestNeighbors is the independent peer on
the random set: every neighbour ufo returns must be at most sklearn's k-th
distance (+1e-6), i.e. ufo's lists are true k nearest neighbours.
The CSV must list the same neighbours, with paths (quoted when they hold a
comma). Errors: k larger than the gallery, mismatched dimensions, a
truncated .npy, a 3-D array, a paths list of the wrong length must each exit
non-zero with one line and leave no output; --query-paths without --query is
a usage error.
Prints "search_numpy: N passed, M failed"; exits 1 on any failure.

Env: UFO_BIN (the CLI). Run with /usr/bin/python3 (numpy, scikit-learn).
"""
import csv
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from oracle_util import Checks, ufo  # noqa: E402


def normalise32(x):
    x = np.asarray(x, dtype=np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def oracle(q, g, k, self_search):
    qn, gn = normalise32(q).astype(np.float64), normalise32(g).astype(np.float64)
    S = qn @ gn.T
    if self_search:
        np.fill_diagonal(S, -np.inf)
    idx = np.empty((len(q), k), dtype=np.int64)
    for i in range(len(q)):
        order = np.lexsort((np.arange(len(g)), -S[i]))   # by -similarity, then index
        idx[i] = order[:k]
    return idx, np.take_along_axis(S, idx, 1).astype(np.float32)


def main():
    c = Checks("search_numpy")
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        P = lambda name: os.path.join(tmp, name)   # noqa: E731

        def search(*args, env=None, check=True):
            if env:
                os.environ.update(env)
            try:
                return ufo("search", "--quiet", *args, check=check)
            finally:
                for key in env or {}:
                    del os.environ[key]

        def compare(what, q, g, k, args, self_search=False, env=None):
            search(*args, "--k", k, "--indices", P("i.npy"), "--scores", P("s.npy"), env=env)
            want_i, want_s = oracle(q, g, k, self_search)
            got_i, got_s = np.load(P("i.npy")), np.load(P("s.npy"))
            c.check(got_i.dtype == np.int64 and got_s.dtype == np.float32 and got_i.shape == (len(q), k),
                    f"{what}: int64 / float32 [{len(q)}, {k}] ({got_i.dtype}, {got_s.dtype}, {got_i.shape})")
            bad = int((got_i != want_i).any(axis=1).sum())
            c.check(bad == 0, f"{what}: indices equal numpy's float64 ranking ({bad} queries differ)")
            c.check(np.array_equal(got_s, want_s), f"{what}: scores equal the float64 similarities rounded "
                    f"(max diff {np.abs(got_s.astype(np.float64) - want_s).max():.3g})")
            return got_i

        # Random features.
        g = rng.standard_normal((3000, 48)).astype(np.float32)
        q = rng.standard_normal((257, 48)).astype(np.float32)
        np.save(P("g.npy"), g)
        np.save(P("q.npy"), q)
        for k in (1, 10, 100):
            got = compare(f"random k={k}", q, g, k, ["--gallery", P("g.npy"), "--query", P("q.npy")])
        # sklearn's brute-force cosine kNN as the independent peer (k = 100).
        from sklearn.neighbors import NearestNeighbors
        nn = NearestNeighbors(n_neighbors=100, metric="cosine", algorithm="brute").fit(g.astype(np.float64))
        dist, _ = nn.kneighbors(q.astype(np.float64))
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        ours = 1.0 - np.einsum("id,ikd->ik", qn.astype(np.float64), gn[got].astype(np.float64))
        c.check(bool((ours <= dist[:, -1:] + 1e-6).all()),
                f"sklearn: every neighbour within its k-th distance (worst excess "
                f"{float((ours - dist[:, -1:]).max()):.3g})")

        # Ties and near-ties: duplicates and rows a few ulps apart.
        base = rng.standard_normal((40, 32)).astype(np.float32)
        rows = [base]
        rows.append(base[:10].copy())                                        # exact duplicates
        for ulps in (1, 2, 3):
            near = base[10:20].copy()
            near[:, 0] = np.nextafter(near[:, 0], np.float32(np.inf), dtype=np.float32)
            for _ in range(ulps - 1):
                near[:, 0] = np.nextafter(near[:, 0], np.float32(np.inf), dtype=np.float32)
            rows.append(near)
        gt = np.concatenate(rows)
        perm = rng.permutation(len(gt))
        gt = gt[perm]
        qt = np.concatenate([base[:25], -base[:5]])
        np.save(P("gt.npy"), gt)
        np.save(P("qt.npy"), qt)
        compare("ties", qt, gt, 6, ["--gallery", P("gt.npy"), "--query", P("qt.npy")])
        qn32, gn32 = normalise32(qt), normalise32(gt)
        s32 = qn32 @ gn32.T   # what an fp32-only ranking would see
        c.check(bool((np.sort(s32, axis=1)[:, -2] == np.sort(s32, axis=1)[:, -1]).any()),
                "the tie set has top pairs an fp32 screen cannot order")

        # A crowd: 400 copies of one vector, each component moved by 0-3 float32 ulps, so
        # the exact similarities to it differ below the fp32 screen's error; the exact top
        # 5 then holds items the screen ranks below its own 5th (the reason ufo refines
        # every item screened within 2 eps of the k-th, not just those at or above it).
        v = rng.standard_normal(64).astype(np.float32)
        crowd = np.repeat(v[None], 400, axis=0)
        steps = rng.integers(-3, 4, size=crowd.shape)
        for s_ in (1, 2, 3):
            up, down = steps >= s_, steps <= -s_
            crowd[up] = np.nextafter(crowd[up], np.float32(np.inf), dtype=np.float32)
            crowd[down] = np.nextafter(crowd[down], np.float32(-np.inf), dtype=np.float32)
        gc = np.concatenate([crowd, rng.standard_normal((100, 64)).astype(np.float32)])
        qc_ = np.stack([v] + [crowd[i] for i in range(0, 40, 4)])
        np.save(P("gcrowd.npy"), gc)
        np.save(P("qcrowd.npy"), qc_)
        compare("crowd", qc_, gc, 5, ["--gallery", P("gcrowd.npy"), "--query", P("qcrowd.npy")])
        want_i, _ = oracle(qc_, gc, 5, False)
        S32 = normalise32(qc_) @ normalise32(gc).T   # one fp32 ranking (numpy's summation order)
        kth32 = np.sort(S32, axis=1)[:, -5:-4]
        below = int((np.take_along_axis(S32, want_i, 1) < kth32).sum())
        c.check(below > 0, f"crowd: {below} exact top-5 neighbours rank below an fp32 screen's 5th")

        # Self-search, blocks of 7 rows, float64 input.
        np.save(P("g500.npy"), g[:500])
        compare("self-search", g[:500], g[:500], 5, ["--gallery", P("g500.npy")], self_search=True)
        compare("blocks of 7", q, g, 10, ["--gallery", P("g.npy"), "--query", P("q.npy")],
                env={"UFO_METRICS_BLOCK": "7"})
        np.save(P("g64.npy"), g.astype(np.float64))
        np.save(P("q64.npy"), q.astype(np.float64))
        compare("float64 input", q, g, 10, ["--gallery", P("g64.npy"), "--query", P("q64.npy")])

        # CSV with paths.
        gpaths = [f"gal/{i:05d}.jpg" for i in range(len(g))]
        gpaths[3] = "gal/with,comma.jpg"
        qpaths = [f"q/{i}.png" for i in range(len(q))]
        open(P("g.txt"), "w").write("\n".join(gpaths) + "\n")
        open(P("q.txt"), "w").write("\n".join(qpaths))   # no final newline
        qc = q.copy()
        qc[0] = 2 * g[3]   # so that the comma path is query 0's first neighbour
        np.save(P("qc.npy"), qc)
        search("--gallery", P("g.npy"), "--query", P("qc.npy"), "--k", 4, "--csv", P("r.csv"),
               "--gallery-paths", P("g.txt"), "--query-paths", P("q.txt"), "--indices", P("i.npy"))
        rows_csv = list(csv.DictReader(open(P("r.csv"), newline="")))
        idx = np.load(P("i.npy"))
        ok = len(rows_csv) == len(q) * 4 and all(
            int(r["query"]) == n // 4 and int(r["rank"]) == n % 4 + 1 and int(r["gallery"]) == idx[n // 4, n % 4]
            and r["gallery_path"] == gpaths[int(r["gallery"])] and r["query_path"] == qpaths[int(r["query"])]
            for n, r in enumerate(rows_csv))
        c.check(ok, "CSV: one row per neighbour, same indices, paths (a comma quoted)")
        c.check(rows_csv[0]["gallery_path"] == "gal/with,comma.jpg" and float(rows_csv[0]["score"]) == 1.0,
                f"CSV: the comma path reads back as query 0's first neighbour ({rows_csv[0]})")

        # Errors: one line, non-zero, no output.
        outs = [P("e.npy"), P("e.csv")]

        def refuses(what, args, says, code=None):
            r = search(*args, "--indices", outs[0], "--csv", outs[1], check=False)
            err = r.stderr.strip().splitlines()
            ok = r.returncode != 0 and len(err) == 1 and says in err[0] and (code is None or r.returncode == code)
            c.check(ok and not any(os.path.exists(o) for o in outs), f"{what}: {r.returncode} {err}")

        refuses("k larger than the gallery", ["--gallery", P("g500.npy"), "--query", P("q.npy"), "--k", 501],
                "k = 501, but the gallery has 500 rows")
        refuses("self-search k = gallery rows", ["--gallery", P("g500.npy"), "--k", 500], "own row is left out")
        np.save(P("d32.npy"), q[:, :32])
        refuses("mismatched dimensions", ["--gallery", P("g.npy"), "--query", P("d32.npy")], "32-dimensional")
        data = open(P("g.npy"), "rb").read()
        open(P("trunc.npy"), "wb").write(data[: len(data) // 2])
        refuses("truncated .npy", ["--gallery", P("trunc.npy"), "--query", P("q.npy")], "trunc.npy")
        np.save(P("3d.npy"), g.reshape(3000, 6, 8))
        refuses("3-D array", ["--gallery", P("3d.npy")], "[N, D]")
        open(P("short.txt"), "w").write("a.jpg\nb.jpg\n")
        refuses("paths list of the wrong length", ["--gallery", P("g.npy"), "--gallery-paths", P("short.txt")],
                "2 lines, but the gallery has 3000 rows")
        refuses("--csv with gallery paths alone", ["--gallery", P("g.npy"), "--query", P("q.npy"), "--gallery-paths",
                                                   P("g.txt")], "--query-paths too")
        refuses("--query-paths without --query", ["--gallery", P("g.npy"), "--query-paths", P("q.txt")], "goes with",
                code=2)
        c.check(not [x for x in os.listdir(tmp) if ".tmp." in x], "no temp file left")
    c.finish()


if __name__ == "__main__":
    main()
