#include "cpu/dropout.h"

#include "cpu/isa.h"

namespace fusedrnn::cpu {

namespace {

template <typename T>
inline __attribute__((always_inline)) void fill(int64_t n, T* __restrict out, uint64_t key, uint32_t threshold,
                                                T scale) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = (counter_hash(key, static_cast<uint64_t>(i)) >> 40) >= threshold ? scale : T(0);
  }
}

#ifdef FUSEDRNN_X86_DISPATCH
// 64-bit vector multiplies (vpmullq) need AVX-512 DQ; without it the loop stays scalar.
template <typename T>
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) void fill_avx512dq(int64_t n, T* out, uint64_t key,
                                                                                  uint32_t threshold, T scale) {
  fill(n, out, key, threshold, scale);
}

bool has_avx512dq() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}
#endif

}  // namespace

template <typename T>
void dropout_mask(int64_t n, T* out, uint64_t key, uint32_t threshold, T scale) {
#ifdef FUSEDRNN_X86_DISPATCH
  static const bool vector = has_avx512dq();
  if (vector) return fill_avx512dq(n, out, key, threshold, scale);
#endif
  fill(n, out, key, threshold, scale);
}

template void dropout_mask<float>(int64_t, float*, uint64_t, uint32_t, float);
template void dropout_mask<double>(int64_t, double*, uint64_t, uint32_t, double);

}  // namespace fusedrnn::cpu
