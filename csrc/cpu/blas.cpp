#include "cpu/blas.h"

#include <cblas.h>

#include <mutex>

namespace fusedrnn::cpu {

namespace {

CBLAS_TRANSPOSE op(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

// scipy-openblas32 takes 32-bit sizes; the Python layer rejects arrays whose dimensions overflow.
blasint blas_int(int64_t v) { return static_cast<blasint>(v); }

std::mutex serial_mutex;
int serial_depth = 0;
int saved_threads = 1;

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  scipy_cblas_sgemm(CblasRowMajor, op(trans_a), op(trans_b), blas_int(m), blas_int(n), blas_int(k), alpha,
              a, blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  scipy_cblas_dgemm(CblasRowMajor, op(trans_a), op(trans_b), blas_int(m), blas_int(n), blas_int(k), alpha,
              a, blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

int blas_num_threads() { return scipy_openblas_get_num_threads(); }

void set_blas_num_threads(int n) {
  std::lock_guard<std::mutex> lock(serial_mutex);
  if (serial_depth > 0)
    saved_threads = n;  // applied when the running kernels finish
  else
    scipy_openblas_set_num_threads(n);
}

const char* blas_config() { return scipy_openblas_get_config(); }

SerialBlas::SerialBlas() {
  std::lock_guard<std::mutex> lock(serial_mutex);
  if (serial_depth++ == 0) {
    saved_threads = scipy_openblas_get_num_threads();
    scipy_openblas_set_num_threads(1);
  }
}

SerialBlas::~SerialBlas() {
  std::lock_guard<std::mutex> lock(serial_mutex);
  if (--serial_depth == 0) scipy_openblas_set_num_threads(saved_threads);
}

}  // namespace fusedrnn::cpu
