// Unit tests for the PNG line plots (src/report/plot.c): files are written
// atomically and read back with libpng, failures (unwritable path, bad
// options) leave one error line naming the file and nothing on disk, and
// degenerate data (single points, constant y, NaNs, empty series, huge or
// tiny values) still gives a valid picture.
//
// `test_plot OUTDIR` instead writes the sample plots that tests/py/test_plot_png.py
// checks pixel by pixel, and prints one JSON line per plot describing it.
#include "base/error.h"
#include "check.h"
#include "report/plot.h"
#include <dirent.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void path_in_tmp(char *out, size_t cap, const char *file) { snprintf(out, cap, "%s/%s", tmpdir, file); }

// Entries of dir, not counting "." and "..".
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (remove(p) != 0) rm_rf(p);
    }
    closedir(d);
    rmdir(dir);
}

// Reads the PNG back: 1 if it decodes as 8-bit RGB of the given size with at
// least min_ink non-white pixels.
static int png_ok(const char *path, int w, int h, long min_ink) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    unsigned char sig[8];
    int ok = fread(sig, 1, 8, fp) == 8 && png_sig_cmp(sig, 0, 8) == 0;
    fclose(fp);
    if (!ok) return 0;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path)) return 0;
    ok = (int)img.width == w && (int)img.height == h && img.format == PNG_FORMAT_RGB;
    img.format = PNG_FORMAT_RGB;
    unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
    if (!px || !png_image_finish_read(&img, NULL, px, 0, NULL)) {
        png_image_free(&img);
        free(px);
        return 0;
    }
    long ink = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height; i++)
        ink += px[3 * i] != 255 || px[3 * i + 1] != 255 || px[3 * i + 2] != 255;
    free(px);
    return ok && ink >= min_ink;
}

// The current error is one line naming `name` and containing `want`.
static void check_error(const char *name, const char *want, const char *label) {
    const char *e = ufo_error();
    CHECK(strchr(e, '\n') == NULL, "%s: multi-line error: %s", label, e);
    CHECK(strstr(e, name) != NULL, "%s: error does not name %s: %s", label, name, e);
    CHECK(strstr(e, want) != NULL, "%s: error '%s' lacks '%s'", label, e, want);
}

static const double X5[] = {1, 2, 3, 4, 5}, Y5[] = {0.2, 0.5, 0.7, 0.8, 0.85};

static void test_writes_file(void) {
    char p[256];
    path_in_tmp(p, sizeof p, "basic.png");
    ufo_plot_series s[2] = {{"first", X5, Y5, 5}, {"second", Y5, X5, 5}};
    ufo_plot_opts o = {.title = "Basic", .xlabel = "x", .ylabel = "y"};
    CHECK(ufo_plot_lines(p, &o, s, 2) == 0, "%s", ufo_error());
    CHECK(png_ok(p, 800, 560, 2000), "basic.png is not an 800x560 RGB PNG with ink");
    CHECK(count_tmp_files(tmpdir) == 0, "a temp file remains");
    // Rewriting replaces the file atomically; a custom size is honoured.
    o.width = 300, o.height = 200;
    CHECK(ufo_plot_lines(p, &o, s, 2) == 0, "%s", ufo_error());
    CHECK(png_ok(p, 300, 200, 500), "rewritten basic.png is not 300x200");
    CHECK(count_tmp_files(tmpdir) == 0, "a temp file remains after rewrite");
    // NULL options: defaults.
    path_in_tmp(p, sizeof p, "defaults.png");
    CHECK(ufo_plot_lines(p, NULL, s, 1) == 0, "%s", ufo_error());
    CHECK(png_ok(p, 800, 560, 1000), "defaults.png bad");
}

