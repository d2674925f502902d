// cpu_gemm_amx: bf16 matmul on AMX tiles (see cpu_gemm_amx.h for the contract).
//
// Why our own: Debian's oneDNN 2.6 runs its AMX brgemm matmul at 0.7 TFLOP/s
// per thread on ViT-L's linears (4616 x 1024 x 3072 and friends), under a
// fifth of the 3.8 TFLOP/s a core's tile unit does here (measured with a
// loop of independent tile multiplies). The blocking below does the same
// matmul in 10.7 ms on 2 threads against oneDNN's 22 ms (docs/performance.md).
//
// Layouts. Every tile is 16 rows x 64 bytes. Both operands are packed first
// (or come packed: cpu.h's packed layout is A's below, and bf16 rows whose
// stride suits L1 are read in place), so the hot loop reads whole 1 KB tiles:
//   A [M, K] -> tiles (mb, kb, h): rows mb*32 + h*16 .. +15, columns (k)
//     kb*32 .. +31, at ap + ((mb*KB + kb)*2 + h) * 512 elements;
//   B [K, N] -> tiles (np, kb, h) in VNNI form: row r holds, for the 16
//     columns n = np*32 + h*16 .. +15, the pair (B[kb*32+2r][n], B[kb*32+2r+1][n]),
//     at bp + ((np*KB + kb)*2 + h) * 512 elements.
// M, N and K are padded to multiples of 32 with zeros. The four storage
// cases reduce to two loads: 32 consecutive elements of a stored row
// (load_row32), or 16 columns of two consecutive stored rows interleaved
// into 32-bit pairs (load_pairs16); A stored transposed and B stored as
// [N, K] then need a 16 x 16 transpose of 32-bit words.
//
// Blocking (measured, not guessed: a 32-row A chunk must sit in L1, or tile
// loads from L2 halve the rate): a work item is one 32 x 32 block of C,
// accumulated in tmm0-3 from A tiles tmm4-5 and B tiles tmm6-7 (each loaded
// tile is used twice). K is cut into chunks of at most 8 steps (a 16 KB A
// chunk), the partial block parked in an L1 buffer between chunks. A thread
// sweeps a panel of at most ~1 MB of packed B (16 column pairs at K = 1024)
// for every 32-row block, so B stays in L2 while A streams. A long K (weight
// gradients) goes in panels of 64 steps, partial sums parked in C between.
// Outputs go out with streaming stores where C is not read: they are mostly
// far larger than the caches.
//
// Threads split the column pairs (or the row blocks when there are few
// columns); each C element is summed by one thread in a fixed order, so the
// result does not depend on the thread count.
#include "kernels/cpu/cpu_gemm_amx.h"
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/cpu_amx.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/cpu_train.h"
#include "base/error.h"
#include "base/mem.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TILE 512                // bf16 elements in one tile
#define STEP 1024               // bf16 elements per K step of a 32-row (or 32-column) block: two tiles
#define KC_MAX 8                // K steps per chunk: 32 rows x 256 bf16 = 16 KB of A
#define B_PANEL (1l << 20)      // bytes of packed B a thread sweeps per row block
#define NCP_MAX 16              // column pairs per panel (the parked blocks: 16 x 4 KB)
#define KP_MAX 64               // K steps per K panel when K is long (2,048 of the reduction)

static inline int blocks32(int x) { return (x + 31) / 32; }

// ---------------------------------------------------------------- path

static int g_request = -2;       // -2: UFO_GEMM not read yet
static const char *g_forced;     // tests: cpu_debug_gemm_path

void cpu_debug_gemm_path(const char *name) { g_forced = name; }

static int parse_request(const char *e) {   // 0 auto, 1 amx, 2 dnnl, -1 anything else
    if (!e || !*e || !strcmp(e, "auto")) return 0;
    if (!strcmp(e, "amx")) return 1;
    if (!strcmp(e, "dnnl")) return 2;
    return -1;
}

// UFO_GEMM, read once per process (every bf16 matmul asks), or the tests' override.
static int requested(void) {
    if (g_forced) return parse_request(g_forced);
    int v = __atomic_load_n(&g_request, __ATOMIC_RELAXED);
    if (v == -2) {
        v = parse_request(getenv("UFO_GEMM"));
        __atomic_store_n(&g_request, v, __ATOMIC_RELAXED);
    }
    return v;
}

