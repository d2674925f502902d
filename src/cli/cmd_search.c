// ufo search: exact k nearest neighbours of query embeddings in a gallery of
// embeddings (both .npy, as ufo embed writes them), by cosine similarity --
// the part of serving that users otherwise hand to faiss.
#include "base/error.h"
#include "base/file.h"
#include "cli/cli.h"
#include "eval/metrics.h"
#include "eval/search.h"
#include "formats/npy.h"
#include "model/screen_cuda.h"
#include "ufo.h"
#include <inttypes.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: ufo search --gallery G.npy [--query Q.npy] [--k K] OUTPUT...\n"
    "\n"
    "Exact k nearest neighbours by cosine similarity (features L2-normalised; what faiss's\n"
    "flat inner-product index gives, with every ranking decided on the double-precision\n"
    "similarity and ties going to the smaller gallery row). Without --query the gallery is\n"
    "searched against itself, each item's own row left out.\n"
    "\n"
    "  --gallery G.npy      float32 or float64 [N, D] (ufo embed --out)\n"
    "  --query Q.npy        float32 or float64 [M, D], the same D\n"
    "  --k K                neighbours per query (default 10)\n"
    "outputs (at least one; each written atomically):\n"
    "  --indices I.npy      int64 [M, K]: gallery rows, best first\n"
    "  --scores S.npy       float32 [M, K]: their cosine similarities\n"
    "  --csv R.csv          query,rank,gallery,score (+ query_path,gallery_path with the lists)\n"
    "  --gallery-paths F    the gallery's image paths, one per line (ufo embed --paths-out)\n"
    "  --query-paths F      the queries' (with --query; else the gallery's serve both)\n"
    "other:\n"
    "  --device D           cpu (default) | cuda: the fp32 screen of all pairs on the GPU\n"
    "                       (same results)\n"
    "  --threads N          OpenMP threads (default: all cores)\n"
    "  --quiet              no progress or summary line\n";

typedef struct {
    const char *gallery, *query, *indices, *scores, *csv, *gpaths, *qpaths;
    int k, device, threads, quiet;
} search_args;

// 0: run; 1: --help shown; 2: usage error.
static int parse_args(int argc, char **argv, search_args *a) {
    a->k = 10;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int has = i + 1 < argc;
        if (cli_is_help(s)) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(s, "--gallery") && has) a->gallery = argv[++i];
        else if (!strcmp(s, "--query") && has) a->query = argv[++i];
        else if (!strcmp(s, "--indices") && has) a->indices = argv[++i];
        else if (!strcmp(s, "--scores") && has) a->scores = argv[++i];
        else if (!strcmp(s, "--csv") && has) a->csv = argv[++i];
        else if (!strcmp(s, "--gallery-paths") && has) a->gpaths = argv[++i];
        else if (!strcmp(s, "--query-paths") && has) a->qpaths = argv[++i];
        else if (!strcmp(s, "--k") && has) {
            if (cli_parse_int("search", s, argv[++i], 1, 1 << 20, &a->k)) return 2;
        } else if (!strcmp(s, "--threads") && has) {
            if (cli_parse_int("search", s, argv[++i], 1, 1024, &a->threads)) return 2;
        } else if (!strcmp(s, "--device") && has) {
            if (cli_parse_device("search", argv[++i], &a->device)) return 2;
        } else if (!strcmp(s, "--quiet")) a->quiet = 1;
        else return cli_usage_error("search", "unknown or incomplete option '%s'", s);
    }
    if (!a->gallery) return cli_usage_error("search", "--gallery is required");
    if (!a->indices && !a->scores && !a->csv) return cli_usage_error("search", "no output: give --indices, --scores or --csv");
    if (a->qpaths && !a->query) return cli_usage_error("search", "--query-paths goes with --query");
    return 0;
}

// A 2-D float32/float64 .npy as fp32 rows (float64 rounded, as ufo embed's
// float32 features would be). *x is malloc'd.
static int read_features(const char *path, float **x, int64_t *n, int *d) {
    ufo_tensor_entry e;
    if (ufo_npy_read(path, &e)) return -1;
    int rc = -1;
    if (e.ndim != 2 || (e.dtype != UFO_F32 && e.dtype != UFO_F64) || e.shape[1] < 1 || e.shape[1] > (1 << 20)) {
        ufo_errorf("%s: expected a float32 or float64 [N, D] array (N rows of features), got %d-D %s", path, e.ndim,
                   ufo_dtype_name(e.dtype));
        goto done;
    }
    int64_t m = e.shape[0] * e.shape[1];
    if (!(*x = malloc(sizeof(float) * (size_t)(m ? m : 1)))) {
        ufo_errorf("%s: out of memory", path);
        goto done;
    }
    ufo_convert_to_f32(*x, e.data, e.dtype, (size_t)m);
    *n = e.shape[0];
    *d = (int)e.shape[1];
    rc = 0;
done:
    free(e.owned);
    free(e.name);
    return rc;
}

// A paths list (one per line, as ufo embed --paths-out writes): line[i] points
// into text, which owns them all.
typedef struct {
    char *text;
    char **line;
} path_list;

static void free_paths(path_list *p) {
    free(p->text);
    free(p->line);
    p->text = NULL, p->line = NULL;
}

