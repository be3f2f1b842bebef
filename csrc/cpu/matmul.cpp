#include "cpu/matmul.h"

#include <algorithm>

#include "cpu/blas.h"
#include "cpu/parallel.h"

namespace fusedrnn::cpu {

template <typename T>
void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
            int64_t ldb, T* c, int64_t ldc, int num_threads) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum; BLAS may leave c untouched
    for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc, c + r * ldc + n, T(0));
    return;
  }
  SerialBlas serial;
  for_each_range(split_rows(m, threads_for(m * n * k, 1 << 20, num_threads)), [&](RowRange rows) {
    // Row r of op(a) starts at a + r * lda, or at column r of the stored a when transposed.
    const T* a_rows = a + rows.begin * (trans_a ? 1 : lda);
    gemm(trans_a, trans_b, rows.end - rows.begin, n, k, T(1), a_rows, lda, b, ldb, T(0), c + rows.begin * ldc, ldc);
  });
}

template void matmul<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
                            float*, int64_t, int);
template void matmul<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t, const double*,
                             int64_t, double*, int64_t, int);

}  // namespace fusedrnn::cpu
