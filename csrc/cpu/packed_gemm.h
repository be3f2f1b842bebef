// Products of many small row blocks with one fixed matrix: the per-step h @ W_hh^T (forward) and
// dgates @ W_hh (backward). BLAS packs W again on every call, which at 16-64 rows costs about as
// much as the product itself; here W is packed once per sequence into column panels that stay in
// cache for all the steps, and a register-blocked kernel streams the rows past them.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace fusedrnn::cpu {

template <typename T>
class PackedMatrix {
 public:
  // Packs b (k, n), element (kk, nn) at b[kk * row_stride + nn * col_stride]. Allocates.
  PackedMatrix(const T* b, int64_t k, int64_t n, int64_t row_stride, int64_t col_stride);
  // Allocates room for a (k, n) matrix that pack() fills later: on the thread that multiplies
  // with it, so that the packed copy is written into that core's cache.
  PackedMatrix(int64_t k, int64_t n);
  // Packs b as the first constructor does. Allocates nothing.
  void pack(const T* b, int64_t row_stride, int64_t col_stride);

  // c (m, n) = a (m, k) @ b, with row strides lda and ldc. Allocates nothing; safe to call from
  // several threads at once.
  void multiply(const T* a, int64_t m, int64_t lda, T* c, int64_t ldc) const;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t panel_width() const { return panel_width_; }
  const T* panel(int64_t p) const { return data_.get() + p * k_ * panel_width_; }

  using Multiply = void (*)(const PackedMatrix&, const T*, int64_t, int64_t, T*, int64_t);

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  int64_t k_, n_, panel_width_;
  Multiply multiply_;
  std::unique_ptr<T[], Free> data_;  // panels of (k, panel_width), the last one zero-padded
};

}  // namespace fusedrnn::cpu
