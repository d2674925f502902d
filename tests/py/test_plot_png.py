"""The PNG line plots (src/report/plot.c), checked pixel by pixel with Pillow.

Runs `$UFO_BUILD/test_plot OUTDIR`, which writes sample plots (CMC curves, a
log-x ROC, loss curves with a NaN gap, y = x / y = x^2 on fixed axes, all 16
series styles) and prints one JSON line per plot: its size, explicit axis
ranges (null: auto), the expected legend corner and every series' points and
colour. For each plot this finds the frame (the long dark lines), maps the data
to pixels with the explicit range or the documented auto rule (drawable data's
range plus 5% margins), and checks that
  - the file is an RGB PNG of the requested size;
  - each series' colour lies along its polyline inside the frame (where no
    later series covers it), and hardly anywhere else (the legend sample);
  - the legend shows each labelled series' sample line with text to its right,
    in the expected corner; the title and tick labels left dark pixels;
  - tick marks sit at the expected data positions (fixed-range plots: even
    steps from the range's ends; the log axis: decades and minor ticks);
  - a NaN in the data breaks the line.
Final line: "plot: N passed, M failed".
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAILED:", what)


def runs(mask_1d):
    """(start, length) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask_1d, [False]]).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts, ends - starts))


def find_frame(dark):
    """Rows/columns of the frame: the only dark runs longer than half the picture."""
    h, w = dark.shape
    rows = [y for y in range(h) if max((l for _, l in runs(dark[y])), default=0) > w // 2]
    cols = [x for x in range(w) if max((l for _, l in runs(dark[:, x])), default=0) > h // 2]
    if not rows or not cols:
        return None
    return min(rows), max(rows), min(cols), max(cols)


def auto_range(vals, log):
    vals = [math.log10(v) if log else v for v in vals]
    if not vals:
        return (-2.0, 0.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if not hi - lo > 1e-9 * max(abs(lo), abs(hi)):
        d = 0.5 if log else (1.0 if lo == 0 else abs(lo) * 0.1)
        lo, hi = lo - d, hi + d
    m = 0.05 * (hi - lo)
    return lo - m, hi + m


def drawable(p, x, y):
    return (x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
            and (not p["log_x"] or x > 0))


def polylines(p, s, to_px):
    """The series' unbroken runs as lists of pixel points."""
    out, cur = [], []
    for x, y in zip(s["x"], s["y"]):
        if drawable(p, x, y):
            cur.append(to_px(x, y))
        else:
            if cur:
                out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def seg_dist(px, py, lines):
    """Distance from points (arrays) to the nearest segment of any polyline."""
    best = np.full(np.shape(px), np.inf)
    for line in lines:
        pts = np.array(line, dtype=float)
        if len(pts) == 1:
            pts = np.vstack([pts, pts])
        a, b = pts[:-1], pts[1:]
        for i in range(0, len(a), 256):
            aa, bb = a[i:i + 256], b[i:i + 256]
            d = bb - aa
            l2 = (d ** 2).sum(1)
            l2[l2 == 0] = 1e-12
            qx = np.asarray(px, float)[..., None] - aa[:, 0]
            qy = np.asarray(py, float)[..., None] - aa[:, 1]
            t = np.clip((qx * d[:, 0] + qy * d[:, 1]) / l2, 0, 1)
            dist = np.hypot(qx - t * d[:, 0], qy - t * d[:, 1]).min(-1)
            best = np.minimum(best, dist)
    return best


def tick_centres(line_mask, lo, hi):
    """Centres of the dark groups of a 1-D mask between lo and hi inclusive."""
    return [s + (l - 1) / 2 for s, l in runs(line_mask) if lo <= s and s + l - 1 <= hi]


def check_plot(outdir, p):
    name = p["file"]
    im = Image.open(os.path.join(outdir, name))
    check(im.size == (p["width"], p["height"]), "%s: size %s, wanted %dx%d" % (name, im.size, p["width"], p["height"]))
    check(im.mode == "RGB", "%s: mode %s, wanted RGB" % (name, im.mode))
    a = np.asarray(im.convert("RGB")).astype(int)
    h, w, _ = a.shape
    dark = (a < 80).all(-1)
    frame = find_frame(dark)
    check(frame is not None, "%s: no frame found" % name)
    if frame is None:
        return
    T, B, L, R = frame
    x0, x1, y0, y1 = L + 1, R, T + 1, B  # interior, end-exclusive
    check(x1 - x0 > w // 2 and y1 - y0 > h // 2, "%s: plot area %dx%d too small" % (name, x1 - x0, y1 - y0))

    # Axis ranges: explicit, or the documented auto rule.
    log = p["log_x"]
    pts = [(x, y) for s in p["series"] for x, y in zip(s["x"], s["y"]) if drawable(p, x, y)]
    if p["xrange"]:
        xr = tuple(math.log10(v) if log else v for v in p["xrange"])
    else:
        xr = auto_range([x for x, _ in pts], log)
    yr = tuple(p["yrange"]) if p["yrange"] else auto_range([y for _, y in pts], False)

    def to_px(x, y):
        u = math.log10(x) if log else x
        return (x0 + (u - xr[0]) / (xr[1] - xr[0]) * (x1 - x0),
                y0 + (1 - (y - yr[0]) / (yr[1] - yr[0])) * (y1 - y0))

    lines = [polylines(p, s, to_px) for s in p["series"]]

    # The legend box: its light grey border's long runs inside the plot area.
    edge = (np.abs(a - 200) <= 3).all(-1)
    box = None
    brow = [y for y in range(y0, y1) if max((l for _, l in runs(edge[y, x0:x1])), default=0) >= 40]
    bcol = [x for x in range(x0, x1) if max((l for _, l in runs(edge[y0:y1, x])), default=0) >= 20]
    if brow and bcol:
        box = (min(bcol), max(bcol), min(brow), max(brow))
    named = any(s["label"] for s in p["series"])
    check((box is not None) == named, "%s: legend box %s, labelled series: %s" % (name, box, named))

    def in_box(x, y, m=3):
        return box is not None and box[0] - m <= x <= box[1] + m and box[2] - m <= y <= box[3] + m
    inner = a[y0:y1, x0:x1]
    gy, gx = np.mgrid[y0:y1, x0:x1]

    # Each series along its polyline, except where a later series covers it.
    for i, s in enumerate(p["series"]):
        col = np.array(s["rgb"])
        near = (np.abs(a - col) <= 40).all(-1)
        exact = (np.abs(inner - col) <= 12).all(-1)
        samples = []
        for line in lines[i]:
            for (ax_, ay_), (bx_, by_) in zip(line[:-1], line[1:]):
                n = max(1, int(math.hypot(bx_ - ax_, by_ - ay_) / 2))
                for k in range(n + 1):
                    t = k / n
                    samples.append((ax_ + t * (bx_ - ax_), ay_ + t * (by_ - ay_)))
        samples = [(x, y) for x, y in samples
                   if x0 + 3 <= x < x1 - 3 and y0 + 3 <= y < y1 - 3 and not in_box(x, y)]
        later = [l for j in range(i + 1, len(lines)) for l in lines[j]]
        if later and samples:
            sx, sy = np.array(samples).T
            keep = seg_dist(sx, sy, later) > 4
            samples = [q for q, k in zip(samples, keep) if k]
        found = sum(near[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].any() for x, y in samples)
        frac = found / len(samples) if samples else 1.0
        check(frac >= 0.9, "%s: series %d (%s): only %.0f%% of %d curve samples have its colour nearby"
              % (name, i, s["label"], 100 * frac, len(samples)))
        # Pixels of this colour far from every same-coloured polyline: only the legend sample.
        same = [l for j, t in enumerate(p["series"]) if t["rgb"] == s["rgb"] for l in lines[j]]
        ey, ex = np.nonzero(exact)
        if len(ey) and same:
            d = seg_dist(ex + x0 + 0.5, ey + y0 + 0.5, same)
            stray = int((d > 4).sum())
        else:
            stray = len(ey) if not same else 0
        check(stray <= 150, "%s: series %d (%s): %d pixels of its colour away from its curve"
              % (name, i, s["label"], stray))
        check(len(ey) > 0 or not samples, "%s: series %d: colour absent" % (name, i))

    # Legend: each labelled, solid series' sample line with text to its right.
    legend_pts = []
    for i, s in enumerate(p["series"]):
        if not s["label"] or s["dashed"]:
            continue
        col = np.array(s["rgb"])
        exact = (np.abs(a - col) <= 12).all(-1)
        hit = None
        for y in range(y0, y1):
            for st, ln in runs(exact[y, x0:x1]):
                if not 16 <= ln <= 40:
                    continue
                tx = x0 + st + ln
                text = dark[max(y0, y - 9):min(y1, y + 10), tx + 2:min(x1 - 1, tx + 2 + 12 * len(s["label"]))]
                if text.sum() >= 10 and text.any(0).sum() >= 3 and in_box(x0 + st, y, 0):
                    hit = (x0 + st + ln / 2, y)
                    break
            if hit:
                break
        check(hit is not None, "%s: legend entry for %s not found" % (name, s["label"]))
        if hit:
            legend_pts.append(hit)
    if legend_pts and p["legend"]:
        mx = np.mean([q[0] for q in legend_pts])
        my = np.mean([q[1] for q in legend_pts])
        right = mx > (x0 + x1) / 2
        bottom = my > (y0 + y1) / 2
        corner = ("b" if bottom else "t") + ("r" if right else "l")
        check(corner == p["legend"], "%s: legend in the %s corner, wanted %s" % (name, corner, p["legend"]))
        if len(legend_pts) > 1:
            ys = sorted(q[1] for q in legend_pts)
            check(min(np.diff(ys)) >= 12, "%s: legend rows overlap: %s" % (name, ys))

    # Title above the frame, roughly centred; tick labels below and left.
    if p["title"]:
        band = dark[:T - 2, x0:x1]
        yy, xx = np.nonzero(band)
        xx = xx + x0
        check(len(xx) >= 30, "%s: no title pixels above the frame" % name)
        if len(xx):
            check(abs(xx.mean() - (x0 + x1) / 2) < 60, "%s: title not centred (%.0f vs %.0f)"
                  % (name, xx.mean(), (x0 + x1) / 2))
    check(dark[B + 8:B + 30, x0 - 20:x1 + 20].sum() >= 30, "%s: no x tick labels" % name)
    check(dark[y0:y1, :L - 6].sum() >= 30, "%s: no y tick labels" % name)

    # Tick marks at data positions, on fixed-range plots.
    if p["xrange"] and not log:
        c = tick_centres(dark[B + 3], L - 1, R + 1)
        check(len(c) >= 3 and abs(c[0] - x0) <= 1.5 and abs(c[-1] - (x1 - 1)) <= 1.5,
              "%s: x ticks %s do not start at %d and end at %d" % (name, c, x0, x1 - 1))
        if len(c) >= 3:
            check(np.ptp(np.diff(c)) <= 1.5, "%s: uneven x ticks %s" % (name, c))
    if p["yrange"]:
        c = tick_centres(dark[:, L - 3], T - 1, B + 1)
        lo_v, hi_v = p["yrange"]
        want = [(v, to_px(1 if log else 0, v)[1]) for v in (lo_v, hi_v)]
        check(len(c) >= 3, "%s: y ticks %s" % (name, c))
        if len(c) >= 3:
            check(np.ptp(np.diff(c)) <= 1.5, "%s: uneven y ticks %s" % (name, c))
            # A tick at every end of the range that is a multiple of the step.
            step_v = (hi_v - lo_v) * np.mean(np.diff(c)) / (y1 - y0)
            for v, py in want:
                if abs(v / step_v - round(v / step_v)) < 1e-6:
                    check(min(abs(np.array(c) - min(py, y1 - 1))) <= 1.5,
                          "%s: no y tick at %g (px %.1f): %s" % (name, v, py, c))
    if log and p["xrange"]:
        d0, d1 = (math.ceil(math.log10(v) - 1e-9) for v in p["xrange"])
        major = tick_centres(dark[B + 4], L - 1, R + 1)
        want = [min(to_px(10.0 ** d, 1)[0], x1 - 1) for d in range(d0, d1 + 1)]
        check(len(major) == len(want) and all(abs(m - wv) <= 1.5 for m, wv in zip(major, want)),
              "%s: decade ticks at %s, wanted %s" % (name, major, want))
        minor = tick_centres(dark[B + 2], L - 1, R + 1)
        check(len(minor) == len(want) + 8 * (len(want) - 1),
              "%s: %d ticks incl. minor, wanted %d" % (name, len(minor), len(want) + 8 * (len(want) - 1)))

    # A NaN breaks the line: no colour of that series between its neighbours.
    for i, s in enumerate(p["series"]):
        xs, ys = s["x"], s["y"]
        for k in range(1, len(ys) - 1):
            if ys[k] is None and ys[k - 1] is not None:
                j = k
                while j < len(ys) and ys[j] is None:
                    j += 1
                if j >= len(ys):
                    break
                xa = to_px(xs[k - 1], ys[k - 1])[0] + 4
                xb = to_px(xs[j], ys[j])[0] - 4
                col = np.array(s["rgb"])
                strip = (np.abs(a[y0:y1, int(xa):int(xb)] - col) <= 40).all(-1)
                check(xb > xa and strip.sum() == 0, "%s: series %d drawn across its NaN gap (%d px)"
                      % (name, i, int(strip.sum())))
                break


def main():
    build = os.environ.get("UFO_BUILD", "build")
    exe = os.path.join(build, "test_plot")
    if not os.path.exists(exe):
        print("missing %s (build the test_plot target)" % exe)
        sys.exit(1)
    keep = os.environ.get("UFO_PLOT_DIR")
    outdir = keep or tempfile.mkdtemp(prefix="ufo_plot_png_")
    os.makedirs(outdir, exist_ok=True)
    r = subprocess.run([exe, outdir], capture_output=True, text=True)
    check(r.returncode == 0, "test_plot %s failed: %s" % (outdir, r.stderr.strip()))
    plots = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    check(len(plots) == 5, "expected 5 sample plots, got %d" % len(plots))
    for p in plots:
        check_plot(outdir, p)
    left = [f for f in os.listdir(outdir) if ".tmp." in f]
    check(not left, "temp files left: %s" % left)
    if not keep:
        for f in os.listdir(outdir):
            os.remove(os.path.join(outdir, f))
        os.rmdir(outdir)
    else:
        print("plots kept in", outdir)
    print("plot: %d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
