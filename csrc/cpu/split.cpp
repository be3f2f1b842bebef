#include "cpu/split.h"

#include <algorithm>

namespace fusedrnn::cpu {

namespace {

double median(std::vector<double> values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

}  // namespace

SplitTrials::Turn SplitTrials::next(const SplitShape& shape) {
  std::lock_guard<std::mutex> lock(mutex_);
  Trials& t = trials_[shape];
  if (t.decided) return {t.winner, false};
  const Split split = t.handed_out++ < kTrials ? Split::rows : Split::units;  // then units until decided
  return {split, true};
}

void SplitTrials::record(const SplitShape& shape, Split split, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Trials& t = trials_[shape];
  if (t.decided) return;  // a trial of another thread, finished after the choice
  t.seconds[static_cast<int>(split)].push_back(seconds);
  const auto& rows = t.seconds[static_cast<int>(Split::rows)];
  const auto& units = t.seconds[static_cast<int>(Split::units)];
  if (static_cast<int>(rows.size()) >= kTrials && static_cast<int>(units.size()) >= kTrials) {
    t.winner = median(units) < median(rows) ? Split::units : Split::rows;
    t.decided = true;
  }
}

SplitTrials& split_trials() {
  static SplitTrials* trials = new SplitTrials();  // never destroyed: kernels may run while the process exits
  return *trials;
}

}  // namespace fusedrnn::cpu
