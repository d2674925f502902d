// Driver for tests/py/test_train_torch.py (run with no arguments it is a
// trivial self-check). With `DIR ref|fast|fast-bf16 STEPS [DROP_PATH [RECOMPUTE]]` it reads a model and a batch
// written by the Python test, takes STEPS training steps on that batch with
// the recipe's losses and optimiser, and writes DIR/grads.safetensors (the
// first step's gradients of every parameter and classifier) and
// DIR/losses.npy [STEPS, 9] (total, CosFace x 4 tasks, triplet x 4 tasks).
#include "check.h"
#include "base/error.h"
#include "formats/npy.h"
#include "formats/safetensors.h"
#include "model/vit_io.h"
#include "train/trainer.h"
#include <stdlib.h>
#include <string.h>

static int load_npy(const char *dir, const char *name, ufo_tensor_entry *e) {
    char path[2200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return ufo_errorf("path too long");
    return ufo_npy_read(path, e);
}

static int run(const char *dir, const char *backend, int steps, float drop_path, int recompute) {
    char path[1024];
    if (strlen(dir) > 900) return ufo_errorf("path too long");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vit_model m;
    if (vit_load(&m, path, NULL)) return -1;
    ufo_tensor_entry img, lab, cnt, cls, hp;
    if (load_npy(dir, "images.npy", &img) || load_npy(dir, "labels.npy", &lab) || load_npy(dir, "counts.npy", &cnt) ||
        load_npy(dir, "classes.npy", &cls) || load_npy(dir, "hparams.npy", &hp))
        return -1;
    int counts[4], classes[4];
    for (int t = 0; t < 4; t++) {
        counts[t] = ((const int32_t *)cnt.data)[t];
        classes[t] = ((const int32_t *)cls.data)[t];
    }
    const double *h = hp.data;  // base lr, min lr, total steps, warmup steps, cosine steps, batch
    ufo_train_config c;
    ufo_train_config_default(&c, classes, (long)h[2]);
    c.lr.base_lr = h[0], c.lr.min_lr = h[1], c.lr.total_steps = (long)h[2], c.lr.warmup_steps = (long)h[3];
    c.lr.cosine_steps = (long)h[4];
    c.batch_cap = (int)h[5];
    c.backend = strcmp(backend, "ref") ? VIT_BACKEND_CPU : VIT_BACKEND_REF;
    if (!strcmp(backend, "fast-bf16")) c.prec = UFO_PREC_BF16;
    c.drop_path = drop_path;
    c.recompute = recompute;
    ufo_trainer t;
    if (ufo_trainer_init(&t, &m, &c)) return -1;
    for (int k = 0; k < 4; k++) {
        if (!classes[k]) continue;
        ufo_tensor_entry w;
        snprintf(path, sizeof path, "cls_%s.npy", vit_task_name(k));
        if (load_npy(dir, path, &w)) return -1;
        memcpy(t.cls + t.cls_off[k], w.data, (t.cls_off[k + 1] - t.cls_off[k]) * sizeof(float));
        free(w.owned);
        free(w.name);
    }
    double *losses = calloc((size_t)steps * 9, sizeof(double));
    int rc = 0;
    for (int s = 0; s < steps && rc == 0; s++) {
        ufo_step_stats st;
        rc = ufo_trainer_step(&t, img.data, counts, lab.data, &st);
        double *row = losses + (size_t)s * 9;
        row[0] = st.loss;
        for (int k = 0; k < 4; k++) row[1 + k] = st.cosface[k], row[5 + k] = st.triplet[k];
        if (s == 0 && rc == 0) {  // gradients of step 0, before any update touched them
            ufo_tensor_entry *e = calloc((size_t)m.n_params + 4, sizeof *e);
            char (*names)[96] = calloc((size_t)m.n_params + 4, sizeof *names);
            int n = 0;
            for (int i = 0; i < m.n_params; i++, n++) {
                e[n] = (ufo_tensor_entry){.name = m.table[i].name, .dtype = UFO_F32, .ndim = m.table[i].ndim,
                                          .data = t.st.grads + m.table[i].offset, .nbytes = m.table[i].numel * 4};
                memcpy(e[n].shape, m.table[i].shape, sizeof m.table[i].shape);
            }
            for (int k = 0; k < 4; k++) {
                if (!classes[k]) continue;
                snprintf(names[n], 96, "classifier.%s.weight", vit_task_name(k));
                e[n] = (ufo_tensor_entry){.name = names[n], .dtype = UFO_F32, .ndim = 2,
                                          .shape = {classes[k], m.cfg.dim}, .data = t.cls_grad + t.cls_off[k],
                                          .nbytes = (t.cls_off[k + 1] - t.cls_off[k]) * 4};
                n++;
            }
            snprintf(path, sizeof path, "%s/grads.safetensors", dir);
            rc = ufo_safetensors_write(path, e, n, NULL, NULL, 0);
            free(e);
            free(names);
        }
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/losses.npy", dir);
        int64_t shape[2] = {steps, 9};
        rc = ufo_npy_write(path, UFO_F64, shape, 2, losses);
    }
    free(losses);
    ufo_trainer_free(&t);
    vit_free(&m);
    ufo_tensor_entry *all[] = {&img, &lab, &cnt, &cls, &hp};
    for (int i = 0; i < 5; i++) free(all[i]->owned), free(all[i]->name);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 4 && argc <= 6) {
        if (run(argv[1], argv[2], atoi(argv[3]), argc > 4 ? (float)atof(argv[4]) : 0.0f, argc > 5 ? atoi(argv[5]) : 0)) {
            fprintf(stderr, "test_train_dump: %s\n", ufo_error());
            return 1;
        }
        return 0;
    }
    ufo_train_config c;
    int classes[4] = {3, 0, 2, 0};
    ufo_train_config_default(&c, classes, 100);
    CHECK(c.cos_s[0] == 50 && c.triplet[0] == 0 && c.triplet[2] == 1 && c.lr.warmup_steps == 10);
    return check_summary("test_train_dump");
}