int cpu_gemm_amx_enabled(void) {
    int r = requested();
    return (r == 0 || r == 1) && cpu_has_amx();
}

int cpu_gemm_env_check(void) {
    int r = requested();
    if (r < 0) return ufo_errorf("UFO_GEMM must be auto, amx or dnnl, got '%s'", g_forced ? g_forced : getenv("UFO_GEMM"));
    if (r == 1 && !cpu_has_amx()) return ufo_errorf("UFO_GEMM=amx but this CPU or OS has no AMX");
    return 0;
}

size_t cpu_packed_bytes(int n, int c) { return (size_t)blocks32(n) * blocks32(c) * 1024 * sizeof(uint16_t); }

const char *cpu_matmul_path(ufo_precision prec) {
    if (prec == UFO_PREC_BF16 && requested() < 0) return "invalid UFO_GEMM";
    return prec == UFO_PREC_BF16 && cpu_gemm_amx_enabled() ? "amx" : "onednn";
}

// ---------------------------------------------------------------- packing

// 32 elements of stored row `row` from column c0 as bf16 (columns >= n read as 0).
__attribute__((target(AMX_TARGET))) static inline __m512i load_row32(const amx_operand *o, long row, int c0, int n) {
    int left = n - c0;
    if (left <= 0) return _mm512_setzero_si512();
    if (o->bf16) {
        __mmask32 m = left >= 32 ? 0xffffffffu : (1u << left) - 1u;
        return _mm512_maskz_loadu_epi16(m, (const uint16_t *)o->p + row * o->ld + c0);
    }
    const float *f = (const float *)o->p + row * o->ld + c0;
    __mmask16 m0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
    __mmask16 m1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u) : 0;
    __m512 hi = m1 ? _mm512_maskz_loadu_ps(m1, f + 16) : _mm512_setzero_ps();
    return (__m512i)_mm512_cvtne2ps_pbh(hi, _mm512_maskz_loadu_ps(m0, f));
}

// 16 columns c0.. of stored rows `row` and `row + 1` as bf16, a one-row group
// (columns >= n, or row + 1 >= nrows, read as 0).
__attribute__((target(AMX_TARGET))) static inline __m256i load16(const amx_operand *o, long row, int c0, __mmask16 m) {
    if (o->bf16) return _mm256_maskz_loadu_epi16(m, (const uint16_t *)o->p + row * o->ld + c0);
    return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, (const float *)o->p + row * o->ld + c0));
}

// Interleaved into 32-bit pairs (stored[row][c], stored[row + 1][c]), c = c0 .. c0+15.
__attribute__((target(AMX_TARGET))) static inline __m512i load_pairs16(const amx_operand *o, long row, long nrows,
                                                                       int c0, int n) {
    int left = n - c0;
    if (left <= 0 || row >= nrows) return _mm512_setzero_si512();
    __mmask16 m = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
    __m256i a = load16(o, row, c0, m);
    __m256i b = row + 1 < nrows ? load16(o, row + 1, c0, m) : _mm256_setzero_si256();
    // lane 2i <- a[i] (lane i), lane 2i+1 <- b[i] (lane 16 + i)
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
}

// One tile of an operand whose other (non-K) dimension has R entries, in A's
// form (16 rows of that dimension, 32 k each: a = 1) or in B's VNNI form (16
// rows of k pairs, 16 entries of that dimension each: a = 0), from entry r0
// and k0. Stored with K along its rows (A transposed, B plain), 16 pair
// vectors load directly; otherwise 16 stored rows of 32 k do. A 16 x 16
// transpose of 32-bit words turns one form into the other where needed.
__attribute__((target(AMX_TARGET))) static void pack_tile(uint16_t *dst, const amx_operand *o, int k_rows, int a,
                                                         int R, int K, int r0, int k0) {
    __m512i v[16];
    for (int i = 0; i < 16; i++)
        v[i] = k_rows ? load_pairs16(o, k0 + 2 * i, K, r0, R)
                      : r0 + i < R ? load_row32(o, r0 + i, k0, K) : _mm512_setzero_si512();
    if (k_rows == a) transpose16x16(v);
    for (int r = 0; r < 16; r++) _mm512_store_si512(dst + r * 32, v[r]);
}

