// One batch row of one time step: the fused elementwise pass of each cell over its H units.
// The loops call the per-unit math of fusedrnn/cells.h and vectorize; RowKernels compiles them for
// each instruction set (isa.h) and hands out the best the CPU runs.
#pragma once

#include <cstdint>

#include "cpu/isa.h"
#include "fusedrnn/cells.h"

#define FUSEDRNN_ROW static inline __attribute__((always_inline))

namespace fusedrnn::cpu {

template <class Cell>
struct Rows;

// Forward arguments: gates (G*H) holds x W_ih^T on entry and the activations on exit; gh (G*H) is
// h W_hh^T; h, c (H) are the running state, updated in place; aux (A*H), h_prev (H), y (H) are written.
// Both run over `units` units from the pointers given, whose gate blocks lie H apart: all H of a
// row, or one thread's slice of them (every pointer offset by the slice's first unit).
// Backward arguments: dh (H) is the whole gradient reaching h'; dc (H) the one reaching c', replaced
// by the one reaching c; dgh (G*H) gets the pre-activation gradients seen by W_hh, and, for GRU
// only, where the input side differs, dgi (G*H) those seen by W_ih and dh_direct (H) the part of
// dh_prev that does not pass through W_hh. The other cells leave dgi and dh_direct alone.

template <>
struct Rows<LstmCell> {
  template <typename T>
  FUSEDRNN_ROW void forward(int64_t units, int64_t H, Activation, const T* __restrict b_ih,
                                           const T* __restrict b_hh, T* __restrict gates,
                                           const T* __restrict gh, T* __restrict h, T* __restrict c,
                                           T* __restrict aux, T* __restrict h_prev, T* __restrict y) {
    for (int64_t j = 0; j < units; ++j) {
      T pre[4];
      for (int k = 0; k < 4; ++k) pre[k] = gates[k * H + j] + b_ih[k * H + j] + gh[k * H + j] + b_hh[k * H + j];
      T c_prev = c[j];
      h_prev[j] = h[j];
      aux[H + j] = c_prev;
      LstmCell::forward(pre[0], pre[1], pre[2], pre[3], c_prev, gates[j], gates[H + j],
                        gates[2 * H + j], gates[3 * H + j], c[j], aux[j], h[j]);
      y[j] = h[j];
    }
  }

  template <typename T>
  FUSEDRNN_ROW void backward(int64_t units, int64_t H, Activation, const T* __restrict gates,
                                            const T* __restrict aux, const T* __restrict,
                                            const T* __restrict dh, T* __restrict dc, T* __restrict,
                                            T* __restrict dgh, T* __restrict) {
    for (int64_t j = 0; j < units; ++j)
      LstmCell::backward(gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j], aux[j], aux[H + j],
                         dh[j], dc[j], dgh[j], dgh[H + j], dgh[2 * H + j], dgh[3 * H + j], dc[j]);
  }
};

template <>
struct Rows<GruCell> {
  template <typename T>
  FUSEDRNN_ROW void forward(int64_t units, int64_t H, Activation, const T* __restrict b_ih,
                                           const T* __restrict b_hh, T* __restrict gates,
                                           const T* __restrict gh, T* __restrict h, T* __restrict,
                                           T* __restrict aux, T* __restrict h_prev, T* __restrict y) {
    for (int64_t j = 0; j < units; ++j) {
      T hn = gh[2 * H + j] + b_hh[2 * H + j];
      h_prev[j] = h[j];
      aux[j] = hn;
      GruCell::forward(gates[j] + b_ih[j], gates[H + j] + b_ih[H + j], gates[2 * H + j] + b_ih[2 * H + j],
                       gh[j] + b_hh[j], gh[H + j] + b_hh[H + j], hn, h[j],
                       gates[j], gates[H + j], gates[2 * H + j], h[j]);
      y[j] = h[j];
    }
  }

  template <typename T>
  FUSEDRNN_ROW void backward(int64_t units, int64_t H, Activation, const T* __restrict gates,
                                            const T* __restrict aux, const T* __restrict h_prev,
                                            const T* __restrict dh, T* __restrict,
                                            T* __restrict dgi, T* __restrict dgh, T* __restrict dh_direct) {
    for (int64_t j = 0; j < units; ++j) {
      T d_r, d_z, d_xn, d_hn;
      GruCell::backward(gates[j], gates[H + j], gates[2 * H + j], aux[j], h_prev[j], dh[j],
                        d_r, d_z, d_xn, d_hn, dh_direct[j]);
      dgi[j] = dgh[j] = d_r;
      dgi[H + j] = dgh[H + j] = d_z;
      dgi[2 * H + j] = d_xn;
      dgh[2 * H + j] = d_hn;
    }
  }
};

template <>
struct Rows<RnnCell> {
  template <typename T>
  FUSEDRNN_ROW void forward(int64_t units, int64_t /* H: one gate, no blocks */, Activation act,
                            const T* __restrict b_ih,
                                           const T* __restrict b_hh, T* __restrict gates,
                                           const T* __restrict gh, T* __restrict h, T* __restrict,
                                           T* __restrict, T* __restrict h_prev, T* __restrict y) {
    for (int64_t j = 0; j < units; ++j) {
      h_prev[j] = h[j];
      gates[j] = RnnCell::forward(gates[j] + b_ih[j] + gh[j] + b_hh[j], act);
      h[j] = y[j] = gates[j];
    }
  }

  template <typename T>
  FUSEDRNN_ROW void backward(int64_t units, int64_t, Activation act, const T* __restrict gates,
                                            const T* __restrict, const T* __restrict,
                                            const T* __restrict dh, T* __restrict,
                                            T* __restrict, T* __restrict dgh, T* __restrict) {
    for (int64_t j = 0; j < units; ++j) dgh[j] = RnnCell::backward(gates[j], dh[j], act);
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
