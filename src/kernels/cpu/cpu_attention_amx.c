// cpu_attention_amx: fused bf16 attention forward on AMX tiles.
//
// Why: the oneDNN bf16 path (cpu_attention.c) materialises S = q k^T for a
// whole image as fp32 [H, T, T] (21 MB at T = 577, H = 16), so its softmax
// and both matmuls stream S and P through memory. Here an image's q, k, v are
// first rounded to bf16 and packed in the layouts the tile multiply reads (one
// token-major pass, see pack_tokens), then one work item is (head, 32 query
// rows): its S row block (32 x T fp32, 74 KB at T = 577) and P (bf16) stay in
// L2 between the two tile matmuls, and nothing of size T x T is ever written.
//
// Numerics: q, k, v rounded to bf16 (as the oneDNN path), S accumulated in
// fp32, the 1/sqrt(hd) scale applied in fp32 in an exact two-pass softmax
// (row max, then exp and sum in fp32), P = exp(scale (s - max)) rounded to
// bf16 before the division by the row sum, which is applied to the fp32
// output row instead (same relative rounding, one pass fewer), P v
// accumulated in fp32. Agrees with the oneDNN path to bf16 rounding.
//
// Tile shapes: every tile is 16 rows x 64 bytes (16 x 32 bf16 or 16 x 16
// fp32). Both matmuls use a 2 x 2 block of accumulators (tmm0-3, 32 rows x
// 32 columns), two A tiles (tmm4-5) and two B tiles (tmm6-7).
//   S = q k^T: A = q rows [32, hd] bf16, K step 32. B[d][j] = k[j][d] in
//     VNNI form: row r of a B tile holds, for 16 keys j, the pair
//     (k[j][2r], k[j][2r+1]) -- a 32-bit transpose of k. Packed as
//     kp[key block of 16][hd/2][16 pairs].
//   O = P v: A = P rows [32, Tp] bf16 (Tp = T rounded up to 32, the extra
//     columns are zero), K step 32 keys. B[j][d] = v[j][d] in VNNI form:
//     row r holds, for 16 dims d, the pair (v[2r][d], v[2r+1][d]). Packed as
//     vp[dim block of 16][Tp/2][16 pairs]; padded keys are zero.
// Padded query rows (the last block) are computed on zero q and dropped.
//
// Work: per image, the pre-pass over 16-token blocks and then the (head,
// query block) items are shared by the OpenMP threads; two packed-image
// buffers (3.6 MB each at ViT-L/16-384) leave one barrier per image.
//
// Compiled with per-function target attributes so that the library itself
// stays x86-64-v3; cpu_attention calls in here only when amx_attention_ok().
#include "kernels/cpu/cpu_attention_amx.h"
#include "kernels/cpu/cpu_amx.h"
#include "kernels/cpu/cpu_attention_amx_tiles.h"
#include "kernels/cpu/cpu_internal.h"
#include "base/mem.h"
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define QB 32   // query rows per work item
#define KB 32   // keys per tile step

// ---------------------------------------------------------------- availability

// -1 = not yet known. The permission request is process-wide and idempotent,
// so racing first callers are harmless.
static int g_amx = -1;

static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 22))) return 0;   // AMX-TILE, AMX-BF16
    __builtin_cpu_init();
    if (!cpu_has_avx512() || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl") ||
        !__builtin_cpu_supports("avx512bf16"))
        return 0;
    // Linux keeps tile data off until the process asks (5.16+); old kernels and
    // other systems refuse, and then AMX must not be touched.
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int cpu_has_amx(void) {
    int v = __atomic_load_n(&g_amx, __ATOMIC_RELAXED);
    if (v < 0) {
        v = amx_probe();
        __atomic_store_n(&g_amx, v, __ATOMIC_RELAXED);
    }
    return v;
}

int amx_attention_ok(int T, int hd) { return T > 0 && hd > 0 && hd % 32 == 0 && hd <= 256 && cpu_has_amx(); }

// ---------------------------------------------------------------- packing

// One image's q, k, v go to bf16 in a token-major pre-pass: a token's 12 KB
// qkv row (ViT-L) is read front to back, which the hardware prefetchers
// follow. (Reading one head's rows instead means 256 bytes from every 4 KB
// page, a TLB and cache miss each: that cost as much as all the arithmetic.)
// Per head h, in the shared image buffer:
//   qb[h][Tp][hd]              bf16 q rows, zero past T
//   kp[h][Tp/16][hd/2][16]     32-bit pairs of k, transposed (see above)
//   vp[h][hd/16][Tp/2][32]     pairs of consecutive tokens' v, interleaved
typedef struct {
    uint16_t *qb, *vp;
    uint32_t *kp;
} amx_image;