// The u-th tile packed, of nblk blocks of 32 along the other dimension (R
// entries), starting at block blk0. Tile (blk, kb, h) lives at index
// (blk*KB + kb)*2 + h; the visiting order follows the storage: a matrix
// stored with K along its rows is visited K step by K step (32 stored rows at
// a time, read whole and in order), the others block by block (32 stored rows
// of K each). Reading 32 bytes of every stored row per tile instead meant a
// TLB miss per row.
static void pack_one(uint16_t *dst, const amx_operand *o, int a, int R, int K, int KB, int nblk, int blk0, long u) {
    const int k_rows = a ? o->trans : !o->trans;
    long blk = k_rows ? u / 2 % nblk : u / 2 / KB;
    int kb = (int)(k_rows ? u / (2l * nblk) : u / 2 % KB), h = (int)(u % 2);
    pack_tile(dst + ((blk * KB + kb) * 2 + h) * TILE, o, k_rows, a, R, K, (int)(blk + blk0) * 32 + h * 16, kb * 32);
}

size_t amx_packed_b_bytes(int K, int N) {
    int KB = blocks32(K) ? blocks32(K) : 1;
    return (size_t)blocks32(N) * KB * STEP * sizeof(uint16_t);
}

void amx_pack_b(uint16_t *bp, amx_operand b, int K, int N) {
    int KB = blocks32(K) ? blocks32(K) : 1;
    long nt = (long)blocks32(N) * KB * 2;
#pragma omp parallel for schedule(static) if (nt > 64)
    for (long t = 0; t < nt; t++) pack_one(bp, &b, 0, N, K, KB, blocks32(N), 0, t);
}

// ---------------------------------------------------------------- compute

typedef struct {
    void *C;
    const amx_epilogue *e;
    const uint16_t *ap, *bp;
    int M, N, KB, MB, NP;
    int stream;   // rows of C start 64-byte aligned and C is not read: streaming stores
    const uint16_t *adir;   // row blocks [0, mb_direct) of A read in place (bf16 rows, lda apart);
    long lda;               // the others from ap, which holds blocks mb_direct.. packed
    int mb_direct;
} gemm_job;

