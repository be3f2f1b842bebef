// The kernel is written once over GCC vector types and compiled per instruction set (isa.h).
#include "cpu/packed_gemm.h"

#include "cpu/isa.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>

namespace fusedrnn::cpu {

namespace {

// MR rows of a times NP consecutive panels (each two vectors wide, panel_stride apart):
// c (MR, NP*2L) = a (MR, k) @ panels (k, NP*2L). The 2*MR*NP accumulators live in registers for
// the whole k loop. Each one is a chain of FMAs that waits on its own previous result (4 cycles),
// so a block of few rows takes several panels at once to keep the FMA units busy; every output
// still sums over k in the same order, whatever MR and NP.
template <typename T, int Bytes, int MR, int NP = 1>
inline __attribute__((always_inline)) void micro_kernel(int64_t k, const T* a, int64_t lda, const T* panels,
                                                        int64_t panel_stride, T* c, int64_t ldc) {
  typedef T V __attribute__((vector_size(Bytes)));
  constexpr int L = Bytes / sizeof(T);
  V acc[MR][NP][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) acc[r][q][0] = acc[r][q][1] = V{};
  for (int64_t kk = 0; kk < k; ++kk) {
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      V b0, b1;
      std::memcpy(&b0, panels + q * panel_stride + kk * 2 * L, Bytes);
      std::memcpy(&b1, panels + q * panel_stride + kk * 2 * L + L, Bytes);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const T s = a[r * lda + kk];
        acc[r][q][0] += s * b0;
        acc[r][q][1] += s * b1;
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NP; ++q) {
      std::memcpy(c + r * ldc + q * 2 * L, &acc[r][q][0], Bytes);
      std::memcpy(c + r * ldc + q * 2 * L + L, &acc[r][q][1], Bytes);
    }
}

// Rows m0.. m0+MR (or fewer, for the last block) times panel p; a panel past n goes through a
// local buffer so that only the valid columns are stored.
template <typename T, int Bytes, int MR>
inline __attribute__((always_inline)) void row_block(const PackedMatrix<T>& b, int64_t p, const T* a,
                                                     int64_t lda, T* c, int64_t ldc) {
  constexpr int W = 2 * Bytes / sizeof(T);
  const int64_t col = p * W, cols = std::min<int64_t>(W, b.n() - col);
  if (cols == W) {
    micro_kernel<T, Bytes, MR>(b.k(), a, lda, b.panel(p), 0, c + col, ldc);
    return;
  }
  T tmp[MR * W];
  micro_kernel<T, Bytes, MR>(b.k(), a, lda, b.panel(p), 0, tmp, W);
  for (int r = 0; r < MR; ++r) std::memcpy(c + r * ldc + col, tmp + r * W, cols * sizeof(T));
}

// A block of R < MR rows (a batch of one to seven, or what is left past the full blocks) times
// every panel: R < 4 rows take 4 / R panels at a time (eight chains of FMAs or more), the panels
// left over one at a time.
template <typename T, int Bytes, int R>
inline __attribute__((always_inline)) void short_block(const PackedMatrix<T>& b, const T* a, int64_t lda, T* c,
                                                       int64_t ldc) {
  constexpr int NP = R >= 4 ? 1 : 4 / R;
  constexpr int W = 2 * Bytes / sizeof(T);
  const int64_t panels = (b.n() + W - 1) / W, full_panels = b.n() / W;
  int64_t p = 0;
  if constexpr (NP > 1)
    for (; p + NP <= full_panels; p += NP)
      micro_kernel<T, Bytes, R, NP>(b.k(), a, lda, b.panel(p), b.k() * W, c + p * W, ldc);
  for (; p < panels; ++p) row_block<T, Bytes, R>(b, p, a, lda, c, ldc);
}

template <typename T, int Bytes, int MR>
inline __attribute__((always_inline)) void multiply_rows(const PackedMatrix<T>& b, const T* a, int64_t m,
                                                         int64_t lda, T* c, int64_t ldc) {
  const int64_t panels = (b.n() + b.panel_width() - 1) / b.panel_width();
  const int64_t full = m - m % MR;
  if (full > 0)
    for (int64_t p = 0; p < panels; ++p)  // panel outside: it stays in L1 while the rows pass
      for (int64_t r = 0; r < full; r += MR) row_block<T, Bytes, MR>(b, p, a + r * lda, lda, c + r * ldc, ldc);
  const T* a_rest = a + full * lda;
  T* c_rest = c + full * ldc;
  switch (m - full) {  // the remaining rows, fewer than MR, with a kernel of their exact height
#define FUSEDRNN_REST(R) \
  case R:                \
    if constexpr (R < MR) short_block<T, Bytes, R>(b, a_rest, lda, c_rest, ldc); \
    break;
    FUSEDRNN_REST(1) FUSEDRNN_REST(2) FUSEDRNN_REST(3) FUSEDRNN_REST(4) FUSEDRNN_REST(5)
    FUSEDRNN_REST(6) FUSEDRNN_REST(7)
#undef FUSEDRNN_REST
    default:
      break;
  }
}

// Instruction-set variants: vector bytes and row-block height fit each set's register file.
#ifdef FUSEDRNN_X86_DISPATCH
template <typename T>
FUSEDRNN_TARGET_AVX512 void multiply_avx512(const PackedMatrix<T>& b, const T* a,
                                                                           int64_t m, int64_t lda, T* c, int64_t ldc) {
  multiply_rows<T, 64, 8>(b, a, m, lda, c, ldc);
}
template <typename T>
FUSEDRNN_TARGET_AVX2 void multiply_avx2(const PackedMatrix<T>& b, const T* a, int64_t m,
                                                       int64_t lda, T* c, int64_t ldc) {
  multiply_rows<T, 32, 6>(b, a, m, lda, c, ldc);
}
#endif
template <typename T>
void multiply_baseline(const PackedMatrix<T>& b, const T* a, int64_t m, int64_t lda, T* c, int64_t ldc) {
  multiply_rows<T, 16, 6>(b, a, m, lda, c, ldc);
}

template <typename T>
struct Variant {
  int64_t vector_bytes;
  typename PackedMatrix<T>::Multiply multiply;
};

template <typename T>
Variant<T> best_variant() {
  switch (best_isa()) {
#ifdef FUSEDRNN_X86_DISPATCH
    case Isa::avx512:
      return {64, &multiply_avx512<T>};
    case Isa::avx2:
      return {32, &multiply_avx2<T>};
#endif
    default:
      return {16, &multiply_baseline<T>};
  }
}

typedef float Float4 __attribute__((vector_size(16)));

// Lanes I0..I3 of a and b side by side (b's lanes numbered 4 to 7). __builtin_shufflevector is
// clang's and only GCC 12's on; __builtin_shuffle is GCC's.
template <int I0, int I1, int I2, int I3>
inline Float4 shuffle(Float4 a, Float4 b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, I0, I1, I2, I3);
#else
  typedef int32_t Lanes __attribute__((vector_size(16)));
  return __builtin_shuffle(a, b, Lanes{I0, I1, I2, I3});
#endif
}

// out (4, 4) = in (4, 4)^T; rows in_stride and out_stride elements apart.
inline void transpose_4x4(const float* in, int64_t in_stride, float* out, int64_t out_stride) {
  Float4 r0, r1, r2, r3;
  std::memcpy(&r0, in, 16);
  std::memcpy(&r1, in + in_stride, 16);
  std::memcpy(&r2, in + 2 * in_stride, 16);
  std::memcpy(&r3, in + 3 * in_stride, 16);
  const Float4 lo01 = shuffle<0, 4, 1, 5>(r0, r1), lo23 = shuffle<0, 4, 1, 5>(r2, r3);  // columns 0 and 1
  const Float4 hi01 = shuffle<2, 6, 3, 7>(r0, r1), hi23 = shuffle<2, 6, 3, 7>(r2, r3);  // columns 2 and 3
  const Float4 c0 = shuffle<0, 1, 4, 5>(lo01, lo23), c1 = shuffle<2, 3, 6, 7>(lo01, lo23);
  const Float4 c2 = shuffle<0, 1, 4, 5>(hi01, hi23), c3 = shuffle<2, 3, 6, 7>(hi01, hi23);
  std::memcpy(out, &c0, 16);
  std::memcpy(out + out_stride, &c1, 16);
  std::memcpy(out + 2 * out_stride, &c2, 16);
  std::memcpy(out + 3 * out_stride, &c3, 16);
}

// out (k, cols), rows `width` apart, = in^T, in (cols, k) with rows in_stride apart: the forward's
// W_hh^T from W_hh. Read across element by element, it took a sixth of a B=1 T=30 inference
// forward; float goes by 4x4 blocks, double (for gradient checks) element by element.
template <typename T>
void pack_transposed(const T* in, int64_t in_stride, int64_t k, int64_t cols, T* out, int64_t width) {
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>)
    for (; j + 4 <= cols; j += 4) {
      int64_t kk = 0;
      for (; kk + 4 <= k; kk += 4) transpose_4x4(in + j * in_stride + kk, in_stride, out + kk * width + j, width);
      for (; kk < k; ++kk)
        for (int64_t jj = j; jj < j + 4; ++jj) out[kk * width + jj] = in[jj * in_stride + kk];
    }
  for (; j < cols; ++j)
    for (int64_t kk = 0; kk < k; ++kk) out[kk * width + j] = in[j * in_stride + kk];
}

}  // namespace