// Packs tokens [j0, j0+16) of one image (rows past T as zeros). stage: per-thread
// [2][16][H*hd] bf16 for the k and v rows, so that the transposes read L1/L2.
// x: fp32 rows, or bf16 rows when x_bf16 (already rounded by the qkv matmul).
__attribute__((target(AMX_TARGET), noinline)) static void pack_tokens(const amx_image *im, const void *x, int x_bf16,
                                                                       int T, int Tp, int H, int hd, int j0,
                                                                       uint16_t *stage) {
    const int C = H * hd, hp = hd / 2;
    const size_t head = (size_t)Tp * hd;   // one head's qb, kp or vp, in bf16 elements
    uint16_t *sk = stage, *sv = stage + (size_t)16 * C;
    for (int t = 0; t < 16; t++) {
        int j = j0 + t;
        const float *row = (const float *)x + (size_t)j * 3 * C;
        const uint16_t *rowb = (const uint16_t *)x + (size_t)j * 3 * C;
        for (int c = 0; c < C; c += 32) {
            __m512i q = _mm512_setzero_si512(), k = q, v = q;
            if (j < T && x_bf16) {
                q = _mm512_loadu_si512(rowb + c);
                k = _mm512_loadu_si512(rowb + C + c);
                v = _mm512_loadu_si512(rowb + 2 * C + c);
            } else if (j < T) {
                q = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(row + c));
                k = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + C + c + 16), _mm512_loadu_ps(row + C + c));
                v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * C + c + 16),
                                                 _mm512_loadu_ps(row + 2 * C + c));
            }
            _mm512_storeu_si512(im->qb + (size_t)(c / hd) * head + (size_t)j * hd + c % hd, q);
            _mm512_storeu_si512(sk + (size_t)t * C + c, k);
            _mm512_storeu_si512(sv + (size_t)t * C + c, v);
        }
    }
    // Interleave 32 bf16 of row a (lanes 0-31) with 32 of row b (lanes 32-63).
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6,
                                        37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    const size_t blk = (size_t)Tp / 2 * 32;   // one 16-dim block of vp, in bf16 elements
    for (int h = 0; h < H; h++) {
        for (int d = 0; d < hd; d += 32) {
            __m512i r[16];
            for (int t = 0; t < 16; t++) r[t] = _mm512_loadu_si512(sk + (size_t)t * C + h * hd + d);
            transpose16x16(r);
            uint32_t *dst = im->kp + (size_t)h * head / 2 + ((size_t)(j0 / 16) * hp + d / 2) * 16;
            for (int c = 0; c < 16; c++) _mm512_storeu_si512(dst + c * 16, r[c]);
            uint16_t *vd = im->vp + (size_t)h * head + (size_t)(d / 16) * blk + (size_t)(j0 / 2) * 32;
            for (int t = 0; t < 16; t += 2) {
                __m512i a = _mm512_loadu_si512(sv + (size_t)t * C + h * hd + d);
                __m512i b = _mm512_loadu_si512(sv + (size_t)(t + 1) * C + h * hd + d);
                _mm512_storeu_si512(vd + t / 2 * 32, _mm512_permutex2var_epi16(a, lo, b));
                _mm512_storeu_si512(vd + blk + t / 2 * 32, _mm512_permutex2var_epi16(a, hi, b));
            }
        }
    }
}

// ---------------------------------------------------------------- softmax

