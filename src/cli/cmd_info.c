// ufo info: what a model file holds, without running it.
#include "cli/cli.h"
#include "model/vit_io.h"
#include <stdlib.h>
#include <string.h>
#include "base/error.h"

static const char *usage =
    "usage: ufo info MODEL [--num-heads H]\n\n"
    "Prints the architecture (input size, patch, width, depth, heads, MLP), parameter\n"
    "counts, task heads and tensor dtypes of a ufo/timm safetensors or paddle .pdmodel file.\n";

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    vit_load_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--num-heads") && i + 1 < argc) {
            if (cli_parse_int("info", argv[i], argv[i + 1], 1, 1024, &o.num_heads)) return 2;
            i++;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error("info", "unknown option '%s'", argv[i]);
        if (path) return cli_usage_error("info", "one model file at a time");
        path = argv[i];
    }
    if (!path) return cli_usage_error("info", "no model file given");
    ufo_tensor_file f;
    if (vit_open_tensor_file(path, &f)) return cli_fail();
    vit_config c;
    unsigned heads;
    const char *naming;
    if (vit_describe(&f, &o, &c, &heads, &naming)) {
        ufo_error_wrap("%s", path);
        ufo_tensor_file_free(&f);
        return cli_fail();
    }
    vit_param *table;
    size_t total;
    int n = vit_param_table(&c, heads, &table, &total);
    long long backbone = 0, head = 0;
    for (int i = 0; i < n; i++) {
        if (table[i].kind >= P_BN_W) head += (long long)table[i].numel;
        else backbone += (long long)table[i].numel;
    }
    free(table);
    int dtype_count[UFO_DTYPE_COUNT] = {0};
    for (int i = 0; i < f.n; i++) dtype_count[f.items[i].dtype]++;
    printf("file        %s\n", path);
    printf("naming      %s%s\n", naming, ufo_tensor_file_meta(&f, "format") ? " (ufo metadata)" : "");
    printf("input       %d x %d, patch %d (%d tokens)\n", c.img_size, c.img_size, c.patch_size, vit_tokens(&c));
    printf("backbone    ViT dim %d, depth %d, heads %d (head dim %d), mlp %d\n", c.dim, c.depth, c.heads,
           c.dim / c.heads, c.mlp_hidden);
    printf("parameters  %lld backbone + %lld in heads\n", backbone, head);
    printf("heads      ");
    if (!heads) printf(" none");
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        if (heads >> t & 1) printf(" %s", vit_task_name(t));
    printf("\ntensors     %d (", f.n);
    for (int t = 0, first = 1; t < UFO_DTYPE_COUNT; t++)
        if (dtype_count[t]) {
            printf("%s%d %s", first ? "" : ", ", dtype_count[t], ufo_dtype_name((ufo_dtype)t));
            first = 0;
        }
    printf(")\n");
    ufo_tensor_file_free(&f);
    return 0;
}
