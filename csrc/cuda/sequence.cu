// Forward: xproj = x @ W_ih^T for all B*T rows in one GEMM (biases are added in the time loop),
// then the time loop of the chosen path. Backward: the time loop, then with the pre-activation
// gradients of every (b, t): dx = dpre_x @ W_ih, dW_ih = dpre_x^T x, dW_hh = dpre_h^T (h_prev *
// mask), and the bias gradients as column sums (a GEMM with a ones vector), as cpu/sequence.cpp.
// Two directions: the per-direction work runs on two streams (direction 1 on a side stream forked
// from the caller's and joined back); the persistent path's single launch takes both at once.
#include "cuda/sequence.cuh"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/arrays.cuh"
#include "cuda/check.cuh"
#include "cuda/gemm.cuh"
#include "cuda/persistent.cuh"
#include "cuda/steps.cuh"
#include "cuda/streams.cuh"
#include "cuda/units.cuh"
#include "cuda/workspace.cuh"

namespace fusedrnn::cuda {

namespace {

// The sequence-level arrays of one direction's workspace, carved from its start (a null base
// only sizes them); the time loop's own follow, from `rest`.
template <typename T>
struct ForwardWorkspace {
  T* xproj;  // (B, T, G*H) x @ W_ih^T
  void* rest;

  static ForwardWorkspace carve(void* base, CellKind cell, const SeqDims& d, size_t* bytes = nullptr) {
    Workspace ws(base);
    ForwardWorkspace w;
    w.xproj = ws.take<T>(d.batch * d.steps * gate_count(cell) * d.hidden);
    w.rest = ws.rest();
    if (bytes) *bytes = ws.bytes();
    return w;
  }
};

template <typename T>
struct BackwardWorkspace {
  T* dpre_x;   // (B, T, G*H) pre-activation gradients, input side
  T* dpre_h;   // (B, T, G*H) recurrent side: GRU's own, the others' are dpre_x
  T* scratch;  // (B, T, max(I, H)) x with zeroed padding for dW_ih, then h_prev * mask for dW_hh
  T* ones;     // (B*T) ones, for the bias sums
  void* rest;

