// Line plots written as PNG files (8-bit RGB), for `ufo eval --plots DIR`
// (CMC and ROC curves) and `ufo train` (loss curves). No dependency beyond
// libpng; text uses an embedded 5x9 bitmap font (printable ASCII; any other
// byte is drawn as '?').
//
// The picture: white background, a frame with outward ticks and numeric tick
// labels ("nice" steps 1/2/5 x 10^k; decades 10^k on a log axis, with minor
// ticks at 2..9 x 10^k), light grey grid lines at the major ticks, one 2 px
// anti-aliased polyline per series in a fixed colour-blind-friendly palette
// (Tableau 10; series 10..15 repeat colours 0..5 dashed), a legend box with
// the labelled series in the emptiest corner of the plot area (top-right,
// bottom-right, then top-left, bottom-left), the title above and the axis
// labels below and left of the frame.
#pragma once

#define UFO_PLOT_MAX_SERIES 16

typedef struct {
    const char *label;          // legend text; NULL or "" leaves the series out of the legend
    const double *x, *y;        // n points each; may be NULL when n == 0
    int n;
} ufo_plot_series;

typedef struct {
    const char *title, *xlabel, *ylabel;  // NULL or "": none
    int width, height;                    // pixels; both 0 -> 800x560; else 200..4096 each
    int log_x;                            // log10 x axis (ROC's false-positive rate)
    // Axis ranges: xmin == xmax (e.g. both 0) -> auto, i.e. the finite data's
    // range plus a 5% margin on either side (on the log10 scale for a log
    // axis), widened first when all values are equal; an axis with no data
    // spans 0..1 (log: 0.01..1). Otherwise lo < hi, both finite, and on a log
    // axis lo > 0. Data outside the range is clipped at the frame.
    double xmin, xmax, ymin, ymax;
} ufo_plot_opts;

// Draws the series (n_series 0..UFO_PLOT_MAX_SERIES) and writes the PNG to
// `path` atomically ("<path>.tmp.<pid>", then rename). Non-finite points, and
// points with x <= 0 on a log axis, are skipped: the line breaks there; an
// isolated point is drawn as a dot. o == NULL means all defaults.
// Returns 0, or -1 with ufo_error() naming the file; nothing is left behind.
int ufo_plot_lines(const char *path, const ufo_plot_opts *o, const ufo_plot_series *s, int n_series);

// The colour (rgb[0..2]) and dash flag that series i is drawn with.
void ufo_plot_style(int i, unsigned char rgb[3], int *dashed);
