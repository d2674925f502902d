// ufo: one CLI, one subcommand per file (cmd_<name>.c).
#include "cli/cli.h"
#include "base/error.h"
#include "dist/comm.h"
#include "ufo.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"embed", cmd_embed, "images -> embeddings (.npy), with a task head or the backbone"},
    {"preprocess", cmd_preprocess, "image -> the exact float tensor the model sees (.npy)"},
    {"train", cmd_train, "train the multi-task model from a recipe (resumable)"},
    {"eval", cmd_eval, "score a model on the twelve benchmarks; print the seed's table"},
    {"search", cmd_search, "exact k nearest neighbours of embeddings in a gallery (.npy)"},
    {"info", cmd_info, "describe a model file: architecture, parameters, heads"},
    {"init", cmd_init, "write a randomly initialised model of any size (.safetensors)"},
    {"bench", cmd_bench, "time the forward pass of a model of any size (images/s)"},
    {"convert", cmd_convert, "model file -> ufo safetensors (from paddle .pdmodel, timm, ...)"},
};

static void usage(FILE *out) {
    fprintf(out, "ufo %s: unified visual representation (face, person, vehicle, product)\n\n"
                 "usage: ufo <command> [options]   (ufo <command> --help for details)\n\ncommands:\n",
            UFO_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int cli_fail(void) {
    fprintf(stderr, "ufo: %s\n", ufo_error());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ufo %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'ufo %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects an integer in [%d, %d], got '%s'", opt, lo, hi, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_parse_device(const char *cmd, const char *s, int *out) {
    if (!strcmp(s, "cpu")) *out = UFO_DEVICE_CPU;
    else if (!strcmp(s, "cuda")) *out = UFO_DEVICE_CUDA;
    else return cli_usage_error(cmd, "--device must be cpu or cuda, got '%s'", s), -1;
    return 0;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int main(int argc, char **argv) {
    if (argc < 2 || cli_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
#ifdef UFO_HAVE_CUDA
        printf("ufo %s (with the CUDA backend: --device cuda)\n", UFO_VERSION);
#else
        printf("ufo %s (CPU only)\n", UFO_VERSION);
#endif
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            // Under mpirun a rank that fails must not leave the others waiting in
            // a collective: its error line is printed, then the whole job ends.
            ufo_comm *c = ufo_comm_started();
            if (rc && c && c->size > 1) ufo_comm_abort(c, rc, "ufo %s failed on this rank; ending every rank", argv[1]);
            ufo_comm_finalize();
            return rc;
        }
    fprintf(stderr, "ufo: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
