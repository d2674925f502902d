// CUDA training (VIT_BACKEND_CUDA) against the plain-C fp32 reference trainer
// (VIT_BACKEND_REF) on a tiny model and a heterogeneous batch (a task with
// triplet, one without, a one-row task whose BNNeck is the identity), drop
// path on:
//   1. one gradient (ufo_trainer_grad): every loss, every model parameter's
//      gradient (per tensor) and the classifiers' gradients.
//      fp32: max rel err <= 1e-4 over all gradients as one vector, the
//      classifiers' and the losses; <= 2e-4 per tensor (relative to its own
//      largest value: the final LayerNorm's gamma sums 13 rows with
//      cancellation, and the reference's own fp32 sums are off by 5.8e-5 there,
//      measured against the CUDA emulator's double-accumulating GEMMs).
//      bf16 (bf16 matmul operands, fp32 master/accumulation): cosine >= 0.999
//      over all gradients and the classifiers', >= 0.995 per tensor, losses
//      within 2e-2. Sized with the CPU fast path as the backend under test
//      (UFO_TEST_BACKEND=cpu): fp32 worst tensor 4.3e-5, bf16 all 0.99933,
//      worst tensor 0.99898 (the weights' scale 0.07 and CosFace s = 16 keep
//      the problem well conditioned: SPEC's s = 50 on random weights is chaotic).
//   2. recomputation (run.recompute) gives the same gradients (<= 1e-6), fp32
//      and bf16.
//   3. six SGD steps: the losses of every step and the parameters and momentum
//      after them, fp32 within 1e-3 (six steps of lr 0.05 amplify rounding).
//   3b. the same for four steps with the face head Partial-FC sampled (on the
//   host; the other heads on the device), classifiers and their momentum too.
//   (1-3 with the CUDA trainer's heads on the device, train/heads_cuda.h; run
//   with UFO_CUDA_HEADS=cpu for the host heads; tools/cuda_emu_check.sh runs both.)
//   4. checkpoints: save after 3 steps, a fresh CUDA trainer loads it and both
//      take 2 more steps: same parameters (<= 1e-6, i.e. deterministic); the
//      same file loads into a CPU trainer with equal parameters (one format).
// Without a visible GPU it prints one SKIP line and exits 77 (ctest: skipped).
// UFO_TEST_BACKEND=cpu runs the same comparisons with the CPU fast path as the
// backend under test (how the tolerances were sized on a machine without a GPU).
#include "base/error.h"
#include "base/mem.h"
#include "check.h"
#include "rand_buf.h"
#include "vit_random.h"
#include "train/trainer.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL_F32 1e-4          // all model gradients as one vector; classifiers; losses
#define TOL_F32_TENSOR 2e-4   // each tensor alone (the reference's own fp32 sums: 5.8e-5, see above)
#define TOL_BF16_COS 0.999          // all gradients as one vector; classifiers
#define TOL_BF16_COS_TENSOR 0.995   // each tensor alone (the CPU bf16 path: worst 0.99898 here)
#define TOL_BF16_LOSS 2e-2
#define TOL_STEPS 1e-3

static const int COUNTS[UFO_NUM_TASKS] = {4, 4, 4, 1};   // face, person, vehicle, product
static const int CLASSES[UFO_NUM_TASKS] = {5, 2, 3, 3};
#define N 13
#define IMG 32
#ifndef WSCALE
#define WSCALE 0.07f
#endif
#ifndef COS_S
#define COS_S 16.0f
#endif
#ifndef LR
#define LR 0.01
#endif

static vit_backend DUT = VIT_BACKEND_CUDA;   // the backend under test


static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb);
}

static double rel1(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-12 ? fabs(b) : 1e-12); }

// Weights large enough that every op matters; norms and BNNecks off identity.
static void make_model(vit_model *m) {
    vit_config c = {.img_size = IMG, .patch_size = 8, .dim = 64, .depth = 2, .heads = 2, .mlp_hidden = 256,
                    .ln_eps = 1e-6f, .bn_eps = 1e-5f};
    if (vit_alloc(m, &c, 0xf)) {
        fprintf(stderr, "vit_alloc: %s\n", ufo_error());
        exit(1);
    }
    uint64_t keep = rng_state;
    rng_state = 0x243f6a8885a308d3ull;   // the same model every call
    randomize_vit(m, WSCALE);
    rng_state = keep;
}

