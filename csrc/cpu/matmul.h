// A general matrix product split over the kernels' own threads: the training layer's dense products
// (a tagger's TimeDistributed Dense over B*T rows). numpy's bundled BLAS stays on one thread while
// training (python/fusedrnn/nn/_numpy_blas.py says why); here each of our threads calls
// single-threaded BLAS on a block of output rows, as the recurrent kernels do.
#pragma once

#include <cstdint>

namespace fusedrnn::cpu {

// Row-major c (m, n) = op(a) (m, k) @ op(b) (k, n), op = transpose when trans_* is true; lda, ldb,
// ldc are the row strides of the stored matrices. Products too small to repay starting a thread
// run on the calling thread.
template <typename T>
void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
            int64_t ldb, T* c, int64_t ldc, int num_threads);

}  // namespace fusedrnn::cpu
