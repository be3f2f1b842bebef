// Mirrors cpu/sequence.cpp's time loops. Forward, per step s: hp = (h * mask) @ W_hh^T, then one
// thread per (row b, unit j) with s < len_b applies the cell at t = s (t = len_b - 1 - s in
// reverse) and updates the state in place; rows with s >= len_b keep theirs. In place is safe: a
// thread reads and writes only its own (b, j), and the GEMM that reads the whole state is a
// separate launch on the same stream.
// Backward, per step from T-1 down to 0: one thread per (b, j) sums the gradient reaching h',
// applies the cell backward and gathers this step's recurrent-side gradients into a (B, G*H)
// buffer (zeros for rows not started yet: the rows of one step sit at different t when lengths
// differ); then dh_rec = that buffer @ W_hh, masked where the next kernel reads it.
#include "cuda/steps.cuh"


#include "cuda/arrays.cuh"
#include "cuda/check.cuh"
#include "cuda/gemm.cuh"
#include "cuda/units.cuh"
#include "cuda/workspace.cuh"

namespace fusedrnn::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
struct ForwardBuffers {
  T* hp;        // (B, G*H) W_hh's product of the current step
  T* h;         // (B, H) running hidden state
  T* h_masked;  // (B, H) h * mask, W_hh's input when a recurrent mask is given
  T* c;         // (B, H) running cell state (LSTM)

  ForwardBuffers(Workspace& ws, int gates, const SeqDims& d)
      : hp(ws.take<T>(d.batch * gates * d.hidden)),
        h(ws.take<T>(d.batch * d.hidden)),
        h_masked(ws.take<T>(d.batch * d.hidden)),
        c(ws.take<T>(d.batch * d.hidden)) {}
};

template <typename T>
struct BackwardBuffers {
  T* dgh_step;   // (B, G*H) this step's recurrent-side pre-activation gradients
  T* dh_rec;     // (B, H) dh_prev through W_hh, before the mask
  T* dh_direct;  // (B, H) dh_prev around W_hh (GRU's z*dh)
  T* dc;         // (B, H) gradient reaching the cell state (LSTM)

  BackwardBuffers(Workspace& ws, int gates, const SeqDims& d)
      : dgh_step(ws.take<T>(d.batch * gates * d.hidden)),
        dh_rec(ws.take<T>(d.batch * d.hidden)),
        dh_direct(ws.take<T>(d.batch * d.hidden)),
        dc(ws.take<T>(d.batch * d.hidden)) {}
};

// Step s of one direction; hp (B, G*H) is this step's product, h, c, h_masked (B, H) the buffers
// of ForwardBuffers, updated for the rows with s < len_b.
template <class Cell, typename T>
__global__ void forward_step_kernel(DirectionForward<T> d, int64_t batch, int64_t steps, int64_t H, Activation act,
                                    int64_t s, const T* hp, T* h, T* c, T* h_masked) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;  // b * H + j
  if (i >= batch * H) return;
  const int64_t b = i / H, j = i % H, len = d.lengths[b];
  if (s >= len) return;
  const int64_t t = d.reverse ? len - 1 - s : s;
  T c_unit = T(0);
  if constexpr (Cell::has_cell_state) c_unit = c[i];
  const T h_new = Unit<Cell>::forward(d, H, act, b * steps + t, j, hp + b * Cell::gates * H, h[i], c_unit);
  h[i] = h_new;
  if constexpr (Cell::has_cell_state) c[i] = c_unit;
  if (d.recurrent_mask) h_masked[i] = h_new * d.recurrent_mask[i];
}

