// The cells: the math of one hidden unit, forward and backward, and the facts about each cell
// that the drivers ask, written once for every compiled backend. The CPU rows (cpu/rows.h), the
// CUDA steps path (cuda/units.cuh) and the persistent kernel (cuda/persistent_kernels.cuh) are
// written once over these, for any cell; a new cell is a struct here, its `CellKind`, and its
// entries in `kCells` and `with_cell` (docs/adding-a-cell.md lists the few other files).
//
// Conventions (ARCHITECTURE.md): PyTorch weight layout and gate order.
//   LSTM gates i, f, g, o:  c' = f*c + i*g,  h' = o*tanh(c')
//   GRU gates r, z, n:      n = tanh(xn + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
//   RNN:                    h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
//
// Every cell has:
//   kind, name              its CellKind and the name the Python layer uses
//   gates (G), aux (A)      values saved per unit and step: the gate activations and A more
//   has_cell_state          carries c besides h (the drivers keep, save and return it)
//   input_grads_differ      the pre-activation gradients seen by W_ih differ from those seen by
//                           W_hh (GRU's n gate); its backward then also gives the part of dh_prev
//                           that bypasses W_hh (dh_direct)
//   backward_reads_h_prev   its backward reads the saved h_prev
//   projectable             may have projections (torch's proj_size: h = W_hr h', CPU drivers);
//                           then output(saved) gives its h' again from what it saved
//   forward_unit(xs, hp, bh, h, c, act, saved) -> h'
//       xs[G]: x W_ih^T + b_ih; hp[G]: h W_hh^T without bias; bh[G]: b_hh; h: the state before the
//       step; c: the cell state, replaced by the new one (has_cell_state); saved: what it keeps.
//   backward_unit(saved, h_prev, dh, dc, act, dx, dr, dh_direct)
//       dh: the whole gradient reaching h'; dc: the one reaching c', replaced by the one reaching
//       c (has_cell_state); dx[G], dr[G]: the pre-activation gradients seen by W_ih and by W_hh
//       (equal unless input_grads_differ); dh_direct: set where input_grads_differ.
// Each cell adds in one order on every backend, so that all of them round alike.
#pragma once

#include <cstdint>

#include "fusedrnn/activations.h"

namespace fusedrnn {

enum class Activation : int { tanh = 0, relu = 1 };
enum class CellKind : int { lstm = 0, gru = 1, rnn = 2 };

// The values one unit saves at one step. In the saved arrays, a (row, step) has a block of G*H
// gates and one of A*H aux values; unit j's value k lies at k*H + j in its block.
template <class Cell, typename T>
struct SavedUnit {
  T gate[Cell::gates];
  T aux[Cell::aux > 0 ? Cell::aux : 1];

  FUSEDRNN_HD void store(T* gates, T* aux_block, int64_t H, int64_t j) const {
    for (int k = 0; k < Cell::gates; ++k) gates[k * H + j] = gate[k];
    for (int k = 0; k < Cell::aux; ++k) aux_block[k * H + j] = aux[k];
  }

  // load(p) reads one value (plain, or through a read-only cache on the GPU).
  template <class Load>
  FUSEDRNN_HD void gather(const T* gates, const T* aux_block, int64_t H, int64_t j, Load load) {
    for (int k = 0; k < Cell::gates; ++k) gate[k] = load(gates + k * H + j);
    for (int k = 0; k < Cell::aux; ++k) aux[k] = load(aux_block + k * H + j);
  }
};

struct PlainLoad {
  template <typename T>
  FUSEDRNN_HD T operator()(const T* p) const { return *p; }
};

struct LstmCell {
  static constexpr CellKind kind = CellKind::lstm;
  static constexpr const char* name = "lstm";
  static constexpr int gates = 4;
  static constexpr int aux = 2;  // tanh(c'), c
  static constexpr bool has_cell_state = true;
  static constexpr bool input_grads_differ = false;
  static constexpr bool backward_reads_h_prev = false;
  static constexpr bool projectable = true;

  template <typename T>
  FUSEDRNN_HD static T output(const SavedUnit<LstmCell, T>& s) { return s.gate[3] * s.aux[0]; }  // o * tanh(c')

  template <typename T>
  FUSEDRNN_HD static T forward_unit(const T (&xs)[4], const T (&hp)[4], const T (&bh)[4], T, T& c, Activation,
                                    SavedUnit<LstmCell, T>& s) {
    const T i = sigmoid(xs[0] + hp[0] + bh[0]);
    const T f = sigmoid(xs[1] + hp[1] + bh[1]);
    const T g = tanh_act(xs[2] + hp[2] + bh[2]);
    const T o = sigmoid(xs[3] + hp[3] + bh[3]);
    const T c_prev = c;
    c = f * c_prev + i * g;
    const T tanh_c = tanh_act(c);
    s.gate[0] = i;
    s.gate[1] = f;
    s.gate[2] = g;
    s.gate[3] = o;
    s.aux[0] = tanh_c;
    s.aux[1] = c_prev;
    return output(s);
  }

