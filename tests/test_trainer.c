// The training step: losses fall on a learnable toy problem, training is
// deterministic, resume from a checkpoint continues bit for bit, bad
// checkpoints are refused, and a failed save never clobbers the previous one.
#include "check.h"
#include "base/error.h"
#include "base/mem.h"
#include "base/rng.h"
#include "train/trainer.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define N 12
static const int COUNTS[UFO_NUM_TASKS] = {4, 0, 4, 4};     // face, vehicle, product; no person
static const int CLASSES[UFO_NUM_TASKS] = {5, 0, 3, 3};

static void make_model(vit_model *m) {
    vit_config c = {.img_size = 16, .patch_size = 8, .dim = 32, .depth = 2, .heads = 2, .mlp_hidden = 64,
                    .ln_eps = 1e-6f, .bn_eps = 1e-5f};
    vit_alloc(m, &c, 0xf);
    vit_init_random(m, 7);
}

// Batch of step k: images whose content depends on the label, so the task is learnable.
static void batch(int k, float *img, int32_t *labels) {
    ufo_rng r;
    ufo_rng_seed(&r, 1000 + k);
    int S = 16, per = 3 * S * S;
    for (int i = 0; i < N; i++) {
        int task = i < 4 ? 0 : i < 8 ? 2 : 3;
        labels[i] = (int32_t)(ufo_rng_next(&r) % CLASSES[task]);
        // Two of each label per slice, so triplet has positives.
        if (task != 0) labels[i] = (i % 4) / 2 % CLASSES[task];
        for (int j = 0; j < per; j++)
            img[i * per + j] = (float)(0.5 * sin(0.3 * j * (labels[i] + 1) + task) + 0.2 * (ufo_rng_uniform(&r) - 0.5));
    }
}

static ufo_train_config config(vit_backend backend, long total) {
    ufo_train_config c;
    ufo_train_config_default(&c, CLASSES, total);
    c.backend = backend;
    c.batch_cap = N;
    c.drop_path = 0.1f;
    c.seed = 3;
    c.lr.base_lr = 0.02;
    c.lr.min_lr = 0.0004;
    return c;
}

// Steps [from, to); first/last receive the mean loss of the first and last 5 steps.
static int run(ufo_trainer *t, int from, int to, double *first_loss, double *last_loss) {
    float *img = ufo_alloc(sizeof(float) * N * 3 * 16 * 16);
    int32_t labels[N];
    int rc = 0;
    double first = 0, last = 0;
    for (int k = from; k < to && rc == 0; k++) {
        ufo_step_stats s;
        batch(k, img, labels);
        rc = ufo_trainer_step(t, img, COUNTS, labels, &s);
        if (k < from + 5) first += s.loss / 5;
        if (k >= to - 5) last += s.loss / 5;
    }
    if (first_loss) *first_loss = first;
    if (last_loss) *last_loss = last;
    ufo_free(img);
    return rc;
}

static void test_learns_and_is_deterministic(vit_backend backend) {
    vit_model a, b;
    make_model(&a);
    make_model(&b);
    ufo_trainer ta, tb;
    ufo_train_config c = config(backend, 40);
    CHECK(ufo_trainer_init(&ta, &a, &c) == 0, "%s", ufo_error());
    CHECK(ufo_trainer_init(&tb, &b, &c) == 0, "%s", ufo_error());
    double l0 = 0, l1 = 0, m0 = 0, m1 = 0;
    CHECK(run(&ta, 0, 40, &l0, &l1) == 0, "%s", ufo_error());
    CHECK(run(&tb, 0, 40, &m0, &m1) == 0, "%s", ufo_error());
    fprintf(stderr, "backend %d: loss %g -> %g\n", backend, l0, l1);
    CHECK(l1 < 0.7 * l0, "backend %d: loss %g -> %g", backend, l0, l1);
    CHECK(memcmp(a.params, b.params, a.n_floats * 4) == 0, "two identical runs differ");
    ufo_trainer_free(&ta);
    ufo_trainer_free(&tb);
    vit_free(&a);
    vit_free(&b);
}

static void test_resume(void) {
    const char *ck = "test_trainer_ck.safetensors";
    vit_model a, b;
    make_model(&a);
    make_model(&b);
    ufo_trainer ta, tb;
    ufo_train_config c = config(VIT_BACKEND_CPU, 20);
    ufo_trainer_init(&ta, &a, &c);
    CHECK(run(&ta, 0, 10, NULL, NULL) == 0);
    CHECK(ufo_trainer_save(&ta, ck, NULL, NULL, 0) == 0, "%s", ufo_error());
    CHECK(run(&ta, 10, 20, NULL, NULL) == 0);  // 20 straight
    // A fresh trainer (other seed: classifiers and RNG must come from the file) resumes.
    c.seed = 99;
    ufo_trainer_init(&tb, &b, &c);
    CHECK(ufo_trainer_load(&tb, ck) == 0, "%s", ufo_error());
    CHECK(tb.step == 10);
    CHECK(run(&tb, 10, 20, NULL, NULL) == 0);
    CHECK(memcmp(a.params, b.params, a.n_floats * 4) == 0, "resumed parameters differ");
    CHECK(memcmp(ta.cls, tb.cls, ta.cls_off[UFO_NUM_TASKS] * 4) == 0, "resumed classifiers differ");
    CHECK(memcmp(ta.mom, tb.mom, a.n_floats * 4) == 0, "resumed momentum differs");

    // Truncated checkpoint: refused with a message naming the file; trainer untouched.
    struct stat st;
    stat(ck, &st);
    char *buf = malloc(st.st_size);
    FILE *fp = fopen(ck, "rb");
    CHECK(fread(buf, 1, st.st_size, fp) == (size_t)st.st_size);
    fclose(fp);
    const char *bad = "test_trainer_bad.safetensors";
    fp = fopen(bad, "wb");
    fwrite(buf, 1, st.st_size / 2, fp);
    fclose(fp);
    CHECK(ufo_trainer_load(&tb, bad) != 0 && strstr(ufo_error(), bad), "%s", ufo_error());
    // Mismatched: a trainer with other class counts refuses it.
    vit_model d;
    make_model(&d);
    ufo_trainer td;
    ufo_train_config c2 = config(VIT_BACKEND_CPU, 20);
    c2.classes[UFO_TASK_FACE] = 6;
    ufo_trainer_init(&td, &d, &c2);
    CHECK(ufo_trainer_load(&td, ck) != 0 && strstr(ufo_error(), "classes"), "%s", ufo_error());
    ufo_trainer_free(&td);
    vit_free(&d);

    // A save that fails half way (file size limit) leaves the previous checkpoint as it was.
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = st.st_size / 3;
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = ufo_trainer_save(&tb, ck, NULL, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc != 0, "save past the size limit should fail");
    fp = fopen(ck, "rb");
    char *again = malloc(st.st_size);
    CHECK(fp && fread(again, 1, st.st_size, fp) == (size_t)st.st_size && memcmp(buf, again, st.st_size) == 0,
          "previous checkpoint changed");
    if (fp) fclose(fp);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", ck, (int)getpid());
    CHECK(access(tmp, F_OK) != 0, "temp file left behind");
    free(again);
    free(buf);
    unlink(ck);
    unlink(bad);
    ufo_trainer_free(&ta);
    ufo_trainer_free(&tb);
    vit_free(&a);
    vit_free(&b);
}

int main(void) {
    test_learns_and_is_deterministic(VIT_BACKEND_REF);
    test_learns_and_is_deterministic(VIT_BACKEND_CPU);
    test_resume();
    return check_summary("test_trainer");
}
