// Line plots to PNG: a small software rasteriser (anti-aliased thick
// polylines by distance-to-segment coverage, a 5x9 bitmap font) and libpng.
//
// Pixel geometry: the plot area's interior is columns [ax, ax+pw) and rows
// [ay, ay+ph); the frame is the 1 px line just outside it. An axis value maps
// linearly (in log10 on a log axis) from lo..hi onto 0..pw (x) or ph..0 (y) in
// continuous coordinates, where pixel i covers [i, i+1).
#include "report/plot.h"
#include "base/error.h"
#include "base/file.h"
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char ufo_font5x9[95][9];  // font.c

#define MIN_SIDE 200
#define MAX_SIDE 4096
#define MAX_TICKS 256
#define MAX_TEXT 512  // longer titles and labels are cut

typedef unsigned char u8;

static const u8 PALETTE[10][3] = {  // Tableau 10 (matplotlib's default cycle)
    {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28}, {0x94, 0x67, 0xbd},
    {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f}, {0xbc, 0xbd, 0x22}, {0x17, 0xbe, 0xcf},
};
static const u8 INK[3] = {0x1a, 0x1a, 0x1a};     // text, frame, ticks
static const u8 GRID[3] = {0xe3, 0xe3, 0xe3};
static const u8 WHITE[3] = {0xff, 0xff, 0xff};
static const u8 LEGEND_EDGE[3] = {0xc8, 0xc8, 0xc8};

void ufo_plot_style(int i, unsigned char rgb[3], int *dashed) {
    if (i < 0) i = 0;
    memcpy(rgb, PALETTE[i % 10], 3);
    if (dashed) *dashed = (i / 10) % 2;
}

// ------------------------------------------------------------------ canvas

typedef struct {
    int w, h;
    u8 *px;  // w*h*3, RGB
} canvas;

static void blend(canvas *c, int x, int y, const u8 rgb[3], double a) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || a <= 0) return;
    u8 *p = c->px + ((size_t)y * c->w + x) * 3;
    if (a >= 1) {
        p[0] = rgb[0], p[1] = rgb[1], p[2] = rgb[2];
        return;
    }
    for (int k = 0; k < 3; k++) p[k] = (u8)lrint(p[k] * (1 - a) + rgb[k] * a);
}

// Fills [x0,x1) x [y0,y1).
static void fill(canvas *c, int x0, int y0, int x1, int y1, const u8 rgb[3], double a) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) blend(c, x, y, rgb, a);
}

// -------------------------------------------------------------------- text

typedef struct {
    int scale;  // pixels per font dot
    int bold;   // draw twice, 1 px apart
} font;

// The next glyph of s (advancing it), or -1 at the end: printable ASCII as
// itself, control characters as a space, a UTF-8 sequence as one '?'.
static int next_glyph(const char **s) {
    const unsigned char *p = (const unsigned char *)*s;
    unsigned c = *p++;
    if (!c) return -1;
    if (c >= 0x80)
        while ((*p & 0xc0) == 0x80) p++;  // the sequence's continuation bytes
    *s = (const char *)p;
    if (c >= 32 && c <= 126) return (int)c - 32;
    return c < 0x80 ? 0 : '?' - 32;
}

// The glyph's inked columns [first, first+width); digits keep all 5 columns so
// numbers line up, the space is 3 columns wide.
static void glyph_cols(int g, int *first, int *width) {
    if (g == 0 || (g >= '0' - 32 && g <= '9' - 32)) {
        *first = 0;
        *width = g == 0 ? 3 : 5;
        return;
    }
    int bits = 0;
    for (int r = 0; r < 9; r++) bits |= ufo_font5x9[g][r];
    int lo = 0, hi = 4;
    while (lo < 4 && !(bits & (0x10 >> lo))) lo++;
    while (hi > lo && !(bits & (0x10 >> hi))) hi--;
    *first = lo;
    *width = hi - lo + 1;
}

static int text_width(const char *s, font f) {
    int w = 0, n = 0;
    for (int g; (g = next_glyph(&s)) >= 0; n++) {
        int first, width;
        glyph_cols(g, &first, &width);
        w += (width + 1) * f.scale;
    }
    return n ? w - f.scale + f.bold : 0;
}

static int text_ascent(font f) { return 7 * f.scale; }
static int text_height(font f) { return 9 * f.scale; }

// Copies s into out (cap bytes), cut and ended with "..." if wider than max_w.
static void fit_text(char *out, size_t cap, const char *s, font f, int max_w) {
    snprintf(out, cap, "%s", s);
    if (text_width(out, f) <= max_w) return;
    size_t n = strlen(out);
    while (n > 0) {
        n--;
        while (n > 0 && ((unsigned char)out[n] & 0xc0) == 0x80) n--;  // whole UTF-8 sequences
        if (n + 4 > cap) continue;
        memcpy(out + n, "...", 4);
        if (text_width(out, f) <= max_w) return;
    }
    snprintf(out, cap, "%s", text_width("...", f) <= max_w ? "..." : "");
}

