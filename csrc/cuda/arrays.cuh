// Elementwise passes over whole sequences and states, shared by both CUDA paths. All asynchronous
// on `stream`. Letters as in direction.cuh; lengths (B) are device values, 1 <= len <= T.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "fusedrnn/sequence.h"

namespace fusedrnn::cuda {

// dst (B, T, width)[b, t] = src[b, t] for t < len_b, zeros for t >= len_b. With src null only the
// padding t >= len_b is written (zeros), the rest of dst is left alone.
template <typename T>
void copy_zero_padded(const T* src, T* dst, int64_t width, const SeqDims& d, const int64_t* lengths,
                      cudaStream_t stream);

// dst (B, R, H)[b, r, j] = src (B, R, H)[b, r, j] * mask (B, H)[b, j].
template <typename T>
void mask_rows(const T* src, const T* mask, int64_t batch, int64_t rows, int64_t hidden, T* dst,
               cudaStream_t stream);

// dst (n) = value.
template <typename T>
void fill(T* dst, int64_t n, T value, cudaStream_t stream);

}  // namespace fusedrnn::cuda