// Reads a paths list that must have exactly n lines (a last line without its
// newline counts; CR LF ends are accepted).
static int read_paths(const char *path, int64_t n, const char *what, path_list *p) {
    size_t size;
    if (ufo_read_file(path, &p->text, &size)) return -1;   // NUL-terminated
    if (!(p->line = malloc(sizeof(char *) * (size_t)(n ? n : 1)))) {
        free_paths(p);
        return ufo_errorf("%s: out of memory", path);
    }
    int64_t got = 0;
    for (char *s = p->text, *e; s < p->text + size; s = e + 1, got++) {
        if (!(e = strchr(s, '\n'))) e = p->text + size;
        if (e > s && e[-1] == '\r') e[-1] = 0;
        *e = 0;
        if (got < n) p->line[got] = s;
    }
    if (got != n) {
        free_paths(p);
        return ufo_errorf("%s: %" PRId64 " lines, but the %s has %" PRId64 " rows", path, got, what, n);
    }
    return 0;
}

// A CSV field: quoted when it holds a comma, quote or line break (RFC 4180).
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const int64_t *idx, const float *sim, int64_t nq, int k, char *const *qp,
                     char *const *gp) {
    ufo_atomic_file f;
    if (ufo_atomic_open(&f, path)) return -1;
    fputs(gp ? "query,rank,gallery,score,query_path,gallery_path\n" : "query,rank,gallery,score\n", f.fp);
    for (int64_t i = 0; i < nq; i++)
        for (int r = 0; r < k; r++) {
            int64_t j = idx[(size_t)i * k + r];
            fprintf(f.fp, "%" PRId64 ",%d,%" PRId64 ",%.9g", i, r + 1, j, sim[(size_t)i * k + r]);
            if (gp) {
                fputc(',', f.fp);
                csv_field(f.fp, qp[i]);
                fputc(',', f.fp);
                csv_field(f.fp, gp[j]);
            }
            fputc('\n', f.fp);
        }
    return ufo_atomic_commit(&f);
}

int cmd_search(int argc, char **argv) {
    search_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    if (a.threads) omp_set_num_threads(a.threads);
    if (ufo_device_check(a.device)) return cli_fail();
    if (a.device == UFO_DEVICE_CUDA && ufo_metrics_screen_mode() < 0) return cli_fail();
    float *g = NULL, *q = NULL, *sim = NULL;
    int64_t *idx = NULL, ng = 0, nq = 0;
    int dg = 0, dq = 0;
    path_list gp = {0}, qp = {0};
    cuda_screen *screen = NULL;
    rc = 1;
    if (read_features(a.gallery, &g, &ng, &dg)) goto fail;
    if (a.query) {
        if (read_features(a.query, &q, &nq, &dq)) goto fail;
        if (dq != dg) {
            ufo_errorf("%s has %d-dimensional features, %s %d-dimensional", a.query, dq, a.gallery, dg);
            goto fail;
        }
    } else {
        nq = ng;
    }
    if (a.gpaths && read_paths(a.gpaths, ng, "gallery", &gp)) goto fail;
    if (a.qpaths && read_paths(a.qpaths, nq, "query set", &qp)) goto fail;
    if (a.csv && a.query && !a.gpaths != !a.qpaths) {   // paths for both sides or for neither
        ufo_errorf("--csv with paths needs %s", a.gpaths ? "--query-paths too" : "--gallery-paths too");
        goto fail;
    }
    if (!(idx = malloc(sizeof(int64_t) * (size_t)(nq ? nq : 1) * a.k)) ||
        !(sim = malloc(sizeof(float) * (size_t)(nq ? nq : 1) * a.k))) {
        ufo_errorf("out of memory for %" PRId64 " x %d neighbours", nq, a.k);
        goto fail;
    }
    if (a.device == UFO_DEVICE_CUDA) {   // the fp32 screen of every pair on the GPU (eval/metrics.h)
        if (!(screen = cuda_screen_create(0))) goto fail;
        ufo_metrics_screen ms = {cuda_screen_begin, cuda_screen_block, cuda_screen_end, screen};
        ufo_metrics_set_screen(&ms);
    }
    if (ufo_knn_search(a.query ? q : g, nq, g, ng, dg, a.k, !a.query, !a.quiet, idx, sim)) goto fail;
    int64_t shape[2] = {nq, a.k};
    if (a.indices && ufo_npy_write(a.indices, UFO_I64, shape, 2, idx)) goto fail;
    if (a.scores && ufo_npy_write(a.scores, UFO_F32, shape, 2, sim)) goto fail;
    if (a.csv && write_csv(a.csv, idx, sim, nq, a.k, a.query ? qp.line : gp.line, gp.line)) goto fail;
    if (!a.quiet) {
        cuda_screen_stats st = {0};
        if (screen) cuda_screen_get_stats(screen, &st);
        fprintf(stderr, "search: %" PRId64 " quer%s x %" PRId64 " gallery rows (d %d), top %d%s; screen on the %s\n",
                nq, nq == 1 ? "y" : "ies", ng, dg, a.k, a.query ? "" : ", each item's own row left out",
                st.calls > 0 ? "GPU" : "CPU");
    }
    rc = 0;
    goto done;
fail:
    rc = cli_fail();
done:
    if (screen) {
        ufo_metrics_set_screen(NULL);
        cuda_screen_free(screen);
    }
    free_paths(&gp);
    free_paths(&qp);
    free(g);
    free(q);
    free(idx);
    free(sim);
    return rc;
}