static void test_unwritable(void) {
    char p[512], dir[256];
    int before = count_entries(tmpdir);
    path_in_tmp(p, sizeof p, "missing/dir/plot.png");
    ufo_plot_series s = {"a", X5, Y5, 5};
    ufo_error_clear();
    CHECK(ufo_plot_lines(p, NULL, &s, 1) == -1, "wrote into a missing directory");
    check_error(p, "cannot create", "missing dir");
    CHECK(count_entries(tmpdir) == before, "something was left in %s", tmpdir);

    // The target is a directory: the temp file is written, the rename fails,
    // and the temp file must go.
    path_in_tmp(dir, sizeof dir, "adir");
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
    before = count_entries(tmpdir);
    ufo_error_clear();
    CHECK(ufo_plot_lines(dir, NULL, &s, 1) == -1, "renamed a plot over a directory");
    check_error(dir, "rename", "target is a directory");
    CHECK(count_entries(tmpdir) == before, "a temp file was left next to %s", dir);
    CHECK(count_tmp_files(tmpdir) == 0, "temp file left");


    // A write that fails midway (file size limit, like a full disk): the
    // error comes out of libpng's write callback and the temp file goes.
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        struct rlimit lim = {2000, old.rlim_max};
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        path_in_tmp(p, sizeof p, "short.png");
        double x[400], y[400];
        for (int i = 0; i < 400; i++) x[i] = i, y[i] = sin(i * 0.37) * i;  // enough detail to exceed 2000 bytes
        ufo_plot_series big = {"noisy", x, y, 400};
        before = count_entries(tmpdir);
        ufo_error_clear();
        int rc = setrlimit(RLIMIT_FSIZE, &lim) == 0 ? ufo_plot_lines(p, NULL, &big, 1) : 0;
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        CHECK(rc == -1, "a write past the file size limit succeeded");
        check_error(p, "write failed", "short write");
        CHECK(count_entries(tmpdir) == before, "a short write left a file");
    }
}

