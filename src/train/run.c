#include "train/run.h"
#include "base/error.h"
#include "base/file.h"
#include "base/progress.h"
#include "dist/comm.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "formats/safetensors.h"
#include "model/vit_io.h"
#include "report/plot.h"
#include "train/loader.h"
#include "train/pfc.h"
#include "train/trainer.h"
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const ufo_recipe *r;
    const ufo_train_run_opts *o;
    ufo_comm *comm;        // data parallel group (size 1: one process)
    int lead;              // rank 0: the only one that prints and writes files
    char root[UFO_RECIPE_STR];
    ufo_trainset sets[UFO_NUM_TASKS];
    int have[UFO_NUM_TASKS];
    int count[UFO_NUM_TASKS], K[UFO_NUM_TASKS];
    vit_model model;
    ufo_trainer trainer;
    ufo_loader *loader;
    FILE *log;
    // Loss curves for the PNG: per logged step, total and per task.
    double *curve_x, *curve_y[UFO_NUM_TASKS + 1];
    int curve_n, curve_cap;
} run_state;

static void path_in(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

// --- setup -----------------------------------------------------------------------

static int load_sets(run_state *s) {
    const ufo_recipe *r = s->r;
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        double want = r->batch[t] * r->batch_scale;
        if (!r->sets[t][0] || want < 1) continue;
        char list[UFO_RECIPE_STR];
        snprintf(list, sizeof list, "%s", r->sets[t]);
        for (char *c = list; *c; c++)
            if (*c == ',') *c = '+';
        if (ufo_trainset_load_task(list, s->root, &s->sets[t])) return ufo_error_wrap("%s training sets", vit_task_name(t));
        s->have[t] = 1;
        // face: plain random (BatchNorm needs 2 rows); others: P x K, a multiple of K.
        s->K[t] = t == UFO_TASK_FACE ? 0 : r->instances;
        int c = (int)(want + 0.5);
        if (s->K[t]) c = c < s->K[t] ? s->K[t] : c - c % s->K[t];
        s->count[t] = c < 2 ? 2 : c;
    }
    return 0;
}

static int build_model(run_state *s) {
    const ufo_recipe *r = s->r;
    unsigned mask = 0;
    for (int t = 0; t < UFO_NUM_TASKS; t++) mask |= (unsigned)s->have[t] << t;
    vit_model base;
    if (r->init[0]) {
        vit_load_options lo = {.img_size = r->img_size, .num_heads = r->num_heads};
        if (vit_load(&base, r->init, &lo)) return -1;
    } else {
        vit_config c;
        if (vit_config_preset(r->preset, r->img_size, r->patch_size, &c)) return -1;
        if (r->dim) c.dim = r->dim, c.mlp_hidden = 4 * r->dim;
        if (r->depth) c.depth = r->depth;
        if (r->num_heads) c.heads = r->num_heads;
        if (r->mlp_hidden) c.mlp_hidden = r->mlp_hidden;
        if (vit_alloc(&base, &c, mask)) return -1;
        vit_init_random(&base, (uint64_t)r->seed);
    }
    int rc = vit_with_heads(&base, mask, &s->model);
    vit_free(&base);
    return rc;
}