// One 32 x 32 block over K steps [0, nkb) of the given A and B step arrays;
// acc: start from the block parked in cb (else from zero). Leaves it in cb.
// A's two tiles of step kb are at a + kb*as and a + kb*as + ah, rows astride bytes apart.
__attribute__((target(AMX_TARGET))) static inline void block_steps(float *cb, const uint16_t *a, long as, long ah,
                                                                  long astride, const uint16_t *b, int nkb, int acc) {
    if (acc) {
        _tile_loadd(0, cb, 128);
        _tile_loadd(1, cb + 16, 128);
        _tile_loadd(2, cb + 512, 128);
        _tile_loadd(3, cb + 528, 128);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int kb = 0; kb < nkb; kb++) {
        const uint16_t *ak = a + kb * as, *bk = b + (size_t)kb * STEP;
        _tile_loadd(4, ak, astride);
        _tile_loadd(6, bk, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, bk + TILE, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, ak + ah, astride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, cb, 128);
    _tile_stored(1, cb + 16, 128);
    _tile_stored(2, cb + 512, 128);
    _tile_stored(3, cb + 528, 128);
}

// Writes the finished block (mb, np) parked in cb [32][32] through the
// epilogue, a row (32 columns) at a time. Full 64-byte-aligned lines go out
// with streaming stores when the job allows (j->stream): a matmul's output is
// mostly far larger than the caches (ViT training keeps every layer's), and a
// streaming store skips reading each line before overwriting it.
// use_beta 0: C's old value is already in the block (K panels, below).
__attribute__((target(AMX_TARGET))) static void epilogue(const gemm_job *j, const float *cb, int mb, int np,
                                                        int use_beta) {
    const amx_epilogue *e = j->e;
    int m0 = mb * 32, rows = j->M - m0 < 32 ? j->M - m0 : 32, c0 = np * 32, left = j->N - c0;
    __mmask16 k0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
    __mmask16 k1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u) : 0;
    const __m512 beta = _mm512_set1_ps(e->beta);
    __m512 b0 = _mm512_setzero_ps(), b1 = b0;
    const int full = left >= 32;
    if (e->bias) {
        b0 = _mm512_maskz_loadu_ps(k0, e->bias + c0);
        b1 = _mm512_maskz_loadu_ps(k1, e->bias + c0 + 16);
    }
    if (e->c_packed) rows = 32;   // whole blocks (padded rows come from padded A rows)
    for (int r = 0; r < rows; r++) {
        __m512 v0 = _mm512_add_ps(_mm512_load_ps(cb + r * 32), b0);
        __m512 v1 = _mm512_add_ps(_mm512_load_ps(cb + r * 32 + 16), b1);
        size_t off = e->c_packed ? ((size_t)mb * j->NP + np) * 1024 + (size_t)r * 32 : (size_t)(m0 + r) * e->ldc + c0;
        if (use_beta && e->beta != 0.0f) {
            const float *old = (const float *)j->C + off;
            v0 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k0, old), v0);
            v1 = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k1, old + 16), v1);
        }
        if (e->dgelu) {
            __m512i d = (__m512i)_mm512_cvtne2ps_pbh(gelu_grad512(v1), gelu_grad512(v0));
            uint16_t *dst = e->dgelu + off;
            if (full && j->stream) _mm512_stream_si512((__m512i *)dst, d);
            else _mm512_mask_storeu_epi16(dst, full ? 0xffffffffu : (__mmask32)k0 | (__mmask32)k1 << 16, d);
        }
        if (e->gelu) {
            v0 = gelu512(v0);
            v1 = gelu512(v1);
        }
        if (e->c_packed) {   // pad columns: zero B columns and bias, gelu(0) = 0
            uint16_t *dst = (uint16_t *)j->C + off;
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_mov_ps(k1, v1), _mm512_maskz_mov_ps(k0, v0));
            if (j->stream) _mm512_stream_si512((__m512i *)dst, h);
            else _mm512_storeu_si512(dst, h);
        } else if (e->c_bf16) {
            uint16_t *dst = (uint16_t *)j->C + off;
            __m512i h = (__m512i)_mm512_cvtne2ps_pbh(v1, v0);
            if (full && j->stream) _mm512_stream_si512((__m512i *)dst, h);
            else _mm512_mask_storeu_epi16(dst, full ? 0xffffffffu : (__mmask32)k0 | (__mmask32)k1 << 16, h);
        } else {
            float *dst = (float *)j->C + off;
            if (full && j->stream) {
                _mm512_stream_ps(dst, v0);
                _mm512_stream_ps(dst + 16, v1);
            } else {
                _mm512_mask_storeu_ps(dst, k0, v0);
                if (k1) _mm512_mask_storeu_ps(dst + 16, k1, v1);
            }
        }
    }
}

// Block (mb, np) of the fp32 C to the park (to_park) or back, raw partial sums
// (K panels, below).
__attribute__((target(AMX_TARGET))) static void park_copy(const gemm_job *j, float *cb, int mb, int np, int to_park) {
    int m0 = mb * 32, rows = j->M - m0 < 32 ? j->M - m0 : 32, c0 = np * 32, left = j->N - c0;
    __mmask16 k0 = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
    __mmask16 k1 = left >= 32 ? 0xffff : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u) : 0;
    for (int r = 0; r < 32; r++) {
        float *c = (float *)j->C + (size_t)(m0 + r) * j->e->ldc + c0;
        if (!to_park) {
            if (r >= rows) break;
            _mm512_mask_storeu_ps(c, k0, _mm512_load_ps(cb + r * 32));
            _mm512_mask_storeu_ps(c + 16, k1, _mm512_load_ps(cb + r * 32 + 16));
        } else if (r < rows) {
            _mm512_store_ps(cb + r * 32, _mm512_maskz_loadu_ps(k0, c));
            _mm512_store_ps(cb + r * 32 + 16, _mm512_maskz_loadu_ps(k1, c + 16));
        } else {
            _mm512_store_ps(cb + r * 32, _mm512_setzero_ps());
            _mm512_store_ps(cb + r * 32 + 16, _mm512_setzero_ps());
        }
    }
}

