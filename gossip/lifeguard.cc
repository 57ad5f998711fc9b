// The Lifeguard formulas, as memberlist implements them: the timeout after c
// confirmations is max - (max - min) · log(c + 1) / log(k + 1), never below
// min, rounded to the millisecond.
#include "lifeguard.h"

#include <algorithm>
#include <cmath>

namespace mixlb::gossip {

void Awareness::apply(int delta) { score_ = std::clamp(score_ + delta, 0, max_ - 1); }

Suspicion::Suspicion(std::string_view from, int k, Duration min, Duration max, TimePoint start)
    : k_(k), min_(min), max_(std::max(min, max)), start_(start), first_accuser_(from) {
  accusers_.emplace(from);
}

bool Suspicion::confirm(std::string_view from) {
  if (confirmations_ >= k_) return false;
  if (!accusers_.emplace(from).second) return false;
  ++confirmations_;
  return true;
}

Duration Suspicion::timeout() const {
  if (k_ < 1) return min_;
  const double fraction = std::log(confirmations_ + 1.0) / std::log(k_ + 1.0);
  const double raw =
      static_cast<double>(max_.count()) - fraction * static_cast<double>((max_ - min_).count());
  const auto ms = static_cast<std::int64_t>(std::floor(raw / 1e6));
  return std::max<Duration>(min_, std::chrono::milliseconds(ms));
}

}  // namespace mixlb::gossip
