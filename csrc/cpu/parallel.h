// Splitting work over threads: batch rows in the time loop (rows are independent through the whole
// recurrence, so each thread walks all steps for its own rows with no synchronisation between
// steps), and output rows of the weight-gradient GEMMs after it.
#pragma once

#include <algorithm>
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

}  // namespace fusedrnn::cpu