  template <typename T>
  FUSEDRNN_HD static void backward_unit(const SavedUnit<LstmCell, T>& s, T, T dh, T& dc, Activation, T (&dx)[4],
                                        T (&dr)[4], T&) {
    const T i = s.gate[0], f = s.gate[1], g = s.gate[2], o = s.gate[3], tanh_c = s.aux[0], c_prev = s.aux[1];
    const T dc_total = dc + dh * o * (T(1) - tanh_c * tanh_c);
    dx[0] = dc_total * g * i * (T(1) - i);
    dx[1] = dc_total * c_prev * f * (T(1) - f);
    dx[2] = dc_total * i * (T(1) - g * g);
    dx[3] = dh * tanh_c * o * (T(1) - o);
    dc = dc_total * f;
    for (int k = 0; k < 4; ++k) dr[k] = dx[k];
  }
};

struct GruCell {
  static constexpr CellKind kind = CellKind::gru;
  static constexpr const char* name = "gru";
  static constexpr int gates = 3;
  static constexpr int aux = 1;  // W_hn h + b_hn, which r multiplies
  static constexpr bool has_cell_state = false;
  static constexpr bool input_grads_differ = true;
  static constexpr bool backward_reads_h_prev = true;
  static constexpr bool projectable = false;

  template <typename T>
  FUSEDRNN_HD static T forward_unit(const T (&xs)[3], const T (&hp)[3], const T (&bh)[3], T h, T&, Activation,
                                    SavedUnit<GruCell, T>& s) {
    const T hn = hp[2] + bh[2];
    const T r = sigmoid(xs[0] + (hp[0] + bh[0]));
    const T z = sigmoid(xs[1] + (hp[1] + bh[1]));
    const T n = tanh_act(xs[2] + r * hn);
    s.gate[0] = r;
    s.gate[1] = z;
    s.gate[2] = n;
    s.aux[0] = hn;
    return (T(1) - z) * n + z * h;
  }

  // The n gate's gradient differs on the two sides: the input side sees d(xn), the recurrent
  // side d(hn) = d(xn) * r.
  template <typename T>
  FUSEDRNN_HD static void backward_unit(const SavedUnit<GruCell, T>& s, T h_prev, T dh, T&, Activation, T (&dx)[3],
                                        T (&dr)[3], T& dh_direct) {
    const T r = s.gate[0], z = s.gate[1], n = s.gate[2], hn = s.aux[0];
    dx[2] = dh * (T(1) - z) * (T(1) - n * n);
    dr[2] = dx[2] * r;
    dx[0] = dr[0] = dx[2] * hn * r * (T(1) - r);
    dx[1] = dr[1] = dh * (h_prev - n) * z * (T(1) - z);
    dh_direct = dh * z;
  }
};

struct RnnCell {
  static constexpr CellKind kind = CellKind::rnn;
  static constexpr const char* name = "rnn";
  static constexpr int gates = 1;  // saves h' itself
  static constexpr int aux = 0;
  static constexpr bool has_cell_state = false;
  static constexpr bool input_grads_differ = false;
  static constexpr bool backward_reads_h_prev = false;
  static constexpr bool projectable = false;

  template <typename T>
  FUSEDRNN_HD static T forward_unit(const T (&xs)[1], const T (&hp)[1], const T (&bh)[1], T, T&, Activation act,
                                    SavedUnit<RnnCell, T>& s) {
    const T pre = xs[0] + hp[0] + bh[0];
    s.gate[0] = act == Activation::relu ? relu(pre) : tanh_act(pre);
    return s.gate[0];
  }

  // The derivative from the output alone: tanh' = 1 - h^2, relu' = [h > 0] (a product, so that
  // a NaN dh stays NaN).
  template <typename T>
  FUSEDRNN_HD static void backward_unit(const SavedUnit<RnnCell, T>& s, T, T dh, T&, Activation act, T (&dx)[1],
                                        T (&dr)[1], T&) {
    const T h = s.gate[0];
    dx[0] = dr[0] = act == Activation::relu ? dh * (h > T(0) ? T(1) : T(0)) : dh * (T(1) - h * h);
  }
};

// The cells, and f(Cell{}) called with the one a CellKind names: from the run-time cell to the
// compile-time one. The one list of the cells.
inline constexpr CellKind kCells[] = {CellKind::lstm, CellKind::gru, CellKind::rnn};

template <class F>
decltype(auto) with_cell(CellKind kind, F&& f) {
  switch (kind) {
    case CellKind::lstm: return f(LstmCell{});
    case CellKind::gru: return f(GruCell{});
    default: return f(RnnCell{});
  }
}

// G, the gate count of a cell.
inline int gate_count(CellKind kind) {
  return with_cell(kind, [](auto cell) { return decltype(cell)::gates; });
}

// The CellKind of a name ("lstm", ...); false if none.
inline bool cell_kind_of(const char* name, CellKind& kind) {
  for (CellKind k : kCells) {
    const char* known = with_cell(k, [](auto cell) { return decltype(cell)::name; });
    int i = 0;
    while (known[i] && known[i] == name[i]) ++i;
    if (known[i] == name[i]) {
      kind = k;
      return true;
    }
  }
  return false;
}

}  // namespace fusedrnn
