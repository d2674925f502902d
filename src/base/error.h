// Errors: every fallible function returns 0 on success or -1 on failure and
// leaves one human-readable line (what, and where) in a thread-local buffer.
// The CLI prints that line and exits non-zero; nothing else prints errors.
#pragma once
#include <stdarg.h>

#define UFO_ERR_MAX 1024

// Formats the message, stores it as the current error and returns -1, so a
// failing path reads `return ufo_errorf("%s: truncated header", path);`.
int ufo_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prefixes the current error with more context: "ctx: <old message>".
int ufo_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ufo_error(void);
void ufo_error_clear(void);
