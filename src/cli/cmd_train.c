// ufo train: the AllInOne multi-task trainer.
#include "base/error.h"
#include "cli/cli.h"
#include "dist/comm.h"
#include "model/vit_train.h"
#include "train/run.h"
#include "ufo.h"
#include <omp.h>
#include <string.h>

static const char *usage =
    "usage: ufo train --config RECIPE.ini --out DIR [section.key=value ...]\n"
    "       ufo train --resume DIR/last.safetensors [--out DIR] [section.key=value ...]\n"
    "       ufo train --print-recipe [--config RECIPE.ini]\n"
    "\n"
    "Trains one ViT backbone on face, person, vehicle and product together: every\n"
    "batch holds all four tasks (or one, with data.batch_mix = homogeneous), each task\n"
    "has a BNNeck, CosFace and (person, vehicle, product) batch-hard triplet, SGD with\n"
    "warmup + cosine. Recipes: recipes/allinone_vitlarge.ini (the seed's), recipes/demo.ini.\n"
    "\n"
    "  --config F        the recipe (INI; every key has a documented default)\n"
    "  --out DIR         run folder: last.safetensors, model.safetensors, log.csv, loss.png,\n"
    "                    eval.json, recipe.ini\n"
    "  --resume CK       continue a run exactly where its checkpoint stopped (the recipe is\n"
    "                    read from the checkpoint; overrides may change e.g. optim.steps)\n"
    "  --threads N       OpenMP threads for the model\n"
    "  --device D        cpu (default) or cuda: the model's forward, backward and SGD on the\n"
    "                    GPU, also CosFace/triplet and the classifiers (Partial-FC sharded\n"
    "                    and sampled ones too; UFO_CUDA_HEADS=cpu keeps them all on the CPU)\n"
    "  --stop-after N    checkpoint and stop after step N (resume later with --resume)\n"
    "  --print-recipe    print the recipe with every key, its value and its meaning\n"
    "  --quiet           no progress lines\n"
    "  section.key=value override one recipe key, e.g. optim.steps=500\n"
    "\n"
    "Data parallel: mpirun -np N ufo train ... runs N processes on one global batch\n"
    "(each decodes and trains on its share of every task's rows; sync BN, global triplet\n"
    "mining, summed gradients: the same steps as one process, up to fp32 rounding).\n"
    "Classifiers above run.shard_classes_above classes are split by class over the ranks\n"
    "(Partial-FC). Rank 0 alone prints and writes; checkpoints resume under any N.\n"
    "  run.pfc_sample_rate=R  (0 < R <= 1; 1 = off) Partial-FC class sampling for those\n"
    "                    classifiers, in one process too: each step's CosFace runs over the\n"
    "                    batch's classes plus random others, max(positives, ceil(R x classes));\n"
    "                    rows not drawn keep their weights and momentum. The draw depends on\n"
    "                    the seed, the step and the labels only (same under any N, on resume).\n"
    "  run.zero=1        ZeRO stage 1 (under mpirun, CPU or CUDA): each rank keeps the SGD momentum\n"
    "                    of 1/N of the model; gradients reduce-scattered, parameters\n"
    "                    all-gathered; checkpoints hold the whole momentum (resume anywhere).\n"
    "UFO_COMM_TIMEOUT (seconds, default 1800) bounds every collective.\n"
    "With --device cuda under mpirun: one GPU per process (the node-local rank), the\n"
    "model's gradients all-reduced on the GPUs by NCCL (builds that found NCCL), block by\n"
    "block while the backward runs.\n";

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *resume = NULL;
    int print = 0, quiet = 0, threads = 0, stop_after = 0, cuda = 0;
    ufo_recipe r;
    ufo_recipe_defaults(&r);
    const char *overrides[64];
    int n_over = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--config") && has) config = argv[++i];
        else if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--resume") && has) resume = argv[++i];
        else if (!strcmp(a, "--print-recipe")) print = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--device") && has) {
            int dev;
            if (cli_parse_device("train", argv[++i], &dev)) return 2;
            if (ufo_device_check(dev)) return cli_fail();   // no GPU / built without CUDA: one line
            cuda = dev == UFO_DEVICE_CUDA;
        } else if (!strcmp(a, "--threads") && has) {
            if (cli_parse_int("train", a, argv[++i], 1, 1024, &threads)) return 2;
        } else if (!strcmp(a, "--stop-after") && has) {
            if (cli_parse_int("train", a, argv[++i], 1, 2147483647, &stop_after)) return 2;
        } else if (a[0] != '-' && strchr(a, '=') && n_over < 64) overrides[n_over++] = a;
        else return cli_usage_error("train", "unknown or incomplete option '%s'", a);
    }
    if (config && resume) return cli_usage_error("train", "give --config or --resume, not both");
    if (config && ufo_recipe_load(&r, config)) return cli_fail();
    if (resume && ufo_train_recipe_from_checkpoint(resume, &r)) return cli_fail();
    for (int i = 0; i < n_over; i++)
        if (ufo_recipe_set(&r, overrides[i])) return cli_fail();
    if (print) {
        ufo_recipe_print(&r, stdout);
        return 0;
    }
    if (!config && !resume) return cli_usage_error("train", "--config or --resume is required");
    char dir[1024];
    if (!out && resume) {  // the checkpoint's own folder
        snprintf(dir, sizeof dir, "%s", resume);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        out = dir;
    }
    if (!out) return cli_usage_error("train", "--out is required");
    if (threads) omp_set_num_threads(threads);
    ufo_train_run_opts o = {.out_dir = out, .resume = resume, .quiet = quiet, .stop_after = stop_after, .cuda = cuda};
#ifdef UFO_HAVE_NCCL
    // mpirun + --device cuda: one GPU per rank, the gradients all-reduced on
    // the devices by NCCL (bootstrapped over MPI); everything else over MPI.
    static ufo_comm nccl;
    if (cuda && ufo_comm_launched_by_mpirun()) {
        ufo_comm *host = ufo_comm_world();
        if (!host) return cli_fail();
        if (host->size > 1) {
            if (ufo_comm_nccl_init(&nccl, host, vit_train_cuda_local_device())) return cli_fail();
            o.dev_comm = &nccl;
        }
    }
#endif
    int rc = ufo_train_run(&r, &o);
#ifdef UFO_HAVE_NCCL
    if (o.dev_comm) nccl.ops->finalize(&nccl);
#endif
    return rc ? cli_fail() : 0;
}
