// Dropout masks from a counter-based generator: element i of the mask keyed by `key` depends on
// (key, i) alone, so the CPU, the GPU (a CuPy kernel) and the NumPy twin (python/fusedrnn/_dropout.py)
// draw bit-identical masks, and no generator state is carried between calls. A few integer
// operations per element: several times cheaper than NumPy's generator, which made dropout masks
// 5% of a tagger training step.
#pragma once

#include <cstdint>

namespace fusedrnn::cpu {

// SplitMix64's output function at position `index` of the stream that starts at `key`.
inline __attribute__((always_inline)) uint64_t counter_hash(uint64_t key, uint64_t index) {
  uint64_t z = key + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// mask[i] = scale if the top 24 bits of counter_hash(key, i) are >= threshold, else 0: kept with
// probability 1 - threshold / 2^24. out[i] = mask[i], or x[i] * mask[i] where x is given (dropout
// applied in one pass, and again to the gradient in the backward: the key is all it keeps).
// x and out have n elements; large arrays are split over up to num_threads threads.
template <typename T>
void dropout_mask(int64_t n, const T* x, T* out, uint64_t key, uint32_t threshold, T scale, int num_threads);

}  // namespace fusedrnn::cpu
