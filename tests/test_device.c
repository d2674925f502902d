// Device selection without a GPU (runs in every build): asking for CUDA where
// it cannot run fails with one clear line and leaves the model usable on the
// CPU; the CPU needs no check. With a GPU visible, the CUDA backend prepares
// and agrees with the CPU (the op-by-op checks are tests/cuda/test_cuda_ops.c).
#include "base/error.h"
#include "model/vit.h"
#include "model/vit_train.h"
#include "check.h"
#include "ufo.h"
#include <stdlib.h>
#include <string.h>

static int one_line(const char *s) { return s && *s && !strchr(s, '\n'); }

int main(void) {
    CHECK(ufo_device_check(UFO_DEVICE_CPU) == 0, "the CPU always works");
    CHECK(ufo_device_check(7) != 0 && strstr(ufo_last_error(), "unknown device"), "%s", ufo_last_error());

    vit_config c;
    CHECK(vit_config_preset("tiny", 32, 16, &c) == 0, "%s", ufo_error());
    c.depth = 1;
    vit_model m;
    CHECK(vit_alloc(&m, &c, 1u << UFO_TASK_PERSON) == 0, "%s", ufo_error());
    vit_init_random(&m, 3);
    float *x = calloc((size_t)2 * 3 * 32 * 32, sizeof(float)), *a = calloc((size_t)2 * c.dim, sizeof(float));
    float *b = calloc((size_t)2 * c.dim, sizeof(float));
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) x[i] = (float)((i * 37 % 101) / 50.0 - 1.0);
    CHECK(vit_prepare(&m, VIT_BACKEND_CPU, UFO_PREC_FP32) == 0, "%s", ufo_error());
    CHECK(vit_forward(&m, x, 2, UFO_TASK_PERSON, a) == 0, "%s", ufo_error());

    int have_gpu = ufo_device_check(UFO_DEVICE_CUDA) == 0;
    char msg[UFO_ERR_MAX] = "";
    if (!have_gpu) {
        snprintf(msg, sizeof msg, "%s", ufo_last_error());
        printf("--device cuda here: %s\n", msg);
#ifdef UFO_HAVE_CUDA
        CHECK(strncmp(msg, "no CUDA device visible (cudaGetDeviceCount: ", 44) == 0 && one_line(msg), "'%s'", msg);
#else
        CHECK(strstr(msg, "built without CUDA") && one_line(msg), "'%s'", msg);
#endif
        // The same line from vit_prepare, and the model still runs (on the reference path).
        CHECK(vit_prepare(&m, VIT_BACKEND_CUDA, UFO_PREC_BF16) != 0, "prepare must fail without a GPU");
        CHECK(!strcmp(ufo_error(), msg), "'%s' vs '%s'", ufo_error(), msg);
        CHECK(m.cuda == NULL && m.backend == VIT_BACKEND_REF, "left in a usable state");
        CHECK(vit_forward(&m, x, 2, UFO_TASK_PERSON, b) == 0, "%s", ufo_error());
        double rel = check_max_rel_err(b, a, 2L * c.dim);
        CHECK(rel <= 1e-4, "after the failed prepare the model still embeds: rel err %.3g", rel);
        // ufo_load refuses before reading the file (the path does not exist).
        ufo_options o = {.device = UFO_DEVICE_CUDA};
        CHECK(ufo_load("/nonexistent/model.safetensors", &o) == NULL && !strcmp(ufo_last_error(), msg), "'%s'",
              ufo_last_error());
    } else {
        printf("--device cuda here: a GPU is visible\n");
        CHECK(vit_prepare(&m, VIT_BACKEND_CUDA, UFO_PREC_FP32) == 0, "%s", ufo_error());
        CHECK(vit_forward(&m, x, 2, UFO_TASK_PERSON, b) == 0, "%s", ufo_error());
        double rel = check_max_rel_err(b, a, 2L * c.dim);
        CHECK(rel <= 1e-4, "GPU fp32 vs CPU fp32: rel err %.3g", rel);
    }
    // Training on CUDA: without a GPU (or CUDA) the same one line, never a silent
    // fallback to the CPU; with one it starts (tests/cuda/test_cuda_train.c checks it).
    vit_train_state st;
    int rc = vit_train_init(&st, &m, VIT_BACKEND_CUDA, UFO_PREC_FP32, 2, 0);
    if (!have_gpu) {
        CHECK(rc != 0 && !strcmp(ufo_error(), msg), "'%s' vs '%s'", ufo_error(), msg);
    } else {
        CHECK(rc == 0 && vit_train_device_of(&st) != NULL, "%s", ufo_error());
        if (rc == 0) vit_train_free(&st);
    }
    ufo_options ref_cuda = {.device = UFO_DEVICE_CUDA, .reference = 1};
    CHECK(ufo_load("/nonexistent/model.safetensors", &ref_cuda) == NULL && strstr(ufo_last_error(), "CPU only"), "%s",
          ufo_last_error());
    vit_free(&m);
    free(x), free(a), free(b);
    return check_summary("test_device");
}
