// cuBLAS is column-major; a row-major matrix is its transpose in column-major terms, so the
// row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: the same call
// with the operands swapped and m, n exchanged. The _64 entry points take 64-bit sizes, so no
// B*T row count needs a 32-bit check.
#include "cuda/gemm.cuh"

#include <string>
#include <type_traits>
#include <vector>

#include "cuda/check.cuh"

namespace fusedrnn::cuda {

namespace {

struct DeviceHandles {
  cublasHandle_t slots[2] = {nullptr, nullptr};
};

}  // namespace

cublasHandle_t blas_handle(int slot) {
  // Per thread, because a cuBLAS handle must not be used by two host threads at once; never
  // destroyed, because thread-exit destructors may run after the CUDA runtime has shut down.
  thread_local std::vector<DeviceHandles> handles;
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  if (static_cast<int>(handles.size()) <= device) handles.resize(device + 1);
  cublasHandle_t& handle = handles[device].slots[slot];
  if (!handle) FUSEDRNN_CUDA_CHECK(cublasCreate(&handle));
  return handle;
}

template <typename T>
void gemm(cublasHandle_t handle, cudaStream_t stream, bool trans_a, bool trans_b, int64_t m, int64_t n,
          int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc,
          bool tf32) {
  constexpr bool is_float = std::is_same_v<T, float>;
  const cudaDataType_t type = is_float ? CUDA_R_32F : CUDA_R_64F;
  const cublasComputeType_t compute =
      is_float ? (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F) : CUBLAS_COMPUTE_64F;
  FUSEDRNN_CUDA_CHECK(cublasSetStream(handle, stream));
  FUSEDRNN_CUDA_CHECK(cublasGemmEx_64(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                      n, m, k, &alpha, b, type, ldb, a, type, lda, &beta, c, type, ldc, compute,
                                      CUBLAS_GEMM_DEFAULT));
}

const char* blas_version() {
  static const std::string version = [] {
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
        cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
      return std::string();
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  }();
  return version.c_str();
}

template void gemm<float>(cublasHandle_t, cudaStream_t, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, const float*, int64_t, float, float*, int64_t, bool);
template void gemm<double>(cublasHandle_t, cudaStream_t, bool, bool, int64_t, int64_t, int64_t, double,
                           const double*, int64_t, const double*, int64_t, double, double*, int64_t, bool);

}  // namespace fusedrnn::cuda