static void make_batch(int k, float *img, int32_t *labels) {
    uint64_t keep = rng_state;
    rng_state = 1000 + (uint64_t)k;
    for (size_t i = 0; i < (size_t)N * 3 * IMG * IMG; i++) img[i] = frand();
    for (int t = 0, o = 0; t < UFO_NUM_TASKS; o += COUNTS[t], t++)
        for (int i = 0; i < COUNTS[t]; i++) labels[o + i] = t == 1 ? i / 2 : (i + k) % CLASSES[t];
    rng_state = keep;
}

static int PFC;   // 1: the face head (5 classes) Partial-FC sampled, the others not
// The drop path's rate; 0 takes the backward's other branch (no scaled copy of
// the gradient: in bf16, each block's gradient's bf16 copy comes from the
// LayerNorm backward of the block above).
static float DROP = 0.3f;

static ufo_train_config config(vit_backend b, ufo_precision prec, int recompute) {
    ufo_train_config c;
    ufo_train_config_default(&c, CLASSES, 20);
    c.backend = b;
    c.prec = prec;
    c.recompute = recompute;
    c.batch_cap = N;
    c.drop_path = DROP;
    c.triplet[UFO_TASK_PRODUCT] = 0;   // one row: nothing to mine
    c.seed = 5;
    c.lr.base_lr = LR;
    c.lr.min_lr = LR / 50;
    for (int t = 0; t < UFO_NUM_TASKS; t++) c.cos_s[t] = COS_S;   // SPEC's 20-50 make the test chaotic
    c.lr.warmup_steps = 0;
    if (PFC) c.pfc_sample_rate = 0.5, c.shard_classes_above = 4;
    return c;
}

typedef struct {
    vit_model m;
    ufo_trainer t;
} run;

static int start(run *r, vit_backend b, ufo_precision prec, int recompute) {
    make_model(&r->m);
    ufo_train_config c = config(b, prec, recompute);
    if (ufo_trainer_init(&r->t, &r->m, &c)) {
        CHECK(0, "trainer init (backend %d): %s", b, ufo_error());
        vit_free(&r->m);
        return -1;
    }
    // One process, no Partial-FC: the CUDA trainer runs the heads on the device
    // (train/heads_cuda.h) unless UFO_CUDA_HEADS=cpu asks for the host path.
    const char *hp = getenv("UFO_CUDA_HEADS");
    int want = b == VIT_BACKEND_CUDA && !(hp && !strcmp(hp, "cpu"));
    CHECK((r->t.dev_heads != NULL) == want, "backend %d: heads on the %s", b, r->t.dev_heads ? "device" : "host");
    return 0;
}

static void stop(run *r) {
    ufo_trainer_free(&r->t);
    vit_free(&r->m);
}

static float *grads_of(run *r) {
    float *g = ufo_alloc(r->m.n_floats * sizeof(float));
    CHECK(vit_train_grads_to_host(&r->t.st, g) == 0, "%s", ufo_error());
    return g;
}

static void compare_stats(const char *what, const ufo_step_stats *a, const ufo_step_stats *ref, double tol) {
    double worst = rel1(a->loss, ref->loss);
    for (int t = 0; t < UFO_NUM_TASKS; t++) {
        double e1 = rel1(a->cosface[t], ref->cosface[t]), e2 = rel1(a->triplet[t], ref->triplet[t]);
        if (e1 > worst) worst = e1;
        if (ref->triplet[t] != 0 && e2 > worst) worst = e2;
    }
    printf("  %-40s losses: total %.6f vs %.6f, worst rel err %.3g\n", what, a->loss, ref->loss, worst);
    if (getenv("UFO_TEST_VERBOSE"))
        for (int t = 0; t < UFO_NUM_TASKS; t++)
            printf("    task %d: cosface %.6f vs %.6f, triplet %.6f vs %.6f\n", t, a->cosface[t], ref->cosface[t],
                   a->triplet[t], ref->triplet[t]);
    CHECK(worst <= tol, "%s: loss rel err %.3g > %.3g", what, worst, tol);
}