  static BackwardWorkspace carve(void* base, CellKind cell, const SeqDims& d, size_t* bytes = nullptr) {
    const int64_t rows = d.batch * d.steps, GH = gate_count(cell) * d.hidden;
    Workspace ws(base);
    BackwardWorkspace w;
    w.dpre_x = ws.take<T>(rows * GH);
    const bool differ = with_cell(cell, [](auto c) { return decltype(c)::input_grads_differ; });
    T* own_dpre_h = ws.take<T>(differ ? rows * GH : 0);
    w.dpre_h = differ ? own_dpre_h : w.dpre_x;
    w.scratch = ws.take<T>(rows * std::max(d.input, d.hidden));
    w.ones = ws.take<T>(rows);
    w.rest = ws.rest();
    if (bytes) *bytes = ws.bytes();
    return w;
  }
};

template <template <typename> class Layout>
size_t layout_bytes(CellKind cell, size_t elem_size, const SeqDims& dims) {
  size_t bytes = 0;
  if (elem_size == sizeof(double))
    Layout<double>::carve(nullptr, cell, dims, &bytes);
  else
    Layout<float>::carve(nullptr, cell, dims, &bytes);
  return bytes;
}

// Runs body(d, stream, blas) for each direction: direction 0 on `main`, direction 1 on the side
// stream, forked from main before and joined back after, so that the two overlap.
template <class Body>
void per_direction(int num_dirs, cudaStream_t main, Body&& body) {
  const cudaStream_t side = num_dirs > 1 ? side_stream() : nullptr;
  if (side) fork(main, side);
  for (int d = 0; d < num_dirs; ++d) body(d, d == 0 ? main : side, blas_handle(d));
  if (side) join(main, side);
}

const char* cell_name(CellKind cell) {
  return with_cell(cell, [](auto c) { return decltype(c)::name; });
}

// dx, dW_ih, dW_hh, db_ih, db_hh of one direction from its pre-activation gradients.
template <typename T>
void weight_gradients(CellKind cell, const SeqDims& d, const BackwardArgs<T>& a, const BackwardWorkspace<T>& w,
                      cublasHandle_t blas, cudaStream_t stream, bool tf32) {
  const int64_t rows = d.batch * d.steps, GH = gate_count(cell) * d.hidden, H = d.hidden, I = d.input;
  if (a.dx) {  // null: the input needs no gradient (fusedrnn/sequence.h)
    gemm<T>(blas, stream, false, false, rows, I, GH, T(1), w.dpre_x, GH, a.w_ih, I, T(0), a.dx, I, tf32);
    copy_zero_padded<T>(nullptr, a.dx, I, d, a.lengths, stream);  // exact zeros even if W_ih holds inf or NaN
  }
  // The padding of x may hold anything (NaN from an uninitialised array), and 0 * NaN = NaN.
  copy_zero_padded<T>(a.x, w.scratch, I, d, a.lengths, stream);
  gemm<T>(blas, stream, true, false, GH, I, rows, T(1), w.dpre_x, GH, w.scratch, I, T(0), a.dw_ih, I, tf32);
  const T* h_for_dw = a.h_prev;  // (B, T, H), zeros at the padding
  if (a.recurrent_mask) {  // stream order puts this after the dW_ih GEMM has read the scratch
    mask_rows<T>(a.h_prev, a.recurrent_mask, d.batch, d.steps, H, w.scratch, stream);
    h_for_dw = w.scratch;
  }
  gemm<T>(blas, stream, true, false, GH, H, rows, T(1), w.dpre_h, GH, h_for_dw, H, T(0), a.dw_hh, H, tf32);
  // Sums in full float precision whatever tf32 says: they are cheap, and bias gradients are sums of
  // many small terms.
  fill<T>(w.ones, rows, T(1), stream);
  gemm<T>(blas, stream, true, false, GH, 1, rows, T(1), w.dpre_x, GH, w.ones, 1, T(0), a.db_ih, 1, false);
  if (w.dpre_h != w.dpre_x)
    gemm<T>(blas, stream, true, false, GH, 1, rows, T(1), w.dpre_h, GH, w.ones, 1, T(0), a.db_hh, 1, false);
  else
    FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(a.db_hh, a.db_ih, GH * sizeof(T), cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

size_t workspace_bytes(CellKind cell, size_t elem_size, const SeqDims& dims, bool backward) {
  // The persistent path needs none of its own (persistent.cuh); the per-step path's follows.
  const size_t shared = backward ? layout_bytes<BackwardWorkspace>(cell, elem_size, dims)
                                 : layout_bytes<ForwardWorkspace>(cell, elem_size, dims);
  return shared + steps_workspace_bytes(cell, elem_size, dims, backward);
}

Path choose_path(Path requested, CellKind cell, size_t elem_size, const SeqDims& dims, int num_dirs) {
  if (requested == Path::steps) return Path::steps;
  int device = 0;
  FUSEDRNN_CUDA_CHECK(cudaGetDevice(&device));
  if (persistent_supported(cell, elem_size, dims, num_dirs, device)) return Path::persistent;
  if (requested == Path::automatic) return Path::steps;
  throw std::invalid_argument(
      std::string("path: 'persistent' does not support ") + cell_name(cell) + (elem_size == 8 ? " float64" : " float32") +
      " with B=" + std::to_string(dims.batch) + ", H=" + std::to_string(dims.hidden) + " and " +
      std::to_string(num_dirs) + " direction(s) on device " + std::to_string(device) +
      " (batch above " + std::to_string(kPersistentMaxBatch) +
      ", W_hh too large for shared memory, or no cooperative launch); use 'steps' or 'auto'");
}

template <typename T>
Path sequence_forward(CellKind cell, Activation act, const SeqDims& dims, Path path, bool tf32,
                      const ForwardCall<T>* dirs, int num_dirs, cudaStream_t stream) {
  tf32 = tf32 && std::is_same_v<T, float>;
  path = choose_path(path, cell, sizeof(T), dims, num_dirs);
  const int64_t GH = gate_count(cell) * dims.hidden;
  DirectionForward<T> loops[2];
  ForwardWorkspace<T> w[2];
  for (int d = 0; d < num_dirs; ++d) {
    const ForwardArgs<T>& a = dirs[d].args;
    w[d] = ForwardWorkspace<T>::carve(dirs[d].workspace, cell, dims);
    loops[d] = DirectionForward<T>{w[d].xproj, a.w_hh, a.b_ih, a.b_hh, a.h0, a.c0, a.lengths, a.recurrent_mask,
                                   a.reverse, a.y, a.h_n, a.c_n, a.gates, a.aux, a.h_prev};
  }
  per_direction(num_dirs, stream, [&](int d, cudaStream_t s, cublasHandle_t blas) {
    const ForwardArgs<T>& a = dirs[d].args;
    gemm<T>(blas, s, false, true, dims.batch * dims.steps, GH, dims.input, T(1), a.x, dims.input, a.w_ih,
            dims.input, T(0), w[d].xproj, GH, tf32);
    if (path == Path::steps) steps_forward<T>(cell, act, dims, loops[d], blas, tf32, w[d].rest, s);
  });
  if (path == Path::persistent) persistent_forward<T>(cell, act, dims, loops, num_dirs, stream);
  return path;
}

template <typename T>
Path sequence_backward(CellKind cell, Activation act, const SeqDims& dims, Path path, bool tf32,
                       const BackwardCall<T>* dirs, int num_dirs, cudaStream_t stream) {
  tf32 = tf32 && std::is_same_v<T, float>;
  path = choose_path(path, cell, sizeof(T), dims, num_dirs);
  DirectionBackward<T> loops[2];
  BackwardWorkspace<T> w[2];
  for (int d = 0; d < num_dirs; ++d) {
    const BackwardArgs<T>& a = dirs[d].args;
    w[d] = BackwardWorkspace<T>::carve(dirs[d].workspace, cell, dims);
    loops[d] = DirectionBackward<T>{a.w_hh, a.lengths, a.recurrent_mask, a.reverse, a.gates, a.aux, a.h_prev,
                                    a.dy, a.dh_n, a.dc_n, w[d].dpre_x, w[d].dpre_h, a.dh0, a.dc0};
  }
  if (path == Path::persistent) persistent_backward<T>(cell, act, dims, loops, num_dirs, stream);
  per_direction(num_dirs, stream, [&](int d, cudaStream_t s, cublasHandle_t blas) {
    if (path == Path::steps) steps_backward<T>(cell, act, dims, loops[d], blas, tf32, w[d].rest, s);
    weight_gradients<T>(cell, dims, dirs[d].args, w[d], blas, s, tf32);
  });
  return path;
}

#define FUSEDRNN_INSTANTIATE(T)                                                                                   \
  template Path sequence_forward<T>(CellKind, Activation, const SeqDims&, Path, bool, const ForwardCall<T>*, int,  \
                                    cudaStream_t);                                                                  \
  template Path sequence_backward<T>(CellKind, Activation, const SeqDims&, Path, bool, const BackwardCall<T>*,     \
                                     int, cudaStream_t);

FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)

}  // namespace fusedrnn::cuda
