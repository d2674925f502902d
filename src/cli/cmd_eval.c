// ufo eval: the seed's benchmark table for a model (SPEC section 5).
#include "base/error.h"
#include "cli/cli.h"
#include "dist/comm.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "model/screen_cuda.h"
#include "model/vit_io.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage =
    "usage: ufo eval --model M [--datasets all|LIST] [options]\n"
    "\n"
    "Embeds each test set with its task head and scores it with the set's standard\n"
    "protocol, then prints the seed's table. Data root: $FASTREID_DATASETS or --data.\n"
    "Sets: CALFW CPLFW LFW CFP_FF CFP_FP AgeDB_30 Market1501 MSMT17 VeRi LargeVehicleID\n"
    "      LargeVeRiWild SOP  (comma separated; 'all' = every one, the default)\n"
    "\n"
    "  --model M               ufo/timm .safetensors or paddle .pdmodel\n"
    "  --data DIR              data root (overrides FASTREID_DATASETS)\n"
    "  --batch-size N          images per forward pass (default 8; --batch too)\n"
    "  --precision P           fp32 (default) | bf16\n"
    "  --flip                  test-time flip: each embedding averaged with its mirror\n"
    "                          image's (fast-reid's TEST.FLIP; off in the original, and by\n"
    "                          default: the seed's numbers are without it). Twice the time\n"
    "  --device D              cpu (default) | cuda (GPU 0; images are decoded on --workers\n"
    "                          threads beside it; the fp32 similarity screen of the ReID and\n"
    "                          SOP metrics runs on the GPU too when a set is large: same\n"
    "                          results, bit for bit; UFO_METRICS_GPU=always|never|auto)\n"
    "  --threads N             OpenMP threads for the model (default: all cores)\n"
    "  --workers N             image decode threads (default 1; with --device cuda: cores - 1,\n"
    "                          at most 7)\n"
    "  --head DATASET=TASK     score DATASET with TASK's head (face person vehicle product\n"
    "                          backbone); default: the released script's choice (face sets:\n"
    "                          face; Market1501 MSMT17 VeRi LargeVehicleID LargeVeRiWild: vehicle;\n"
    "                          SOP: product). Repeatable.\n"
    "  --vehicleid-splits N    average LargeVehicleID over N seeded random splits (default 1)\n"
    "  --seed N                seed of the first VehicleID split (default 0)\n"
    "  --face-source S         auto (default) | filelist | bin   (insightface .bin files)\n"
    "  --msmt-version V        0 (default: V2 if present, else V1) | 1 | 2\n"
    "  --cache DIR             feature cache: repeated or interrupted runs do not embed again\n"
    "  --json F  --csv F       write the results (atomically)\n"
    "  --plots DIR             PNG plots: CMC curves (ReID), ROC curves (face)\n"
    "  --num-heads H           attention heads when the model file does not say\n"
    "  --quiet                 no progress lines\n"
    "\n"
    "Under mpirun -np N every rank embeds its share of each set (no --cache then) and\n"
    "rank 0 scores, prints and writes.\n";

#define MAX_SETS 12

typedef struct {
    const char *model, *data, *json, *csv, *plots, *cache, *precision, *datasets;
    int device;
    int batch, threads, workers, splits, quiet, face_source, msmt, num_heads, flip;
    long long seed;
    int head[MAX_SETS];  // -2: default
} eval_args;

static int parse_head(const char *spec, eval_args *a) {
    const char *eq = strchr(spec, '=');
    char set[64];
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof set)
        return cli_usage_error("eval", "--head expects DATASET=TASK, got '%s'", spec);
    memcpy(set, spec, eq - spec);
    set[eq - spec] = 0;
    int i = ufo_eval_set_find(set);
    if (i < 0) return cli_usage_error("eval", "--head: unknown dataset '%s'", set);
    int t = strcmp(eq + 1, "backbone") == 0 ? -1 : vit_task_from_name(eq + 1);
    if (t < -1 || (t == -1 && strcmp(eq + 1, "backbone")))
        return cli_usage_error("eval", "--head: unknown task '%s'", eq + 1);
    a->head[i] = t;
    return 0;
}