template <typename T>
PackedMatrix<T>::PackedMatrix(int64_t k, int64_t n) : k_(k), n_(n) {
  static const Variant<T> variant = best_variant<T>();
  panel_width_ = 2 * variant.vector_bytes / static_cast<int64_t>(sizeof(T));
  multiply_ = variant.multiply;
  const int64_t panels = (n + panel_width_ - 1) / panel_width_;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(1, panels * k * panel_width_)) * sizeof(T);
  data_.reset(static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  if (!data_) throw std::bad_alloc();
}

template <typename T>
PackedMatrix<T>::PackedMatrix(const T* b, int64_t k, int64_t n, int64_t row_stride, int64_t col_stride)
    : PackedMatrix(k, n) {
  pack(b, row_stride, col_stride);
}

template <typename T>
void PackedMatrix<T>::pack(const T* b, int64_t row_stride, int64_t col_stride) {
  const int64_t W = panel_width_, panels = (n_ + W - 1) / W;
  for (int64_t p = 0; p < panels; ++p) {
    T* out = data_.get() + p * k_ * W;  // (k, W)
    const T* in = b + p * W * col_stride;
    const int64_t cols = std::min(W, n_ - p * W);
    if (cols < W) std::fill(out, out + k_ * W, T(0));  // the last panel's padding
    if (row_stride == 1)  // the forward's W_hh^T
      pack_transposed(in, col_stride, k_, cols, out, W);
    else if (col_stride == 1)  // the backward's W_hh
      for (int64_t kk = 0; kk < k_; ++kk) std::copy(in + kk * row_stride, in + kk * row_stride + cols, out + kk * W);
    else
      for (int64_t kk = 0; kk < k_; ++kk)
        for (int64_t j = 0; j < cols; ++j) out[kk * W + j] = in[kk * row_stride + j * col_stride];
  }
}

template <typename T>
void PackedMatrix<T>::multiply(const T* a, int64_t m, int64_t lda, T* c, int64_t ldc) const {
  if (m > 0) multiply_(*this, a, m, lda, c, ldc);
}

template class PackedMatrix<float>;
template class PackedMatrix<double>;

}  // namespace fusedrnn::cpu
