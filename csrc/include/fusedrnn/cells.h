// The math of one hidden unit of each cell, forward and backward, written once for every
// compiled backend (the CPU row loops and the CUDA kernels call these per element).
//
// Conventions (DESIGN.md): PyTorch weight layout and gate order.
//   LSTM gates i, f, g, o:  c' = f*c + i*g,  h' = o*tanh(c')
//   GRU gates r, z, n:      n = tanh(xn + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
//   RNN:                    h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu
// "Pre" values are gate pre-activations; the backward functions return gradients with respect to
// them, which the callers turn into weight, input and state gradients with GEMMs.
#pragma once

#include "fusedrnn/activations.h"

namespace fusedrnn {

enum class Activation : int { tanh = 0, relu = 1 };

struct LstmCell {
  static constexpr int gates = 4;
  static constexpr int aux = 2;  // saved per unit: tanh(c'), c

  template <typename T>
  FUSEDRNN_HD static void forward(T pre_i, T pre_f, T pre_g, T pre_o, T c_prev,
                                  T& i, T& f, T& g, T& o, T& c, T& tanh_c, T& h) {
    i = sigmoid(pre_i);
    f = sigmoid(pre_f);
    g = tanh_act(pre_g);
    o = sigmoid(pre_o);
    c = f * c_prev + i * g;
    tanh_c = tanh_act(c);
    h = o * tanh_c;
  }

  // dh, dc: gradients reaching h' and c' (from the output, the next step and the final state).
  template <typename T>
  FUSEDRNN_HD static void backward(T i, T f, T g, T o, T tanh_c, T c_prev, T dh, T dc,
                                   T& d_pre_i, T& d_pre_f, T& d_pre_g, T& d_pre_o, T& dc_prev) {
    T dc_total = dc + dh * o * (T(1) - tanh_c * tanh_c);
    d_pre_i = dc_total * g * i * (T(1) - i);
    d_pre_f = dc_total * c_prev * f * (T(1) - f);
    d_pre_g = dc_total * i * (T(1) - g * g);
    d_pre_o = dh * tanh_c * o * (T(1) - o);
    dc_prev = dc_total * f;
  }
};

struct GruCell {
  static constexpr int gates = 3;
  static constexpr int aux = 1;  // saved per unit: W_hn h + b_hn, which r multiplies

  // xr, xz, xn: input projections with b_ih; hr, hz, hn: recurrent projections with b_hh.
  template <typename T>
  FUSEDRNN_HD static void forward(T xr, T xz, T xn, T hr, T hz, T hn, T h_prev,
                                  T& r, T& z, T& n, T& h) {
    r = sigmoid(xr + hr);
    z = sigmoid(xz + hz);
    n = tanh_act(xn + r * hn);
    h = (T(1) - z) * n + z * h_prev;
  }

  // The n gate's gradient differs on the two sides: the input side sees d(xn), the recurrent
  // side d(hn) = d(xn) * r. dh_direct is the part of dh_prev that bypasses W_hh.
  template <typename T>
  FUSEDRNN_HD static void backward(T r, T z, T n, T hn, T h_prev, T dh,
                                   T& d_pre_r, T& d_pre_z, T& d_xn, T& d_hn, T& dh_direct) {
    d_xn = dh * (T(1) - z) * (T(1) - n * n);
    d_hn = d_xn * r;
    d_pre_r = d_xn * hn * r * (T(1) - r);
    d_pre_z = dh * (h_prev - n) * z * (T(1) - z);
    dh_direct = dh * z;
  }
};

struct RnnCell {
  static constexpr int gates = 1;
  static constexpr int aux = 0;

  template <typename T>
  FUSEDRNN_HD static T forward(T pre, Activation act) {
    return act == Activation::relu ? relu(pre) : tanh_act(pre);
  }

  // The derivative from the output alone: tanh' = 1 - h^2, relu' = [h > 0] (a product, so that
  // a NaN dh stays NaN).
  template <typename T>
  FUSEDRNN_HD static T backward(T h, T dh, Activation act) {
    return act == Activation::relu ? dh * (h > T(0) ? T(1) : T(0)) : dh * (T(1) - h * h);
  }
};

}  // namespace fusedrnn
