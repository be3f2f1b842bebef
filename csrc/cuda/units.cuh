// One hidden unit j of one batch row at one step, for any cell: reads the step's inputs, calls
// the cell math of fusedrnn/cells.h, and writes the saved arrays in the layout of direction.cuh
// (the same as the CPU rows of cpu/rows.h, in the same order of additions, so that both backends
// round alike). bt = b*T + t is the (row, time) index of the step. Either CUDA path can call these.
#pragma once

#include <cstdint>

#include "cuda/direction.cuh"
#include "fusedrnn/cells.h"

namespace fusedrnn::cuda {

// forward: hp (G*H) is this row's h @ W_hh^T without bias; h, c are the unit's state before the
// step. Returns h' and leaves c' in c (cells with a cell state; the others ignore c).
// backward: dh is the whole gradient reaching h'; dc the one reaching c', replaced by the one
// reaching c; dh_direct gets the part of dh_prev that bypasses W_hh (cells whose input side
// differs); dgh (G*H) gets the recurrent-side pre-activation gradients of this row, the input to
// the step's dh GEMM.
template <class Cell>
struct Unit {
  static constexpr int G = Cell::gates;

  template <typename T>
  __device__ static T forward(const DirectionForward<T>& d, int64_t H, Activation act, int64_t bt, int64_t j,
                              const T* hp, T h, T& c) {
    const T* xp = d.xproj + bt * G * H;
    T xs[G], hps[G], bh[G];
    for (int k = 0; k < G; ++k) {
      xs[k] = xp[k * H + j] + d.b_ih[k * H + j];
      hps[k] = hp[k * H + j];
      bh[k] = d.b_hh[k * H + j];
    }
    SavedUnit<Cell, T> saved;
    const T h_new = Cell::forward_unit(xs, hps, bh, h, c, act, saved);
    saved.store(d.gates + bt * G * H, d.aux + bt * Cell::aux * H, H, j);
    d.h_prev[bt * H + j] = h;
    d.y[bt * H + j] = h_new;
    return h_new;
  }

  template <typename T>
  __device__ static void backward(const DirectionBackward<T>& d, int64_t H, Activation act, int64_t bt, int64_t j, T dh,
                                  T& dc, T& dh_direct, T* dgh) {
    SavedUnit<Cell, T> saved;
    saved.gather(d.gates + bt * G * H, d.aux + bt * Cell::aux * H, H, j, PlainLoad{});
    const T h_prev = Cell::backward_reads_h_prev ? d.h_prev[bt * H + j] : T(0);
    T dx[G], dr[G];
    Cell::backward_unit(saved, h_prev, dh, dc, act, dx, dr, dh_direct);
    for (int k = 0; k < G; ++k) {
      dgh[k * H + j] = dr[k];
      d.dpre_x[bt * G * H + k * H + j] = dx[k];
      if (d.dpre_h != d.dpre_x) d.dpre_h[bt * G * H + k * H + j] = dr[k];
    }
  }
};

}  // namespace fusedrnn::cuda