static void test_bad_options(void) {
    char p[256];
    path_in_tmp(p, sizeof p, "bad.png");
    int before = count_entries(tmpdir);
    ufo_plot_series s[17];
    for (int i = 0; i < 17; i++) s[i] = (ufo_plot_series){"s", X5, Y5, 5};
    struct {
        const char *label, *want;
        ufo_plot_opts o;
        int n_series;
        ufo_plot_series one;  // replaces s[0] when .n != -2
    } cases[] = {
        {"17 series", "at most 16", {0}, 17, {NULL, NULL, NULL, -2}},
        {"-1 series", "at most 16", {0}, -1, {NULL, NULL, NULL, -2}},
        {"width 10", "size 10x10", {.width = 10, .height = 10}, 1, {NULL, NULL, NULL, -2}},
        {"width only", "size 800x0", {.width = 800}, 1, {NULL, NULL, NULL, -2}},
        {"huge", "out of range", {.width = 100000, .height = 560}, 1, {NULL, NULL, NULL, -2}},
        {"xmin > xmax", "bad x range", {.xmin = 2, .xmax = 1}, 1, {NULL, NULL, NULL, -2}},
        {"NaN y range", "bad y range", {.ymin = NAN, .ymax = 1}, 1, {NULL, NULL, NULL, -2}},
        {"log x from 0", "xmin > 0", {.log_x = 1, .xmin = 0, .xmax = 1}, 1, {NULL, NULL, NULL, -2}},
        {"no arrays", "no x or y", {0}, 1, {"s", NULL, NULL, 3}},
        {"negative n", "-4 points", {0}, 1, {"s", X5, Y5, -4}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ufo_plot_series save = s[0];
        if (cases[i].one.n != -2) s[0] = cases[i].one;
        ufo_error_clear();
        CHECK(ufo_plot_lines(p, &cases[i].o, s, cases[i].n_series) == -1, "%s: accepted", cases[i].label);
        check_error(p, cases[i].want, cases[i].label);
        s[0] = save;
    }
    ufo_error_clear();
    CHECK(ufo_plot_lines(p, NULL, NULL, 2) == -1, "NULL series accepted");
    check_error(p, "no series array", "NULL series");
    ufo_error_clear();
    CHECK(ufo_plot_lines(NULL, NULL, s, 1) == -1, "NULL path accepted");
    CHECK(strstr(ufo_error(), "no output path") != NULL, "NULL path: %s", ufo_error());
    CHECK(count_entries(tmpdir) == before, "a failed call left a file behind");
}

static void test_degenerate(void) {
    double nan = NAN, inf = INFINITY;
    const double one_x[] = {3}, one_y[] = {0.5};
    const double flat_x[] = {0, 1, 2, 3}, flat_y[] = {7, 7, 7, 7};
    const double nan_x[] = {0, 1, nan, 3, 4, 5, 6}, nan_y[] = {1, nan, 2, 3, inf, 5, 4};
    const double all_nan[] = {nan, nan};
    const double big_x[] = {-1e300, 1e300}, big_y[] = {1e300, -1e300};
    const double tiny_x[] = {1, 2, 3}, tiny_y[] = {1e-9, 3e-9, 2e-9};
    const double mega_x[] = {0, 2e6, 5e6}, mega_y[] = {1e7, 3e7, 2e7};
    const double close_y[] = {1, 1 + 1e-13, 1};
    const double roc_x[] = {0, -1, 1e-6, 1e-3, 1}, roc_y[] = {0.1, 0.2, 0.5, 0.9, 1};
    const double narrow_x[] = {0.2, 0.5, 0.9};
    char longlab[200];
    memset(longlab, 'W', sizeof longlab - 1);
    longlab[sizeof longlab - 1] = 0;
    struct {
        const char *file;
        ufo_plot_opts o;
        ufo_plot_series s[3];
        int n;
    } cases[] = {
        {"single.png", {.title = "one point"}, {{"p", one_x, one_y, 1}}, 1},
        {"flat.png", {0}, {{"flat", flat_x, flat_y, 4}}, 1},
        {"nans.png", {0}, {{"gappy", nan_x, nan_y, 7}}, 1},
        {"allnan.png", {0}, {{"nan", all_nan, all_nan, 2}}, 1},
        {"empty.png", {.title = "empty"}, {{"none", NULL, NULL, 0}, {"also none", NULL, NULL, 0}}, 2},
        {"noseries.png", {.xlabel = "x", .ylabel = "y"}, {{0}}, 0},
        {"big.png", {0}, {{"big", big_x, big_y, 2}}, 1},
        {"tiny.png", {0}, {{"tiny", tiny_x, tiny_y, 3}}, 1},
        {"mega.png", {0}, {{"mega", mega_x, mega_y, 3}}, 1},
        {"close.png", {0}, {{"close", tiny_x, close_y, 3}}, 1},
        {"logx.png", {.log_x = 1}, {{"roc", roc_x, roc_y, 5}}, 1},
        {"lognarrow.png", {.log_x = 1}, {{"n", narrow_x, narrow_x, 3}}, 1},
        {"logempty.png", {.log_x = 1}, {{"e", roc_y, roc_y, 0}}, 1},
        {"clipped.png", {.xmin = 2, .xmax = 3, .ymin = 0.6, .ymax = 0.7}, {{"c", X5, Y5, 5}}, 1},
        {"small.png", {.width = 200, .height = 200, .title = "small", .xlabel = "x", .ylabel = "y"},
         {{"s", X5, Y5, 5}}, 1},
        {"longlabel.png", {.title = longlab}, {{longlab, X5, Y5, 5}, {"\xc3\xa9t\xc3\xa9\t\n", Y5, X5, 5}}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p[256];
        path_in_tmp(p, sizeof p, cases[i].file);
        int rc = ufo_plot_lines(p, &cases[i].o, cases[i].s, cases[i].n);
        CHECK(rc == 0, "%s: %s", cases[i].file, ufo_error());
        int w = cases[i].o.width ? cases[i].o.width : 800, h = cases[i].o.height ? cases[i].o.height : 560;
        CHECK(rc != 0 || png_ok(p, w, h, 500), "%s: not a valid %dx%d PNG", cases[i].file, w, h);
    }
    // A long noisy series with gaps (column decimation).
    enum { NL = 200000 };
    double *lx = malloc(sizeof *lx * NL), *ly = malloc(sizeof *ly * NL);
    for (int i = 0; i < NL; i++) lx[i] = i, ly[i] = (i % 50000 == 7) ? NAN : sin(i * 0.7) + exp(-i / 3e4);
    ufo_plot_series ls = {"long", lx, ly, NL};
    char lp[256];
    path_in_tmp(lp, sizeof lp, "long.png");
    CHECK(ufo_plot_lines(lp, NULL, &ls, 1) == 0, "long: %s", ufo_error());
    CHECK(png_ok(lp, 800, 560, 20000), "long.png bad");
    free(lx);
    free(ly);

    // All 16 series, some empty.
    ufo_plot_series many[16];
    double ys[16][5];
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 5; j++) ys[i][j] = i + 0.1 * j;
        many[i] = (ufo_plot_series){"series", X5, ys[i], i % 5 == 4 ? 0 : 5};
    }
    char p[256];
    path_in_tmp(p, sizeof p, "many.png");
    CHECK(ufo_plot_lines(p, NULL, many, 16) == 0, "16 series: %s", ufo_error());
    CHECK(png_ok(p, 800, 560, 2000), "many.png bad");
    CHECK(count_tmp_files(tmpdir) == 0, "temp files remain");
}