// Draws s with its top-left corner at (x, y); rot = 1 turns it 90 degrees
// counter-clockwise, reading upwards from (x, y) = its bottom-left corner.
static void draw_text(canvas *c, int x, int y, const char *s, font f, const u8 rgb[3], int rot) {
    int u = 0;  // along the text
    for (int g; (g = next_glyph(&s)) >= 0;) {
        int first, width;
        glyph_cols(g, &first, &width);
        for (int r = 0; r < 9; r++)
            for (int col = 0; col < width; col++) {
                if (!(ufo_font5x9[g][r] & (0x10 >> (first + col)))) continue;
                for (int b = 0; b <= f.bold; b++)
                    for (int dv = 0; dv < f.scale; dv++)
                        for (int du = 0; du < f.scale; du++) {
                            int pu = u + col * f.scale + du + b, pv = r * f.scale + dv;
                            if (rot) blend(c, x + pv, y - 1 - pu, rgb, 1);
                            else blend(c, x + pu, y + pv, rgb, 1);
                        }
            }
        u += (width + 1) * f.scale;
    }
}

// A tick label: base text, optionally with a superscript (10^k on log axes).
typedef struct {
    double pos;  // axis value on the axis's scale (log10 for a log axis)
    int major;   // 0: minor tick, no label, no grid line
    char base[48], sup[12];
} tick;

static font sup_font(font f) { return (font){f.scale > 1 ? f.scale - 1 : 1, 0}; }
static int sup_raise(font f) { return (sup_font(f).scale * 7) / 2; }

static int label_width(const tick *t, font f) {
    int w = text_width(t->base, f);
    if (t->sup[0]) w += f.scale + text_width(t->sup, sup_font(f));
    return w;
}

// Top of the label's base text at y; a superscript sticks out above it.
static void draw_label(canvas *c, int x, int y, const tick *t, font f) {
    draw_text(c, x, y, t->base, f, INK, 0);
    if (t->sup[0])
        draw_text(c, x + text_width(t->base, f) + f.scale, y - sup_raise(f), t->sup, sup_font(f), INK, 0);
}

// -------------------------------------------------------------------- axes

typedef struct {
    double lo, hi;  // on the axis's scale (log10 values on a log axis)
    int log;
} axis;

// Where scale value v sits along the axis, 0 at lo and 1 at hi.
static double axis_frac(const axis *a, double v) { return (v - a->lo) / (a->hi - a->lo); }

static int finite_data(const axis *a, double v, double *out) {
    if (!isfinite(v) || (a->log && v <= 0)) return 0;
    *out = a->log ? log10(v) : v;
    return 1;
}

// Smallest 1/2/5 x 10^k step >= raw.
static double nice_step(double raw) {
    double mag = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (m[i] * mag >= raw * (1 - 1e-9)) return m[i] * mag;
    return 10 * mag;
}

// "1.5e+06" -> "1.5e6", "2e-05" -> "2e-5".
static void tidy_exp(char *s) {
    char *e = strchr(s, 'e');
    if (!e) return;
    char *p = e + 1, *q = e + 1;
    if (*p == '+') p++;
    else if (*p == '-') *q++ = *p++;
    while (*p == '0' && p[1]) p++;
    memmove(q, p, strlen(p) + 1);
}

// Major ticks every `step` in lo..hi, labelled with as many decimals as the
// step needs (or in e-notation for very large or small values).
static int linear_ticks(double lo, double hi, double step, tick *t, int cap) {
    int k = (int)floor(log10(step) + 1e-9);
    int dec = k < 0 ? -k : 0;
    double maxabs = fmax(fabs(lo), fabs(hi));
    int use_exp = maxabs >= 1e6 || (step < 1e-4 && maxabs > 0);
    int n = 0;
    double first = ceil(lo / step - 1e-9);
    for (double i = first; n < cap; i++) {
        double v = i * step;
        if (v > hi + step * 1e-9) break;
        if (fabs(v) < step * 1e-9) v = 0;
        t[n] = (tick){.pos = v, .major = 1};
        if (use_exp && v == 0) {
            snprintf(t[n].base, sizeof t[n].base, "0");
        } else if (use_exp) {  // %g-like: as many digits as the step needs, no trailing zeros
            int p = (int)floor(log10(fmax(fabs(v), step)) + 1e-9) - k;
            snprintf(t[n].base, sizeof t[n].base, "%.*e", p < 0 ? 0 : (p > 15 ? 15 : p), v);
            char *e = strchr(t[n].base, 'e'), *z = e;
            if (e && strchr(t[n].base, '.')) {
                while (z[-1] == '0') z--;
                if (z[-1] == '.') z--;
                memmove(z, e, strlen(e) + 1);
            }
            tidy_exp(t[n].base);
        } else {
            snprintf(t[n].base, sizeof t[n].base, "%.*f", dec > 17 ? 17 : dec, v);
        }
        n++;
    }
    return n;
}

