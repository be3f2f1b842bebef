// Row-major matrix products on cuBLAS, and the cuBLAS handles they run on.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace fusedrnn::cuda {

// The calling thread's cuBLAS handle for the current device, created on first use and kept for the
// life of the process. `slot` (0 or 1) picks one of two handles, so that the two directions of a
// bidirectional layer, which run on two streams at once, never share a handle's workspace.
cublasHandle_t blas_handle(int slot);

// C (m, n) = alpha * op(A) @ op(B) + beta * C, every matrix row-major with the given leading
// dimensions (A is (m, k), or (k, m) when trans_a; B is (k, n), or (n, k) when trans_b), on `stream`.
// tf32 lets float products use TF32 tensor cores (10-bit mantissa inputs, float accumulation);
// double ignores it.
template <typename T>
void gemm(cublasHandle_t handle, cudaStream_t stream, bool trans_a, bool trans_b, int64_t m, int64_t n,
          int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
          bool tf32);

// cuBLAS's version as "major.minor.patch".
const char* blas_version();

}  // namespace fusedrnn::cuda
