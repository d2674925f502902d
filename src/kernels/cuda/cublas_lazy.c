// cuBLAS and cuBLASLt, loaded on first use instead of at program start.
//
// Linking libcublasLt.so directly costs every ufo process ~210 MB of resident
// memory at start (its loader work), GPU or not: `ufo embed` on the CPU went
// from 2.36 to 2.51 GB peak. So ufo_cuda links no cuBLAS library; these
// definitions of the cuBLAS entry points the backend calls dlopen the
// toolkit's libraries the first time one is called (i.e. when --device cuda
// creates its context) and forward to them. If a library cannot be loaded the
// entry point returns CUBLAS_STATUS_NOT_INITIALIZED after printing why, so the
// caller's usual error path reports it.
//
// The wrappers below were generated from the toolkit's cublas_api.h and
// cublasLt.h prototypes (the compiler checks them against those headers).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

enum { LIB_BLAS, LIB_LT };

static void *lazy_sym(int lib, const char *name) {
    static void *handle[2];
    static int failed[2];
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static const char *const so[2] = {"libcublas.so." UFO_CUBLAS_MAJOR, "libcublasLt.so." UFO_CUBLAS_MAJOR};
    void *sym = NULL;
    pthread_mutex_lock(&mu);
    if (!handle[lib] && !failed[lib]) {
        // The loader's search path first (LD_LIBRARY_PATH, ldconfig), then the toolkit ufo was built with.
        handle[lib] = dlopen(so[lib], RTLD_NOW | RTLD_GLOBAL);
        if (!handle[lib]) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", UFO_CUBLAS_DIR, so[lib]);
            handle[lib] = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
        }
        if (!handle[lib]) {
            failed[lib] = 1;
            fprintf(stderr, "ufo: cannot load %s (nor from %s): %s\n", so[lib], UFO_CUBLAS_DIR, dlerror());
        }
    }
    if (handle[lib] && !(sym = dlsym(handle[lib], name))) fprintf(stderr, "ufo: %s has no %s\n", so[lib], name);
    pthread_mutex_unlock(&mu);
    return sym;
}

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t* handle) {
    static cublasStatus_t (*fn)(cublasHandle_t* handle);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasCreate_v2"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(handle);
}

cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    static cublasStatus_t (*fn)(cublasHandle_t handle);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasDestroy_v2"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(handle);
}

cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    static cublasStatus_t (*fn)(cublasHandle_t handle, cudaStream_t streamId);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasSetStream_v2"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(handle, streamId);
}

const char* CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
    static const char* (*fn)(cublasStatus_t status);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasGetStatusString"))) return "cuBLAS could not be loaded";
    return fn(status);
}

cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    static cublasStatus_t (*fn)(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasGemmEx"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, computeType, algo);
}

cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    static cublasStatus_t (*fn)(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb, long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
    if (!fn && !(fn = lazy_sym(LIB_BLAS, "cublasGemmStridedBatchedEx"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo);
}

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t* lightHandle) {
    static cublasStatus_t (*fn)(cublasLtHandle_t* lightHandle);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtCreate"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(lightHandle);
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    static cublasStatus_t (*fn)(cublasLtHandle_t lightHandle);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtDestroy"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(lightHandle);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType) {
    static cublasStatus_t (*fn)(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulDescCreate"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(matmulDesc, computeType, scaleType);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    static cublasStatus_t (*fn)(cublasLtMatmulDesc_t matmulDesc);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulDescDestroy"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(matmulDesc);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t sizeInBytes) {
    static cublasStatus_t (*fn)(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t sizeInBytes);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulDescSetAttribute"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(matmulDesc, attr, buf, sizeInBytes);
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    static cublasStatus_t (*fn)(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatrixLayoutCreate"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(matLayout, type, rows, cols, ld);
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    static cublasStatus_t (*fn)(cublasLtMatrixLayout_t matLayout);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatrixLayoutDestroy"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(matLayout);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    static cublasStatus_t (*fn)(cublasLtMatmulPreference_t* pref);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulPreferenceCreate"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(pref);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    static cublasStatus_t (*fn)(cublasLtMatmulPreference_t pref);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulPreferenceDestroy"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(pref);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t sizeInBytes) {
    static cublasStatus_t (*fn)(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t sizeInBytes);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulPreferenceSetAttribute"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(pref, attr, buf, sizeInBytes);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount) {
    static cublasStatus_t (*fn)(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc, cublasLtMatmulPreference_t preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmulAlgoGetHeuristic"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, preference, requestedAlgoCount, heuristicResultsArray, returnAlgoCount);
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    static cublasStatus_t (*fn)(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream);
    if (!fn && !(fn = lazy_sym(LIB_LT, "cublasLtMatmul"))) return CUBLAS_STATUS_NOT_INITIALIZED;
    return fn(lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D, Ddesc, algo, workspace, workspaceSizeInBytes, stream);
}