// Decades 10^d for a log axis, every k-th so that labels are at least
// need_px apart, with minor ticks at 2..9 x 10^d when every decade is labelled.
static int log_ticks(const axis *a, int len, int need_px, tick *t, int cap) {
    double d0 = ceil(a->lo - 1e-9), d1 = floor(a->hi + 1e-9);
    if (d1 - d0 < 1) return 0;  // under two decades: the caller falls back to linear ticks
    double decade_px = len / (a->hi - a->lo), k = 1;
    while (k * decade_px < need_px && k < 1e6) k = k < 2 ? 2 : k < 3 ? 3 : k < 5 ? 5 : k * 2;
    int n = 0;
    for (double d = ceil(d0 / k) * k; d <= d1 && n < cap; d += k) {
        t[n] = (tick){.pos = d, .major = 1};
        snprintf(t[n].base, sizeof t[n].base, "10");
        snprintf(t[n].sup, sizeof t[n].sup, "%d", (int)d);
        n++;
    }
    if (k == 1 && decade_px >= 40)
        for (double d = d0 - 1; d <= d1; d++)
            for (int m = 2; m <= 9 && n < cap; m++) {
                double v = d + log10(m);
                if (v >= a->lo && v <= a->hi) t[n++] = (tick){.pos = v, .major = 0};
            }
    return n;
}

// Whether n labels step_px apart fit: along x the widest label plus a gap,
// along y a line of text plus a gap.
static int ticks_fit(const tick *t, int n, double step_px, int is_x, font f) {
    int gap = 4 * f.scale, need = is_x ? 0 : text_height(f) + gap;
    for (int i = 0; is_x && i < n; i++) {
        int w = label_width(&t[i], f) + gap;
        if (w > need) need = w;
    }
    return step_px >= need;
}

// Ticks for an axis of len pixels, so that labels neither crowd nor overlap:
// along x the widest label plus a gap must fit one step, along y a line of text.
static int make_ticks(const axis *a, int len, int is_x, font f, tick *t, int cap) {
    int gap = 4 * f.scale;
    int min_px = is_x ? 90 : 50;  // aim for a major tick at most every this many pixels
    if (a->log) {
        tick widest = {.base = "10", .sup = "-88"};
        int need = is_x ? label_width(&widest, f) + 3 * gap : text_height(f) + sup_raise(f) + gap;
        int n = log_ticks(a, len, need, t, cap);
        if (n > 0) return n;
        // Less than two decades: 1, 2, 5 x 10^d when they are far enough apart...
        static const int m125[3] = {1, 2, 5};
        double prev = -INFINITY, min_gap = INFINITY;
        for (double d = floor(a->lo); d <= ceil(a->hi) && n < cap; d++)
            for (int i = 0; i < 3 && n < cap; i++) {
                double v = d + log10(m125[i]);
                if (v < a->lo - 1e-9 || v > a->hi + 1e-9) continue;
                t[n] = (tick){.pos = v, .major = 1};
                snprintf(t[n].base, sizeof t[n].base, "%g", m125[i] * pow(10, d));
                tidy_exp(t[n].base);
                min_gap = fmin(min_gap, (v - prev) / (a->hi - a->lo) * len);
                prev = v;
                n++;
            }
        if (n >= 3 && min_gap >= need) return n;
        // ... else nice linear steps in value space, placed on the log scale,
        // coarser until the labels crowding at the top end fit too.
        double vlo = pow(10, a->lo), vhi = pow(10, a->hi);
        double step = nice_step((vhi - vlo) / 8);
        for (int iter = 0; iter < 60; iter++) {
            n = linear_ticks(vlo, vhi, step, t, cap);
            double gap_px = INFINITY;
            for (int i = 0; i < n; i++) {
                t[i].pos = log10(t[i].pos);
                if (i > 0) gap_px = fmin(gap_px, (t[i].pos - t[i - 1].pos) / (a->hi - a->lo) * len);
            }
            if (n <= 2 || ticks_fit(t, n, gap_px, is_x, f)) break;
            step = nice_step(step * 1.01);
        }
        return n;
    }
    double span = a->hi - a->lo;
    int target = len / min_px;
    if (target < 2) target = 2;
    double step = nice_step(span / target);
    int n = 0;
    for (int iter = 0; iter < 60; iter++) {  // coarser until the labels fit
        n = linear_ticks(a->lo, a->hi, step, t, cap);
        if (n < cap && ticks_fit(t, n, step / span * len, is_x, f)) break;
        step = nice_step(step * 1.01);
    }
    // A short axis can end up with one or two ticks: finer while labels fit.
    for (int iter = 0; iter < 6 && n < 3; iter++) {
        double m = step / pow(10, floor(log10(step) + 1e-9)), finer = step * (m < 3 ? 0.5 : 0.4);
        tick tmp[16];
        int n2 = linear_ticks(a->lo, a->hi, finer, tmp, 16);
        if (n2 >= 16 || !ticks_fit(tmp, n2, finer / span * len, is_x, f)) break;
        memcpy(t, tmp, sizeof *t * n2);
        n = n2;
        step = finer;
    }
    return n;
}

