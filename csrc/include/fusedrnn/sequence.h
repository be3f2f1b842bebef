// Arguments of one direction of a recurrent layer over a whole sequence, shared by the backends.
//
// Letters: B batch, T steps, I input size, H hidden size, G gates of the cell (LSTM 4, GRU 3, RNN 1),
// A saved per-unit values of the cell (LSTM 2, GRU 1, RNN 0), R the size of the state h and of the
// output: H, or P for an LSTM with projections (torch's proj_size: h = W_hr (o * tanh(c')), W_hr
// (P, H); the cell state c keeps size H; CPU only). All arrays are C-contiguous and allocated by
// the caller; kernels allocate only per-call workspace, never inside the time loop.
//
// Time: step s of row b works on time index t = s (forward) or t = len_b - 1 - s (reverse) for
// s < len_b. Rows at t >= len_b get zeros in y and in every saved array and keep their state.
// A recurrent mask m (B, H) replaces h by h * m where it meets W_hh, the same for every step
// (variational dropout); the state itself, and GRU's z*h path, see h unmasked.
#pragma once

#include <cstdint>

#include "fusedrnn/cells.h"

namespace fusedrnn {

struct SeqDims {
  int64_t batch, steps, input, hidden;
  int64_t proj = 0;  // P of an LSTM with projections, 0 for none

  int64_t state() const { return proj ? proj : hidden; }  // R
};

template <typename T>
struct ForwardArgs {
  SeqDims dims;
  const T* x;              // (B, T, I)
  const T* w_ih;           // (G*H, I)
  const T* w_hh;           // (G*H, R)
  const T* b_ih;           // (G*H)
  const T* b_hh;           // (G*H)
  const T* w_hr;           // (P, H), or null: no projections
  const T* h0;             // (B, R)
  const T* c0;             // (B, H), LSTM only
  const int64_t* lengths;  // (B), 1 <= len <= T
  const T* recurrent_mask; // (B, H) or null: W_hh sees h * mask (variational recurrent dropout); not with w_hr
  bool reverse;
  Activation act;          // RNN only
  int num_threads;
  T* y;                    // (B, T, R) out
  T* h_n;                  // (B, R) out
  T* c_n;                  // (B, H) out, LSTM only
  // Saved for backward; all three null for an inference forward (the CPU kernels then work in
  // scratch memory and save nothing):
  T* gates;                // (B, T, G*H) out: gate activations
  T* aux;                  // (B, T, A*H) out: LSTM [tanh(c'), c_prev], GRU [W_hn h + b_hn]
  T* h_prev;               // (B, T, R) out: the state each step started from
};

template <typename T>
struct BackwardArgs {
  SeqDims dims;
  const T* x;              // (B, T, I)
  const T* w_ih;           // (G*H, I)
  const T* w_hh;           // (G*H, R)
  const T* w_hr;           // (P, H), or null: no projections
  const int64_t* lengths;  // (B)
  const T* recurrent_mask; // (B, H) or null, as in forward
  bool reverse;
  Activation act;          // RNN only
  int num_threads;
  const T* gates;          // (B, T, G*H) from forward
  const T* aux;            // (B, T, A*H) from forward
  const T* h_prev;         // (B, T, R) from forward
  const T* dy;             // (B, T, R)
  const T* dh_n;           // (B, R), may be null (zero)
  const T* dc_n;           // (B, H), may be null (zero); LSTM only
  T* dx;                   // (B, T, I) out, or null: not computed (the input needs no gradient)
  T* dw_ih;                // (G*H, I) out
  T* dw_hh;                // (G*H, R) out
  T* dw_hr;                // (P, H) out, with w_hr
  T* db_ih;                // (G*H) out
  T* db_hh;                // (G*H) out
  T* dh0;                  // (B, R) out
  T* dc0;                  // (B, H) out, LSTM only
};

}  // namespace fusedrnn