static ufo_train_config trainer_config(const run_state *s) {
    const ufo_recipe *r = s->r;
    int classes[UFO_NUM_TASKS] = {0};
    for (int t = 0; t < UFO_NUM_TASKS; t++) classes[t] = s->have[t] ? s->sets[t].num_classes : 0;
    ufo_train_config c;
    ufo_train_config_default(&c, classes, r->steps);
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        c.cos_s[t] = (float)r->cos_s[t], c.cos_m[t] = (float)r->cos_m[t], c.triplet[t] = r->triplet[t];
    c.triplet_margin = (float)r->triplet_margin;
    c.drop_path = (float)r->drop_path;
    c.weight_decay = (float)r->weight_decay;
    c.sgd.momentum = (float)r->momentum;
    c.sgd.clip_norm = (float)r->clip_norm;
    c.sgd.clip = !strcmp(r->clip_mode, "torch") ? UFO_CLIP_TORCH : !strcmp(r->clip_mode, "none") ? UFO_CLIP_NONE
                                                                                                 : UFO_CLIP_PADDLE;
    c.lr.base_lr = r->lr;
    c.lr.min_lr = r->lr * r->min_lr_ratio;
    c.lr.total_steps = r->steps;
    c.lr.warmup_steps = (long)(r->warmup * r->steps);
    c.prec = strcmp(r->precision, "bf16") ? UFO_PREC_FP32 : UFO_PREC_BF16;
    c.recompute = r->recompute;
    c.seed = (uint64_t)r->seed;
    c.batch_cap = 0;
    for (int t = 0; t < UFO_NUM_TASKS; t++) c.batch_cap += s->count[t];
    c.comm = s->comm;
    c.shard_classes_above = r->shard_classes_above;
    c.pfc_sample_rate = r->pfc_sample_rate;
    c.zero = r->zero;
    if (s->o->cuda) c.backend = VIT_BACKEND_CUDA;
    c.dev_comm = s->o->dev_comm;
    // The CUDA emulator's (tests/cuda/emu) "device" memory is host memory: MPI can all-reduce it.
    if (!c.dev_comm && s->o->cuda && getenv("UFO_TEST_HOST_AS_DEVICE_COMM")) c.dev_comm = s->comm;
    return c;
}

// --- checkpoints (trainer state + loader state + recipe) ---------------------------

static int save_checkpoint(run_state *s, const char *path) {
    size_t n = ufo_loader_state(s->loader, NULL);
    uint64_t *w = malloc(sizeof(uint64_t) * n);
    char *words = malloc(n * 17 + 1), *recipe = NULL;
    size_t rlen = 0;
    FILE *mem = open_memstream(&recipe, &rlen);
    if (!w || !words || !mem) {
        free(w);
        free(words);
        if (mem) fclose(mem);
        free(recipe);
        return ufo_errorf("out of memory");
    }
    ufo_loader_state(s->loader, w);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += snprintf(words + k, 18, "%s%016" PRIx64, i ? ":" : "", w[i]);
    ufo_recipe_print(s->r, mem);
    fclose(mem);
    const char *keys[] = {"train.loader", "train.recipe"}, *vals[] = {words, recipe};
    int rc = ufo_trainer_save(&s->trainer, path, keys, vals, 2);
    free(w);
    free(words);
    free(recipe);
    return rc;
}

int ufo_train_recipe_from_checkpoint(const char *path, ufo_recipe *r) {
    ufo_tensor_file f;
    if (ufo_safetensors_open(path, &f)) return -1;
    const char *text = ufo_tensor_file_meta(&f, "train.recipe");
    int rc = text ? 0 : ufo_errorf("%s: no recipe in this checkpoint (not written by ufo train)", path);
    if (rc == 0) {
        char *copy = strdup(text);
        ufo_recipe_defaults(r);
        rc = copy ? ufo_recipe_parse(r, copy, path) : ufo_errorf("out of memory");
        free(copy);
    }
    ufo_tensor_file_free(&f);
    return rc;
}

static int resume(run_state *s, const char *path) {
    if (ufo_trainer_load(&s->trainer, path)) return -1;
    ufo_tensor_file f;
    if (ufo_safetensors_open(path, &f)) return -1;
    const char *words = ufo_tensor_file_meta(&f, "train.loader");
    size_t n = ufo_loader_state(s->loader, NULL), got = 0;
    uint64_t *w = calloc(n, sizeof(uint64_t));
    int rc = (!words || !w) ? ufo_errorf("%s: no data-loader state in this checkpoint", path) : 0;
    for (const char *p = words; rc == 0 && *p && got < n; got++) {
        char *end;
        w[got] = strtoull(p, &end, 16);
        p = *end == ':' ? end + 1 : end;
    }
    if (rc == 0 && got != n) rc = ufo_errorf("%s: data-loader state does not match this recipe's tasks", path);
    if (rc == 0) rc = ufo_loader_restore(s->loader, w, n);
    free(w);
    ufo_tensor_file_free(&f);
    return rc;
}

// --- logging, plots, evaluation ------------------------------------------------------

