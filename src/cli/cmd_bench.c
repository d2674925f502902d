// ufo bench: forward-pass throughput of a randomly initialised model of any
// size, so speed can be measured without a model file or a dataset.
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include "base/rng.h"
#include "cli/cli.h"
#include "model/vit.h"
#include "train/trainer.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// On a CPU already busy with other work the numbers mean little: OpenMP
// threads spin at every barrier waiting for a thread that lost its core
// (5-10x slower on this project's 2-core machine with one other busy
// process, 200x with two). Say so, on stderr. Busy: another task runnable in
// most of 5 samples 10 ms apart (/proc/loadavg's running count includes us).
// Not the 1-minute load average: it stays high for a minute after work that
// has ended, such as the previous contender in `make bench`.
static void warn_if_loaded(void) {
    int busy = 0;
    for (int i = 0; i < 5; i++) {
        FILE *f = fopen("/proc/loadavg", "r");
        int running = 0;
        if (!f) return;
        int ok = fscanf(f, "%*f %*f %*f %d", &running) == 1;
        fclose(f);
        if (!ok) return;
        busy += running > 1;
        usleep(10000);
    }
    if (busy >= 3)
        fprintf(stderr, "note: other work is running (another task was runnable in %d of 5 samples): timings will "
                        "be slower than on a quiet machine\n", busy);
}

static const char *usage =
    "usage: ufo bench [options]\n\n"
    "Times the inference forward pass (backbone + one head) on random inputs and prints\n"
    "images/s, seconds per image, and which CPU code path ran (oneDNN's ISA and the\n"
    "attention path: avx512 (fused) or sgemm in fp32, amx or onednn in bf16;\n"
    "UFO_ATTN=dnnl forces the oneDNN ones (sgemm, onednn), amx the bf16 AMX one;\n"
    "the matmul path: amx (ours, bf16 where the CPU has AMX) or onednn; UFO_GEMM=dnnl\n"
    "forces oneDNN's; with --device cuda: the GPU's name, and attention cuda flash (bf16,\n"
    "head dim 64; UFO_CUDA_ATTENTION=gemm forces the other) or cuda gemm). Says so on\n"
    "stderr when other work is running on the CPU: spinning OpenMP threads make a shared\n"
    "CPU several times slower, so such timings mean little.\n"
    "  --preset P        tiny | small | base | large (default large)\n"
    "  --img-size S      input size (default 384)\n"
    "  --patch P         patch size (default 16)\n"
    "  --depth N         transformer blocks (default: the preset's); blocks of one model\n"
    "                    are alike, so a few of them profile a deep model's step quickly\n"
    "  --batch N         images per forward (default 8)\n"
    "  --iters N         timed iterations after one warm-up (default 2)\n"
    "  --precision P     fp32 | bf16 (default bf16)\n"
    "  --threads N       OpenMP threads (default: all cores)\n"
    "  --device D        cpu (default) | cuda: time the GPU forward (images already in\n"
    "                    pinned host memory; upload, forward and download included),\n"
    "                    or with --train the GPU training step (losses too)\n"
    "  --reference       time the plain-C reference kernels instead\n"
    "  --train           time a whole training step instead: forward, CosFace (1000\n"
    "                    classes) + triplet on the vehicle head, backward, SGD\n"
    "  --recompute       with --train: recompute activations per block\n"
    "  --json            one JSON line instead of text\n";