// The explicit range, or the auto range of the drawable points' values (on
// the axis's scale): the x axis when use_x, else the y axis.
static int resolve_axis(const char *path, const char *name, double umin, double umax, int log_x,
                        const ufo_plot_series *s, int n_series, int use_x, axis *a) {
    int logax = use_x && log_x;
    a->log = logax;
    if (umin != umax) {
        if (!isfinite(umin) || !isfinite(umax) || umin > umax)
            return ufo_errorf("%s: plot: bad %s range %g..%g", path, name, umin, umax);
        if (logax && umin <= 0)
            return ufo_errorf("%s: plot: log %s axis needs %smin > 0, got %g", path, name, name, umin);
        a->lo = logax ? log10(umin) : umin;
        a->hi = logax ? log10(umax) : umax;
        if (!(a->hi - a->lo > 1e-12 * fmax(fabs(a->lo), fabs(a->hi))))
            return ufo_errorf("%s: plot: %s range %g..%g too narrow", path, name, umin, umax);
        return 0;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n_series; i++)
        for (int j = 0; j < s[i].n; j++) {
            double x = s[i].x[j], y = s[i].y[j];
            if (!isfinite(x) || !isfinite(y) || (log_x && x <= 0)) continue;  // not drawn
            double v = use_x ? (logax ? log10(x) : x) : y;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    if (lo > hi) {
        a->lo = logax ? -2 : 0;
        a->hi = logax ? 0 : 1;
        return 0;
    }
    if (!(hi - lo > 1e-9 * fmax(fabs(lo), fabs(hi)))) {
        double d = logax ? 0.5 : (lo == 0 ? 1 : fabs(lo) * 0.1);
        lo -= d;
        hi += d;
    }
    double m = 0.05 * (hi - lo);
    a->lo = lo - m;
    a->hi = hi + m;
    if (!isfinite(a->hi - a->lo) || !isfinite(m))
        return ufo_errorf("%s: plot: %s data range too large to plot", path, name);
    return 0;
}

// ------------------------------------------------------------ rasterising

// Coverage of one series over the plot area; segments take the max, so joins
// and overlaps are not blended twice.
typedef struct {
    float *cov;
    int pw, ph;
    double hw;       // half line width
    int dashed;
    double on, period;
} raster;

// Clips the segment (x0,y0)+t*(dx,dy) to the box [xl,xh] x [yl,yh] (Liang-Barsky): t0..t1 within 0..1.
static int clip(double x0, double y0, double dx, double dy, double xl, double yl, double xh, double yh,
                double *t0, double *t1) {
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {x0 - xl, xh - x0, y0 - yl, yh - y0};
    *t0 = 0, *t1 = 1;
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / p[i];
        if (p[i] < 0) {
            if (r > *t1) return 0;
            if (r > *t0) *t0 = r;
        } else {
            if (r < *t0) return 0;
            if (r < *t1) *t1 = r;
        }
    }
    return 1;
}

