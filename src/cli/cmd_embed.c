// ufo embed: image files -> one embedding per image, as a float32 .npy [N, D].
#include "base/error.h"
#include "base/progress.h"
#include "base/file.h"
#include "cli/cli.h"
#include "data/image_files.h"
#include "formats/npy.h"
#include "ufo.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage =
    "usage: ufo embed --model M --out FEATS.npy [options] IMAGE|FOLDER... | --list FILE\n"
    "\n"
    "Embeds images with the AllInOne model: decode, Pillow-exact bicubic resize to the\n"
    "model's input size, (x - 127.5) / 127.5, ViT forward, then the task's BNNeck.\n"
    "\n"
    "  --model M            model file: ufo/timm .safetensors or paddle .pdmodel\n"
    "  --out F.npy          float32 [N, D], rows in input order (written atomically)\n"
    "  FOLDER               every .jpg/.jpeg/.png under it, at any depth, in sorted path\n"
    "                       order (hidden entries and links to folders skipped)\n"
    "  --paths-out FILE     also write the image paths, one per line, in row order\n"
    "  --task T             face | person | vehicle | product | backbone (default backbone:\n"
    "                       the class token after the final LayerNorm, before any head)\n"
    "  --list FILE          read image paths from FILE, one per line (first token)\n"
    "  --batch N            images per forward pass (default 8)\n"
    "  --threads N          OpenMP threads (default: all cores)\n"
    "  --precision P        fp32 (default) | bf16 (AMX/AVX512-BF16 matmuls; on the GPU\n"
    "                       bf16 tensor-core matmuls, fp32 accumulation)\n"
    "  --device D           cpu (default) | cuda (GPU 0; needs a build with the CUDA toolkit)\n"
    "  --workers N          decode on N threads (at most 7) overlapped with the model; the\n"
    "                       default with --device cuda is cores - 1 (at most 7); on the CPU\n"
    "                       the default decodes each batch on all cores, then runs it\n"
    "  --img-size S         run at S x S, resampling pos_embed (default: the model's size)\n"
    "  --num-heads H        attention heads, for files without ufo metadata whose head\n"
    "                       dim is not 64 (default: metadata, else dim / 64)\n"
    "  --flip               test-time flip: each embedding averaged with its mirror image's\n"
    "                       (fast-reid's TEST.FLIP; off in the original UFO evaluation)\n"
    "  --reference          use the plain-C fp32 reference kernels (slow; for checking)\n"
    "  --quiet              no progress line\n";

typedef struct {
    char **items;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->items, sizeof *p * cap);
        if (!p) return ufo_errorf("out of memory");
        l->items = p;
        l->cap = cap;
    }
    if (!(l->items[l->n] = strdup(s))) return ufo_errorf("out of memory");
    l->n++;
    return 0;
}

static void strlist_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

// A folder argument stands for the image files under it; anything else is
// taken as an image path (a missing one fails later, when it is decoded).
static int push_arg(strlist *l, const char *a) {
    struct stat st;
    if (stat(a, &st) != 0 || !S_ISDIR(st.st_mode)) return strlist_push(l, a);
    int before = l->n;
    if (ufo_find_images(a, &l->items, &l->n, &l->cap)) return -1;
    if (l->n == before) return ufo_errorf("%s: no .jpg, .jpeg or .png files under this folder", a);
    return 0;
}

// The paths in row order, one per line, written atomically.
static int write_paths(const char *path, const strlist *l) {
    ufo_atomic_file f;
    if (ufo_atomic_open(&f, path)) return -1;
    for (int i = 0; i < l->n; i++) {   // no newline in any (checked before embedding)
        if (ufo_atomic_write(&f, l->items[i], strlen(l->items[i])) || ufo_atomic_write(&f, "\n", 1)) {
            ufo_atomic_abort(&f);
            return -1;
        }
    }
    return ufo_atomic_commit(&f);
}