// Step s of one direction's BPTT; dh_rec, dh_direct, dc (B, H) and dgh_step (B, G*H) are the
// buffers of BackwardBuffers: dh_rec from the step above's GEMM, the others updated here.
template <class Cell, typename T>
__global__ void backward_step_kernel(DirectionBackward<T> d, int64_t batch, int64_t steps, int64_t H, Activation act,
                                     int64_t s, const T* dh_rec, T* dh_direct, T* dc, T* dgh_step) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;  // b * H + j
  if (i >= batch * H) return;
  const int64_t b = i / H, j = i % H, len = d.lengths[b];
  T* dgh = dgh_step + b * Cell::gates * H;
  if (s >= len) {  // not started yet: contributes nothing to this step's GEMM
    for (int k = 0; k < Cell::gates; ++k) dgh[k * H + j] = T(0);
    return;
  }
  const int64_t t = d.reverse ? len - 1 - s : s;
  const T dy = d.dy[(b * steps + t) * H + j];
  T dh;
  if (s == len - 1) {  // the row's last valid step: its gradient comes from dh_n, not W_hh
    dh = dy + (d.dh_n ? d.dh_n[i] : T(0));
  } else {
    const T rec = d.recurrent_mask ? dh_rec[i] * d.recurrent_mask[i] : dh_rec[i];
    dh = dy + rec;
    if constexpr (Cell::input_grads_differ) dh = dh + dh_direct[i];
  }
  T dc_unit = T(0), direct = T(0);
  if constexpr (Cell::has_cell_state) dc_unit = dc[i];
  Unit<Cell>::backward(d, H, act, b * steps + t, j, dh, dc_unit, direct, dgh);
  if constexpr (Cell::has_cell_state) dc[i] = dc_unit;
  if constexpr (Cell::input_grads_differ) dh_direct[i] = direct;
}

// dh0 (B, H) = dh_rec * mask + dh_direct (each (B, H), mask null for none), after step 0, where
// every row is active.
template <class Cell, typename T>
__global__ void initial_state_grad_kernel(const T* dh_rec, const T* dh_direct, const T* mask, int64_t n, T* dh0) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  T dh = mask ? dh_rec[i] * mask[i] : dh_rec[i];
  if constexpr (Cell::input_grads_differ) dh = dh + dh_direct[i];
  dh0[i] = dh;
}

// dst = src, or zeros where src is null (bytes of device memory).
void copy_or_zero(const void* src, void* dst, size_t bytes, cudaStream_t stream) {
  if (src)
    FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
  else
    FUSEDRNN_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream));
}

unsigned blocks_of(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <class Cell, typename T>
void forward_loop(Activation act, const SeqDims& d, const DirectionForward<T>& dir, cublasHandle_t blas, bool tf32,
                  const ForwardBuffers<T>& w, cudaStream_t stream) {
  const int64_t H = d.hidden, GH = Cell::gates * H, state_bytes = d.batch * H * sizeof(T);
  // The kernels write only t < len_b.
  copy_zero_padded<T>(nullptr, dir.y, H, d, dir.lengths, stream);
  copy_zero_padded<T>(nullptr, dir.gates, GH, d, dir.lengths, stream);
  copy_zero_padded<T>(nullptr, dir.aux, Cell::aux * H, d, dir.lengths, stream);
  copy_zero_padded<T>(nullptr, dir.h_prev, H, d, dir.lengths, stream);
  copy_or_zero(dir.h0, w.h, state_bytes, stream);
  if constexpr (Cell::has_cell_state) copy_or_zero(dir.c0, w.c, state_bytes, stream);
  if (dir.recurrent_mask) mask_rows<T>(w.h, dir.recurrent_mask, d.batch, 1, H, w.h_masked, stream);
  const T* gemm_input = dir.recurrent_mask ? w.h_masked : w.h;  // (B, H)
  for (int64_t s = 0; s < d.steps; ++s) {
    gemm<T>(blas, stream, false, true, d.batch, GH, H, T(1), gemm_input, H, dir.w_hh, H, T(0), w.hp, GH, tf32);
    forward_step_kernel<Cell><<<blocks_of(d.batch * H), kThreads, 0, stream>>>(dir, d.batch, d.steps, H, act, s, w.hp,
                                                                             w.h, w.c, w.h_masked);
    FUSEDRNN_CUDA_CHECK_LAUNCH("forward_step_kernel");
  }
  FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(dir.h_n, w.h, state_bytes, cudaMemcpyDeviceToDevice, stream));
  if constexpr (Cell::has_cell_state) FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(dir.c_n, w.c, state_bytes, cudaMemcpyDeviceToDevice, stream));
}

