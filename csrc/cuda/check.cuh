// Every CUDA and cuBLAS call and every kernel launch goes through these checks, which throw
// std::runtime_error naming the call that failed (pybind11 raises it as RuntimeError in Python).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fusedrnn::cuda {

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("fusedrnn CUDA: ") + call + " failed: " + cudaGetErrorName(status) +
                             " (" + cudaGetErrorString(status) + ")");
}

inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("fusedrnn CUDA: ") + call + " failed: cuBLAS status " +
                             std::to_string(static_cast<int>(status)));
}

}  // namespace fusedrnn::cuda

// FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(...)); after a launch: FUSEDRNN_CUDA_CHECK_LAUNCH("lstm_step");
#define FUSEDRNN_CUDA_CHECK(call) ::fusedrnn::cuda::check((call), #call)
#define FUSEDRNN_CUDA_CHECK_LAUNCH(kernel_name) ::fusedrnn::cuda::check(cudaGetLastError(), "launch of " kernel_name)
