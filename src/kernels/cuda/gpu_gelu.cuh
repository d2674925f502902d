// The exact (erf) GELU and its derivative, as ref_gelu / ref_gelu_backward
// compute them: one definition for the forward kernels (gpu_kernels.cu) and
// the training's (gpu_train.cu), so the two never drift apart.
#pragma once
#include <math.h>

__device__ __forceinline__ float gelu_of(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_grad_of(float v) {
    return 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * 0.39894228040143267794f * expf(-0.5f * v * v);
}