template <class Cell, typename T>
void backward_loop(Activation act, const SeqDims& d, const DirectionBackward<T>& dir, cublasHandle_t blas, bool tf32,
                   const BackwardBuffers<T>& w, cudaStream_t stream) {
  const int64_t H = d.hidden, GH = Cell::gates * H, state_bytes = d.batch * H * sizeof(T);
  copy_zero_padded<T>(nullptr, dir.dpre_x, GH, d, dir.lengths, stream);  // the kernels write only t < len_b
  if (dir.dpre_h != dir.dpre_x) copy_zero_padded<T>(nullptr, dir.dpre_h, GH, d, dir.lengths, stream);
  if constexpr (Cell::has_cell_state) copy_or_zero(dir.dc_n, w.dc, state_bytes, stream);
  // dh_rec and dh_direct need no zeroing: a row reads them only at steps below its last valid
  // one, after the step above has written them.
  for (int64_t s = d.steps - 1; s >= 0; --s) {
    backward_step_kernel<Cell><<<blocks_of(d.batch * H), kThreads, 0, stream>>>(dir, d.batch, d.steps, H, act, s,
                                                                              w.dh_rec, w.dh_direct, w.dc, w.dgh_step);
    FUSEDRNN_CUDA_CHECK_LAUNCH("backward_step_kernel");
    gemm<T>(blas, stream, false, false, d.batch, H, GH, T(1), w.dgh_step, GH, dir.w_hh, H, T(0), w.dh_rec, H, tf32);
  }
  initial_state_grad_kernel<Cell><<<blocks_of(d.batch * H), kThreads, 0, stream>>>(
      w.dh_rec, w.dh_direct, dir.recurrent_mask, d.batch * H, dir.dh0);
  FUSEDRNN_CUDA_CHECK_LAUNCH("initial_state_grad_kernel");
  if constexpr (Cell::has_cell_state) FUSEDRNN_CUDA_CHECK(cudaMemcpyAsync(dir.dc0, w.dc, state_bytes, cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

size_t steps_workspace_bytes(CellKind cell, size_t elem_size, const SeqDims& dims, bool backward) {
  Workspace ws(nullptr);  // sizes the layouts without a base
  const int gates = gate_count(cell);
  if (elem_size == sizeof(double))
    backward ? (void)BackwardBuffers<double>(ws, gates, dims) : (void)ForwardBuffers<double>(ws, gates, dims);
  else
    backward ? (void)BackwardBuffers<float>(ws, gates, dims) : (void)ForwardBuffers<float>(ws, gates, dims);
  return ws.bytes();
}

template <typename T>
void steps_forward(CellKind cell, Activation act, const SeqDims& dims, const DirectionForward<T>& dir,
                   cublasHandle_t blas, bool tf32, void* workspace, cudaStream_t stream) {
  Workspace ws(workspace);
  const ForwardBuffers<T> buffers(ws, gate_count(cell), dims);
  with_cell(cell, [&](auto c) { forward_loop<decltype(c)>(act, dims, dir, blas, tf32, buffers, stream); });
}

template <typename T>
void steps_backward(CellKind cell, Activation act, const SeqDims& dims, const DirectionBackward<T>& dir,
                    cublasHandle_t blas, bool tf32, void* workspace, cudaStream_t stream) {
  Workspace ws(workspace);
  const BackwardBuffers<T> buffers(ws, gate_count(cell), dims);
  with_cell(cell, [&](auto c) { backward_loop<decltype(c)>(act, dims, dir, blas, tf32, buffers, stream); });
}

#define FUSEDRNN_INSTANTIATE(T)                                                                                  \
  template void steps_forward<T>(CellKind, Activation, const SeqDims&, const DirectionForward<T>&, cublasHandle_t, \
                                 bool, void*, cudaStream_t);                                                       \
  template void steps_backward<T>(CellKind, Activation, const SeqDims&, const DirectionBackward<T>&,               \
                                  cublasHandle_t, bool, void*, cudaStream_t);

FUSEDRNN_INSTANTIATE(float)
FUSEDRNN_INSTANTIATE(double)

}  // namespace fusedrnn::cuda
