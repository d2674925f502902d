// A progress line for long work: "label  done/total  rate unit/s  ETA m:ss".
// Redrawn in place on a terminal, printed every few seconds otherwise, on stderr.
#pragma once
#include <stdint.h>

typedef struct {
    const char *label;
    const char *unit;
    int64_t total;
    double t0, last_print;
    int tty;
    int quiet;
} ufo_progress;

double ufo_now(void);  // monotonic seconds
void ufo_progress_begin(ufo_progress *p, const char *label, const char *unit, int64_t total, int quiet);
void ufo_progress_update(ufo_progress *p, int64_t done);
void ufo_progress_end(ufo_progress *p, int64_t done);