// p[0..T) = bf16(exp(scale*s[j] - scale*max)), i.e. the softmax row before
// the division by its sum, which is returned inverted: the division is done
// on the output row instead (hd values, not T). Rounding e or e/sum to bf16
// costs the same relative error; this saves a pass over the row.
__attribute__((target(AMX_TARGET), noinline)) static float softmax_row(const float *s, uint16_t *p, int T, float scale) {
    __m512 mx = _mm512_set1_ps(-INFINITY), m1 = mx, m2 = mx, m3 = mx;   // 4 chains: max has latency 4
    int j = 0;
    for (; j + 64 <= T; j += 64) {
        mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
        m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + j + 16));
        m2 = _mm512_max_ps(m2, _mm512_loadu_ps(s + j + 32));
        m3 = _mm512_max_ps(m3, _mm512_loadu_ps(s + j + 48));
    }
    mx = _mm512_max_ps(_mm512_max_ps(mx, m1), _mm512_max_ps(m2, m3));
    for (; j + 16 <= T; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(s + j));
    __mmask16 tail = (__mmask16)((1u << (T - j)) - 1u);
    if (tail) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, s + j));
    // exp(scale*(s - max)) = 2^(s*c - max*c), c = scale*log2(e).
    const float c = scale * 1.44269504088896341f;
    const __m512 vs = _mm512_set1_ps(c), vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx) * c);
    __m512 sum = _mm512_setzero_ps(), sum2 = sum;
    for (j = 0; j + 32 <= T; j += 32) {
        __m512 e = exp2_nonpos(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vs, vmax));
        __m512 e2 = exp2_nonpos(_mm512_fmsub_ps(_mm512_loadu_ps(s + j + 16), vs, vmax));
        sum = _mm512_add_ps(sum, e);
        sum2 = _mm512_add_ps(sum2, e2);
        _mm512_storeu_si512(p + j, (__m512i)_mm512_cvtne2ps_pbh(e2, e));
    }
    sum = _mm512_add_ps(sum, sum2);
    for (; j + 16 <= T; j += 16) {
        __m512 e = exp2_nonpos(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vs, vmax));
        sum = _mm512_add_ps(sum, e);
        _mm256_storeu_si256((__m256i *)(p + j), (__m256i)_mm512_cvtneps_pbh(e));
    }
    if (tail) {
        __m512 e = exp2_nonpos(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, s + j), vs, vmax));
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
        _mm256_mask_storeu_epi16(p + j, tail, (__m256i)_mm512_cvtneps_pbh(e));
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

// ---------------------------------------------------------------- driver

typedef struct {
    void *out;
    const void *qkv;
    int qkv_bf16, out_bf16, out_packed;   // CPU_ATTN_QKV_BF16, CPU_ATTN_OUT_BF16, CPU_ATTN_OUT_PACKED
    int B, T, H, hd, Tp, nqb;
    float scale;
    amx_image im[2];  // packed images, shared: image b in im[b % 2]
    char *scratch;    // per-thread: stage, s, p, o
    size_t per_thread;
} amx_job;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

// Per-thread scratch: the pre-pass's stage [2][16][H*hd] bf16, then S [32, Tp]
// fp32, P [32, Tp] bf16 and O [32, hd] fp32 of the query block.
static size_t thread_bytes(int H, int hd, int Tp) {
    return round64((size_t)2 * 16 * H * hd * 2) + round64((size_t)QB * Tp * 4) + round64((size_t)QB * Tp * 2) +
           round64((size_t)QB * hd * 4);
}

// One work item: query rows [i0, i0+32) of head h of image b.
__attribute__((target(AMX_TARGET))) static void run_item(const amx_job *jb, int b, int h, int qblk, float *s,
                                                          uint16_t *p, float *o) {
    const amx_image *im = &jb->im[b % 2];
    const int T = jb->T, Tp = jb->Tp, hd = jb->hd, i0 = qblk * QB, rows = T - i0 < QB ? T - i0 : QB, two = rows > 16;
    const size_t head = (size_t)Tp * hd;
    float inv[QB];
    tiles_qk(s, im->qb + (size_t)h * head + (size_t)i0 * hd, im->kp + (size_t)h * head / 2, Tp, hd, two);
    for (int i = 0; i < rows; i++) inv[i] = softmax_row(s + (size_t)i * Tp, p + (size_t)i * Tp, T, jb->scale);
    tiles_pv(o, p, im->vp + (size_t)h * head, Tp, hd, two);
    const long orow = (long)jb->H * hd;
    const size_t at = ((size_t)b * T + i0) * orow + (size_t)h * hd;
    for (int i = 0; i < rows; i++) {
        const __m512 vi = _mm512_set1_ps(inv[i]);
        for (int d = 0; d < hd; d += 16) {
            __m512 y = _mm512_mul_ps(vi, _mm512_loadu_ps(o + (size_t)i * hd + d));
            if (jb->out_packed) {   // the AMX matmul's blocked layout (cpu.h), 32 x 32 blocks
                size_t row = (size_t)b * T + i0 + i, col = (size_t)h * hd + d;
                size_t off = (row / 32 * (size_t)((orow + 31) / 32) + col / 32) * 1024 + row % 32 * 32 + col % 32;
                _mm256_storeu_si256((__m256i *)((uint16_t *)jb->out + off), (__m256i)_mm512_cvtneps_pbh(y));
            } else if (jb->out_bf16)
                _mm256_storeu_si256((__m256i *)((uint16_t *)jb->out + at + (size_t)i * orow + d), (__m256i)_mm512_cvtneps_pbh(y));
            else _mm512_storeu_ps((float *)jb->out + at + (size_t)i * orow + d, y);
        }
    }
}