int cmd_bench(int argc, char **argv) {
    const char *preset = "large", *prec = "bf16", *device_name = "cpu";
    int device = UFO_DEVICE_CPU;
    int img = 384, patch = 16, batch = 8, iters = 2, threads = 0, reference = 0, json = 0, train = 0, recompute = 0;
    int depth = 0;   // 0: the preset's
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--preset") && has) preset = argv[++i];
        else if (!strcmp(a, "--precision") && has) prec = argv[++i];
        else if (!strcmp(a, "--device") && has) {
            device_name = argv[++i];
            if (cli_parse_device("bench", device_name, &device)) return 2;
        }
        else if (!strcmp(a, "--img-size") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 4096, &img)) return 2; }
        else if (!strcmp(a, "--patch") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 64, &patch)) return 2; }
        else if (!strcmp(a, "--depth") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 1024, &depth)) return 2; }
        else if (!strcmp(a, "--batch") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 4096, &batch)) return 2; }
        else if (!strcmp(a, "--iters") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 100000, &iters)) return 2; }
        else if (!strcmp(a, "--threads") && has) { if (cli_parse_int("bench", a, argv[++i], 1, 1024, &threads)) return 2; }
        else if (!strcmp(a, "--reference")) reference = 1;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--train")) train = 1;
        else if (!strcmp(a, "--recompute")) recompute = 1;
        else return cli_usage_error("bench", "unknown or incomplete option '%s'", a);
    }
    if (strcmp(prec, "fp32") && strcmp(prec, "bf16"))
        return cli_usage_error("bench", "--precision must be fp32 or bf16, got '%s'", prec);
    if (threads) omp_set_num_threads(threads);
    if (device == UFO_DEVICE_CUDA && reference)
        return cli_usage_error("bench", "--reference runs on the CPU (not with --device cuda)");
    if (ufo_device_check(device)) return cli_fail();
    if (device != UFO_DEVICE_CUDA) warn_if_loaded();
    vit_backend backend = device == UFO_DEVICE_CUDA ? VIT_BACKEND_CUDA : reference ? VIT_BACKEND_REF : VIT_BACKEND_CPU;
    vit_config c;
    if (vit_config_preset(preset, img, patch, &c)) return cli_fail();
    if (depth) c.depth = depth;
    vit_model m;
    if (vit_alloc(&m, &c, 1u << UFO_TASK_VEHICLE)) return cli_fail();
    vit_init_random(&m, 1);
    ufo_precision p = strcmp(prec, "bf16") ? UFO_PREC_FP32 : UFO_PREC_BF16;
    if (!train && vit_prepare(&m, backend, p)) {
        vit_free(&m);
        return cli_fail();
    }
    size_t per = (size_t)3 * img * img;
    float *x = vit_host_alloc(&m, per * batch * sizeof(float)), *out = ufo_alloc((size_t)batch * c.dim * sizeof(float));
    int32_t *labels = malloc(sizeof(int32_t) * batch);
    if (!x || !out || !labels) {
        vit_free(&m);
        return cli_fail();
    }
    ufo_rng r;
    ufo_rng_seed(&r, 2);
    for (size_t i = 0; i < per * batch; i++) x[i] = (float)(2 * ufo_rng_uniform(&r) - 1);
    for (int i = 0; i < batch; i++) labels[i] = (i / 4) % 1000;  // P x K with K = 4
    int rc = 0;
    double dt = 0;
    char gpu_name[256] = "", gpu_attn[16] = "cuda";
    if (train) {
        int classes[UFO_NUM_TASKS] = {0, 0, 1000, 0}, counts[UFO_NUM_TASKS] = {0, 0, batch, 0};
        ufo_train_config tc;
        ufo_train_config_default(&tc, classes, 100000);
        tc.backend = backend;
        tc.prec = p;
        tc.batch_cap = batch;
        tc.recompute = recompute;
        tc.lr.warmup_steps = 0;  // a non-zero learning rate from the first step
        ufo_trainer t;
        ufo_step_stats st;
        rc = ufo_trainer_init(&t, &m, &tc);
        if (rc == 0) rc = ufo_trainer_step(&t, x, counts, labels, &st);  // warm-up
        double t0 = ufo_now();
        for (int i = 0; i < iters && rc == 0; i++) rc = ufo_trainer_step(&t, x, counts, labels, &st);
        dt = ufo_now() - t0;
        if (rc == 0) {
            if (backend == VIT_BACKEND_CUDA) {
                snprintf(gpu_name, sizeof gpu_name, "%s", vit_train_device_name(&t.st));
                snprintf(gpu_attn, sizeof gpu_attn, "cuda %s", vit_train_attention(&t.st));
            }
            ufo_trainer_free(&t);
        }
    } else {
        rc = vit_forward(&m, x, batch, UFO_TASK_VEHICLE, out);  // warm-up: primitives, packing, pages
        double t0 = ufo_now();
        for (int i = 0; i < iters && rc == 0; i++) rc = vit_forward(&m, x, batch, UFO_TASK_VEHICLE, out);
        dt = ufo_now() - t0;
    }
    vit_host_free(&m, x);
    ufo_free(out);
    free(labels);
    char isa_buf[256];
    snprintf(isa_buf, sizeof isa_buf, "%s", backend == VIT_BACKEND_CUDA ? (train ? gpu_name : vit_cuda_device(&m))
                                            : reference                 ? "reference"
                                                                        : cpu_isa_name());
    if (backend == VIT_BACKEND_CUDA && !train) snprintf(gpu_attn, sizeof gpu_attn, "cuda %s", vit_cuda_attention(&m));
    vit_free(&m);
    if (rc) return cli_fail();
    double ips = (double)batch * iters / dt;
    const char *isa = isa_buf;
    // The attention forward's path (UFO_ATTN may force one; see cpu.h).
    const char *attn = reference ? "reference"
                       : backend == VIT_BACKEND_CUDA ? gpu_attn
                                                     : cpu_attention_path(vit_tokens(&c), c.dim / c.heads, p);
    const char *mm = reference ? "reference" : backend == VIT_BACKEND_CUDA ? "cuda" : cpu_matmul_path(p);
    if (json)
        printf("{\"mode\": \"%s\", \"preset\": \"%s\", \"depth\": %d, \"img_size\": %d, \"batch\": %d, \"precision\": \"%s\", "
               "\"threads\": %d, \"device\": \"%s\", \"images_per_s\": %.4f, \"s_per_image\": %.4f, \"isa\": \"%s\", "
               "\"attention\": \"%s\", \"matmul\": \"%s\"}\n",
               train ? "train" : "inference", preset, c.depth, img, batch, prec, omp_get_max_threads(), device_name, ips,
               1 / ips,
               isa, attn, mm);
    else
        printf("%s ViT-%s/%d (%d blocks) at %d, batch %d, %s, %d threads, %s, attention %s, matmul %s: %.3f images/s, "
               "%.3f s/image\n",
               train ? "training" : "inference", preset, patch, c.depth, img, batch, prec, omp_get_max_threads(), isa,
               attn, mm, ips, 1 / ips);
    return 0;
}