// Every trained tensor's gradient; fp32: max rel err, bf16: cosine.
static void compare_grads(const char *what, run *a, run *ref, int bf16) {
    float *ga = grads_of(a), *gr = grads_of(ref);
    double worst_rel = 0, worst_cos = 1;
    const char *worst_name = "";
    for (int i = 0; i < ref->m.n_params; i++) {
        const vit_param *p = &ref->m.table[i];
        if (p->kind == P_BN_MEAN || p->kind == P_BN_VAR) continue;
        double rel = check_max_rel_err(ga + p->offset, gr + p->offset, (long)p->numel);
        double cs = cosine(ga + p->offset, gr + p->offset, p->numel);
        if (getenv("UFO_TEST_VERBOSE")) printf("    %-36s rel %.3g cos %.7f\n", p->name, rel, cs);
        if (bf16 ? cs < worst_cos : rel > worst_rel) worst_name = p->name;
        if (rel > worst_rel) worst_rel = rel;
        if (cs < worst_cos) worst_cos = cs;
        if (bf16) CHECK(cs >= TOL_BF16_COS_TENSOR, "%s: gradient of %s: cosine %.6f", what, p->name, cs);
        else CHECK(rel <= TOL_F32_TENSOR, "%s: gradient of %s: max rel err %.3g", what, p->name, rel);
    }
    double all = cosine(ga, gr, ref->m.n_floats);   // BN running statistics have zero gradients in both
    printf("  %-40s all model gradients as one vector: cosine %.7f, max rel err %.3g\n", what, all,
           check_max_rel_err(ga, gr, (long)ref->m.n_floats));
    if (bf16) CHECK(all >= TOL_BF16_COS, "%s: all gradients: cosine %.6f", what, all);
    else CHECK(check_max_rel_err(ga, gr, (long)ref->m.n_floats) <= TOL_F32, "%s: all gradients", what);
    size_t nc = ref->t.cls_off[UFO_NUM_TASKS];
    CHECK(ufo_trainer_sync_host(&a->t) == 0, "%s", ufo_error());   // device heads: their gradient
    double crel = check_max_rel_err(a->t.cls_grad, ref->t.cls_grad, (long)nc);
    double ccos = cosine(a->t.cls_grad, ref->t.cls_grad, nc);
    printf("  %-40s %d tensors: worst max rel err %.3g, worst cosine %.7f (%s); classifiers rel %.3g cos %.7f\n",
           what, ref->m.n_params, worst_rel, worst_cos, worst_name, crel, ccos);
    if (bf16) CHECK(ccos >= TOL_BF16_COS, "%s: classifier gradients: cosine %.6f", what, ccos);
    else CHECK(crel <= TOL_F32, "%s: classifier gradients: max rel err %.3g", what, crel);
    ufo_free(ga), ufo_free(gr);
}

static void test_one_gradient(ufo_precision prec) {
    int bf16 = prec == UFO_PREC_BF16;
    run ref, dut;
    if (start(&ref, VIT_BACKEND_REF, UFO_PREC_FP32, 0)) return;
    if (start(&dut, DUT, prec, 0)) {
        stop(&ref);
        return;
    }
    float *img = ufo_alloc(sizeof(float) * N * 3 * IMG * IMG);
    int32_t labels[N];
    make_batch(0, img, labels);
    ufo_step_stats sr, sd;
    CHECK(ufo_trainer_grad(&ref.t, img, COUNTS, labels, &sr) == 0, "%s", ufo_error());
    CHECK(ufo_trainer_grad(&dut.t, img, COUNTS, labels, &sd) == 0, "%s", ufo_error());
    const char *what = !bf16 ? "one gradient, fp32 vs ref fp32"
                       : DROP > 0 ? "one gradient, bf16 vs ref fp32" : "no drop path, bf16 vs ref fp32";
    compare_stats(what, &sd, &sr, bf16 ? TOL_BF16_LOSS : TOL_F32);
    compare_grads(what, &dut, &ref, bf16);
    // The drop path dropped something (else the test would not cover it).
    int dropped = 0;
    for (int k = 0; k < 2 * N; k++) dropped += ref.t.drop[2 * N + k] == 0.0f;
    CHECK(dropped > 0 || DROP == 0, "drop path dropped no residual branch in block 1");
    {   // recomputation: same gradients (bf16: the saved LayerNorm and GELU outputs in one slot, refilled)
        run rc;
        if (start(&rc, DUT, prec, 1) == 0) {
            ufo_step_stats s3;
            CHECK(ufo_trainer_grad(&rc.t, img, COUNTS, labels, &s3) == 0, "%s", ufo_error());
            float *a = grads_of(&rc), *b = grads_of(&dut);
            double rel = check_max_rel_err(a, b, (long)rc.m.n_floats);
            printf("  %-40s max rel err %.3g vs without\n", bf16 ? "recompute, bf16" : "recompute", rel);
            CHECK(rel <= 1e-6, "recompute changes the gradients: %.3g", rel);
            ufo_free(a), ufo_free(b);
            stop(&rc);
        }
    }
    ufo_free(img);
    stop(&ref);
    stop(&dut);
}

