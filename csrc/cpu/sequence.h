// The CPU kernels: one direction of a recurrent layer over a whole sequence, forward and BPTT.
// Every cell shares one driver (sequence.cpp); the per-unit math is in fusedrnn/cells.h.
#pragma once

#include "fusedrnn/sequence.h"

namespace fusedrnn::cpu {

template <class Cell, typename T>
void sequence_forward(const ForwardArgs<T>& args);

template <class Cell, typename T>
void sequence_backward(const BackwardArgs<T>& args);

}  // namespace fusedrnn::cpu
