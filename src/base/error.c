#include "base/error.h"
#include <stdio.h>
#include <string.h>

static _Thread_local char err_buf[UFO_ERR_MAX];

int ufo_errorf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_buf, sizeof err_buf, fmt, ap);
    va_end(ap);
    // One line: an embedded newline would break "one line saying what and where".
    for (char *p = err_buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return -1;
}

int ufo_error_wrap(const char *fmt, ...) {
    char prefix[UFO_ERR_MAX], old[UFO_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_buf, sizeof old);
    return ufo_errorf("%s: %s", prefix, old);
}

const char *ufo_error(void) { return err_buf[0] ? err_buf : "unknown error"; }
void ufo_error_clear(void) { err_buf[0] = 0; }
