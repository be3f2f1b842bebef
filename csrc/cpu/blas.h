// The few BLAS calls the kernels make (scipy-openblas32, whose symbols carry a scipy_ prefix), typed for float and double, and control over OpenBLAS's threads.
#pragma once

#include <cstdint>

namespace fusedrnn::cpu {

// Row-major C = alpha * op(A) @ op(B) + beta * C, with op = transpose when trans_* is true.
// A is (m, k) after op, B is (k, n) after op; lda/ldb/ldc are row strides of the stored matrices.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

int blas_num_threads();
void set_blas_num_threads(int n);
const char* blas_config();

// While alive, OpenBLAS runs every call on the calling thread. The kernels split their work over
// their own threads, each calling single-threaded BLAS: OpenBLAS's own pool, once woken, spins for
// a while after each call and takes a core from our workers. Nested and concurrent guards (two
// directions of a bidirectional layer in two threads) restore the setting when the last one ends.
class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
};

}  // namespace fusedrnn::cpu
