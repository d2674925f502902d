#include "base/progress.h"
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double ufo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ufo_progress_begin(ufo_progress *p, const char *label, const char *unit, int64_t total, int quiet) {
    p->label = label;
    p->unit = unit ? unit : "it";
    p->total = total;
    p->t0 = p->last_print = ufo_now();
    p->tty = isatty(2);
    p->quiet = quiet;
}

static void print_line(ufo_progress *p, int64_t done, int final) {
    double el = ufo_now() - p->t0;
    double rate = el > 0 ? done / el : 0;
    double eta = (rate > 0 && p->total > done) ? (p->total - done) / rate : 0;
    fprintf(stderr, "%s%s  %lld/%lld  %.2f %s/s  %s %d:%02d%s", p->tty ? "\r" : "", p->label,
            (long long)done, (long long)p->total, rate, p->unit, final ? "took" : "ETA",
            (int)(final ? el : eta) / 60, (int)(final ? el : eta) % 60,
            (p->tty && !final) ? "   " : "\n");
    fflush(stderr);
}

void ufo_progress_update(ufo_progress *p, int64_t done) {
    if (p->quiet) return;
    double t = ufo_now();
    if (t - p->last_print < (p->tty ? 0.25 : 5.0)) return;
    p->last_print = t;
    print_line(p, done, 0);
}

void ufo_progress_end(ufo_progress *p, int64_t done) {
    if (p->quiet) return;
    print_line(p, done, 1);
}
