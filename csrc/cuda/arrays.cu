// Grid-stride loops over flat element indices; arrays.cuh gives the shapes.
#include "cuda/arrays.cuh"

#include <algorithm>

#include "cuda/check.cuh"

namespace fusedrnn::cuda {

namespace {

// Blocks of 256 threads covering n elements, capped: past the cap each thread takes several.
unsigned blocks_for(int64_t n) {
  const int64_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65536));
}

// src, dst (B, T, width) with n = B*T*width elements; lengths (B).
template <typename T>
__global__ void copy_zero_padded_kernel(const T* src, T* dst, int64_t width, int64_t steps, int64_t n,
                                        const int64_t* lengths) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t bt = i / width;
    if (bt % steps >= lengths[bt / steps])
      dst[i] = T(0);
    else if (src)
      dst[i] = src[i];
  }
}

// src, dst (B, rows, hidden) with n = B*rows*hidden elements; mask (B, hidden).
template <typename T>
__global__ void mask_rows_kernel(const T* src, const T* mask, int64_t rows, int64_t hidden, int64_t n, T* dst) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / (rows * hidden), j = i % hidden;
    dst[i] = src[i] * mask[b * hidden + j];
  }
}

template <typename T>
__global__ void fill_kernel(T* dst, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

}  // namespace

template <typename T>
void copy_zero_padded(const T* src, T* dst, int64_t width, const SeqDims& d, const int64_t* lengths,
                      cudaStream_t stream) {
  const int64_t n = d.batch * d.steps * width;
  if (n == 0) return;
  copy_zero_padded_kernel<<<blocks_for(n), 256, 0, stream>>>(src, dst, width, d.steps, n, lengths);
  FUSEDRNN_CUDA_CHECK_LAUNCH("copy_zero_padded_kernel");
}

template <typename T>
void mask_rows(const T* src, const T* mask, int64_t batch, int64_t rows, int64_t hidden, T* dst, cudaStream_t stream) {
  const int64_t n = batch * rows * hidden;
  mask_rows_kernel<<<blocks_for(n), 256, 0, stream>>>(src, mask, rows, hidden, n, dst);
  FUSEDRNN_CUDA_CHECK_LAUNCH("mask_rows_kernel");
}

template <typename T>
void fill(T* dst, int64_t n, T value, cudaStream_t stream) {
  fill_kernel<<<blocks_for(n), 256, 0, stream>>>(dst, n, value);
  FUSEDRNN_CUDA_CHECK_LAUNCH("fill_kernel");
}

#define FUSEDRNN_INSTANTIATE(T)                                                                               \
  template void copy_zero_padded<T>(const T*, T*, int64_t, const SeqDims&, const int64_t*, cudaStream_t);  \
  template void mask_rows<T>(const T*, const T*, int64_t, int64_t, int64_t, T*, cudaStream_t);              \
  template void fill<T>(T*, int64_t, T, cudaStream_t);

FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)

}  // namespace fusedrnn::cuda