// A thick segment from (ax,ay) to (bx,by) with round caps; arc0 is the
// distance along the polyline at (ax,ay), for dashes.
static void raster_segment(raster *r, double ax, double ay, double bx, double by, double arc0, double hw) {
    double dx = bx - ax, dy = by - ay, len = hypot(dx, dy);
    double m = hw + 2, t0, t1;
    if (!clip(ax, ay, dx, dy, -m, -m, r->pw + m, r->ph + m, &t0, &t1)) return;
    double cx0 = ax + t0 * dx, cy0 = ay + t0 * dy, cx1 = ax + t1 * dx, cy1 = ay + t1 * dy;
    arc0 += t0 * len;
    len *= (t1 - t0);
    dx = cx1 - cx0, dy = cy1 - cy0;
    int x0 = (int)floor(fmin(cx0, cx1) - hw - 1), x1 = (int)ceil(fmax(cx0, cx1) + hw + 1);
    int y0 = (int)floor(fmin(cy0, cy1) - hw - 1), y1 = (int)ceil(fmax(cy0, cy1) + hw + 1);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > r->pw) x1 = r->pw;
    if (y1 > r->ph) y1 = r->ph;
    double l2 = dx * dx + dy * dy;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            double px = x + 0.5 - cx0, py = y + 0.5 - cy0;
            double t = l2 > 0 ? (px * dx + py * dy) / l2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double c = hw + 0.5 - sqrt(ex * ex + ey * ey);
            if (c <= 0) continue;
            if (c > 1) c = 1;
            if (r->dashed && fmod(arc0 + t * len, r->period) >= r->on) continue;
            float *p = &r->cov[(size_t)y * r->pw + x];
            if (c > *p) *p = (float)c;
        }
}

// Plot-area pixel coordinates of a data point; 0 if it is not drawable.
static int to_px(const axis *xa, const axis *ya, int pw, int ph, double x, double y, double *px,
                 double *py) {
    double u, v;
    if (!finite_data(xa, x, &u) || !finite_data(ya, y, &v)) return 0;
    *px = axis_frac(xa, u) * pw;
    *py = (1 - axis_frac(ya, v)) * ph;
    if (!isfinite(*px) || !isfinite(*py)) return 0;
    // Far outside the frame only the direction matters; keep the numbers tame.
    *px = fmax(-1e9, fmin(1e9, *px));
    *py = fmax(-1e9, fmin(1e9, *py));
    return 1;
}

// The polyline pen: segments between consecutive points, a dot for a point
// that stays alone between breaks.
typedef struct {
    raster *r;
    double dot, px, py, arc;
    int run;  // points in the current unbroken run
} pen;

static void pen_to(pen *p, double x, double y) {
    if (p->run > 0) {
        raster_segment(p->r, p->px, p->py, x, y, p->arc, p->r->hw);
        p->arc += hypot(x - p->px, y - p->py);
    }
    p->px = x, p->py = y;
    p->run++;
}

static void pen_break(pen *p) {
    if (p->run == 1) raster_segment(p->r, p->px, p->py, p->px, p->py, 0, p->dot);
    p->run = 0;
    p->arc = 0;
}

// Consecutive points within one pixel column reduce to the first, lowest,
// highest and last of them (in order): the same picture from at most four
// points per column, however long the series.
typedef struct {
    int n;
    double col;
    long idx[4];  // first, min y, max y, last
    double x[4], y[4];
} column;

static void column_flush(column *g, pen *p) {
    long done = -1;
    for (int k = 0; k < 4 && g->n; k++) {  // the distinct indices, ascending
        int best = -1;
        for (int j = 0; j < 4; j++)
            if (g->idx[j] > done && (best < 0 || g->idx[j] < g->idx[best])) best = j;
        if (best < 0) break;
        pen_to(p, g->x[best], g->y[best]);
        done = g->idx[best];
    }
    g->n = 0;
}

static void column_add(column *g, pen *p, long i, double x, double y) {
    double col = floor(x);
    if (g->n && col != g->col) column_flush(g, p);
    if (!g->n) {
        g->col = col;
        for (int j = 0; j < 4; j++) g->idx[j] = i, g->x[j] = x, g->y[j] = y;
    }
    int upd[3] = {3, y < g->y[1] ? 1 : -1, y > g->y[2] ? 2 : -1};
    for (int k = 0; k < 3; k++)
        if (upd[k] >= 0) g->idx[upd[k]] = i, g->x[upd[k]] = x, g->y[upd[k]] = y;
    g->n++;
}

static void raster_series(raster *r, const axis *xa, const axis *ya, const ufo_plot_series *s, double dot) {
    pen p = {r, dot, 0, 0, 0, 0};
    column g = {0};
    for (int i = 0; i < s->n; i++) {
        double qx, qy;
        if (to_px(xa, ya, r->pw, r->ph, s->x[i], s->y[i], &qx, &qy)) {
            column_add(&g, &p, i, qx, qy);
        } else {
            column_flush(&g, &p);
            pen_break(&p);
        }
    }
    column_flush(&g, &p);
    pen_break(&p);
}

// ----------------------------------------------------------------- legend

typedef struct {
    int x, y, w, h;  // in image pixels
} rect;

static long mask_count(const u8 *mask, int pw, int ph, int x0, int y0, int w, int h) {
    long n = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < ph; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < pw; x++) n += mask[(size_t)y * pw + x];
    return n;
}

// ------------------------------------------------------------------- PNG

typedef struct {
    ufo_atomic_file *f;
    int write_failed;  // ufo_atomic_write already set the error
    char msg[200];
} png_io;

