// Run-time choice of instruction set. Wheels are built for the x86-64 baseline; the hot loops are
// also compiled for AVX2+FMA and AVX-512 (function target attributes) and picked by what the CPU
// reports, so one binary runs everywhere and fast where it can.
#pragma once

namespace fusedrnn::cpu {

enum class Isa { baseline, avx2, avx512 };

#if defined(__x86_64__) && defined(__GNUC__)
#define FUSEDRNN_X86_DISPATCH 1
#define FUSEDRNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FUSEDRNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#endif

inline Isa best_isa() {
#ifdef FUSEDRNN_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::baseline;
}

inline const char* isa_name(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2+fma" : "baseline";
}

}  // namespace fusedrnn::cpu
