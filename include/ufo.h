/* ufo: one Vision Transformer, four recognition tasks (face, person, vehicle,
 * product). The public C API: load a model file, turn images into embeddings,
 * find nearest neighbours among embeddings.
 *
 *   ufo_model *m = ufo_load("allinone_vitlarge.pdmodel", NULL);
 *   float feat[1024];
 *   if (ufo_embed_files(m, &path, 1, ufo_task_from_name("vehicle"), feat) != 0)
 *       fprintf(stderr, "%s\n", ufo_last_error());
 *   ufo_free_model(m);
 *
 * Every function that can fail returns 0 / NULL on success / failure and leaves
 * a one-line message in ufo_last_error() (thread-local).
 */
#ifndef UFO_H
#define UFO_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ufo_model ufo_model;

enum { UFO_TASK_BACKBONE = -1, UFO_TASK_FACE = 0, UFO_TASK_PERSON, UFO_TASK_VEHICLE, UFO_TASK_PRODUCT, UFO_NUM_TASKS };

typedef struct {
    int img_size;     /* 0: the model's own input size; else resample pos_embed to it */
    int bf16;         /* 1: bf16 matmuls (AMX / AVX512-BF16), fp32 accumulation */
    int reference;    /* 1: the plain-C fp32 reference kernels (slow; for checking) */
    int threads;      /* 0: OpenMP's default */
    int verbose;      /* 1: report unexpected keys in the model file */
    int num_heads;    /* 0: from the file's metadata, else dim / 64 */
    int device;       /* UFO_DEVICE_CPU (default) | UFO_DEVICE_CUDA (GPU 0; bf16 runs on any sm_80+) */
    int flip;         /* 1: test-time flip, each embedding averaged with its mirror image's
                         (fast-reid's TEST.FLIP; off in the original evaluation): 2 passes */
} ufo_options;

enum { UFO_DEVICE_CPU = 0, UFO_DEVICE_CUDA = 1 };

/* Loads a model file: ufo/timm safetensors or a paddle.save state dict. */
ufo_model *ufo_load(const char *path, const ufo_options *opt);
void ufo_free_model(ufo_model *m);

int ufo_input_size(const ufo_model *m);   /* images are S x S */
int ufo_embed_dim(const ufo_model *m);
int ufo_has_task(const ufo_model *m, int task);
/* "face", "person", "vehicle", "product" -> 0..3; "backbone" -> -1; else -2 */
int ufo_task_from_name(const char *name);
const char *ufo_task_name(int task);

/* images: n x 3 x S x S float32, normalised as (x - 127.5) / 127.5.
 * out: n x D. task -1: the backbone's class token after the final LayerNorm;
 * task 0..3: that head's BNNeck output (the embedding that is evaluated). */
int ufo_embed(ufo_model *m, const float *images, int n, int task, float *out);
/* Decodes and preprocesses image files exactly as the original (Pillow-exact),
 * then embeds them. Fails, naming the file, if any image cannot be read. */
int ufo_embed_files(ufo_model *m, const char *const *paths, int n, int task, float *out);

/* All n files in batches of `batch`: `workers` threads decode the next batches
 * while the model runs the current one (what the GPU wants; on the CPU,
 * ufo_embed_files per batch is as fast). A progress line on stderr unless quiet. */
int ufo_embed_files_pipelined(ufo_model *m, const char *const *paths, int n, int task, int batch, int workers,
                              int quiet, float *out);

/* Exact k nearest neighbours by cosine similarity, e.g. of ufo_embed's
 * outputs: query nq x d, gallery ng x d (rows need not be normalised); writes
 * idx nq x k (gallery rows, best first) and sim nq x k (cosine similarities).
 * Rows are L2-normalised in double, every ranking is decided on the double
 * inner product, ties go to the smaller gallery row (what `ufo search` does).
 * self = 1: query is the gallery itself and row i never matches itself.
 * 1 <= k <= ng - self. Runs on the CPU's threads. */
int ufo_search(const float *query, int64_t nq, const float *gallery, int64_t ng, int d, int k, int self,
               int64_t *idx, float *sim);

/* 0 if `device` can run here; else -1 with the reason in ufo_last_error(), e.g.
 * "no CUDA device visible (cudaGetDeviceCount: ...)". Starts nothing on the GPU
 * beyond that query; ufo_load checks it too. */
int ufo_device_check(int device);

const char *ufo_last_error(void);
const char *ufo_version(void);

#ifdef __cplusplus
}
#endif
#endif
