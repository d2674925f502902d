// ufo convert: any model file ufo reads -> ufo safetensors (architecture in metadata).
#include "base/error.h"
#include "cli/cli.h"
#include "model/vit_io.h"
#include <string.h>

static const char *usage =
    "usage: ufo convert IN OUT.safetensors [--dtype fp32|bf16|fp16] [--img-size S]\n\n"
    "Reads a paddle .pdmodel (e.g. allinone_vitlarge.pdmodel), a timm or ufo safetensors\n"
    "file and writes ufo safetensors: timm tensor names, linear weights [out, in], task heads\n"
    "as heads.<task>.{weight,bias,running_mean,running_var}, the architecture in the header's\n"
    "__metadata__. Written to a temp file and renamed, so OUT is never left half-written.\n"
    "  --dtype D       tensor dtype in OUT (default fp32)\n"
    "  --img-size S    resample pos_embed to S x S inputs\n"
    "  --num-heads H   attention heads when the file does not say (default dim / 64)\n";

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = "fp32";
    vit_load_options o = {.verbose = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(a, "--img-size") && i + 1 < argc) {
            if (cli_parse_int("convert", a, argv[++i], 1, 4096, &o.img_size)) return 2;
        } else if (!strcmp(a, "--num-heads") && i + 1 < argc) {
            if (cli_parse_int("convert", a, argv[++i], 1, 1024, &o.num_heads)) return 2;
        } else if (a[0] == '-') return cli_usage_error("convert", "unknown or incomplete option '%s'", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return cli_usage_error("convert", "unexpected argument '%s'", a);
    }
    if (!in || !out) return cli_usage_error("convert", "need IN and OUT");
    ufo_dtype t;
    if (!strcmp(dtype, "fp32")) t = UFO_F32;
    else if (!strcmp(dtype, "bf16")) t = UFO_BF16;
    else if (!strcmp(dtype, "fp16")) t = UFO_F16;
    else return cli_usage_error("convert", "--dtype must be fp32, bf16 or fp16, got '%s'", dtype);
    vit_model m;
    if (vit_load(&m, in, &o)) return cli_fail();
    int rc = vit_save(&m, out, t);
    vit_free(&m);
    if (rc) return cli_fail();
    fprintf(stderr, "convert: wrote %s (%s)\n", out, dtype);
    return 0;
}
