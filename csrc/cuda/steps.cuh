// The per-step path of one direction: the time loop only, for any batch size. Per step, one cuBLAS
// GEMM with W_hh and one fused kernel over (row, unit) that applies the cell (units.cuh), as the
// CPU kernels do. The input projection before the loop and the weight gradients after it are
// sequence.cu's, shared with the persistent path. Everything is queued on `stream`, with no host
// synchronisation and no allocation: `workspace` (device, steps_workspace_bytes) holds the state.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/direction.cuh"

namespace fusedrnn::cuda {

// Bytes of device workspace steps_forward (backward = false) or steps_backward needs.
size_t steps_workspace_bytes(CellKind cell, size_t elem_size, const SeqDims& dims, bool backward);

// The same contract as persistent.cuh's. Forward: reads xproj (the caller's input GEMM), writes y,
// gates, aux, h_prev at every (b, t), zeros at t >= len_b, and h_n, c_n; h0, c0 null mean zeros.
template <typename T>
void steps_forward(CellKind cell, Activation act, const SeqDims& dims, const DirectionForward<T>& dir,
                   cublasHandle_t blas, bool tf32, void* workspace, cudaStream_t stream);

// Backward: writes dpre_x, dpre_h at every (b, t), zeros at t >= len_b, and dh0, dc0; dh_n, dc_n
// null mean zeros.
template <typename T>
void steps_backward(CellKind cell, Activation act, const SeqDims& dims, const DirectionBackward<T>& dir,
                    cublasHandle_t blas, bool tf32, void* workspace, cudaStream_t stream);

}  // namespace fusedrnn::cuda