static int parse_args(int argc, char **argv, eval_args *a) {
    for (int i = 0; i < MAX_SETS; i++) a->head[i] = -2;
    a->batch = 8, a->workers = 0, a->splits = 1, a->precision = "fp32", a->datasets = "all";
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has = i + 1 < argc;
        const char *v = has ? argv[i + 1] : NULL;
        if (cli_is_help(s)) {
            fputs(usage, stdout);
            return 1;
        }
#define OPT(name) (!strcmp(s, name) && has && (i++, 1))
        if (OPT("--model")) a->model = v;
        else if (OPT("--data")) a->data = v;
        else if (OPT("--datasets") || OPT("--test_datasets")) a->datasets = v;
        else if (OPT("--json")) a->json = v;
        else if (OPT("--csv")) a->csv = v;
        else if (OPT("--plots")) a->plots = v;
        else if (OPT("--cache")) a->cache = v;
        else if (OPT("--precision")) a->precision = v;
        else if (OPT("--device")) {
            if (cli_parse_device("eval", v, &a->device)) return 2;
        }
        else if (OPT("--batch-size") || OPT("--batch") || OPT("--batchsize")) {
            if (cli_parse_int("eval", s, v, 1, 4096, &a->batch)) return 2;
        } else if (OPT("--threads")) {
            if (cli_parse_int("eval", s, v, 1, 1024, &a->threads)) return 2;
        } else if (OPT("--workers")) {
            if (cli_parse_int("eval", s, v, 1, 7, &a->workers)) return 2;
        } else if (OPT("--vehicleid-splits")) {
            if (cli_parse_int("eval", s, v, 1, 1000, &a->splits)) return 2;
        } else if (OPT("--num-heads")) {
            if (cli_parse_int("eval", s, v, 1, 1024, &a->num_heads)) return 2;
        } else if (OPT("--msmt-version")) {
            if (cli_parse_int("eval", s, v, 0, 2, &a->msmt)) return 2;
        } else if (OPT("--seed")) {
            int seed;
            if (cli_parse_int("eval", s, v, 0, 2147483647, &seed)) return 2;
            a->seed = seed;
        } else if (OPT("--face-source")) {
            if (!strcmp(v, "auto")) a->face_source = UFO_FACE_AUTO;
            else if (!strcmp(v, "filelist")) a->face_source = UFO_FACE_FILELIST;
            else if (!strcmp(v, "bin")) a->face_source = UFO_FACE_BIN;
            else return cli_usage_error("eval", "--face-source must be auto, filelist or bin");
        } else if (OPT("--head")) {
            if (parse_head(v, a)) return 2;
        } else if (!strcmp(s, "--quiet")) a->quiet = 1;
        else if (!strcmp(s, "--flip")) a->flip = 1;
        else return cli_usage_error("eval", "unknown or incomplete option '%s'", s);
#undef OPT
    }
    if (!a->model) return cli_usage_error("eval", "--model is required");
    if (!a->data) a->data = getenv("FASTREID_DATASETS");
    if (!a->data || !*a->data) return cli_usage_error("eval", "no data root: set FASTREID_DATASETS or give --data");
    if (strcmp(a->precision, "fp32") && strcmp(a->precision, "bf16"))
        return cli_usage_error("eval", "--precision must be fp32 or bf16");
    return 0;
}

// "all" or a comma-separated list -> indices into ufo_eval_set_names(), in the
// seed's table order, each once.
static int parse_sets(const char *list, int *sets, int *n) {
    int count;
    ufo_eval_set_names(&count);
    int want[MAX_SETS] = {0};
    char *copy = strdup(list), *save = NULL;
    if (!copy) return ufo_errorf("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "all")) {
            for (int i = 0; i < count; i++) want[i] = 1;
            continue;
        }
        int i = ufo_eval_set_find(t);
        if (i < 0) {
            cli_usage_error("eval", "unknown dataset '%s'", t);
            free(copy);
            return -2;
        }
        want[i] = 1;
    }
    free(copy);
    *n = 0;
    for (int i = 0; i < count; i++)
        if (want[i]) sets[(*n)++] = i;
    return *n ? 0 : (cli_usage_error("eval", "no datasets given"), -2);
}

// Cache key of the model: where it is, how big, when it changed.
static void model_id(const char *path, char *out, size_t cap) {
    struct stat st;
    char *real = realpath(path, NULL);
    if (stat(path, &st) == 0)
        snprintf(out, cap, "%s:%lld:%lld", real ? real : path, (long long)st.st_size, (long long)st.st_mtime);
    else snprintf(out, cap, "%s", path);
    free(real);
}

// Where this set's kNN screen ran: "eval: Market1501: kNN screen on the GPU
// (1 call, 4.12e+10 products, 0.41 s)", or why it did not.
static void screen_line(const char *set, const cuda_screen *s, cuda_screen_stats *before) {
    cuda_screen_stats now;
    cuda_screen_get_stats(s, &now);
    int64_t calls = now.calls - before->calls, declined = now.declined - before->declined;
    int64_t cpu = now.cpu_blocks - before->cpu_blocks;
    if (calls)
        fprintf(stderr, "eval: %s: kNN screen on the GPU (%lld call%s, %.3g products, %.2f s%s)\n", set,
                (long long)calls, calls > 1 ? "s" : "", now.macs - before->macs, now.seconds - before->seconds,
                cpu ? "; GPU memory short: some blocks on the CPU" : "");
    else if (declined)
        fprintf(stderr, "eval: %s: kNN screen on the CPU (the gallery does not fit in GPU memory)\n", set);
    *before = now;
}

