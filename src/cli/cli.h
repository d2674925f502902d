// Shared by the subcommands: each lives in cmd_<name>.c and is listed in main.c.
#pragma once
#include <stdio.h>

int cmd_embed(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_search(int argc, char **argv);

// Prints "ufo: <message>" (the current ufo_error()) on stderr; returns 1.
int cli_fail(void);
// Prints "ufo <cmd>: <msg>" and a pointer to --help; returns 2 (usage error).
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Parses a decimal int option value in [lo, hi]; on error reports and returns -1.
int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out);
// "cpu" / "cuda" -> UFO_DEVICE_*; else a usage error (returns -1).
int cli_parse_device(const char *cmd, const char *s, int *out);
// True if arg is "-h" or "--help".
int cli_is_help(const char *arg);
