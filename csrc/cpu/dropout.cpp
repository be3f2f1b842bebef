#include "cpu/dropout.h"

#include <algorithm>

#include "cpu/isa.h"
#include "cpu/parallel.h"

namespace fusedrnn::cpu {

namespace {

// Elements [first, first + n) of the mask, times x where x is given.
template <typename T>
inline __attribute__((always_inline)) void fill(int64_t first, int64_t n, const T* x, T* out,
                                                uint64_t key, uint32_t threshold, T scale) {
  if (x) {
    for (int64_t i = first; i < first + n; ++i)
      out[i] = x[i] * ((counter_hash(key, static_cast<uint64_t>(i)) >> 40) >= threshold ? scale : T(0));
  } else {
    for (int64_t i = first; i < first + n; ++i)
      out[i] = (counter_hash(key, static_cast<uint64_t>(i)) >> 40) >= threshold ? scale : T(0);
  }
}

#ifdef FUSEDRNN_X86_DISPATCH
// 64-bit vector multiplies (vpmullq) need AVX-512 DQ; without it the loop stays scalar.
template <typename T>
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) void fill_avx512dq(int64_t first, int64_t n,
                                                                                  const T* x, T* out, uint64_t key,
                                                                                  uint32_t threshold, T scale) {
  fill(first, n, x, out, key, threshold, scale);
}

bool has_avx512dq() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}
#endif

template <typename T>
void fill_best(int64_t first, int64_t n, const T* x, T* out, uint64_t key, uint32_t threshold, T scale) {
#ifdef FUSEDRNN_X86_DISPATCH
  static const bool vector = best_isa() == Isa::avx512 && has_avx512dq();  // FUSEDRNN_ISA may forbid it
  if (vector) return fill_avx512dq(first, n, x, out, key, threshold, scale);
#endif
  fill(first, n, x, out, key, threshold, scale);
}

}  // namespace

template <typename T>
void dropout_mask(int64_t n, const T* x, T* out, uint64_t key, uint32_t threshold, T scale, int num_threads) {
  for_each_range(split_rows(n, threads_for(n, 1 << 16, num_threads)), [&](RowRange r) {
    fill_best(r.begin, r.end - r.begin, x, out, key, threshold, scale);
  });
}

template void dropout_mask<float>(int64_t, const float*, float*, uint64_t, uint32_t, float, int);
template void dropout_mask<double>(int64_t, const double*, double*, uint64_t, uint32_t, double, int);

}  // namespace fusedrnn::cpu
