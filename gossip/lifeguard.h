#pragma once
// Lifeguard's two timers (Dadgar et al., "Lifeguard: Local Health Awareness
// for More Accurate Failure Detection", 2018), kept apart from the protocol
// core so their arithmetic can be tested on its own.
//
// Awareness is the local health multiplier: a node that misses acks and
// nacks it should have received, or has to refute suspicions of itself, is
// more likely slow itself than surrounded by failures, so it waits longer
// before accusing anyone.
//
// Suspicion is the dynamic suspicion timeout: it starts at `max` and shrinks
// logarithmically toward `min` as independent members report the same
// suspect (k confirmations reach `min`), so a member that is really gone is
// declared dead quickly while a lone, possibly mistaken suspicion waits long
// enough for the accused to refute it.
#include <chrono>
#include <string>
#include <string_view>
#include <unordered_set>

#include "config.h"

namespace mixlb::gossip {

class Awareness {
 public:
  explicit Awareness(int max_multiplier) : max_(max_multiplier) {}

  void apply(int delta);
  // 0 is healthy; at most max_multiplier - 1.
  int score() const { return score_; }
  Duration scale(Duration d) const { return d * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

class Suspicion {
 public:
  // `from` is the first accuser; it does not count as a confirmation.
  Suspicion(std::string_view from, int k, Duration min, Duration max, TimePoint start);

  // Counts an accusation from a member not heard from before; true when it
  // was new (and so worth re-gossiping). The deadline moves earlier.
  bool confirm(std::string_view from);

  TimePoint deadline() const { return start_ + timeout(); }
  int confirmations() const { return confirmations_; }
  const std::string& first_accuser() const { return first_accuser_; }
  TimePoint start() const { return start_; }
  Duration min() const { return min_; }
  Duration timeout() const;

 private:
  int k_;
  Duration min_;
  Duration max_;
  TimePoint start_;
  int confirmations_ = 0;
  std::string first_accuser_;
  std::unordered_set<std::string> accusers_;
};

}  // namespace mixlb::gossip