int cmd_eval(int argc, char **argv) {
    eval_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    int sets[MAX_SETS], nsets = 0;
    if ((rc = parse_sets(a.datasets, sets, &nsets))) return rc == -2 ? 2 : cli_fail();
    if (a.threads) omp_set_num_threads(a.threads);
    if (ufo_device_check(a.device)) return cli_fail();  // before loading anything
    if (a.device == UFO_DEVICE_CUDA && ufo_metrics_screen_mode() < 0) return cli_fail();  // not after a set's embedding
    if (!a.workers) {  // the CPU model uses every core itself; the GPU needs decoders beside it
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        a.workers = a.device == UFO_DEVICE_CPU ? 1 : cores > 8 ? 7 : cores > 2 ? (int)cores - 1 : 1;
    }
    const char *const *names = ufo_eval_set_names(NULL);
    // Check every head before the (slow) work starts.
    vit_model m;
    vit_load_options lo = {.num_heads = a.num_heads};
    if (vit_load(&m, a.model, &lo)) return cli_fail();
    int task[MAX_SETS];
    for (int k = 0; k < nsets; k++) {
        int i = sets[k];
        task[k] = a.head[i] != -2 ? a.head[i] : ufo_default_task(names[i]);
        if (task[k] >= 0 && !(m.head_mask >> task[k] & 1)) {
            ufo_errorf("%s: %s needs the '%s' head, which the model lacks (choose one with --head %s=TASK)",
                       a.model, names[i], vit_task_name(task[k]), names[i]);
            vit_free(&m);
            return cli_fail();
        }
    }
    ufo_precision prec = strcmp(a.precision, "bf16") ? UFO_PREC_FP32 : UFO_PREC_BF16;
    if (prec == UFO_PREC_BF16 && a.device == UFO_DEVICE_CPU && !cpu_has_bf16()) {
        fprintf(stderr, "ufo: note: this CPU has no native bf16 (%s); running fp32\n", cpu_isa_name());
        prec = UFO_PREC_FP32;
        a.precision = "fp32";
    }
    cuda_screen *screen = NULL;
    if (vit_prepare(&m, a.device == UFO_DEVICE_CUDA ? VIT_BACKEND_CUDA : VIT_BACKEND_CPU, prec)) {
        vit_free(&m);
        return cli_fail();
    }
    if (a.device == UFO_DEVICE_CUDA) {
        // GPU features differ from the CPU's in the last bits: their own cache key and label.
        a.precision = prec == UFO_PREC_BF16 ? "bf16 cuda" : "fp32 cuda";
        if (!a.quiet) fprintf(stderr, "eval: on %s\n", vit_cuda_device(&m));
        // The kNN metrics' fp32 screen on the GPU as well (eval/metrics.h): the
        // exact metrics do not change, only where the bulk of the products runs.
        if ((screen = cuda_screen_create(0))) {
            ufo_metrics_screen ms = {cuda_screen_begin, cuda_screen_block, cuda_screen_end, screen};
            ufo_metrics_set_screen(&ms);
        } else if (!a.quiet) {
            fprintf(stderr, "eval: note: %s; the metrics screen on the CPU\n", ufo_error());
        }
    }
    char mid[1200];
    model_id(a.model, mid, sizeof mid);
    ufo_evaluate_opts eo = {
        .root = a.data,
        .data = {.face_source = (ufo_face_source)a.face_source, .msmt_version = a.msmt},
        .embed = {.batch = a.batch, .workers = a.workers, .cache_dir = a.cache, .model_id = mid,
                  .precision = a.precision, .quiet = a.quiet, .flip = a.flip},
        .vehicleid_splits = a.splits,
        .seed = (uint64_t)a.seed,
    };
    // Under mpirun every rank embeds its share of each set; rank 0 scores and
    // alone prints and writes.
    eo.comm = ufo_comm_world();
    if (!eo.comm) {
        vit_free(&m);
        ufo_metrics_set_screen(NULL);
        cuda_screen_free(screen);
        return cli_fail();
    }
    int lead = eo.comm->rank == 0;
    if (!lead) a.quiet = 1, eo.embed.quiet = 1;
    ufo_eval_result res[MAX_SETS];
    int done = 0;
    rc = 0;
    cuda_screen_stats before = {0};
    for (int k = 0; k < nsets && rc == 0; k++) {
        rc = ufo_evaluate(&m, names[sets[k]], task[k], &eo, &res[k]);
        if (rc == 0) {
            done++;
            if (screen && !a.quiet) screen_line(names[sets[k]], screen, &before);
            if (!a.quiet) ufo_report_details(stderr, &res[k], 1);
        }
    }
    ufo_metrics_set_screen(NULL);
    cuda_screen_free(screen);
    vit_free(&m);
    ufo_report_info info = {.model = a.model, .precision = a.precision, .seed = (uint64_t)a.seed, .flip = a.flip};
    if (rc == 0 && lead) {
        printf("\n");
        ufo_report_table(stdout, &info, res, done);
        printf("\n");
        ufo_report_details(stdout, res, done);
        if (a.json && ufo_report_json(a.json, &info, res, done)) rc = -1;
        if (rc == 0 && a.csv && ufo_report_csv(a.csv, res, done)) rc = -1;
        if (rc == 0 && a.plots && ufo_report_plots(a.plots, res, done)) rc = -1;
    }
    for (int k = 0; k < done; k++) ufo_eval_result_free(&res[k]);
    return rc ? cli_fail() : 0;
}
