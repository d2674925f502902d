// Attention forward and backward per call, every available path on the same
// inputs, in interleaved rounds so that load from other processes hits all
// paths alike:
//   bench_attention [B T H hd [rounds [PATH]]]   (default 8 577 16 64 7: ViT-L/16 at 384)
// PATH (a substring of a path's name: sgemm, avx512, onednn, amx, bwd, ...)
// times the matching paths alone, e.g. under perf. The backward paths are the
// training's: fp32 cpu_attention_backward; bf16 the bf16 gradient with the qkv
// bias's column sums, from an fp32 qkv on oneDNN (cpu_attention_backward_bf16)
// and from a bf16 one on AMX (cpu_attention_backward_bf16_qkvb).
// Prints, per path, the min and median seconds per call and TFLOP/s at the
// min (forward 4 B H T^2 hd flops: two matmuls; backward 8 B H T^2 hd: dV, dP,
// dQ, dK, the recomputed S not counted; softmax not counted), and the
// min CPU time per call (all threads): on a machine shared with other work,
// run with OMP_WAIT_POLICY=passive so that waiting threads sleep, and the CPU
// time is the work done, whatever the wall clock says.
#include "base/error.h"
#include "base/mem.h"
#include "base/progress.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_train.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int B = 8, T = 577, H = 16, hd = 64, rounds = 7;
    if (argc >= 5) B = atoi(argv[1]), T = atoi(argv[2]), H = atoi(argv[3]), hd = atoi(argv[4]);
    if (argc >= 6) rounds = atoi(argv[5]);
    const char *only = argc >= 7 ? argv[6] : NULL;
    if (B < 1 || T < 1 || H < 1 || hd < 1 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: bench_attention [B T H hd [rounds [PATH]]]\n");
        return 2;
    }
    size_t nin = (size_t)B * T * 3 * H * hd, nout = (size_t)B * T * H * hd;
    float *qkv = ufo_alloc(nin * 4), *out = ufo_alloc(nout * 4), *dqkv = ufo_alloc(nin * 4);
    float *db = ufo_alloc((size_t)3 * H * hd * 4);
    uint16_t *dqkvb = ufo_alloc(nin * 2), *qkvb = ufo_alloc(nin * 2);
    if (!qkv || !out || !dqkv || !dqkvb || !db || !qkvb) return 1;
    uint64_t s = 1;
    for (size_t i = 0; i < nin; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        qkv[i] = (float)((s >> 40) * (1.0 / (1 << 23)) - 1.0) * 1.5f;
    }
    for (size_t i = 0; i < nout; i++) {   // dout for the backward
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        out[i] = (float)((s >> 40) * (1.0 / (1 << 23)) - 1.0) * 0.5f;
    }
    memset(db, 0, (size_t)3 * H * hd * 4);
    cpu_f32_to_bf16(qkvb, qkv, nin);
    struct { const char *name, *force; ufo_precision prec; int bwd; } paths[] = {
        {"fp32 sgemm", "dnnl", UFO_PREC_FP32, 0},    {"fp32 avx512", "auto", UFO_PREC_FP32, 0},
        {"bf16 onednn", "dnnl", UFO_PREC_BF16, 0},   {"bf16 amx", "amx", UFO_PREC_BF16, 0},
        {"fp32 bwd sgemm", "auto", UFO_PREC_FP32, 1}, {"bf16 bwd onednn", "dnnl", UFO_PREC_BF16, 1},
        {"bf16 bwd amx", "amx", UFO_PREC_BF16, 1}};
    enum { NP = 7 };
    // The forward runs on qkv into a scratch output; the backward reads out as dout.
    float *fout = ufo_alloc(nout * 4);
    if (!fout) return 1;
#define RUN(p)                                                                                              \
    (paths[p].bwd ? paths[p].prec == UFO_PREC_FP32                                                          \
                        ? cpu_attention_backward(dqkv, out, qkv, B, T, H, hd, UFO_PREC_FP32)                \
                    : strcmp(paths[p].force, "amx")                                                         \
                        ? cpu_attention_backward_bf16(dqkvb, db, out, qkv, B, T, H, hd)                     \
                        : cpu_attention_backward_bf16_qkvb(dqkvb, db, out, qkvb, B, T, H, hd)               \
                  : cpu_attention(fout, qkv, B, T, H, hd, paths[p].prec))
    double *t = calloc((size_t)NP * rounds, sizeof *t), cpu[NP];
    int ok[NP];
    for (int p = 0; p < NP; p++) {   // warm-up: primitives, pages; drop paths that cannot run here
        cpu_debug_attention_path(paths[p].force);
        if (only && !strstr(paths[p].name, only)) {
            ok[p] = 0;
            continue;
        }
        // the bf16 backward takes the AMX kernel wherever the forward can: UFO_ATTN=amx checks that
        ok[p] = (!paths[p].bwd || strcmp(paths[p].force, "amx") || cpu_attention_io_ok(T, hd) ||
                 !ufo_errorf("no AMX here")) &&
                RUN(p) == 0;
        if (!ok[p]) printf("%-16s skipped: %s\n", paths[p].name, ufo_error());
    }
    for (int p = 0; p < NP; p++) cpu[p] = INFINITY;
    for (int r = 0; r < rounds; r++)
        for (int p = 0; p < NP; p++) {
            if (!ok[p]) continue;
            cpu_debug_attention_path(paths[p].force);
            double c0 = cpu_seconds(), t0 = ufo_now();
            if (RUN(p)) return 1;
            t[p * rounds + r] = ufo_now() - t0;
            double c = cpu_seconds() - c0;
            if (c < cpu[p]) cpu[p] = c;
        }
    double flops = 4.0 * B * H * (double)T * T * hd;
    printf("attention B=%d T=%d H=%d hd=%d, %d threads, %d rounds (interleaved)\n", B, T, H, hd,
           omp_get_max_threads(), rounds);
    for (int p = 0; p < NP; p++) {
        if (!ok[p]) continue;
        qsort(t + p * rounds, rounds, sizeof *t, cmp_double);
        double mn = t[p * rounds], med = t[p * rounds + rounds / 2];
        printf("%-16s min %8.2f ms  median %8.2f ms  %.3f TFLOP/s at min  min CPU %8.2f ms\n", paths[p].name,
               mn * 1e3, med * 1e3, flops * (paths[p].bwd ? 2 : 1) / mn * 1e-12, cpu[p] * 1e3);
    }
    cpu_debug_attention_path(NULL);
    free(t);
    ufo_free(qkv), ufo_free(out), ufo_free(fout), ufo_free(dqkv), ufo_free(dqkvb), ufo_free(db), ufo_free(qkvb);
    return 0;
}
