// Sigmoid and tanh written so that a loop over them vectorizes (no libm calls, no branches),
// and callable from host and device code.
//
// float: exp by range reduction x = n*ln2 + r, |r| <= ln2/2, a degree-7 Taylor polynomial for
// exp(r) (relative error below 1e-8, under float's half ulp) and 2^n built in the exponent bits.
// tanh uses an odd Taylor polynomial near zero, where (1 - e)/(1 + e) would cancel.
// double: the C library, because float64 exists for gradient checks, not for speed.
// NaN propagates through every function (comparisons with NaN are false, so no clamp swallows it).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FUSEDRNN_HD __host__ __device__ __forceinline__
#else
#define FUSEDRNN_HD inline __attribute__((always_inline))
#endif

namespace fusedrnn {

FUSEDRNN_HD float exp_fast(float x) {
  // Beyond these bounds expf over/underflows; clamping keeps the exponent bits valid.
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.0f ? -87.0f : x;
  // Round x/ln2 to nearest with the 1.5*2^23 trick: exact for |x/ln2| < 2^22, and vectorizable.
  const float shifter = 12582912.0f;
  float n = (x * 1.44269504088896341f + shifter) - shifter;
  // ln2 split in two so that n*ln2 is subtracted without rounding error.
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t bits = (static_cast<uint32_t>(static_cast<int32_t>(n)) + 127u) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

FUSEDRNN_HD float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

FUSEDRNN_HD float tanh_act(float x) {
  float a = std::fabs(x);
  float e = exp_fast(-2.0f * a);
  float far = (1.0f - e) / (1.0f + e);  // accurate for |x| >= 0.125, where e <= 0.78
  float z = a * a;                       // tanh a = a - a^3/3 + 2a^5/15 - 17a^7/315 + 62a^9/2835
  float near = a + a * z * (-1.0f / 3.0f + z * (2.0f / 15.0f + z * (-17.0f / 315.0f + z * (62.0f / 2835.0f))));
  float t = a < 0.125f ? near : far;
  return std::copysign(t, x);
}

FUSEDRNN_HD double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
FUSEDRNN_HD double tanh_act(double x) { return std::tanh(x); }

// relu that keeps NaN (max(x, 0) would return 0).
template <typename T>
FUSEDRNN_HD T relu(T x) { return x < T(0) ? T(0) : x; }

}  // namespace fusedrnn
