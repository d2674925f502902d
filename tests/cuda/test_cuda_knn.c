// The kNN metrics' similarity screen on the GPU (model/screen_cuda.c, what
// `ufo eval --device cuda` installs): every value it returns lies within the
// fp32 bound ufo_nn_eps of the double product (TF32 would be 10-100x off),
// and ReID CMC/mAP/mINP and SOP Recall@K with it installed are bit-for-bit
// those of the CPU screen, on features full of exact and near ties, over
// several blocks. On a real GPU also one large ReID problem, timed both
// ways. Without a visible GPU: one SKIP line, exit 77 (ctest: skipped).
// tools/cuda_emu_check.sh runs it in the CUDA emulator too (not the large one).
#include "check.h"
#include "base/error.h"
#include "eval/metrics.h"
#include "eval/nn_internal.h"
#include "kernels/cuda/cuda_backend.h"
#include "knn_data.h"
#include "model/screen_cuda.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void install(cuda_screen *s) {
    ufo_metrics_screen ms = {cuda_screen_begin, cuda_screen_block, cuda_screen_end, s};
    ufo_metrics_set_screen(&ms);
}

static int same_reid(const ufo_reid_result *a, const ufo_reid_result *b) {
    return a->rank1 == b->rank1 && a->rank5 == b->rank5 && a->rank10 == b->rank10 && a->mAP == b->mAP &&
           a->mINP == b->mINP && a->num_valid == b->num_valid &&
           memcmp(a->cmc, b->cmc, sizeof(double) * a->max_rank) == 0;
}

// Every value of two blocks straight from the screen against double products.
static void check_values(cuda_screen *s) {
    enum { N = 1500, M = 203, D = 131 };
    float *x = malloc(sizeof(float) * N * D), *xn = malloc(sizeof(float) * N * D);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    int *lab = malloc(sizeof(int) * N), *cam = malloc(sizeof(int) * N);
    knn_make_items(N, D, 30, x, lab, cam);
    ufo_nn_normalize_f32(x, N, D, xn, "x");
    const double eps = ufo_nn_eps(D);
    const int64_t col0s[2] = {0, 777};
    CHECK(cuda_screen_begin(s, xn, N, D) == 0, "%s", ufo_error());
    for (int t = 0; t < 2; t++) {
        int64_t c0 = col0s[t], w = N - c0;
        const float *A = xn + (size_t)(t * 500) * D;
        CHECK(cuda_screen_block(s, A, M, c0, w, C) == 0, "%s", ufo_error());
        CHECK(ufo_nn_gemm_nt(A, xn + (size_t)c0 * D, M, w, D, R, w) == 0);
        double worst = 0;
        int64_t differ = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < w; j++) {
                double v = ufo_nn_dot_f64(A + (size_t)i * D, xn + (size_t)(c0 + j) * D, D);
                double e = fabs((double)C[i * w + j] - v);
                if (!(e <= worst)) worst = e;
                differ += C[i * w + j] != R[i * w + j];
            }
        printf("GPU screen, %d x %lld block at column %lld, d %d: max |err| %.3g vs double (bound %.3g); "
               "%lld values differ from oneDNN's fp32\n", M, (long long)w, (long long)c0, D, worst, eps,
               (long long)differ);
        CHECK(worst <= eps, "max err %.3g > eps %.3g: not strict fp32", worst, eps);
    }
    cuda_screen_end(s);
    free(x), free(xn), free(C), free(R), free(lab), free(cam);
}

