// One batch row of one time step: the fused elementwise pass of a cell over its H units, written
// once for every cell of fusedrnn/cells.h. The loops call the cell's per-unit math and vectorize;
// RowKernels compiles them for each instruction set (isa.h) and hands out the best the CPU runs.
#pragma once

#include <cstdint>

#include "cpu/isa.h"
#include "fusedrnn/cells.h"

#define FUSEDRNN_ROW static inline __attribute__((always_inline))

namespace fusedrnn::cpu {

// Forward arguments: gates (G*H) holds x W_ih^T on entry and the activations on exit; gh (G*H) is
// h W_hh^T; h, c (H) are the running state, updated in place (c only where the cell has one);
// aux (A*H), h_prev (H), y (H) are written.
// Both run over `units` units from the pointers given, whose gate blocks lie H apart: all H of a
// row, or one thread's slice of them (every pointer offset by the slice's first unit).
// Backward arguments: dh (H) is the whole gradient reaching h'; dc (H) the one reaching c', replaced
// by the one reaching c; dgh (G*H) gets the pre-activation gradients seen by W_hh, and, where the
// cell's input side differs (input_grads_differ), dgi (G*H) those seen by W_ih and dh_direct (H)
// the part of dh_prev that does not pass through W_hh. The other cells leave dgi and dh_direct alone.
template <class Cell>
struct Rows {
  static constexpr int G = Cell::gates;

  template <typename T>
  FUSEDRNN_ROW void forward(int64_t units, int64_t H, Activation act, const T* __restrict b_ih,
                            const T* __restrict b_hh, T* __restrict gates, const T* __restrict gh, T* __restrict h,
                            T* __restrict c, T* __restrict aux, T* __restrict h_prev, T* __restrict y) {
    for (int64_t j = 0; j < units; ++j) {
      T xs[G], hp[G], bh[G];
      for (int k = 0; k < G; ++k) {
        xs[k] = gates[k * H + j] + b_ih[k * H + j];
        hp[k] = gh[k * H + j];
        bh[k] = b_hh[k * H + j];
      }
      T c_j = Cell::has_cell_state ? c[j] : T(0);
      SavedUnit<Cell, T> saved;
      const T h_new = Cell::forward_unit(xs, hp, bh, h[j], c_j, act, saved);
      saved.store(gates, aux, H, j);
      if constexpr (Cell::has_cell_state) c[j] = c_j;
      h_prev[j] = h[j];
      h[j] = h_new;
      y[j] = h_new;
    }
  }

  template <typename T>
  FUSEDRNN_ROW void backward(int64_t units, int64_t H, Activation act, const T* __restrict gates,
                             const T* __restrict aux, const T* __restrict h_prev, const T* __restrict dh,
                             T* __restrict dc, T* __restrict dgi, T* __restrict dgh, T* __restrict dh_direct) {
    for (int64_t j = 0; j < units; ++j) {
      SavedUnit<Cell, T> saved;
      saved.gather(gates, aux, H, j, PlainLoad{});
      T dc_j = Cell::has_cell_state ? dc[j] : T(0);
      T dx[G], dr[G], direct = T(0);
      Cell::backward_unit(saved, Cell::backward_reads_h_prev ? h_prev[j] : T(0), dh[j], dc_j, act, dx, dr, direct);
      for (int k = 0; k < G; ++k) dgh[k * H + j] = dr[k];
      if constexpr (Cell::input_grads_differ) {
        for (int k = 0; k < G; ++k) dgi[k * H + j] = dx[k];
        dh_direct[j] = direct;
      }
      if constexpr (Cell::has_cell_state) dc[j] = dc_j;
    }
  }
};

template <class Cell, typename T>
struct RowKernels {
  using Forward = void (*)(int64_t, int64_t, Activation, const T*, const T*, T*, const T*, T*, T*, T*, T*, T*);
  using Backward = void (*)(int64_t, int64_t, Activation, const T*, const T*, const T*, const T*, T*, T*, T*, T*);

  template <typename... A>
  static void forward_baseline(A... a) { Rows<Cell>::forward(a...); }
  template <typename... A>
  static void backward_baseline(A... a) { Rows<Cell>::backward(a...); }
#ifdef FUSEDRNN_X86_DISPATCH
  template <typename... A>
  FUSEDRNN_TARGET_AVX2 static void forward_avx2(A... a) { Rows<Cell>::forward(a...); }
  template <typename... A>
  FUSEDRNN_TARGET_AVX2 static void backward_avx2(A... a) { Rows<Cell>::backward(a...); }
  template <typename... A>
  FUSEDRNN_TARGET_AVX512 static void forward_avx512(A... a) { Rows<Cell>::forward(a...); }
  template <typename... A>
  FUSEDRNN_TARGET_AVX512 static void backward_avx512(A... a) { Rows<Cell>::backward(a...); }
#endif

  Forward forward;
  Backward backward;

  static RowKernels best() {
    using F = int64_t;
    using P = const T*;
    using M = T*;
    switch (best_isa()) {
#ifdef FUSEDRNN_X86_DISPATCH
      case Isa::avx512:
        return {&forward_avx512<F, F, Activation, P, P, M, P, M, M, M, M, M>,
                &backward_avx512<F, F, Activation, P, P, P, P, M, M, M, M>};
      case Isa::avx2:
        return {&forward_avx2<F, F, Activation, P, P, M, P, M, M, M, M, M>,
                &backward_avx2<F, F, Activation, P, P, P, P, M, M, M, M>};
#endif
      default:
        return {&forward_baseline<F, F, Activation, P, P, M, P, M, M, M, M, M>,
                &backward_baseline<F, F, Activation, P, P, P, P, M, M, M, M>};
    }
  }
};

}  // namespace fusedrnn::cpu