static void png_write_cb(png_structp png, png_bytep data, size_t n) {
    png_io *io = png_get_io_ptr(png);
    if (ufo_atomic_write(io->f, data, n) != 0) {
        io->write_failed = 1;
        png_error(png, "write failed");
    }
}

static void png_flush_cb(png_structp png) { (void)png; }

static void png_error_cb(png_structp png, png_const_charp msg) {
    png_io *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warning_cb(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

// The libpng calls, with setjmp in a function of their own: `io` then lives in
// the caller, so the callbacks' changes to it survive the longjmp.
static int png_encode(png_structp png, png_infop info, png_io *io, png_bytep *rows, const canvas *c) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_set_write_fn(png, io, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)c->w, (png_uint_32)c->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    return 0;
}

static int write_png(const char *path, const canvas *c) {
    png_bytep *rows = malloc(sizeof *rows * c->h);
    if (!rows) return ufo_errorf("%s: out of memory", path);
    for (int y = 0; y < c->h; y++) rows[y] = c->px + (size_t)y * c->w * 3;
    ufo_atomic_file f;
    if (ufo_atomic_open(&f, path) != 0) {
        free(rows);
        return -1;
    }
    png_io io = {&f, 0, ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, png_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        ufo_atomic_abort(&f);
        free(rows);
        return ufo_errorf("%s: cannot start PNG writer (out of memory)", path);
    }
    int rc = png_encode(png, info, &io, rows, c);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (rc != 0) {
        ufo_atomic_abort(&f);
        if (io.write_failed) return -1;  // ufo_atomic_write's message names the file
        return ufo_errorf("%s: PNG write failed: %s", path, io.msg);
    }
    return ufo_atomic_commit(&f);
}

// ------------------------------------------------------------------- plot

static int nonempty(const char *s) { return s && *s; }

static int check_args(const char *path, const ufo_plot_opts *o, const ufo_plot_series *s, int n_series) {
    if (!path || !*path) return ufo_errorf("plot: no output path");
    if (n_series < 0 || n_series > UFO_PLOT_MAX_SERIES)
        return ufo_errorf("%s: plot: %d series, at most %d allowed", path, n_series, UFO_PLOT_MAX_SERIES);
    if (n_series > 0 && !s) return ufo_errorf("%s: plot: %d series but no series array", path, n_series);
    if (o->width != 0 || o->height != 0)
        if (o->width < MIN_SIDE || o->width > MAX_SIDE || o->height < MIN_SIDE || o->height > MAX_SIDE)
            return ufo_errorf("%s: plot: size %dx%d out of range (each side %d..%d, or both 0)", path, o->width,
                              o->height, MIN_SIDE, MAX_SIDE);
    for (int i = 0; i < n_series; i++) {
        if (s[i].n < 0) return ufo_errorf("%s: plot: series %d has %d points", path, i, s[i].n);
        if (s[i].n > 0 && (!s[i].x || !s[i].y))
            return ufo_errorf("%s: plot: series %d has %d points but no x or y array", path, i, s[i].n);
    }
    return 0;
}

int ufo_plot_lines(const char *path, const ufo_plot_opts *opts, const ufo_plot_series *s, int n_series) {
    ufo_plot_opts o = {0};
    if (opts) o = *opts;
    if (check_args(path, &o, s, n_series) != 0) return -1;
    if (o.width == 0) o.width = 800, o.height = 560;

    axis xa, ya;
    if (resolve_axis(path, "x", o.xmin, o.xmax, o.log_x, s, n_series, 1, &xa) != 0) return -1;
    if (resolve_axis(path, "y", o.ymin, o.ymax, o.log_x, s, n_series, 0, &ya) != 0) return -1;

    // ---- layout
    int sc = (o.width >= 480 && o.height >= 360) ? 2 : 1;
    font f = {sc, 0}, ftitle = {sc, 1};
    int pad = 5 * sc, tick_len = 2 * sc + 1, gap = 3 * sc;
    int top = pad + (nonempty(o.title) ? text_height(ftitle) + pad : pad);
    int xl_h = text_ascent(f) + (xa.log ? sup_raise(f) : 0);
    int bottom = tick_len + gap + xl_h + pad + (nonempty(o.xlabel) ? text_height(f) + pad : 0);
    int ph = o.height - top - bottom - 2;  // 2: the frame lines
    tick *yt = malloc(sizeof *yt * MAX_TICKS), *xt = malloc(sizeof *xt * MAX_TICKS);
    canvas c = {o.width, o.height, malloc((size_t)o.width * o.height * 3)};
    float *cov = NULL;
    u8 *mask = NULL;
    int rc = -1;
    if (!yt || !xt || !c.px) {
        ufo_errorf("%s: out of memory", path);
        goto done;
    }
    int nyt = make_ticks(&ya, ph, 0, f, yt, MAX_TICKS);
    int yl_w = 0;
    for (int i = 0; i < nyt; i++)
        if (yt[i].major && label_width(&yt[i], f) > yl_w) yl_w = label_width(&yt[i], f);
    int left = pad + (nonempty(o.ylabel) ? text_height(f) + pad : 0) + yl_w + gap + tick_len;
    int right = 6 * sc + pad;
    int ax = left + 1, ay = top + 1;
    int pw = o.width - ax - right - 1;
    int nxt = make_ticks(&xa, pw, 1, f, xt, MAX_TICKS);
    // The last x label is centred on its tick: leave it room at the right edge.
    for (int i = 0; i < nxt; i++) {
        if (!xt[i].major) continue;
        double px = ax + axis_frac(&xa, xt[i].pos) * pw;
        int over = (int)ceil(px + label_width(&xt[i], f) / 2.0 - (o.width - pad));
        if (over > 0 && axis_frac(&xa, xt[i].pos) > 0.5) {
            pw -= over;
            nxt = make_ticks(&xa, pw, 1, f, xt, MAX_TICKS);
            break;
        }
    }
    if (pw < 20 || ph < 20) {
        ufo_errorf("%s: plot: %dx%d is too small for the labels", path, o.width, o.height);
        goto done;
    }

    cov = malloc(sizeof *cov * (size_t)pw * ph);
    mask = calloc((size_t)pw * ph, 1);
    if (!cov || !mask) {
        ufo_errorf("%s: out of memory", path);
        goto done;
    }
    memset(c.px, 0xff, (size_t)c.w * c.h * 3);

    // ---- grid, under the data
    for (int i = 0; i < nyt; i++) {
        if (!yt[i].major) continue;
        int y = ay + (int)floor((1 - axis_frac(&ya, yt[i].pos)) * ph);
        if (y >= ay + ph) y = ay + ph - 1;
        fill(&c, ax, y, ax + pw, y + 1, GRID, 1);
    }
    for (int i = 0; i < nxt; i++) {
        if (!xt[i].major) continue;
        int x = ax + (int)floor(axis_frac(&xa, xt[i].pos) * pw);
        if (x >= ax + pw) x = ax + pw - 1;
        fill(&c, x, ay, x + 1, ay + ph, GRID, 1);
    }

    // ---- series
    double hw = sc >= 2 ? 1.0 : 0.75, dot = hw + 1.5;
    for (int i = 0; i < n_series; i++) {
        u8 rgb[3];
        int dashed;
        ufo_plot_style(i, rgb, &dashed);
        memset(cov, 0, sizeof *cov * (size_t)pw * ph);
        raster r = {cov, pw, ph, hw, dashed, 4.0 * sc, 6.0 * sc};
        raster_series(&r, &xa, &ya, &s[i], dot);
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++) {
                float a = cov[(size_t)y * pw + x];
                if (a <= 0) continue;
                blend(&c, ax + x, ay + y, rgb, a);
                mask[(size_t)y * pw + x] = 1;
            }
    }

    // ---- frame, ticks, tick labels
    fill(&c, ax - 1, ay - 1, ax + pw + 1, ay, INK, 1);
    fill(&c, ax - 1, ay + ph, ax + pw + 1, ay + ph + 1, INK, 1);
    fill(&c, ax - 1, ay - 1, ax, ay + ph + 1, INK, 1);
    fill(&c, ax + pw, ay - 1, ax + pw + 1, ay + ph + 1, INK, 1);
    for (int i = 0; i < nyt; i++) {
        int y = ay + (int)floor((1 - axis_frac(&ya, yt[i].pos)) * ph);
        if (y >= ay + ph) y = ay + ph - 1;
        int len = yt[i].major ? tick_len : (tick_len + 1) / 2;
        fill(&c, ax - 1 - len, y, ax - 1, y + 1, INK, 1);
        if (!yt[i].major) continue;
        int w = label_width(&yt[i], f);
        draw_label(&c, ax - 1 - tick_len - gap - w, y - text_ascent(f) / 2, &yt[i], f);
    }
    for (int i = 0; i < nxt; i++) {
        int x = ax + (int)floor(axis_frac(&xa, xt[i].pos) * pw);
        if (x >= ax + pw) x = ax + pw - 1;
        int len = xt[i].major ? tick_len : (tick_len + 1) / 2;
        fill(&c, x, ay + ph + 1, x + 1, ay + ph + 1 + len, INK, 1);
        if (!xt[i].major) continue;
        int w = label_width(&xt[i], f);
        int lx = x - w / 2;
        if (lx + w > o.width - 1) lx = o.width - 1 - w;
        if (lx < 1) lx = 1;
        draw_label(&c, lx, ay + ph + 1 + tick_len + gap + (xa.log ? sup_raise(f) : 0), &xt[i], f);
    }

    // ---- axis labels and title
    char txt[MAX_TEXT];
    if (nonempty(o.xlabel)) {
        fit_text(txt, sizeof txt, o.xlabel, f, pw);
        int w = text_width(txt, f);
        draw_text(&c, ax + (pw - w) / 2, o.height - pad - text_height(f), txt, f, INK, 0);
    }
    if (nonempty(o.ylabel)) {
        fit_text(txt, sizeof txt, o.ylabel, f, ph);
        int w = text_width(txt, f);
        draw_text(&c, pad, ay + ph - (ph - w) / 2, txt, f, INK, 1);
    }
    if (nonempty(o.title)) {
        fit_text(txt, sizeof txt, o.title, ftitle, o.width - 2 * pad);
        int w = text_width(txt, ftitle);
        int x = ax + (pw - w) / 2;
        if (x + w > o.width - pad) x = o.width - pad - w;
        if (x < pad) x = pad;
        draw_text(&c, x, pad, txt, ftitle, INK, 0);
    }

    // ---- legend, in the corner where it hides the least data
    {
        int n_leg = 0, lab_w = 0;
        int lpad = 4 * sc, row_h = text_height(f) + 2 * sc, sample = 12 * sc, inset = 5 * sc;
        int max_lab = pw - 2 * inset - 3 * lpad - sample;  // a label may make the box as wide as the plot
        for (int i = 0; i < n_series; i++) {
            if (!nonempty(s[i].label)) continue;
            fit_text(txt, sizeof txt, s[i].label, f, max_lab);
            int w = text_width(txt, f);
            if (w > lab_w) lab_w = w;
            n_leg++;
        }
        if (n_leg > 0) {
            int bw = lpad + sample + lpad + lab_w + lpad, bh = 2 * lpad + n_leg * row_h - 2 * sc;
            rect cand[4] = {
                {pw - inset - bw, inset, bw, bh},
                {pw - inset - bw, ph - inset - bh, bw, bh},
                {inset, inset, bw, bh},
                {inset, ph - inset - bh, bw, bh},
            };
            int best = 0;
            long best_n = mask_count(mask, pw, ph, cand[0].x, cand[0].y, bw, bh);
            for (int k = 1; k < 4; k++) {
                long n = mask_count(mask, pw, ph, cand[k].x, cand[k].y, bw, bh);
                // Prefer the right-hand corners unless a left one is clearly emptier.
                if (k >= 2 ? n * 4 < best_n * 3 - 20 * sc : n < best_n) best = k, best_n = n;
            }
            int bx = ax + cand[best].x, by = ay + cand[best].y;
            fill(&c, bx, by, bx + bw, by + bh, WHITE, 0.85);
            fill(&c, bx, by, bx + bw, by + 1, LEGEND_EDGE, 1);
            fill(&c, bx, by + bh - 1, bx + bw, by + bh, LEGEND_EDGE, 1);
            fill(&c, bx, by, bx + 1, by + bh, LEGEND_EDGE, 1);
            fill(&c, bx + bw - 1, by, bx + bw, by + bh, LEGEND_EDGE, 1);
            int row = 0;
            for (int i = 0; i < n_series; i++) {
                if (!nonempty(s[i].label)) continue;
                u8 rgb[3];
                int dashed;
                ufo_plot_style(i, rgb, &dashed);
                int ty = by + lpad + row * row_h;
                // The sample line, through the same rasteriser, on a scratch patch.
                int sw = sample + 4, sh = 2 * sc + 4;
                float patch[(12 * 2 + 4) * (2 * 2 + 4)];
                memset(patch, 0, sizeof patch);
                raster r = {patch, sw, sh, hw, dashed, 4.0 * sc, 6.0 * sc};
                raster_segment(&r, 2 + hw, sh / 2.0, sw - 2 - hw, sh / 2.0, 0, hw);
                int sx = bx + lpad - 2, sy = ty + text_ascent(f) / 2 - sh / 2;
                for (int y = 0; y < sh; y++)
                    for (int x = 0; x < sw; x++) blend(&c, sx + x, sy + y, rgb, patch[y * sw + x]);
                fit_text(txt, sizeof txt, s[i].label, f, max_lab);
                draw_text(&c, bx + lpad + sample + lpad, ty, txt, f, INK, 0);
                row++;
            }
        }
    }

    rc = write_png(path, &c);
done:
    free(yt);
    free(xt);
    free(c.px);
    free(cov);
    free(mask);
    return rc;
}
