// ufo init: a fresh, randomly initialised model file of any size.
#include "base/error.h"
#include "cli/cli.h"
#include "model/vit_io.h"
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: ufo init --out M.safetensors [options]\n\n"
    "Writes a randomly initialised AllInOne model (timm's ViT initialisation).\n"
    "  --preset P       tiny | small | base | large (default tiny)\n"
    "  --dim D --depth L --num-heads H --mlp M   override the preset's sizes\n"
    "  --img-size S     input size (default 224)\n"
    "  --patch P        patch size (default 16)\n"
    "  --heads LIST     task heads, comma separated (default face,person,vehicle,product; 'none')\n"
    "  --seed N         random seed (default 0)\n";

int cmd_init(int argc, char **argv) {
    const char *out = NULL, *preset = "tiny", *heads = "face,person,vehicle,product";
    int img = 224, patch = 16, dim = 0, depth = 0, nheads = 0, mlp = 0, seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--preset") && has) preset = argv[++i];
        else if (!strcmp(a, "--heads") && has) heads = argv[++i];
        else if (!strcmp(a, "--img-size") && has) { if (cli_parse_int("init", a, argv[++i], 1, 4096, &img)) return 2; }
        else if (!strcmp(a, "--patch") && has) { if (cli_parse_int("init", a, argv[++i], 1, 64, &patch)) return 2; }
        else if (!strcmp(a, "--dim") && has) { if (cli_parse_int("init", a, argv[++i], 1, 16384, &dim)) return 2; }
        else if (!strcmp(a, "--depth") && has) { if (cli_parse_int("init", a, argv[++i], 1, 256, &depth)) return 2; }
        else if (!strcmp(a, "--num-heads") && has) { if (cli_parse_int("init", a, argv[++i], 1, 1024, &nheads)) return 2; }
        else if (!strcmp(a, "--mlp") && has) { if (cli_parse_int("init", a, argv[++i], 1, 65536, &mlp)) return 2; }
        else if (!strcmp(a, "--seed") && has) { if (cli_parse_int("init", a, argv[++i], 0, 2147483647, &seed)) return 2; }
        else return cli_usage_error("init", "unknown or incomplete option '%s'", a);
    }
    if (!out) return cli_usage_error("init", "--out is required");
    vit_config c;
    if (vit_config_preset(preset, img, patch, &c)) return cli_fail();
    if (dim) c.dim = dim, c.mlp_hidden = 4 * dim;
    if (depth) c.depth = depth;
    if (nheads) c.heads = nheads;
    if (mlp) c.mlp_hidden = mlp;
    unsigned mask = 0;
    if (strcmp(heads, "none") != 0) {
        char *list = strdup(heads), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int k = vit_task_from_name(t);
            if (k < 0) {
                free(list);
                return cli_usage_error("init", "unknown task '%s' in --heads", t);
            }
            mask |= 1u << k;
        }
        free(list);
    }
    vit_model m;
    if (vit_alloc(&m, &c, mask)) return cli_fail();
    vit_init_random(&m, (uint64_t)seed);
    int rc = vit_save(&m, out, UFO_F32);
    vit_free(&m);
    if (rc) return cli_fail();
    fprintf(stderr, "init: wrote %s (dim %d, depth %d, heads %d, %dx%d, patch %d)\n", out, c.dim, c.depth,
            c.heads, c.img_size, c.img_size, c.patch_size);
    return 0;
}