// One path per line: the first whitespace-separated token; blank lines and
// lines starting with '#' are skipped.
static int read_list(const char *path, strlist *out) {
    char *text;
    if (ufo_read_file(path, &text, NULL)) return -1;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0; line = strtok_r(NULL, "\n", &save)) {
        char *tok = line + strspn(line, " \t\r");
        tok[strcspn(tok, " \t\r")] = 0;
        if (*tok && *tok != '#') rc = strlist_push(out, tok);
    }
    free(text);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *list = NULL, *paths_out = NULL, *task_name = "backbone";
    const char *prec = "fp32", *device = "cpu";
    int batch = 8, quiet = 0, workers = 0;
    ufo_options opt = {0};
    strlist images = {0};
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            strlist_free(&images);
            return 0;
        } else if (!strcmp(a, "--model") && has) model = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--task") && has) task_name = argv[++i];
        else if (!strcmp(a, "--list") && has) list = argv[++i];
        else if (!strcmp(a, "--paths-out") && has) paths_out = argv[++i];
        else if (!strcmp(a, "--precision") && has) prec = argv[++i];
        else if (!strcmp(a, "--device") && has) device = argv[++i];
        else if (!strcmp(a, "--batch") && has) {
            if (cli_parse_int("embed", a, argv[++i], 1, 4096, &batch)) goto done_usage;
        } else if (!strcmp(a, "--workers") && has) {
            if (cli_parse_int("embed", a, argv[++i], 1, 7, &workers)) goto done_usage;
        } else if (!strcmp(a, "--threads") && has) {
            if (cli_parse_int("embed", a, argv[++i], 1, 1024, &opt.threads)) goto done_usage;
        } else if (!strcmp(a, "--img-size") && has) {
            if (cli_parse_int("embed", a, argv[++i], 1, 4096, &opt.img_size)) goto done_usage;
        } else if (!strcmp(a, "--num-heads") && has) {
            if (cli_parse_int("embed", a, argv[++i], 1, 1024, &opt.num_heads)) goto done_usage;
        } else if (!strcmp(a, "--reference")) opt.reference = 1;
        else if (!strcmp(a, "--flip")) opt.flip = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("embed", "unknown or incomplete option '%s'", a);
            goto done;
        } else if (push_arg(&images, a)) goto fail;
    }
    if (!model || !out) {
        rc = cli_usage_error("embed", "--model and --out are required");
        goto done;
    }
    int task = ufo_task_from_name(task_name);
    if (task == -2) {
        rc = cli_usage_error("embed", "unknown task '%s' (face, person, vehicle, product, backbone)", task_name);
        goto done;
    }
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16")) {
        rc = cli_usage_error("embed", "--precision must be fp32 or bf16, got '%s'", prec);
        goto done;
    }
    opt.bf16 = !strcmp(prec, "bf16");
    if (cli_parse_device("embed", device, &opt.device)) {
        rc = 2;
        goto done;
    }
    if (list && read_list(list, &images)) goto fail;
    if (images.n == 0) {
        rc = cli_usage_error("embed", "no images given");
        goto done;
    }
    for (int i = 0; paths_out && i < images.n; i++)
        if (strchr(images.items[i], '\n')) {   // found before the work, not after
            ufo_errorf("%s: cannot list '%s' one per line: its name holds a newline", paths_out, images.items[i]);
            goto fail;
        }
    ufo_model *m = ufo_load(model, &opt);
    if (!m) goto fail;
    if (!ufo_has_task(m, task)) {
        ufo_errorf("%s: the model has no '%s' head", model, task_name);
        ufo_free_model(m);
        goto fail;
    }
    int D = ufo_embed_dim(m);
    float *feats = malloc(sizeof(float) * (size_t)images.n * D);
    if (!feats) {
        ufo_free_model(m);
        ufo_errorf("out of memory");
        goto fail;
    }
    int err = 0;
    if (opt.device == UFO_DEVICE_CUDA || workers) {
        // Decode threads fill (pinned, with CUDA) batches while the model runs the previous one.
        if (!workers) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            workers = cores > 8 ? 7 : cores > 2 ? (int)cores - 1 : 1;
        }
        err = ufo_embed_files_pipelined(m, (const char *const *)images.items, images.n, task, batch, workers, quiet,
                                        feats);
    } else {
        ufo_progress pg;
        ufo_progress_begin(&pg, "embed", "img", images.n, quiet);
        for (int i = 0; i < images.n && !err; i += batch) {
            int nb = images.n - i < batch ? images.n - i : batch;
            err = ufo_embed_files(m, (const char *const *)images.items + i, nb, task, feats + (size_t)i * D);
            ufo_progress_update(&pg, i + nb);
        }
        if (!err) ufo_progress_end(&pg, images.n);
    }
    if (!err) {
        int64_t shape[2] = {images.n, D};
        err = ufo_npy_write(out, UFO_F32, shape, 2, feats);
    }
    if (!err && paths_out) err = write_paths(paths_out, &images);
    free(feats);
    ufo_free_model(m);
    if (err) goto fail;
    if (!quiet)
        fprintf(stderr, "embed: wrote %s [%d, %d] (%s, %s, task %s)\n", out, images.n, D, prec, device, task_name);
    rc = 0;
    goto done;
fail:
    rc = cli_fail();
    goto done;
done_usage:
    rc = 2;
done:
    strlist_free(&images);
    return rc;
}
