// Run-time choice of instruction set. Wheels are built for the x86-64 baseline; the hot loops are
// also compiled for AVX2+FMA and AVX-512 (function target attributes) and picked by what the CPU
// reports, so one binary runs everywhere and fast where it can. Other targets (aarch64) have only the
// baseline: the same kernels over GCC vector types, which the compiler maps to the target's SIMD (NEON).
//
// FUSEDRNN_ISA=baseline|avx2|avx512 (read once, at the first kernel or import) runs a lower path than
// the best, so that each one is tested on one machine; the portable baseline is what non-x86 wheels
// run. A level the CPU (or this build) lacks, or an unknown name, is refused rather than quietly
// replaced: isa_override_error() says why, and fusedrnn raises it as a ValueError at import.
#pragma once

#include <cctype>
#include <cstdlib>
#include <string>

namespace fusedrnn::cpu {

enum class Isa { baseline, avx2, avx512 };

#if defined(__x86_64__) && defined(__GNUC__)
#define FUSEDRNN_X86_DISPATCH 1
#define FUSEDRNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FUSEDRNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#endif

// The best level this CPU runs and this build has variants for.
inline Isa cpu_isa() {
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

struct IsaChoice {
  Isa isa;
  std::string error;  // empty unless FUSEDRNN_ISA was refused (then isa is the CPU's best)
};

// What FUSEDRNN_ISA (``wanted``, null or empty for "auto") chooses on a CPU whose best is ``best``.
inline IsaChoice choose_isa(const char* wanted, Isa best) {
  std::string name;
  for (const char* c = wanted ? wanted : ""; *c; ++c)
    if (!std::isspace(static_cast<unsigned char>(*c))) name += static_cast<char>(std::tolower(*c));
  Isa isa;
  if (name.empty() || name == "auto") return {best, ""};
  if (name == "baseline") {
    isa = Isa::baseline;
  } else if (name == "avx2" || name == "avx2+fma") {
    isa = Isa::avx2;
  } else if (name == "avx512") {
    isa = Isa::avx512;
  } else {
    return {best, "FUSEDRNN_ISA: expected auto, baseline, avx2 or avx512, got '" + std::string(wanted) + "'"};
  }
  if (isa > best)
    return {best, "FUSEDRNN_ISA=" + name + ": this CPU (or this build) runs at most " + isa_name(best) +
                      "; unset it or choose a level up to that one"};
  return {isa, ""};
}

inline const IsaChoice& isa_choice() {
  static const IsaChoice choice = choose_isa(std::getenv("FUSEDRNN_ISA"), cpu_isa());
  return choice;
}

// The level every dispatched kernel runs.
inline Isa best_isa() { return isa_choice().isa; }

inline const std::string& isa_override_error() { return isa_choice().error; }

}  // namespace fusedrnn::cpu