static void log_step(run_state *s, const ufo_step_stats *st, double ips, double elapsed) {
    if (!s->log) return;
    fprintf(s->log, "%ld,%.8g,%.6f", st->step, st->lr, st->loss);
    for (int t = 0; t < UFO_NUM_TASKS; t++) fprintf(s->log, ",%.6f,%.6f,%.4f", st->cosface[t], st->triplet[t], st->accuracy[t]);
    fprintf(s->log, ",%.3f,%.3f,%.1f\n", ips, ufo_loader_images_per_s(s->loader), elapsed);
    fflush(s->log);
    if (s->curve_n == s->curve_cap) {
        int cap = s->curve_cap ? 2 * s->curve_cap : 256;
        s->curve_x = realloc(s->curve_x, sizeof(double) * cap);
        for (int k = 0; k <= UFO_NUM_TASKS; k++) s->curve_y[k] = realloc(s->curve_y[k], sizeof(double) * cap);
        s->curve_cap = cap;
    }
    s->curve_x[s->curve_n] = (double)st->step;
    s->curve_y[0][s->curve_n] = st->loss;
    for (int t = 0; t < UFO_NUM_TASKS; t++) s->curve_y[t + 1][s->curve_n] = st->cosface[t] + st->triplet[t];
    s->curve_n++;
}

static int plot_losses(run_state *s) {
    if (!s->lead) return 0;
    char path[1100];
    path_in(path, sizeof path, s->o->out_dir, "loss.png");
    ufo_plot_series series[UFO_NUM_TASKS + 1];
    int n = 0;
    series[n++] = (ufo_plot_series){"total", s->curve_x, s->curve_y[0], s->curve_n};
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        if (s->have[t]) series[n++] = (ufo_plot_series){vit_task_name(t), s->curve_x, s->curve_y[t + 1], s->curve_n};
    ufo_plot_opts po = {.title = "training loss per task (CosFace + triplet)", .xlabel = "step", .ylabel = "loss"};
    return ufo_plot_lines(path, &po, series, n);
}

static int evaluate(run_state *s, long step) {
    const ufo_recipe *r = s->r;
    if (!r->eval_datasets[0]) return 0;
    if (ufo_trainer_sync_host(&s->trainer)) return -1;   // CUDA: the trained weights to the host
    ufo_precision prec = strcmp(r->precision, "bf16") ? UFO_PREC_FP32 : UFO_PREC_BF16;
    if (vit_prepare(&s->model, VIT_BACKEND_CPU, prec)) return -1;
    ufo_evaluate_opts eo = {.root = r->eval_root[0] ? r->eval_root : s->root,
                            .embed = {.batch = 16, .workers = r->workers, .precision = r->precision, .quiet = 1},
                            .vehicleid_splits = 1, .seed = 0, .comm = s->comm};
    ufo_eval_result res[12];
    int n = 0, rc = 0;
    char list[UFO_RECIPE_STR];
    snprintf(list, sizeof list, "%s", r->eval_datasets);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name && rc == 0 && n < 12; name = strtok_r(NULL, ",", &save)) {
        int task = ufo_default_task(name);
        const char *h = strstr(r->eval_heads, name);  // "...,NAME=task,..."
        if (h && h[strlen(name)] == '=' && (h == r->eval_heads || h[-1] == ',')) {
            char t[16];
            snprintf(t, sizeof t, "%.*s", (int)strcspn(h + strlen(name) + 1, ","), h + strlen(name) + 1);
            task = vit_task_from_name(t);
            if (task < 0) rc = ufo_errorf("run.eval_heads: unknown task '%s' for %s", t, name);
        }
        if (task == -2) rc = ufo_errorf("run.eval_datasets: unknown dataset '%s'", name);
        else if (!(s->model.head_mask >> task & 1)) task = -1;  // that head is not trained: score the backbone
        if (rc == 0 && (rc = ufo_evaluate(&s->model, name, task, &eo, &res[n])) == 0) n++;
    }
    vit_prepare(&s->model, VIT_BACKEND_REF, prec);  // release the packed inference weights
    if (rc == 0 && s->lead) {
        char model[64], path[1100];
        snprintf(model, sizeof model, "step %ld", step);
        ufo_report_info info = {.model = model, .precision = r->precision};
        if (!s->o->quiet) fprintf(stderr, "\n");
        ufo_report_table(stdout, &info, res, n);
        fflush(stdout);
        path_in(path, sizeof path, s->o->out_dir, "eval.json");
        rc = ufo_report_json(path, &info, res, n);
    }
    for (int k = 0; k < n; k++) ufo_eval_result_free(&res[k]);
    return rc;
}