// Row blocks [m_lo, m_hi) x column pairs [n_lo, n_hi) of C, on this thread.
__attribute__((target(AMX_TARGET))) static void compute(const gemm_job *j, int m_lo, int m_hi, int n_lo, int n_hi) {
    if (m_lo >= m_hi || n_lo >= n_hi) return;
    _Alignas(64) float park[NCP_MAX * 1024];
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    const int KB = j->KB;
    // A long reduction (dW = dY^T X: K = the batch's tokens) goes in K panels of
    // at most KP_MAX steps, so that a column panel of B stays several pairs wide
    // and A is read fewer times; the blocks' partial sums wait in C between
    // panels. Only for a plain fp32 C (beta 0 or 1, no GELU).
    const int panels = KB > KP_MAX && !j->e->c_bf16 && !j->e->gelu && (j->e->beta == 0.0f || j->e->beta == 1.0f);
    const int nkp = panels ? (KB + KP_MAX - 1) / KP_MAX : 1;
    for (int kp = 0; kp < nkp; kp++) {
        const int kpb0 = kp * KB / nkp, kpb1 = (kp + 1) * KB / nkp, kpn = kpb1 - kpb0;
        const int nck = (kpn + KC_MAX - 1) / KC_MAX;
        // C's old value enters through the park when there are panels
        const int from_c = nkp > 1 && (kp > 0 || j->e->beta != 0.0f), last = kp == nkp - 1;
        long ncp = B_PANEL / ((long)kpn * STEP * 2);
        ncp = ncp < 1 ? 1 : ncp > NCP_MAX ? NCP_MAX : ncp;
        for (int n0 = n_lo; n0 < n_hi; n0 += (int)ncp) {
            int n1 = n0 + (int)ncp < n_hi ? n0 + (int)ncp : n_hi;
            for (int mb = m_lo; mb < m_hi; mb++) {
                // Where this row block's A tiles are: in place, or packed.
                int dir = mb < j->mb_direct;
                const uint16_t *a = dir ? j->adir + (size_t)mb * 32 * j->lda : j->ap + (size_t)(mb - j->mb_direct) * KB * STEP;
                long as = dir ? 32 : STEP, ah = dir ? 16 * j->lda : TILE, astride = dir ? j->lda * 2 : 64;
                for (int c = 0; c < nck; c++) {
                    int kb0 = kpb0 + c * kpn / nck, kb1 = kpb0 + (c + 1) * kpn / nck;
                    // Prefetch into L1 the A chunk that comes next (this block's next K
                    // chunk, or the next block's first), a slice per column pair, when
                    // there are enough pairs to spread it over.
                    const uint16_t *an = NULL;
                    long rows = dir ? 32 : 1, nkn = 0;
                    if (c + 1 < nck) an = a + kb1 * as, nkn = kpb0 + (c + 2) * kpn / nck - kb1;
                    else if (mb + 1 < m_hi && (mb + 1 < j->mb_direct) == dir)
                        an = a + (dir ? 32 * j->lda : (long)KB * STEP) + kpb0 * as, nkn = kpn / nck;
                    long rbytes = dir ? nkn * 64 : nkn * STEP * 2, lpr = rbytes / 64, lines = rows * lpr;
                    long per = n1 - n0 >= 4 ? (lines + (n1 - n0) - 1) / (n1 - n0) : 0;
                    for (int np = n0; np < n1; np++) {
                        if (per && an) {
                            for (long l = (np - n0) * per; l < (np - n0 + 1) * per && l < lines; l++)
                                _mm_prefetch((const char *)an + l / lpr * astride + l % lpr * 64, _MM_HINT_T0);
                        }
                        float *cb = park + (size_t)(np - n0) * 1024;
                        if (c == 0 && from_c) park_copy(j, cb, mb, np, 1);
                        block_steps(cb, a + kb0 * as, as, ah, astride, j->bp + ((size_t)np * KB + kb0) * STEP,
                                    kb1 - kb0, c > 0 || from_c);
                        if (c == nck - 1) {
                            if (last) epilogue(j, cb, mb, np, nkp == 1);
                            else park_copy(j, cb, mb, np, 0);
                        }
                    }
                }
            }
        }
    }
    _tile_release();
    _mm_sfence();   // streaming stores visible before the region's barrier
}

