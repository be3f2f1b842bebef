// Splitting work over threads: batch rows in the time loop (rows are independent through the whole
// recurrence, so each thread walks all steps for its own rows with no synchronisation between
// steps), and output rows of the weight-gradient GEMMs after it. Or, where the batch is too small
// to share out, hidden units: a team of threads that meets at a barrier once per step.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

namespace fusedrnn::cpu {

struct RowRange {
  int64_t begin, end;
};

// [0, n) in at most num_threads contiguous, nearly equal, non-empty parts.
inline std::vector<RowRange> split_rows(int64_t n, int num_threads) {
  int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads, n));
  std::vector<RowRange> ranges;
  for (int64_t p = 0; p < parts; ++p) ranges.push_back({n * p / parts, n * (p + 1) / parts});
  return ranges;
}

// Threads worth starting for `work` units (elements, multiply-adds) at `min_per_thread` units
// each: starting a thread costs ~20 us, more than small loops save. At least 1, at most num_threads.
inline int threads_for(int64_t work, int64_t min_per_thread, int num_threads) {
  return static_cast<int>(std::clamp<int64_t>(work / min_per_thread, 1, std::max(1, num_threads)));
}

// Runs work(range) for every range, the first on the calling thread. `work` must not throw:
// everything it needs is allocated before this is called. If a thread cannot be started, its
// share runs on the calling thread instead.
template <class Work>
void for_each_range(const std::vector<RowRange>& ranges, Work work) {
  std::vector<std::thread> threads;
  std::vector<RowRange> inline_ranges{ranges.front()};
  for (size_t p = 1; p < ranges.size(); ++p) {
    try {
      threads.emplace_back(work, ranges[p]);
    } catch (const std::system_error&) {
      inline_ranges.push_back(ranges[p]);
    }
  }
  for (const RowRange& range : inline_ranges) work(range);
  for (std::thread& thread : threads) thread.join();
}

// [0, n) in at most `parts` contiguous non-empty parts whose boundaries are multiples of `align`
// (but the end): a thread's hidden units start on a vector boundary.
inline std::vector<RowRange> split_aligned(int64_t n, int parts, int64_t align) {
  const int64_t blocks = (n + align - 1) / align;
  std::vector<RowRange> ranges;
  for (const RowRange& r : split_rows(blocks, parts))
    ranges.push_back({r.begin * align, std::min(n, r.end * align)});
  return ranges;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Waits until done() holds: spinning first (a team's step takes microseconds, less than a wake-up),
// then yielding the core, so that a team larger than the cores it runs on (more threads asked for
// than there are) still makes progress.
template <class Done>
void spin_until(Done done) {
  constexpr int kSpinsBeforeYield = 1 << 10;  // pauses: some tens of microseconds
  for (int spins = 0; !done(); ++spins) {
    if (spins < kSpinsBeforeYield)
      cpu_relax();
    else
      std::this_thread::yield();
  }
}

// The members of a team meet here once per step.
class SpinBarrier {
 public:
  explicit SpinBarrier(int count) : count_(count) {}
  int size() const { return count_; }

  void wait() {
    const unsigned generation = generation_.load(std::memory_order_acquire);
    if (waiting_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
      waiting_.store(0, std::memory_order_relaxed);
      generation_.store(generation + 1, std::memory_order_release);
      return;
    }
    spin_until([&] { return generation_.load(std::memory_order_acquire) != generation; });
  }

 private:
  const int count_;
  std::atomic<int> waiting_{0};
  std::atomic<unsigned> generation_{0};
};

// Runs work(member, team_size, barrier) on up to `size` threads, the calling thread being member 0.
// If a thread cannot be started the team is smaller, so `work` must share its parts by team_size
// (member, member + team_size, ...). `work` must not throw.
template <class Work>
void run_team(int size, Work work) {
  std::atomic<SpinBarrier*> ready{nullptr};  // set once the team is complete
  std::vector<std::thread> threads;
  for (int member = 1; member < size; ++member) {
    try {
      threads.emplace_back([&ready, &work, member] {
        spin_until([&] { return ready.load(std::memory_order_acquire) != nullptr; });
        SpinBarrier& barrier = *ready.load(std::memory_order_acquire);
        work(member, barrier.size(), barrier);
      });
    } catch (const std::system_error&) {
      break;
    }
  }
  const int team_size = static_cast<int>(threads.size()) + 1;
  SpinBarrier barrier(team_size);
  ready.store(&barrier, std::memory_order_release);
  work(0, team_size, barrier);
  for (std::thread& thread : threads) thread.join();
}

}  // namespace fusedrnn::cpu
