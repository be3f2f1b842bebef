// One hidden unit j of one batch row at one step, for each cell: reads the step's inputs, calls
// the cell math of fusedrnn/cells.h, and writes the saved arrays in the layout of direction.cuh
// (the same as the CPU rows of cpu/rows.h, in the same order of additions, so that both backends
// round alike). bt = b*T + t is the (row, time) index of the step. Either CUDA path can call these.
#pragma once

#include <cstdint>

#include "cuda/direction.cuh"
#include "fusedrnn/cells.h"

namespace fusedrnn::cuda {

template <class Cell>
struct Unit;

// forward: hp (G*H) is this row's h @ W_hh^T without bias; h, c are the unit's state before the
// step. Returns h' and leaves c' in c (LSTM; the others ignore c).
// backward: dh is the whole gradient reaching h'; dc the one reaching c', replaced by the one
// reaching c (LSTM); dh_direct gets the part of dh_prev that bypasses W_hh (GRU); dgh (G*H) gets
// the recurrent-side pre-activation gradients of this row, the input to the step's dh GEMM.

template <>
struct Unit<LstmCell> {
  template <typename T>
  __device__ static T forward(const DirectionForward<T>& d, int64_t H, Activation, int64_t bt, int64_t j,
                              const T* hp, T h, T& c) {
    const int64_t GH = 4 * H;
    const T* xp = d.xproj + bt * GH;
    T* gates = d.gates + bt * GH;
    T* aux = d.aux + bt * 2 * H;
    T pre[4];
    for (int k = 0; k < 4; ++k) pre[k] = xp[k * H + j] + d.b_ih[k * H + j] + hp[k * H + j] + d.b_hh[k * H + j];
    const T c_prev = c;
    T i, f, g, o, tanh_c, h_new;
    LstmCell::forward(pre[0], pre[1], pre[2], pre[3], c_prev, i, f, g, o, c, tanh_c, h_new);
    gates[j] = i;
    gates[H + j] = f;
    gates[2 * H + j] = g;
    gates[3 * H + j] = o;
    aux[j] = tanh_c;
    aux[H + j] = c_prev;
    d.h_prev[bt * H + j] = h;
    d.y[bt * H + j] = h_new;
    return h_new;
  }

  template <typename T>
  __device__ static void backward(const DirectionBackward<T>& d, int64_t H, Activation, int64_t bt, int64_t j, T dh,
                                  T& dc, T&, T* dgh) {
    const int64_t GH = 4 * H;
    const T* gates = d.gates + bt * GH;
    const T* aux = d.aux + bt * 2 * H;
    T dpre[4];
    LstmCell::backward(gates[j], gates[H + j], gates[2 * H + j], gates[3 * H + j], aux[j], aux[H + j], dh, dc,
                       dpre[0], dpre[1], dpre[2], dpre[3], dc);
    for (int k = 0; k < 4; ++k) {
      dgh[k * H + j] = dpre[k];
      d.dpre_x[bt * GH + k * H + j] = dpre[k];
      if (d.dpre_h != d.dpre_x) d.dpre_h[bt * GH + k * H + j] = dpre[k];
    }
  }
};

template <>
struct Unit<GruCell> {
  template <typename T>
  __device__ static T forward(const DirectionForward<T>& d, int64_t H, Activation, int64_t bt, int64_t j,
                              const T* hp, T h, T&) {
    const int64_t GH = 3 * H;
    const T* xp = d.xproj + bt * GH;
    T* gates = d.gates + bt * GH;
    const T hn = hp[2 * H + j] + d.b_hh[2 * H + j];
    T r, z, n, h_new;
    GruCell::forward(xp[j] + d.b_ih[j], xp[H + j] + d.b_ih[H + j], xp[2 * H + j] + d.b_ih[2 * H + j],
                     hp[j] + d.b_hh[j], hp[H + j] + d.b_hh[H + j], hn, h, r, z, n, h_new);
    gates[j] = r;
    gates[H + j] = z;
    gates[2 * H + j] = n;
    d.aux[bt * H + j] = hn;
    d.h_prev[bt * H + j] = h;
    d.y[bt * H + j] = h_new;
    return h_new;
  }

  template <typename T>
  __device__ static void backward(const DirectionBackward<T>& d, int64_t H, Activation, int64_t bt, int64_t j, T dh,
                                  T&, T& dh_direct, T* dgh) {
    const int64_t GH = 3 * H;
    const T* gates = d.gates + bt * GH;
    T d_r, d_z, d_xn, d_hn;
    GruCell::backward(gates[j], gates[H + j], gates[2 * H + j], d.aux[bt * H + j], d.h_prev[bt * H + j], dh, d_r,
                      d_z, d_xn, d_hn, dh_direct);
    T* dx = d.dpre_x + bt * GH;
    T* dh_side = d.dpre_h + bt * GH;
    dgh[j] = dx[j] = dh_side[j] = d_r;
    dgh[H + j] = dx[H + j] = dh_side[H + j] = d_z;
    dx[2 * H + j] = d_xn;
    dgh[2 * H + j] = dh_side[2 * H + j] = d_hn;
  }
};

template <>
struct Unit<RnnCell> {
  template <typename T>
  __device__ static T forward(const DirectionForward<T>& d, int64_t H, Activation act, int64_t bt, int64_t j,
                              const T* hp, T h, T&) {
    const T h_new = RnnCell::forward(d.xproj[bt * H + j] + d.b_ih[j] + hp[j] + d.b_hh[j], act);
    d.gates[bt * H + j] = h_new;
    d.h_prev[bt * H + j] = h;
    d.y[bt * H + j] = h_new;
    return h_new;
  }

  template <typename T>
  __device__ static void backward(const DirectionBackward<T>& d, int64_t H, Activation act, int64_t bt, int64_t j,
                                  T dh, T&, T&, T* dgh) {
    const T dpre = RnnCell::backward(d.gates[bt * H + j], dh, act);
    dgh[j] = d.dpre_x[bt * H + j] = dpre;
    if (d.dpre_h != d.dpre_x) d.dpre_h[bt * H + j] = dpre;
  }
};

// Calls f(Cell{}) with the cell type a CellKind names: the host-side switch from the binding's
// run-time cell to the kernels' compile-time one.
template <class F>
decltype(auto) with_cell(CellKind kind, F&& f) {
  switch (kind) {
    case CellKind::lstm: return f(LstmCell{});
    case CellKind::gru: return f(GruCell{});
    default: return f(RnnCell{});
  }
}

// G, the gate count of a cell (LSTM 4, GRU 3, RNN 1).
inline int gate_count(CellKind kind) {
  return with_cell(kind, [](auto cell) { return decltype(cell)::gates; });
}

}  // namespace fusedrnn::cuda
