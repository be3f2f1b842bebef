// Device-side arguments of one direction of a recurrent layer, shared by the two CUDA paths
// (per-step: steps.cu; persistent: persistent.cu and its kernels, persistent_kernels.cuh). Same
// conventions as fusedrnn/sequence.h: every pointer is device memory, C-contiguous, allocated by
// the caller; the saved arrays have the CPU layout, so a forward on one path can be followed by a
// backward on the other.
//
// Letters: B batch, T steps, I input, H hidden, G gates (LSTM 4, GRU 3, RNN 1), A saved per-unit
// values (LSTM 2, GRU 1, RNN 0). Step s of row b works on t = s, or t = len_b - 1 - s in reverse.
#pragma once

#include <cstdint>

#include "fusedrnn/cells.h"
#include "fusedrnn/sequence.h"

namespace fusedrnn::cuda {

template <typename T>
struct DirectionForward {
  const T* xproj;          // (B, T, G*H) x @ w_ih^T without bias, filled by the caller's GEMM
  const T* w_hh;           // (G*H, H)
  const T* b_ih;           // (G*H)
  const T* b_hh;           // (G*H)
  const T* h0;             // (B, H)
  const T* c0;             // (B, H), LSTM only (null otherwise)
  const int64_t* lengths;  // (B), 1 <= len <= T
  const T* recurrent_mask; // (B, H) or null: W_hh sees h * mask
  bool reverse;
  T* y;                    // (B, T, H) out, zeros at t >= len
  T* h_n;                  // (B, H) out
  T* c_n;                  // (B, H) out, LSTM only
  T* gates;                // (B, T, G*H) out, zeros at t >= len
  T* aux;                  // (B, T, A*H) out, zeros at t >= len
  T* h_prev;               // (B, T, H) out, zeros at t >= len
};

template <typename T>
struct DirectionBackward {
  const T* w_hh;           // (G*H, H)
  const int64_t* lengths;  // (B)
  const T* recurrent_mask; // (B, H) or null
  bool reverse;
  const T* gates;          // (B, T, G*H) from forward
  const T* aux;            // (B, T, A*H) from forward
  const T* h_prev;         // (B, T, H) from forward
  const T* dy;             // (B, T, H)
  const T* dh_n;           // (B, H) or null (zero)
  const T* dc_n;           // (B, H) or null (zero), LSTM only
  T* dpre_x;               // (B, T, G*H) out: gradient of the input-side pre-activations, zeros at t >= len
  T* dpre_h;               // (B, T, G*H) out: of the recurrent-side ones; GRU's n gate differs (d_hn),
                           //   for LSTM and RNN it may be the same pointer as dpre_x
  T* dh0;                  // (B, H) out
  T* dc0;                  // (B, H) out, LSTM only
};

}  // namespace fusedrnn::cuda
