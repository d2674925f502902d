// The CUDA emulator's WMMA (see cuda_runtime.h). On a GPU a fragment is spread
// over the 32 lanes of a warp; here every lane holds the whole tile and does
// the whole warp's operation, which gives the same values in memory. A lane's
// load reads memory when that lane runs, so a tile written by other lanes
// without a __syncwarp before the load reads stale or 0xff (NaN) values, as a
// GPU may. Element access by index (fragment.x[i]) is not emulated: its layout
// over the lanes is the GPU's own.
#pragma once
#include "cuda_bf16.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// The tile of a fragment, stored row-major: matrix_a M x K, matrix_b K x N, accumulator M x N.
template <typename Use, int M, int N, int K>
struct tile_shape;
template <int M, int N, int K>
struct tile_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct tile_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct tile_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static constexpr int rows = tile_shape<Use, M, N, K>::rows, cols = tile_shape<Use, M, N, K>::cols;
    T t[rows * cols];
};

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, V v) {
    for (auto &e : f.t) e = T(v);
}

template <typename Use, int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<Use, M, N, K, T, row_major> &f, const T *p, unsigned ldm) {
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++) f.t[r * f.cols + c] = p[(size_t)r * ldm + c];
}
template <typename Use, int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<Use, M, N, K, T, col_major> &f, const T *p, unsigned ldm) {
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++) f.t[r * f.cols + c] = p[(size_t)c * ldm + r];
}

template <int M, int N, int K, typename T>
inline void store_matrix_sync(T *p, const fragment<accumulator, M, N, K, T, void> &f, unsigned ldm, layout_t l) {
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) {
            size_t o = l == mem_row_major ? (size_t)r * ldm + c : (size_t)c * ldm + r;
            p[o] = f.t[r * N + c];
        }
}

// d = a b + c with products exact in fp32 (bf16 x bf16) and fp32 accumulation.
// The 32 lanes of a warp make the same call on the same tiles; the first lane
// computes it and the others copy its result (a 32x saving). A lane whose
// tiles differ from the first lane's read memory that changed between the
// lanes' loads: on a GPU, a tile loaded before other lanes' writes to it were
// fenced by __syncwarp / __syncthreads (a race); the emulator stops there.
template <int M, int N, int K, typename TA, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, M, N, K, float, void> &d, const fragment<matrix_a, M, N, K, TA, LA> &a,
                     const fragment<matrix_b, M, N, K, TA, LB> &b,
                     const fragment<accumulator, M, N, K, float, void> &c) {
    constexpr size_t na = sizeof a.t, nb = sizeof b.t, nc = sizeof c.t;
    unsigned char *in = nullptr, *out = nullptr;
    if (::emu::mma_memo(na + nb + nc, nc, &in, &out)) {
        if (memcmp(in, a.t, na) || memcmp(in + na, b.t, nb) || memcmp(in + na + nb, c.t, nc))
            ::emu::fail("the lanes of a warp reached this mma_sync with different tiles: a tile was loaded "
                        "before other lanes' writes to it were fenced by __syncwarp / __syncthreads");
        memcpy(d.t, out, nc);
        return;
    }
    float res[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = c.t[i * N + j];
            for (int k = 0; k < K; k++) s += (float)a.t[i * K + k] * (float)b.t[k * N + j];
            res[i * N + j] = s;
        }
    if (in) {  // this lane is the warp's first at this call: keep inputs and result for the others
        memcpy(in, a.t, na), memcpy(in + na, b.t, nb), memcpy(in + na + nb, c.t, nc);
        memcpy(out, res, nc);
    }
    memcpy(d.t, res, sizeof res);
}

}  // namespace wmma
}  // namespace nvcuda