static void test_style(void) {
    unsigned char a[3], b[3];
    int da, db;
    ufo_plot_style(0, a, &da);
    ufo_plot_style(1, b, &db);
    CHECK(memcmp(a, b, 3) != 0 && !da && !db, "series 0 and 1 look the same");
    ufo_plot_style(10, b, &db);
    CHECK(memcmp(a, b, 3) == 0 && db, "series 10 should be series 0's colour, dashed");
}

// ------------------------------------------------------------ sample mode

static void json_array(const double *v, int n) {
    printf("[");
    for (int i = 0; i < n; i++) {
        if (isfinite(v[i])) printf("%s%.17g", i ? "," : "", v[i]);
        else printf("%snull", i ? "," : "");
    }
    printf("]");
}

static void json_range(double lo, double hi) {
    if (lo == hi) printf("null");
    else printf("[%.17g,%.17g]", lo, hi);
}

static int sample(const char *dir, const char *file, const ufo_plot_opts *o, const ufo_plot_series *s, int n,
                  const char *legend) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (ufo_plot_lines(p, o, s, n) != 0) {
        fprintf(stderr, "%s\n", ufo_error());
        return 1;
    }
    printf("{\"file\":\"%s\",\"width\":%d,\"height\":%d,\"log_x\":%d,\"title\":%s,\"legend\":\"%s\",\"xrange\":",
           file, o->width ? o->width : 800, o->height ? o->height : 560, o->log_x, o->title ? "true" : "false",
           legend);
    json_range(o->xmin, o->xmax);
    printf(",\"yrange\":");
    json_range(o->ymin, o->ymax);
    printf(",\"series\":[");
    for (int i = 0; i < n; i++) {
        unsigned char rgb[3];
        int dashed;
        ufo_plot_style(i, rgb, &dashed);
        printf("%s{\"label\":\"%s\",\"rgb\":[%d,%d,%d],\"dashed\":%d,\"x\":", i ? "," : "", s[i].label ? s[i].label : "",
               rgb[0], rgb[1], rgb[2], dashed);
        json_array(s[i].x, s[i].n);
        printf(",\"y\":");
        json_array(s[i].y, s[i].n);
        printf("}");
    }
    printf("]}\n");
    return 0;
}

