// The CPU kernels: one direction of a recurrent layer over a whole sequence, forward and BPTT.
// Every cell shares one driver (sequence.cpp); the per-unit math is in fusedrnn/cells.h.
#pragma once

#include "fusedrnn/sequence.h"

namespace fusedrnn::cpu {

// y_stride, dy_stride: elements from one (b, t) row of y, dy to the next; H for a (B, T, H) array,
// 2H where the two directions of a bidirectional layer share one (B, T, 2H) array, each its half.
template <class Cell, typename T>
void sequence_forward(const ForwardArgs<T>& args, int64_t y_stride);

template <class Cell, typename T>
void sequence_backward(const BackwardArgs<T>& args, int64_t dy_stride);

}  // namespace fusedrnn::cpu