// The metrics with and without the GPU screen, near-tie data, several blocks.
static void check_metrics(cuda_screen *s) {
    enum { NQ = 700, NG = 3100, NS = 2500, D = 131 };
    float *q = malloc(sizeof(float) * (NQ + NG) * D), *x = malloc(sizeof(float) * NS * D);
    int *pid = malloc(sizeof(int) * (NQ + NG)), *cam = malloc(sizeof(int) * (NQ + NG));
    int *lab = malloc(sizeof(int) * NS), *scam = malloc(sizeof(int) * NS);
    knn_make_items(NQ + NG, D, 60, q, pid, cam);
    knn_make_items(NS, D, 60, x, lab, scam);
    const int ks[4] = {1, 5, 10, 100};
    ufo_reid_result r[2];
    ufo_recall_result sr[2];
    ufo_metrics_set_block_rows(128);   // several blocks; SOP's later ones start at column i0 > 0
    for (int on = 0; on < 2; on++) {
        if (on) install(s);
        else ufo_metrics_set_screen(NULL);
        CHECK(ufo_reid_eval(q, pid, cam, NQ, q + (size_t)NQ * D, pid + NQ, cam + NQ, NG, D, 50, &r[on]) == 0, "%s",
              ufo_error());
        CHECK(ufo_recall_eval(x, lab, NS, D, ks, 4, &sr[on]) == 0, "%s", ufo_error());
    }
    cuda_screen_stats st;
    cuda_screen_get_stats(s, &st);
    CHECK(st.calls >= 3 && st.declined == 0, "%lld calls on the GPU", (long long)st.calls);   // + check_values's
    CHECK(same_reid(&r[0], &r[1]), "reid: R1 %.17g / %.17g, mAP %.17g / %.17g", r[0].rank1, r[1].rank1, r[0].mAP,
          r[1].mAP);
    CHECK(memcmp(sr[0].recall, sr[1].recall, sizeof sr[0].recall) == 0, "SOP R@1 %.17g / %.17g", sr[0].recall[0],
          sr[1].recall[0]);
    printf("near ties, %d x %d ReID (R1 %.4f mAP %.6f mINP %.6f) and %d-item SOP (R@1 %.4f): GPU screen == CPU "
           "screen, bit for bit\n", NQ, NG, r[1].rank1, r[1].mAP, r[1].mINP, NS, sr[1].recall[0]);
    ufo_metrics_set_screen(NULL);
    ufo_metrics_set_block_rows(0);
    ufo_reid_result_free(&r[0]);
    ufo_reid_result_free(&r[1]);
    free(q), free(x), free(pid), free(cam), free(lab), free(scam);
}

// A Market-1501-sized and larger ReID problem at d = 768, timed both ways.
static void check_large(cuda_screen *s) {
    enum { NQ = 6000, NG = 60000, D = 768, P = 3000 };
    float *q = malloc(sizeof(float) * (size_t)(NQ + NG) * D);
    int *pid = malloc(sizeof(int) * (NQ + NG)), *cam = malloc(sizeof(int) * (NQ + NG));
    float *proto = malloc(sizeof(float) * (size_t)P * D);
    for (size_t i = 0; i < (size_t)P * D; i++) proto[i] = (float)knn_nrand();
    for (int i = 0; i < NQ + NG; i++) {
        int c = (int)(knn_urand() * P);
        for (int k = 0; k < D; k++) q[(size_t)i * D + k] = proto[(size_t)c * D + k] + (float)(0.8 * knn_nrand());
        pid[i] = c;
        cam[i] = (int)(knn_urand() * 6);
    }
    ufo_reid_result r[2];
    double t[2];
    cuda_screen_stats st0, st;
    cuda_screen_get_stats(s, &st0);
    for (int on = 0; on < 2; on++) {
        if (on) install(s);
        else ufo_metrics_set_screen(NULL);
        double t0 = now_s();
        CHECK(ufo_reid_eval(q, pid, cam, NQ, q + (size_t)NQ * D, pid + NQ, cam + NQ, NG, D, 50, &r[on]) == 0, "%s",
              ufo_error());
        t[on] = now_s() - t0;
    }
    cuda_screen_get_stats(s, &st);
    CHECK(st.calls == st0.calls + 1, "auto mode did not pick the GPU for %.2g products", (double)NQ * NG * D);
    CHECK(same_reid(&r[0], &r[1]), "large reid: R1 %.17g / %.17g mAP %.17g / %.17g", r[0].rank1, r[1].rank1,
          r[0].mAP, r[1].mAP);
    printf("%d x %d ReID, d %d (%.2g products): metrics %.3f s with the CPU screen, %.3f s with the GPU's "
           "(%s; the screen itself %.3f s), same results (R1 %.4f mAP %.4f)\n", NQ, NG, D, (double)NQ * NG * D, t[0],
           t[1], cuda_screen_device(s), st.seconds - st0.seconds, r[1].rank1, r[1].mAP);
    ufo_metrics_set_screen(NULL);
    ufo_reid_result_free(&r[0]);
    ufo_reid_result_free(&r[1]);
    free(q), free(pid), free(cam), free(proto);
}

int main(void) {
    if (gpu_device_count() <= 0) {
        printf("SKIP: no CUDA device visible\n");
        return 77;
    }
    setenv("UFO_METRICS_GPU", "always", 1);
    cuda_screen *s = cuda_screen_create(0);
    CHECK(s != NULL, "%s", ufo_error());
    if (!s) return check_summary("test_cuda_knn");
    check_values(s);
    check_metrics(s);
    // The CUDA emulator (tests/cuda/emu) computes on the CPU: skip the big one there.
    if (!strstr(cuda_screen_device(s), "emulator")) {
        setenv("UFO_METRICS_GPU", "auto", 1);   // 2.8e11 products: auto picks the GPU
        check_large(s);
    }
    cuda_screen_free(s);
    return check_summary("test_cuda_knn");
}