static int write_samples(const char *dir) {
    int bad = 0;
    // CMC: matching rate (%) by rank for three sets, auto ranges. The curves
    // rise to the right: the legend belongs bottom-right.
    enum { R = 50 };
    double rank[R], cmc[3][R];
    const double r1[3] = {95.6, 86.1, 97.3}, k[3] = {0.35, 0.22, 0.5};
    for (int i = 0; i < R; i++) {
        rank[i] = i + 1;
        for (int j = 0; j < 3; j++) cmc[j][i] = 100 - (100 - r1[j]) * exp(-k[j] * i);
    }
    ufo_plot_series cs[3] = {{"Market-1501", rank, cmc[0], R}, {"MSMT17", rank, cmc[1], R}, {"VeRi-776", rank, cmc[2], R}};
    ufo_plot_opts co = {.title = "CMC: rank-k matching rate", .xlabel = "rank", .ylabel = "matching rate (%)"};
    bad |= sample(dir, "cmc.png", &co, cs, 3, "br");

    // ROC on a log FPR axis with explicit ranges; FPR = 0 (the first ROC
    // point) cannot be drawn and is skipped.
    enum { F = 41 };
    double fpr[F], tpr[3][F];
    const double c[3] = {0.004, 0.009, 0.014};
    fpr[0] = 0;
    for (int i = 1; i < F; i++) fpr[i] = pow(10, -6 + 6.0 * (i - 1) / (F - 2));
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < F; i++) {
            double l = fpr[i] > 0 ? -log10(fpr[i]) : 6;
            tpr[j][i] = 1 - c[j] * l * l;
        }
    ufo_plot_series rs[3] = {{"LFW", fpr, tpr[0], F}, {"CFP-FP", fpr, tpr[1], F}, {"AgeDB-30", fpr, tpr[2], F}};
    ufo_plot_opts ro = {.title = "ROC", .xlabel = "false positive rate", .ylabel = "true positive rate",
                        .log_x = 1, .xmin = 1e-5, .xmax = 1, .ymin = 0.6, .ymax = 1.0};
    bad |= sample(dir, "roc.png", &ro, rs, 3, "br");

    // Loss curves per task: falling, noisy, one with a NaN gap; the legend
    // belongs top-right. More points than pixel columns: drawn decimated.
    enum { L = 4000 };
    double step[L], loss[3][L];
    unsigned u = 12345;
    for (int i = 0; i < L; i++) {
        step[i] = 2.5 * i;
        for (int j = 0; j < 3; j++) {
            u = u * 1103515245u + 12345u;
            double noise = ((u >> 8) & 0xffff) / 65536.0 - 0.5;
            loss[j][i] = (2.0 + j) * exp(-i / (600.0 + 400 * j)) + 0.4 + 0.2 * j + 0.08 * noise;
        }
    }
    for (int i = 2000; i < 2100; i++) loss[1][i] = NAN;
    ufo_plot_series ls[3] = {{"reid/market", step, loss[0], L}, {"face/ms1m", step, loss[1], L},
                             {"retrieval/sop", step, loss[2], L}};
    ufo_plot_opts lo = {.title = "training loss", .xlabel = "step", .ylabel = "loss", .width = 640, .height = 480};
    bad |= sample(dir, "loss.png", &lo, ls, 3, "tr");

    // y = x and y = x^2 on fixed 0..1 axes: the pixel mapping check.
    enum { D = 101 };
    double dx[D], dy[D];
    for (int i = 0; i < D; i++) dx[i] = i / 100.0, dy[i] = dx[i] * dx[i];
    ufo_plot_series ds[2] = {{"y = x", dx, dx, D}, {"y = x^2", dx, dy, D}};
    ufo_plot_opts dopt = {.title = "diagonal", .xlabel = "x", .ylabel = "y", .xmin = 0, .xmax = 1, .ymin = 0, .ymax = 1};
    bad |= sample(dir, "diag.png", &dopt, ds, 2, "br");

    // All 16 styles: horizontal lines y = i.
    double hx[2] = {0, 1}, hy[16][2];
    ufo_plot_series hs[16];
    char names[16][16];
    for (int i = 0; i < 16; i++) {
        hy[i][0] = hy[i][1] = i;
        snprintf(names[i], sizeof names[i], "series %d", i);
        hs[i] = (ufo_plot_series){names[i], hx, hy[i], 2};
    }
    ufo_plot_opts ho = {.title = "palette", .xmin = 0, .xmax = 1, .ymin = -1, .ymax = 16};
    bad |= sample(dir, "palette.png", &ho, hs, 16, "tr");
    return bad;
}

int main(int argc, char **argv) {
    if (argc > 1) return write_samples(argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ufo_plot_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_style();
    test_writes_file();
    test_unwritable();
    test_bad_options();
    test_degenerate();
    if (getenv("UFO_TEST_KEEP")) fprintf(stderr, "kept %s\n", tmpdir);
    else rm_rf(tmpdir);
    return check_summary("plot");
}
