// The CUDA entry of a recurrent layer: one or two directions (a bidirectional layer's) over a
// whole sequence, forward and BPTT. It runs the parts both paths share (the input GEMM before the
// time loop; after backward's, the gradient GEMMs and bias sums) and picks the time loop: the
// persistent kernels (persistent.cuh) or the per-step path (steps.cuh).
// Everything is queued on `stream`; nothing synchronises with the host or allocates.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/direction.cuh"
#include "fusedrnn/sequence.h"

namespace fusedrnn::cuda {

enum class Path { automatic, persistent, steps };

// One direction: device pointers as in fusedrnn/sequence.h (args.dims, args.act and
// args.num_threads are not read: the call's dims and act apply), plus its device workspace of
// workspace_bytes(..., backward) bytes. A null h0 or c0 means zeros.
template <typename T>
struct ForwardCall {
  ForwardArgs<T> args;
  void* workspace;
};

template <typename T>
struct BackwardCall {
  BackwardArgs<T> args;
  void* workspace;
};

// Bytes of device workspace one direction needs, enough for either path.
size_t workspace_bytes(CellKind cell, size_t elem_size, const SeqDims& dims, bool backward);

// The path `requested` resolves to for this shape on the current device. "automatic" takes the
// persistent kernels wherever they support the shape: they exist for the small batches where a
// per-step GEMM and kernel are latency-bound, and persistent_supported already refuses the
// batches past kPersistentMaxBatch where cuBLAS's per-step GEMMs are as fast. A "persistent"
// request they do not support throws std::invalid_argument saying so.
Path choose_path(Path requested, CellKind cell, size_t elem_size, const SeqDims& dims, int num_dirs);

// Both return the path that ran. tf32 applies to float only.
template <typename T>
Path sequence_forward(CellKind cell, Activation act, const SeqDims& dims, Path path, bool tf32,
                      const ForwardCall<T>* dirs, int num_dirs, cudaStream_t stream);

template <typename T>
Path sequence_backward(CellKind cell, Activation act, const SeqDims& dims, Path path, bool tf32,
                       const BackwardCall<T>* dirs, int num_dirs, cudaStream_t stream);

}  // namespace fusedrnn::cuda
