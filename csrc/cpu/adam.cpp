#include "cpu/adam.h"

#include <algorithm>
#include <cmath>

#include "cpu/isa.h"
#include "cpu/parallel.h"

namespace fusedrnn::cpu {

namespace {

template <typename T>
inline __attribute__((always_inline)) void update(int64_t n, T* __restrict var, const T* __restrict grad,
                                                  T* __restrict m, T* __restrict v, T alpha, T beta1, T beta2,
                                                  T epsilon) {
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    m[i] = beta1 * m[i] + (T(1) - beta1) * g;
    v[i] = beta2 * v[i] + (T(1) - beta2) * g * g;
    var[i] -= alpha * m[i] / (std::sqrt(v[i]) + epsilon);
  }
}

#ifdef FUSEDRNN_X86_DISPATCH
template <typename T>
FUSEDRNN_TARGET_AVX512 void update_avx512(int64_t n, T* var, const T* grad, T* m, T* v, T alpha, T beta1,
                                          T beta2, T epsilon) {
  update(n, var, grad, m, v, alpha, beta1, beta2, epsilon);
}
template <typename T>
FUSEDRNN_TARGET_AVX2 void update_avx2(int64_t n, T* var, const T* grad, T* m, T* v, T alpha, T beta1, T beta2,
                                      T epsilon) {
  update(n, var, grad, m, v, alpha, beta1, beta2, epsilon);
}
#endif

template <typename T>
void update_best(int64_t n, T* var, const T* grad, T* m, T* v, T alpha, T beta1, T beta2, T epsilon) {
  static const Isa isa = best_isa();
#ifdef FUSEDRNN_X86_DISPATCH
  if (isa == Isa::avx512) return update_avx512(n, var, grad, m, v, alpha, beta1, beta2, epsilon);
  if (isa == Isa::avx2) return update_avx2(n, var, grad, m, v, alpha, beta1, beta2, epsilon);
#endif
  update(n, var, grad, m, v, alpha, beta1, beta2, epsilon);
}

}  // namespace

template <typename T>
void adam_update(int64_t n, T* var, const T* grad, T* m, T* v, T alpha, T beta1, T beta2, T epsilon,
                 int num_threads) {
  for_each_range(split_rows(n, threads_for(n, 1 << 16, num_threads)), [&](RowRange r) {
    update_best(r.end - r.begin, var + r.begin, grad + r.begin, m + r.begin, v + r.begin, alpha, beta1, beta2,
                epsilon);
  });
}

template void adam_update<float>(int64_t, float*, const float*, float*, float*, float, float, float, float, int);
template void adam_update<double>(int64_t, double*, const double*, double*, double*, double, double, double,
                                  double, int);

}  // namespace fusedrnn::cpu
