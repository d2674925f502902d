// Minimal test harness for the C unit tests: CHECK records a failure and goes
// on; the test's main returns check_summary(), which prints the plain
// "N passed, N failed" line and returns non-zero when anything failed.
#pragma once
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int check_pass_, check_fail_;

// Not printf-attributed on purpose: CHECK's message is optional ("").
static inline void check_msg_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) check_pass_++;                                                \
        else {                                                                  \
            check_fail_++;                                                      \
            fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond);  \
            check_msg_("" __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

// max |a-b| / max(|b|_inf, tiny): relative to the reference's scale.
static inline double check_max_rel_err(const float *a, const float *ref, long n) {
    double md = 0, mr = 1e-30;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || d != d) md = (d != d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / mr;
}

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_pass_, check_fail_);
    return check_fail_ != 0;
}