// --- the loop ------------------------------------------------------------------------

// Seconds inside collectives so far: the host group's plus, with CUDA, the
// device group's (NCCL: the gradient all-reduce the backward did not hide).
static double comm_busy(const run_state *s) {
    const ufo_comm *d = s->trainer.cfg.dev_comm;
    return s->comm->busy_s + (d && d != s->comm ? d->busy_s : 0);
}

static int train_loop(run_state *s) {
    const ufo_recipe *r = s->r;
    char ck[1100];
    path_in(ck, sizeof ck, s->o->out_dir, "last.safetensors");
    ufo_progress pg;
    long start = s->trainer.step;
    ufo_progress_begin(&pg, "train", "step", r->steps, 1);
    double t0 = ufo_now(), last_log = t0, comm0 = comm_busy(s), last_comm = comm0;
    long images = 0, last_images = 0;
    // Test hook (tests/py/test_mpi_train.py): UFO_TEST_FAIL_RANK=R UFO_TEST_FAIL_STEP=K
    // makes rank R exit (or with UFO_TEST_FAIL_HANG=1, hang) before step K.
    const char *fr = getenv("UFO_TEST_FAIL_RANK"), *fs = getenv("UFO_TEST_FAIL_STEP");
    long fail_step = fr && fs && atoi(fr) == s->comm->rank ? atol(fs) : -1;
    for (long k = start; k < r->steps; k++) {
        const float *x;
        const int32_t *labels;
        int counts[UFO_NUM_TASKS];
        ufo_step_stats st;
        if (k == fail_step) {
            fprintf(stderr, "ufo: rank %d: UFO_TEST_FAIL_STEP=%ld: %s here (failure-handling test)\n", s->comm->rank,
                    k, getenv("UFO_TEST_FAIL_HANG") ? "hanging" : "exiting");
            fflush(stderr);
            if (getenv("UFO_TEST_FAIL_HANG"))
                for (;;) pause();
            _exit(3);
        }
        if (ufo_loader_next(s->loader, &x, counts, &labels)) return -1;
        if (ufo_trainer_step(&s->trainer, x, counts, labels, &st)) return -1;
        images += ufo_loader_global_batch(s->loader);
        int last = k + 1 == r->steps;
        if ((r->log_every && (k + 1) % r->log_every == 0) || last) {
            double now = ufo_now(), ips = (images - last_images) / (now - last_log);
            double eta = (r->steps - k - 1) * (now - t0) / (k + 1 - start);
            double share = (comm_busy(s) - last_comm) / (now - last_log);
            last_log = now, last_images = images, last_comm = comm_busy(s);
            log_step(s, &st, ips, now - t0);
            if (!s->o->quiet && s->lead) {
                fprintf(stderr, "step %ld/%ld  lr %.4g  loss %.4f [", k + 1, r->steps, st.lr, st.loss);
                for (int t = 0, first = 1; t < UFO_NUM_TASKS; t++)
                    if (s->have[t]) {
                        fprintf(stderr, "%s%s %.3f", first ? "" : ", ", vit_task_name(t), st.cosface[t] + st.triplet[t]);
                        first = 0;
                    }
                fprintf(stderr, "]  %.1f img/s (loader %.0f img/s)", ips, ufo_loader_images_per_s(s->loader));
                if (s->comm->size > 1) fprintf(stderr, "  comm %.0f%%", 100 * share);
                fprintf(stderr, "  ETA %d:%02d\n", (int)eta / 60, (int)eta % 60);
            }
        }
        if (last && s->lead && !s->o->quiet && s->comm->size > 1) {   // bench/mpi_scaling.sh reads it
            double el = ufo_now() - t0;
            fprintf(stderr, "train: %d processes, %ld steps, %.1f img/s, communication %.1f%% of the step time\n",
                    s->comm->size, k + 1 - start, images / el,
                    100 * (comm_busy(s) - comm0) / el);
        }
        int stop = s->o->stop_after > 0 && k + 1 == s->o->stop_after && !last;
        if ((r->checkpoint_every && (k + 1) % r->checkpoint_every == 0) || last || stop) {
            if (save_checkpoint(s, ck) || plot_losses(s)) return -1;
        }
        if (stop) {
            if (!s->o->quiet && s->lead) fprintf(stderr, "train: stopped after step %ld; continue with --resume %s\n", k + 1, ck);
            return 1;
        }
        if (!last && r->eval_every && (k + 1) % r->eval_every == 0 && evaluate(s, k + 1)) return -1;
    }
    return 0;
}