static void steps(run *r, int from, int to, ufo_step_stats *out) {
    float *img = ufo_alloc(sizeof(float) * N * 3 * IMG * IMG);
    int32_t labels[N];
    for (int k = from; k < to; k++) {
        make_batch(0, img, labels);   // one batch, memorised: the loss must fall
        CHECK(ufo_trainer_step(&r->t, img, COUNTS, labels, &out[k - from]) == 0, "step %d: %s", k, ufo_error());
    }
    ufo_free(img);
}

static void test_steps(void) {
    run ref, dut;
    if (start(&ref, VIT_BACKEND_REF, UFO_PREC_FP32, 0)) return;
    if (start(&dut, DUT, UFO_PREC_FP32, 0)) {
        stop(&ref);
        return;
    }
    ufo_step_stats sr[6], sd[6];
    steps(&ref, 0, 6, sr);
    steps(&dut, 0, 6, sd);
    for (int k = 0; k < 6; k++) {
        char what[64];
        snprintf(what, sizeof what, "step %d (lr %.4f)", k, sr[k].lr);
        compare_stats(what, &sd[k], &sr[k], TOL_STEPS);
    }
    CHECK(sr[5].loss < sr[0].loss && sd[5].loss < sd[0].loss, "both learn the batch: %g -> %g, %g -> %g",
          sr[0].loss, sr[5].loss, sd[0].loss, sd[5].loss);
    CHECK(ufo_trainer_sync_host(&dut.t) == 0, "%s", ufo_error());
    double rp = check_max_rel_err(dut.m.params, ref.m.params, (long)ref.m.n_floats);
    double rm = check_max_rel_err(dut.t.mom, ref.t.mom, (long)ref.m.n_floats);
    double rc = check_max_rel_err(dut.t.cls, ref.t.cls, (long)ref.t.cls_off[UFO_NUM_TASKS]);
    printf("  %-40s parameters rel %.3g, momentum rel %.3g, classifiers rel %.3g\n", "after 6 steps", rp, rm, rc);
    CHECK(rp <= TOL_STEPS && rm <= TOL_STEPS && rc <= TOL_STEPS, "after 6 steps: %.3g %.3g %.3g", rp, rm, rc);
    stop(&ref);
    stop(&dut);
}

