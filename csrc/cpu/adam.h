// Adam's parameter update fused into one pass over memory. The update touches every weight every
// step and is memory-bound: as separate array operations it reads and writes the weights a dozen
// times (measured at the tagger's 1.2M weights: ~5 ms per step, a tenth of the step).
#pragma once

#include <cstdint>

namespace fusedrnn::cpu {

// m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  var -= alpha m / (sqrt(v) + epsilon)
// (Keras's form, alpha carrying the bias corrections). All arrays have n elements. Large arrays are
// split over up to num_threads threads: each core brings its own share of memory bandwidth.
template <typename T>
void adam_update(int64_t n, T* var, const T* grad, T* m, T* v, T alpha, T beta1, T beta2, T epsilon,
                 int num_threads);

}  // namespace fusedrnn::cpu