int ufo_train_run(const ufo_recipe *r, const ufo_train_run_opts *o) {
    run_state s;
    memset(&s, 0, sizeof s);
    s.r = r;
    s.o = o;
    const char *root = r->root[0] ? r->root : getenv("FASTREID_DATASETS");
    if (!root || !*root) return ufo_errorf("no data root: set data.root in the recipe or FASTREID_DATASETS");
    snprintf(s.root, sizeof s.root, "%s", root);
    if (!(r->pfc_sample_rate > 0 && r->pfc_sample_rate <= 1))
        return ufo_errorf("run.pfc_sample_rate = %g: expected a rate in (0, 1] (1: no sampling)", r->pfc_sample_rate);
    if (r->zero > 1) return ufo_errorf("run.zero = %d: expected 0 (off) or 1 (ZeRO stage 1)", r->zero);
    s.comm = ufo_comm_world();
    if (!s.comm) return -1;
    s.lead = s.comm->rank == 0;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) return ufo_errorf("%s: cannot create: %s", o->out_dir, strerror(errno));
    int rc = load_sets(&s);
    if (rc == 0) rc = build_model(&s);
    ufo_train_config tc;
    if (rc == 0) {
        tc = trainer_config(&s);
        rc = ufo_trainer_init(&s.trainer, &s.model, &tc);
    }
    if (rc == 0) {
        ufo_loader_opts lo = {.mix = strcmp(r->batch_mix, "homogeneous") ? UFO_MIX_HETEROGENEOUS : UFO_MIX_HOMOGENEOUS,
                              .workers = r->workers, .seed = (uint64_t)r->seed,
                              .rank = s.comm->rank, .ranks = s.comm->size};
        for (int t = 0; t < UFO_NUM_TASKS; t++)
            if (s.have[t]) lo.sets[t] = &s.sets[t], lo.count[t] = s.count[t], lo.K[t] = s.K[t];
        ufo_aug_defaults(&lo.aug, s.model.cfg.img_size);
        lo.aug.pad = r->pad, lo.aug.do_pad_crop = r->pad > 0;
        lo.aug.flip_p = r->flip, lo.aug.do_flip = r->flip > 0;
        lo.aug.autoaug_p = r->autoaugment, lo.aug.do_autoaug = r->autoaugment > 0;
        lo.aug.erase_p = r->random_erasing, lo.aug.do_erase = r->random_erasing > 0;
        rc = ufo_loader_init(&s.loader, &lo);
    }
    if (rc == 0 && o->resume) rc = resume(&s, o->resume);
    char path[1100];
    if (rc == 0 && s.lead) {   // files: rank 0 only
        path_in(path, sizeof path, o->out_dir, "recipe.ini");
        FILE *f = fopen(path, "w");
        if (f) {
            ufo_recipe_print(r, f);
            fclose(f);
        }
        path_in(path, sizeof path, o->out_dir, "log.csv");
        int fresh = !o->resume;
        s.log = fopen(path, fresh ? "w" : "a");
        if (!s.log) rc = ufo_errorf("%s: cannot write: %s", path, strerror(errno));
        else if (fresh) {
            fprintf(s.log, "step,lr,loss");
            for (int t = 0; t < UFO_NUM_TASKS; t++)
                fprintf(s.log, ",cosface_%s,triplet_%s,accuracy_%s", vit_task_name(t), vit_task_name(t), vit_task_name(t));
            fprintf(s.log, ",images_per_s,loader_images_per_s,elapsed_s\n");
        }
    }
    if (rc == 0 && !o->quiet && s.lead) {
        if (s.comm->size > 1) {
            fprintf(stderr, "train: %d processes (MPI), each with its share of every task's rows", s.comm->size);
            for (int t = 0; t < UFO_NUM_TASKS; t++)
                if (s.trainer.sharded[t]) fprintf(stderr, "; %s classifier sharded by class", vit_task_name(t));
            fprintf(stderr, "\n");
            if (s.trainer.zero)   // tests/py/test_mpi_train.py reads the byte counts
                fprintf(stderr, "train: ZeRO stage 1: SGD momentum of the model %zu bytes per rank (rank 0), "
                                "instead of %zu\n", (s.trainer.zhi - s.trainer.zlo) * sizeof(float),
                        s.model.n_floats * sizeof(float));
        }
        fprintf(stderr, "train: ViT dim %d depth %d at %d, %s, %ld steps from step %ld; batch", s.model.cfg.dim,
                s.model.cfg.depth, s.model.cfg.img_size, r->precision, r->steps, s.trainer.step);
        for (int t = 0; t < UFO_NUM_TASKS; t++)
            if (s.have[t]) fprintf(stderr, " %s %d (%d classes, %d images)", vit_task_name(t), s.count[t],
                                   s.sets[t].num_classes, s.sets[t].n);
        fprintf(stderr, ", %s\n", r->batch_mix);
        for (int t = 0; t < UFO_NUM_TASKS; t++)
            if (s.trainer.sampled[t])
                fprintf(stderr, "train: %s classifier: Partial-FC sampling, %d of %d classes per step (at least)\n",
                        vit_task_name(t), ufo_pfc_keep_count(s.sets[t].num_classes, r->pfc_sample_rate, 0),
                        s.sets[t].num_classes);
        // The device takes every head (Partial-FC sharded and sampled ones included).
        int dev_sharded = 0, dev_sampled = 0;
        for (int t = 0; t < UFO_NUM_TASKS; t++) {
            dev_sharded |= s.trainer.dev_task[t] && s.trainer.sharded[t];
            dev_sampled |= s.trainer.dev_task[t] && s.trainer.sampled[t];
        }
        if (vit_train_device_of(&s.trainer.st))   // tools/cuda_emu_check.sh reads "on the GPU too"
            fprintf(stderr, "train: on the GPU (%s); losses and classifiers %s%s%s%s\n",
                    vit_train_device_name(&s.trainer.st), !s.trainer.dev_heads ? "on the CPU" : "on the GPU too",
                    dev_sharded ? ", the Partial-FC sharded ones on the GPU" : "",
                    dev_sampled ? ", the Partial-FC sampled ones on the GPU" : "",
                    s.trainer.dev_heads && s.trainer.comm ? " (data parallel: sync BN on the CPU)" : "");
    }
    int stopped = 0;
    if (rc == 0) {
        rc = train_loop(&s);
        if (rc == 1) stopped = 1, rc = 0;
    }
    if (rc == 0 && !stopped && s.lead) {
        path_in(path, sizeof path, o->out_dir, "model.safetensors");
        rc = ufo_trainer_sync_host(&s.trainer);
        if (rc == 0) rc = vit_save(&s.model, path, UFO_F32);
    }
    if (rc == 0 && ufo_loader_corrupt(s.loader))
        fprintf(stderr, "train: %ld unreadable training images were skipped\n", ufo_loader_corrupt(s.loader));
    if (rc == 0 && !stopped) rc = evaluate(&s, r->steps);
    if (s.log) fclose(s.log);
    ufo_loader_free(s.loader);
    ufo_trainer_free(&s.trainer);
    vit_free(&s.model);
    for (int t = 0; t < UFO_NUM_TASKS; t++)
        if (s.have[t]) ufo_trainset_free(&s.sets[t]);
    free(s.curve_x);
    for (int k = 0; k <= UFO_NUM_TASKS; k++) free(s.curve_y[k]);
    return rc;
}
