// The public API (include/ufo.h) over the model and image layers.
#include "ufo.h"
#include "base/error.h"
#include "base/mem.h"
#include "eval/embed_set.h"
#include "eval/search.h"
#include "image/image.h"
#include "model/vit_io.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ufo_model {
    vit_model vit;
    float *images;        // decoded batch, kept between calls (pinned with CUDA: costly to allocate)
    size_t images_bytes;
    int flip;             // ufo_options.flip
};

ufo_model *ufo_load(const char *path, const ufo_options *opt) {
    ufo_options o = opt ? *opt : (ufo_options){0};
    if (o.threads > 0) omp_set_num_threads(o.threads);
    ufo_model *m = calloc(1, sizeof *m);
    if (!m) {
        ufo_errorf("out of memory");
        return NULL;
    }
    if (o.device == UFO_DEVICE_CUDA && o.reference) {
        free(m);
        ufo_errorf("the reference kernels run on the CPU only (drop --reference or --device cuda)");
        return NULL;
    }
    // Fail before reading a (large) model file when the GPU cannot be used.
    if (ufo_device_check(o.device) != 0) {
        free(m);
        return NULL;
    }
    vit_load_options lo = {.img_size = o.img_size, .num_heads = o.num_heads, .verbose = o.verbose};
    if (vit_load(&m->vit, path, &lo) != 0) {
        free(m);
        return NULL;
    }
    vit_backend backend = o.device == UFO_DEVICE_CUDA ? VIT_BACKEND_CUDA
                          : o.reference                ? VIT_BACKEND_REF
                                                       : VIT_BACKEND_CPU;
    if (o.bf16 && backend == VIT_BACKEND_CPU && !cpu_has_bf16()) {
        // oneDNN may refuse bf16 where the CPU cannot run it: fall back, and say so.
        fprintf(stderr, "ufo: note: this CPU has no native bf16 (%s); running fp32\n", cpu_isa_name());
        o.bf16 = 0;
    }
    if (vit_prepare(&m->vit, backend, o.bf16 ? UFO_PREC_BF16 : UFO_PREC_FP32) != 0) {
        ufo_error_wrap("%s", path);
        vit_free(&m->vit);
        free(m);
        return NULL;
    }
    m->flip = !!o.flip;
    return m;
}

void ufo_free_model(ufo_model *m) {
    if (!m) return;
    vit_host_free(&m->vit, m->images);
    vit_free(&m->vit);
    free(m);
}

int ufo_input_size(const ufo_model *m) { return m->vit.cfg.img_size; }
int ufo_embed_dim(const ufo_model *m) { return m->vit.cfg.dim; }
int ufo_has_task(const ufo_model *m, int task) {
    return task == UFO_TASK_BACKBONE || (task >= 0 && task < UFO_NUM_TASKS && (m->vit.head_mask >> task & 1));
}
int ufo_task_from_name(const char *name) {
    if (strcmp(name, "backbone") == 0) return UFO_TASK_BACKBONE;
    int t = vit_task_from_name(name);
    return t >= 0 ? t : -2;
}
const char *ufo_task_name(int task) { return vit_task_name(task); }

int ufo_embed(ufo_model *m, const float *images, int n, int task, float *out) {
    if (!m->flip || n <= 0) return vit_forward(&m->vit, images, n, task, out);
    size_t bytes = (size_t)n * 3 * m->vit.cfg.img_size * m->vit.cfg.img_size * sizeof(float);
    float *x = ufo_alloc(bytes);   // the caller's images stay as they are
    if (!x) return -1;
    memcpy(x, images, bytes);
    int rc = vit_forward_tta(&m->vit, x, n, task, 1, out);
    ufo_free(x);
    return rc;
}

int ufo_device_check(int device) {
    if (device == UFO_DEVICE_CPU) return 0;
    if (device == UFO_DEVICE_CUDA) return vit_cuda_check();
    return ufo_errorf("unknown device %d", device);
}

int ufo_embed_files(ufo_model *m, const char *const *paths, int n, int task, float *out) {
    int S = m->vit.cfg.img_size;
    size_t per = (size_t)3 * S * S;
    size_t bytes = (size_t)n * per * sizeof(float);
    if (bytes > m->images_bytes) {
        vit_host_free(&m->vit, m->images);
        m->images_bytes = 0;
        if (!(m->images = vit_host_alloc(&m->vit, bytes))) return -1;
        m->images_bytes = bytes;
    }
    float *x = m->images;
    // Decode in parallel; the first failure (in input order) is the one reported.
    int failed = n;
    char msg[UFO_ERR_MAX] = "";
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < n; i++) {
        if (ufo_preprocess_file(paths[i], S, S, x + i * per) != 0) {
#pragma omp critical
            if (i < failed) {
                failed = i;
                snprintf(msg, sizeof msg, "%s", ufo_error());
            }
        }
    }
    int rc = failed < n ? ufo_errorf("%s", msg) : vit_forward_tta(&m->vit, x, n, task, m->flip, out);
    return rc;
}

int ufo_embed_files_pipelined(ufo_model *m, const char *const *paths, int n, int task, int batch, int workers,
                              int quiet, float *out) {
    if (n <= 0) return 0;
    if (!ufo_has_task(m, task)) return ufo_errorf("this model has no '%s' head", vit_task_name(task));
    // The evaluation pipeline over a plain list of files (no cache).
    ufo_eval_set s = {.name = "embed", .n = n, .paths = (char **)paths};
    ufo_embed_opts o = {.batch = batch, .workers = workers, .quiet = quiet, .flip = m->flip};
    int from_cache;
    return ufo_embed_set(&m->vit, &s, task, &o, out, &from_cache);
}

int ufo_search(const float *query, int64_t nq, const float *gallery, int64_t ng, int d, int k, int self,
               int64_t *idx, float *sim) {
    if ((!query && !self) || !gallery || !idx || !sim) return ufo_errorf("ufo_search: NULL argument");
    return ufo_knn_search(self ? gallery : query, nq, gallery, ng, d, k, self, 0, idx, sim);
}

const char *ufo_last_error(void) { return ufo_error(); }
const char *ufo_version(void) { return UFO_VERSION; }