// ---------------------------------------------------------------- driver

int amx_gemm(void *C, const amx_epilogue *e, amx_operand a, amx_operand b, const uint16_t *bp, int M, int N,
             int K) {
    if (M < 0 || N < 0 || K < 0) return ufo_errorf("amx_gemm: bad shape M=%d N=%d K=%d", M, N, K);
    if (e->c_bf16 && e->beta != 0.0f) return ufo_errorf("amx_gemm: a bf16 output cannot be summed into");
    if (e->dgelu && !(e->gelu && e->c_bf16)) return ufo_errorf("amx_gemm: GELU' goes with a bf16 GELU output");
    if (e->c_packed && (!e->c_bf16 || e->dgelu)) return ufo_errorf("amx_gemm: a packed output is bf16, without GELU'");
    if ((long)M * N == 0) return 0;
    const int KB = blocks32(K) ? blocks32(K) : 1, MB = blocks32(M), NP = blocks32(N);
    // bf16 rows with K a multiple of 32 are read in place, unless their stride
    // sends the 32 rows of a block to fewer than 4 groups of L1 sets (strides
    // that are multiples of 2 KB: K = 1024, 2048, 4096 get packed).
    int mb_direct = 0;
    if (a.packed) {   // the packed layout is the scratch layout: read it as the scratch
        a.bf16 = 1;
    } else if (a.bf16 && !a.trans && K % 32 == 0 && K > 0) {
        long lines = a.ld * 2 % 64 ? 1 : a.ld * 2 / 64 % 64, g = 64;
        for (long x = lines; x; ) { long t = g % x; g = x; x = t; }   // gcd(lines, 64)
        if (lines == 1 || 64 / g >= 4) mb_direct = M / 32;
    }
    size_t a_bytes = (size_t)(MB - mb_direct + 1) * KB * STEP * sizeof(uint16_t);
    uint16_t *ap = a.packed ? (uint16_t *)a.p : cpu_train_scratch(CPU_SCRATCH_AMX_A, a_bytes);
    if (!ap) return -1;
    uint16_t *bpk = (uint16_t *)bp;
    if (!bp && !(bpk = cpu_train_scratch(CPU_SCRATCH_AMX_B, amx_packed_b_bytes(K, N)))) return -1;
    size_t esz = e->c_bf16 ? 2 : 4;
    int stream = e->beta == 0.0f && (uintptr_t)C % 64 == 0 && (size_t)e->ldc * esz % 64 == 0 &&
                 (uintptr_t)e->dgelu % 64 == 0;
    gemm_job job = {C, e, ap, bpk, M, N, KB, MB, NP, stream, a.p, a.ld, mb_direct};
    const long na = a.packed ? 0 : (long)(MB - mb_direct) * KB * 2, nb = bp ? 0 : (long)NP * KB * 2;
    // Under ~4 MFLOP the fork/join costs more than a second thread saves.
    int par = (double)M * N * K > 4e6 && omp_get_max_threads() > 1;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (long t = 0; t < na; t++) pack_one(ap, &a, 1, M, K, KB, MB - mb_direct, mb_direct, t);
#pragma omp for schedule(static)
        for (long t = 0; t < nb; t++) pack_one(bpk, &b, 0, N, K, KB, NP, 0, t);
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (NP >= 2 * nt) compute(&job, 0, MB, (int)((long)NP * id / nt), (int)((long)NP * (id + 1) / nt));
        else compute(&job, (int)((long)MB * id / nt), (int)((long)MB * (id + 1) / nt), 0, NP);
    }
    return 0;
}

int amx_gemm_simple(float *C, const void *A, int a_bf16, int transA, const void *B, int b_bf16, int transB,
                    const float *bias, int M, int N, int K, float beta, int gelu) {
    amx_epilogue e = {bias, beta, gelu, 0, N, NULL, 0};
    amx_operand a = {A, transA ? M : K, !!transA, !!a_bf16, 0}, b = {B, transB ? K : N, !!transB, !!b_bf16, 0};
    return amx_gemm(C, &e, a, b, NULL, M, N, K);
}
