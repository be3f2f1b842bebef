// How a direction's forward and backward share their threads: by batch rows (each thread walks every
// step for its rows, no synchronisation) or by hidden units (the team meets once per step, each
// member owning a slice of W_hh that stays in its cache). Both give bitwise the same results (the
// same per-unit math, products summed in the same order, and the same GEMM blocks for the input
// projection and dx), so the choice changes times only. FUSEDRNN_CPU_SPLIT=rows|units forces one,
// for tests and benchmarks; "units" needs no recurrent mask, no projections and two threads or more.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace fusedrnn::cpu {

enum class Split { rows, units };

constexpr int64_t kKiB = int64_t(1) << 10;
constexpr int64_t kMiB = int64_t(1) << 20;

// Hidden units of a team member start on a multiple of this: a whole AVX-512 vector of floats.
constexpr int64_t kUnitAlign = 16;

// The shape of a call, as far as the choice goes: calls of one shape cost alike, so the trials
// below compare like with like.
struct SplitShape {
  bool backward, saving;  // saving: a forward that keeps what a backward needs
  int gates;
  int64_t hidden, batch, steps, input;
  int num_threads;
  int element_bytes;
  bool masked, projected;

  int64_t w_hh_bytes() const { return gates * hidden * hidden * element_bytes; }
  bool units_possible() const { return num_threads >= 2 && !masked && !projected && hidden >= 2 * kUnitAlign; }
  auto key() const {
    return std::tie(backward, saving, gates, hidden, batch, steps, input, num_threads, element_bytes);
  }
  bool operator<(const SplitShape& other) const { return key() < other.key(); }
};

// The cost model, measured on two cores (float32, T=100; benchmarks/cpu_split.py, results in
// benchmarks/results/2026-12-05-cpu-split.md, a Xeon with 2 MiB of L2 per core, and
// 2026-12-06-cpu-split.md, an EPYC with 1 MiB). Split by rows, every thread streams all of W_hh
// each step; split by units, each streams its share, at the cost of a barrier per step and a
// thread start per call. Units win where W_hh outgrows a core's L2 and the batch is too small to
// reuse it (LSTM H=512: B=1 1.7-2.5x, B=8 1.0-1.4x; H=1024 B=1 1.7-2.1x) and lose where W_hh is
// small (64 KiB: 0.1x) or every thread has rows enough (LSTM H=256 B=8 0.9x, H=1024 B=128
// 0.8-1.0x): below about two rows per thread per MiB of W_hh. The backward follows the same rule
// (LSTM H=512: B=1 2.2x, B=8 1.1x; H=256 B=4 0.94x on the Xeon): its weight-gradient GEMMs
// after the loop do not depend on the split.
inline Split modelled_split(const SplitShape& s) {
  const int64_t w = s.w_hh_bytes();
  const bool wins = w >= kMiB && s.batch * kMiB <= 2 * s.num_threads * w;
  return s.units_possible() && wins ? Split::units : Split::rows;
}

// Where the machines disagree: a batch smaller than the threads (split by rows leaves cores idle)
// and a W_hh of 128 KiB to 1 MiB. There units won 1.1-1.6x on the EPYC and lost or tied on the
// Xeon, 0.55-1.02x (GRU B=1 H=256: 1.56x and 1.02x; LSTM B=1 H=128: 1.23x and 0.76x).
inline bool split_unsettled(const SplitShape& s) {
  const int64_t w = s.w_hh_bytes();
  return s.units_possible() && s.batch < s.num_threads && w >= 128 * kKiB && w < kMiB;
}

// For unsettled shapes the first calls of each shape try both splits, kTrials calls by rows then
// kTrials by units (blocks, not turns: the layers of a stack that share a shape then each meet
// both), and the faster one by median serves every later call of that shape in this process.
class SplitTrials {
 public:
  static constexpr int kTrials = 3;

  struct Turn {
    Split split;
    bool timed;  // a trial: report its time with record()
  };
  Turn next(const SplitShape& shape);
  void record(const SplitShape& shape, Split split, double seconds);

 private:
  struct Trials {
    std::vector<double> seconds[2];  // by Split
    int handed_out = 0;
    bool decided = false;
    Split winner = Split::rows;
  };
  std::mutex mutex_;
  std::map<SplitShape, Trials> trials_;
};

SplitTrials& split_trials();

// Runs run(split) with the split this call takes: FUSEDRNN_CPU_SPLIT's, the model's, or, for an
// unsettled shape, a timed trial's or the trials' winner. If `run` throws (out of memory), its
// trial is not counted.
template <class Run>
void run_split(const SplitShape& shape, Run run) {
  const char* forced = std::getenv("FUSEDRNN_CPU_SPLIT");
  if (forced && std::strcmp(forced, "rows") == 0) return run(Split::rows);
  if (forced && std::strcmp(forced, "units") == 0) return run(shape.units_possible() ? Split::units : Split::rows);
  if (!split_unsettled(shape)) return run(modelled_split(shape));
  const SplitTrials::Turn turn = split_trials().next(shape);
  if (!turn.timed) return run(turn.split);
  const auto start = std::chrono::steady_clock::now();
  run(turn.split);
  const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
  split_trials().record(shape, turn.split, seconds.count());
}

}  // namespace fusedrnn::cpu