// A Partial-FC sampled face head, on the device too (CUDA: its kept rows
// gathered, only those rows stepped): four steps against the reference
// trainer, then the same checks as test_steps.
static void test_steps_mixed(void) {
    PFC = 1;
    run ref, dut;
    if (start(&ref, VIT_BACKEND_REF, UFO_PREC_FP32, 0) == 0) {
        if (start(&dut, DUT, UFO_PREC_FP32, 0) == 0) {
            if (DUT == VIT_BACKEND_CUDA && dut.t.dev_heads)
                CHECK(dut.t.sampled[UFO_TASK_FACE] && dut.t.dev_task[UFO_TASK_FACE] && dut.t.dev_task[UFO_TASK_PERSON] &&
                          dut.t.dev_task[UFO_TASK_PRODUCT],
                      "the sampled face head and the others on the device");
            ufo_step_stats sr[4], sd[4];
            steps(&ref, 0, 4, sr);
            steps(&dut, 0, 4, sd);
            for (int k = 0; k < 4; k++) {
                char what[64];
                snprintf(what, sizeof what, "face sampled: step %d", k);
                compare_stats(what, &sd[k], &sr[k], TOL_STEPS);
            }
            CHECK(ufo_trainer_sync_host(&dut.t) == 0, "%s", ufo_error());
            double rp = check_max_rel_err(dut.m.params, ref.m.params, (long)ref.m.n_floats);
            double rc = check_max_rel_err(dut.t.cls, ref.t.cls, (long)ref.t.cls_off[UFO_NUM_TASKS]);
            double rm = check_max_rel_err(dut.t.cls_mom, ref.t.cls_mom, (long)ref.t.cls_off[UFO_NUM_TASKS]);
            printf("  %-40s parameters rel %.3g, classifiers rel %.3g, their momentum rel %.3g\n",
                   "face sampled: after 4 steps", rp, rc, rm);
            CHECK(rp <= TOL_STEPS && rc <= TOL_STEPS && rm <= TOL_STEPS, "face sampled: %.3g %.3g %.3g", rp, rc, rm);
            stop(&dut);
        }
        stop(&ref);
    }
    PFC = 0;
}

static void test_checkpoint(void) {
    const char *ck = "test_cuda_train_ck.safetensors";
    run a, b, c;
    if (start(&a, DUT, UFO_PREC_FP32, 0)) return;
    ufo_step_stats s[5];
    steps(&a, 0, 3, s);
    CHECK(ufo_trainer_save(&a.t, ck, NULL, NULL, 0) == 0, "%s", ufo_error());
    steps(&a, 3, 5, s);
    if (start(&b, DUT, UFO_PREC_FP32, 0) == 0) {
        CHECK(ufo_trainer_load(&b.t, ck) == 0, "%s", ufo_error());
        CHECK(b.t.step == 3, "step %ld", b.t.step);
        steps(&b, 3, 5, s);
        CHECK(ufo_trainer_sync_host(&a.t) == 0 && ufo_trainer_sync_host(&b.t) == 0, "%s", ufo_error());
        double rp = check_max_rel_err(b.m.params, a.m.params, (long)a.m.n_floats);
        double rm = check_max_rel_err(b.t.mom, a.t.mom, (long)a.m.n_floats);
        printf("  %-40s parameters rel %.3g, momentum rel %.3g\n", "resumed at 3 vs 5 straight", rp, rm);
        CHECK(rp <= 1e-6 && rm <= 1e-6, "resume: %.3g %.3g", rp, rm);
        stop(&b);
    }
    // The same file, read by a CPU trainer: the values the CUDA trainer had at step 3.
    if (start(&c, VIT_BACKEND_REF, UFO_PREC_FP32, 0) == 0) {
        CHECK(ufo_trainer_load(&c.t, ck) == 0, "%s", ufo_error());
        if (start(&b, DUT, UFO_PREC_FP32, 0) == 0) {
            CHECK(ufo_trainer_load(&b.t, ck) == 0 && ufo_trainer_sync_host(&b.t) == 0, "%s", ufo_error());
            CHECK(memcmp(b.m.params, c.m.params, c.m.n_floats * 4) == 0 && memcmp(b.t.mom, c.t.mom, c.m.n_floats * 4) == 0,
                  "a checkpoint written from the GPU reads back the same on the CPU");
            stop(&b);
        }
        stop(&c);
    }
    remove(ck);
    stop(&a);
}

int main(void) {
    const char *b = getenv("UFO_TEST_BACKEND");
    if (b && !strcmp(b, "cpu")) {
        DUT = VIT_BACKEND_CPU;
        printf("backend under test: CPU fast path (UFO_TEST_BACKEND=cpu)\n");
    } else if (vit_cuda_check()) {
        printf("SKIP: %s\n", ufo_error());   // "no CUDA device visible (...)" or "built without CUDA"
        return 77;
    }
    test_one_gradient(UFO_PREC_FP32);
    test_one_gradient(UFO_PREC_BF16);
    DROP = 0;
    test_one_gradient(UFO_PREC_BF16);
    DROP = 0.3f;
    test_steps();
    test_steps_mixed();
    test_checkpoint();
    return check_summary("test_cuda_train");
}
