// The persistent path of one recurrent layer (one or both directions): the whole time loop in ONE
// cooperative launch, for small batches, where per-step launches and GEMMs are latency-bound.
//
// Each block owns a slice of U hidden units of one direction and keeps its part of W_hh in shared
// memory for the whole sequence (forward: the G gate rows of its units; backward: the columns of
// its units). Per step it stages what every block needs (the previous step's state, or its
// recurrent-side gate gradients) from global memory, computes its units' products and cell, writes
// them, and the grid synchronises once. The values exchanged between blocks live in the caller's
// own outputs (y in forward, dpre_h in backward), so no scratch memory is needed. Both directions
// of a bidirectional layer run at once in the same grid.
//
// Contract (direction.cuh for the fields):
// - forward: the caller has filled xproj = x @ w_ih^T (no bias). The kernel writes y, gates, aux,
//   h_prev at every (b, t) (zeros at t >= len_b), and h_n, c_n. h0 null means zero, c0 null zero.
// - backward: writes dpre_x, dpre_h at every (b, t) (zeros at t >= len_b) and dh0, dc0; dh_n, dc_n
//   null mean zero. The caller then forms dx, dw_ih, dw_hh, db_* with GEMMs.
// - Outputs must not overlap each other or the inputs (dpre_x == dpre_h is allowed for LSTM/RNN).
// - Everything is queued on `stream`: no host synchronisation, no allocation.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "cuda/direction.cuh"

namespace fusedrnn::cuda {

// Largest batch the persistent path takes. Its per-step cost grows linearly with B (every block
// computes its units for all rows and stages the whole (B, G*H) exchange), while a per-step cuBLAS
// GEMM is flat at these sizes; past ~64 rows the per-step path is as fast, and the staged exchange
// no longer fits shared memory at the hidden sizes where the persistent path pays.
inline constexpr int64_t kPersistentMaxBatch = 64;

// Whether `device` can run this shape on the persistent path, forward and backward: cooperative
// launch support, batch <= kPersistentMaxBatch, the block's W_hh slice plus its staged exchange
// fitting the opt-in shared memory per block (elem_size 4 or 8: float64 needs twice the room),
// and the grid (one block per SM at most) co-resident. num_dirs is 1 or 2.
bool persistent_supported(CellKind cell, size_t elem_size, const SeqDims& dims, int num_dirs, int device);

// dirs: host array of num_dirs (1 or 2) directions, run concurrently. The shape must be supported
// on the current device (std::runtime_error otherwise, before anything is queued).
template <typename T>
void persistent_forward(CellKind cell, Activation act, const SeqDims& dims, const DirectionForward<T>* dirs,
                        int num_dirs, cudaStream_t stream);

template <typename T>
void persistent_backward(CellKind cell, Activation act, const SeqDims& dims, const DirectionBackward<T>* dirs,
                         int num_dirs, cudaStream_t stream);

extern template void persistent_forward<float>(CellKind, Activation, const SeqDims&, const DirectionForward<float>*,
                                               int, cudaStream_t);
extern template void persistent_forward<double>(CellKind, Activation, const SeqDims&,
                                                const DirectionForward<double>*, int, cudaStream_t);
extern template void persistent_backward<float>(CellKind, Activation, const SeqDims&,
                                                const DirectionBackward<float>*, int, cudaStream_t);
extern template void persistent_backward<double>(CellKind, Activation, const SeqDims&,
                                                 const DirectionBackward<double>*, int, cudaStream_t);

}  // namespace fusedrnn::cuda