__attribute__((target(AMX_TARGET))) static void amx_worker(const amx_job *jb) {
    const int T = jb->T, Tp = jb->Tp, H = jb->H, hd = jb->hd, nqb = jb->nqb;
    char *mine = jb->scratch + (size_t)omp_get_thread_num() * jb->per_thread;
    uint16_t *stage = (uint16_t *)mine;
    float *s = (float *)(mine + round64((size_t)2 * 16 * H * hd * 2));
    uint16_t *p = (uint16_t *)((char *)s + round64((size_t)QB * Tp * 4));
    float *o = (float *)((char *)p + round64((size_t)QB * Tp * 2));
    // P's padded key columns must be zero (softmax writes [0, T) only).
    for (int i = 0; i < QB; i++) memset(p + (size_t)i * Tp + T, 0, (size_t)(Tp - T) * 2);

    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    // Chunks of a quarter head: a thread's consecutive blocks share the head's
    // k and v in its L2, and a thread slowed by other load takes fewer.
    const int chunk = nqb >= 8 ? nqb / 4 : 1;
    for (int b = 0; b < jb->B; b++) {
        const char *x = (const char *)jb->qkv + (size_t)b * T * 3 * H * hd * (jb->qkv_bf16 ? 2 : 4);
#pragma omp for schedule(dynamic)   // early finishers of image b-1 take more
        for (int j0 = 0; j0 < Tp; j0 += 16) pack_tokens(&jb->im[b % 2], x, jb->qkv_bf16, T, Tp, H, hd, j0, stage);
        // (implicit barrier: image b is packed)
#pragma omp for schedule(dynamic, chunk) nowait
        for (int it = 0; it < H * nqb; it++) run_item(jb, b, it / nqb, it % nqb, s, p, o);
        // No barrier: a thread done with image b packs image b+1 into the other
        // buffer while the rest finish b. The barrier after that packing also
        // ends every use of image b-1's buffer, which b+2 then reuses.
    }
    _tile_release();
}

// Buffers kept between calls; a caller that finds them in use (another thread
// in cpu_attention) allocates its own.
static cpu_kept g_kept = CPU_KEPT_INIT;

int amx_attention(void *out, const void *qkv, int B, int T, int H, int hd, int io) {
    const int Tp = (T + KB - 1) / KB * KB, nqb = (T + QB - 1) / QB;
    amx_job jb = {.out = out, .qkv = qkv, .qkv_bf16 = !!(io & CPU_ATTN_QKV_BF16), .out_bf16 = !!(io & CPU_ATTN_OUT_BF16),
                  .out_packed = !!(io & CPU_ATTN_OUT_PACKED),
                  .B = B, .T = T, .H = H, .hd = hd, .Tp = Tp, .nqb = nqb,
                  .scale = (float)(1.0 / sqrt((double)hd))};
    int nthr = omp_get_max_threads();
    if (nthr > H * nqb) nthr = H * nqb;
    const size_t head = round64((size_t)Tp * hd * 2);   // bytes of one head's qb, kp or vp
    jb.per_thread = thread_bytes(H, hd, Tp);
    const int nimg = B > 1 ? 2 : 1;
    size_t need = 3 * (size_t)nimg * H * head + (size_t)nthr * jb.per_thread;
    int kept;
    char *base = cpu_kept_get(&g_kept, need, &kept);
    if (!base) return -1;
    for (int i = 0; i < nimg; i++) {
        char *ib = base + (size_t)i * 3 * H * head;
        jb.im[i].qb = (uint16_t *)ib;
        jb.im[i].kp = (uint32_t *)(ib + (size_t)H * head);
        jb.im[i].vp = (uint16_t *)(ib + 2 * (size_t)H * head);
    }
    jb.scratch = base + 3 * (size_t)nimg * H * head;
#pragma omp parallel num_threads(nthr) if (nthr > 1)
    amx_worker(&jb);
    cpu_kept_put(&g_kept, base, kept);
    return 0;
}
